package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/federation"
)

// seizedMarker is written into record titles, notes and names; a seized
// disk of an encrypted node must not show it.
const seizedMarker = "Kilimanjaro-marker-5519"

// runNode starts the node in dir (already initialised, or initialised now
// from cfg) with passphrase pass ("" for none) and returns it; the test
// closes it if the caller does not.
func runNode(t *testing.T, dir, pass string, edit func(*node.Config)) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig(dir)
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Passphrase = node.Passphrase(pass)
	cfg.KDF = backupParams
	if edit != nil {
		edit(&cfg)
	}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// filesHolding lists the files under dir whose bytes contain marker.
func filesHolding(t *testing.T, dir, marker string) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if holdsMarker(b, marker) {
			hits = append(hits, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// holdsMarker reports whether b shows marker in clear or in base64 (an
// envelope's payload is base64 in JSON): for each alignment of the marker
// on base64's 3-byte groups, the groups wholly inside it encode the same.
func holdsMarker(b []byte, marker string) bool {
	if bytes.Contains(b, []byte(marker)) {
		return true
	}
	for s := 0; s < 3; s++ {
		n := (len(marker) - s) / 3 * 3
		if bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString([]byte(marker[s:s+n])))) {
			return true
		}
	}
	return false
}

// privateKeys gives what must not be readable on a seized disk: the node
// key's Ed25519 seed (the rest of the key is the public key, which the
// peer ID shows) and the archive key.
func privateKeys(t *testing.T, keys node.NodeKeys) map[string][]byte {
	t.Helper()
	return map[string][]byte{"node key": ed25519Key(t, keys).Seed(), "archive key": keys.Archive}
}

// holdsSecret reports whether b shows secret, or either half of it, in
// clear, in hex, or in base64 (standard or URL alphabet) at any of the
// three alignments on base64's 3-byte groups.
func holdsSecret(b, secret []byte) bool {
	for _, s := range [][]byte{secret, secret[:len(secret)/2], secret[len(secret)/2:]} {
		if bytes.Contains(b, s) || bytes.Contains(bytes.ToLower(b), []byte(hex.EncodeToString(s))) {
			return true
		}
		for a := 0; a < 3; a++ {
			n := (len(s) - a) / 3 * 3
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
				if bytes.Contains(b, []byte(enc.EncodeToString(s[a:a+n]))) {
					return true
				}
			}
		}
	}
	return false
}

// filesHoldingSecret lists the files under dir that show secret.
func filesHoldingSecret(t *testing.T, dir string, secret []byte) []string {
	t.Helper()
	var hits []string
	for p, b := range dirFiles(t, dir) {
		if holdsSecret([]byte(b), secret) {
			hits = append(hits, p)
		}
	}
	return hits
}

// dirFiles reads every file under dir but the lock file.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "lock" {
			return err
		}
		b, err := os.ReadFile(p)
		files[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// fillMarked writes an audit, a priority and a committee report with the
// marker in names, notes and titles, each updated once.
func fillMarked(t *testing.T, dir string) {
	t.Helper()
	a := strings.TrimSpace(ok(t, dir, "audit", "new", "--template", "iduit-bg/3.5", "--subject", "Outreach "+seizedMarker, "--place", "Arusha", "--period", "2026-H1"))
	ok(t, dir, "audit", "answer", a, "3.5.1", "yes", "--note", "training by "+seizedMarker)
	p := strings.TrimSpace(ok(t, dir, "priority", "add", "--title", "Naloxone "+seizedMarker, "--kind", "change", "--importance", "5", "--achievability", "4"))
	ok(t, dir, "priority", "update", p, "--achievability", "5")
	ok(t, dir, "report", "add", "--committee", "NSP committee "+seizedMarker, "--date", "2026-01-15", "--service", "City NSP", "--issue", "No syringes at "+seizedMarker)
}

// TestSeizedDisk is the test: after records with a known marker are
// written and the node stops, no file of an encrypted node's data dir, nor
// its export, holds the marker in clear. The same steps on a node in clear
// do find it, which shows the search works.
func TestSeizedDisk(t *testing.T) {
	const pass = "correct horse battery staple"
	for _, encrypt := range []bool{false, true} {
		name := "clear"
		if encrypt {
			name = "encrypted"
		}
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			pf := passFile(t, pass)
			args := []string{"init", "--network", "tanpud", "--name", "TANPUD", "--level", "national"}
			if encrypt {
				args = append(args, "--encrypt", "--passphrase-file", pf)
			}
			ok(t, dir, args...)
			if got := node.Encrypted(dir); got != encrypt {
				t.Fatalf("node.Encrypted = %v after init, want %v", got, encrypt)
			}
			p := ""
			if encrypt {
				p = pass
			}
			n := runNode(t, dir, p, nil)
			fillMarked(t, dir)
			exp := filepath.Join(t.TempDir(), "export.ndjson")
			ok(t, dir, "export", "--out", exp, "--passphrase-file", pf)
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}

			// The node's private keys: the node key's seed and the archive
			// key, in clear, base64 or hex, are nowhere on an encrypted
			// node's disk; on a node in clear they are (identity.key,
			// archive.key), which shows the search works.
			keys, err := node.ReadNodeKeys(dir, []byte(p))
			if err != nil {
				t.Fatal(err)
			}
			for what, secret := range privateKeys(t, keys) {
				hits := filesHoldingSecret(t, dir, secret)
				if encrypt && len(hits) > 0 {
					t.Fatalf("the %s is readable on the encrypted node's disk in %v", what, hits)
				}
				if !encrypt && len(hits) == 0 {
					t.Fatalf("the %s was not found on a node in clear: the search does not work", what)
				}
			}
			if encrypt {
				for _, f := range []string{"identity.key", "archive.key"} {
					if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
						t.Fatalf("%s is on the encrypted node's disk (%v)", f, err)
					}
				}
			}

			onDisk := filesHolding(t, dir, seizedMarker)
			inExport := filesHolding(t, filepath.Dir(exp), seizedMarker)
			if encrypt && (len(onDisk) > 0 || len(inExport) > 0) {
				t.Fatalf("the marker is readable in clear in %v %v", onDisk, inExport)
			}
			if !encrypt && (len(onDisk) == 0 || len(inExport) == 0) {
				t.Fatalf("the marker was not found on a node in clear (data dir %v, export %v): the search does not work", onDisk, inExport)
			}
			if !encrypt {
				return
			}
			// A wrong passphrase is refused in one sentence and changes
			// nothing; the right one opens the node as the same peer, with
			// all its records, and a sealed export imports into another
			// node with it.
			before := dirFiles(t, dir)
			_, _, err = cairn(t, dir, "start", "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--passphrase-file", passFile(t, "not the passphrase at all"))
			if err == nil || !strings.Contains(err.Error(), "wrong passphrase") || strings.Count(strings.TrimSpace(err.Error()), "\n") > 0 {
				t.Fatalf("start with a wrong passphrase: %v", err)
			}
			if after := dirFiles(t, dir); !maps.Equal(before, after) {
				t.Fatal("a start refused for its wrong passphrase changed the data dir")
			}
			if r := runNode(t, dir, pass, nil); r.ID() != n.ID() {
				t.Fatalf("the encrypted node restarted as %s, not %s", r.ID(), n.ID())
			}
			if c := countRecords(t, dir); c["audit"] != 1 || c["priority"] != 1 || c["committee-report"] != 1 {
				t.Fatalf("after restart the encrypted node holds %v", c)
			}
			if !strings.Contains(ok(t, dir, "priority", "list"), "Naloxone "+seizedMarker) {
				t.Fatal("the priority's title does not read back after a restart")
			}
			dst := testNode(t)
			fails(t, dst, "wrong passphrase", "import", exp, "--passphrase-file", passFile(t, "another passphrase entirely"))
			if out := ok(t, dst, "import", exp, "--passphrase-file", pf); !strings.Contains(out, "imported 5, skipped 0") {
				t.Fatalf("import of the sealed export printed %q", out)
			}
			plain := filepath.Join(t.TempDir(), "plain.ndjson")
			ok(t, dir, "export", "--out", plain, "--plain")
			if len(filesHolding(t, filepath.Dir(plain), seizedMarker)) != 1 {
				t.Fatal("export --plain is not in clear")
			}
		})
	}
}

// TestEncryptedStartNeedsPassphrase: an encrypted data dir does not open
// without its passphrase or with a wrong one, and says which.
func TestEncryptedStartNeedsPassphrase(t *testing.T) {
	const pass = "the right passphrase, long"
	dir := filepath.Join(t.TempDir(), "data")
	ok(t, dir, "init", "--network", "tanpud", "--name", "TANPUD", "--level", "national", "--encrypt", "--passphrase-file", passFile(t, pass))
	fails(t, filepath.Join(t.TempDir(), "other"), "needs at least 12", "init", "--network", "tanpud", "--name", "TANPUD", "--level", "national", "--encrypt", "--passphrase-file", passFile(t, "short"))

	for _, tc := range []struct {
		pass string
		want error
	}{{"", node.ErrNeedPassphrase}, {"not the passphrase at all", node.ErrWrongPassphrase}} {
		cfg := node.DefaultConfig(dir)
		cfg.API = "127.0.0.1:0"
		cfg.Passphrase = node.Passphrase(tc.pass)
		n, err := node.New(cfg)
		if err == nil {
			n.Close()
			t.Fatalf("the encrypted node opened with passphrase %q", tc.pass)
		}
		if !errors.Is(err, tc.want) {
			t.Fatalf("opening with %q: %v; want %v", tc.pass, err, tc.want)
		}
		if tc.pass != "" && strings.Contains(err.Error(), tc.pass) {
			t.Fatalf("the error repeats the passphrase: %v", err)
		}
	}
	// Through the CLI: start refuses in one sentence, and writes nothing.
	_, _, err := cairn(t, dir, "start", "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--passphrase-file", passFile(t, "not the passphrase at all"))
	if err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("start with a wrong passphrase: %v", err)
	}
	if s := node.Passphrase(pass).String(); strings.Contains(s, pass) {
		t.Fatal("a Passphrase prints itself")
	}
	runNode(t, dir, pass, nil)
}

// TestPassphraseChange: the data key is rewrapped; the old passphrase stops
// opening the node and the new one opens it with its records. It refuses
// while the node runs.
func TestPassphraseChange(t *testing.T) {
	const old, nw = "old passphrase of tanpud", "new passphrase of tanpud"
	dir := filepath.Join(t.TempDir(), "data")
	ok(t, dir, "init", "--network", "tanpud", "--name", "TANPUD", "--level", "national", "--encrypt", "--passphrase-file", passFile(t, old))
	n := runNode(t, dir, old, nil)
	id := strings.TrimSpace(ok(t, dir, "priority", "add", "--title", "Before the change", "--kind", "action", "--importance", "3", "--achievability", "3"))
	fails(t, dir, "stop the node first", "passphrase", "change", "--passphrase-file", passFile(t, old), "--new-passphrase-file", passFile(t, nw))
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	fails(t, dir, "wrong passphrase", "passphrase", "change", "--passphrase-file", passFile(t, nw), "--new-passphrase-file", passFile(t, nw))
	fails(t, dir, "needs at least 12", "passphrase", "change", "--passphrase-file", passFile(t, old), "--new-passphrase-file", passFile(t, "short"))
	ok(t, dir, "passphrase", "change", "--passphrase-file", passFile(t, old), "--new-passphrase-file", passFile(t, nw))

	cfg := node.DefaultConfig(dir)
	cfg.API = "127.0.0.1:0"
	cfg.Passphrase = node.Passphrase(old)
	if n, err := node.New(cfg); err == nil || !errors.Is(err, node.ErrWrongPassphrase) {
		if n != nil {
			n.Close()
		}
		t.Fatalf("the old passphrase after the change: %v; want a wrong passphrase", err)
	}
	// The change rewraps the data key only: the keys sealed under it still
	// open, and the node is the same peer.
	if r := runNode(t, dir, nw, nil); r.ID() != n.ID() {
		t.Fatalf("after the passphrase change the node is %s, not %s", r.ID(), n.ID())
	}
	if !strings.Contains(ok(t, dir, "priority", "show", id), "Before the change") {
		t.Fatal("the record written before the change does not read back")
	}
	fails(t, testNode(t), "not encrypted", "passphrase", "change", "--passphrase-file", passFile(t, old), "--new-passphrase-file", passFile(t, nw))
}

// TestEncryptedNodeSyncsWithPlainOne: encryption at rest changes nothing on
// the wire: an encrypted node and one in clear exchange shared records both
// ways, and the encrypted node's disk still shows neither in clear.
func TestEncryptedNodeSyncsWithPlainOne(t *testing.T) {
	const pass = "tanpud passphrase at rest"
	inpud := federationNode(t, "inpud", "global", true)
	tdir := filepath.Join(t.TempDir(), "tanpud")
	tn := runNode(t, tdir, pass, func(c *node.Config) {
		c.Registry = federation.FastConfig("")
		c.Network = node.Profile{Slug: "tanpud", Name: "TANPUD", Level: "national"}
		c.Encrypt = true
	})
	ok(t, tdir, "join", strings.TrimSpace(ok(t, inpud, "invite", "--network", "tanpud", "--name", "TANPUD", "--level", "national")))

	up := strings.TrimSpace(ok(t, tdir, "priority", "add", "--title", "Up "+seizedMarker, "--kind", "change", "--importance", "5", "--achievability", "4"))
	ok(t, tdir, "share", up, "--audience", "network:inpud")
	down := strings.TrimSpace(ok(t, inpud, "priority", "add", "--title", "Down "+seizedMarker, "--kind", "change", "--importance", "4", "--achievability", "4"))
	ok(t, inpud, "share", down, "--audience", "network:tanpud")

	eventually(t, "the encrypted node's priority to reach the plain one", func() bool {
		ok(t, inpud, "sync", "now")
		return strings.Contains(ok(t, inpud, "priority", "list", "--origin", "tanpud"), "Up "+seizedMarker)
	})
	eventually(t, "the plain node's priority to reach the encrypted one", func() bool {
		ok(t, tdir, "sync", "now")
		return strings.Contains(ok(t, tdir, "priority", "list", "--origin", "inpud"), "Down "+seizedMarker)
	})
	if err := tn.Close(); err != nil {
		t.Fatal(err)
	}
	if hits := filesHolding(t, tdir, seizedMarker); len(hits) > 0 {
		t.Fatalf("the encrypted node's disk shows the marker in %v", hits)
	}
	keys, err := node.ReadNodeKeys(tdir, []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	for what, secret := range privateKeys(t, keys) {
		if hits := filesHoldingSecret(t, tdir, secret); len(hits) > 0 {
			t.Fatalf("the %s of a node encrypted at its first start is readable in %v", what, hits)
		}
	}
	if len(filesHolding(t, inpud, seizedMarker)) == 0 {
		t.Fatal("the plain node's disk does not show the marker: the search does not work")
	}
}

// TestEncryptedNodeMadeBeforeSealedKeys: a node encrypted at rest before
// its keys were sealed has identity.key and archive.key in clear beside
// datakey.sealed. A start with a wrong passphrase changes nothing; the
// first start with the right one seals both keys and removes the clear
// files; the node is the same peer, and its disk then shows neither key.
func TestEncryptedNodeMadeBeforeSealedKeys(t *testing.T) {
	const pass = "tanpud passphrase from before"
	dir := filepath.Join(t.TempDir(), "data")
	pf := passFile(t, pass)
	ok(t, dir, "init", "--network", "tanpud", "--name", "TANPUD", "--level", "national", "--encrypt", "--passphrase-file", pf)
	n := runNode(t, dir, pass, nil)
	id := strings.TrimSpace(ok(t, dir, "priority", "add", "--title", "Written before "+seizedMarker, "--kind", "action", "--importance", "3", "--achievability", "3"))
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	// The layout of such a node: the keys, byte for byte as the files held
	// them, in clear, and no sealed key files.
	keys, err := node.ReadNodeKeys(dir, []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string][]byte{"identity.key": keys.Identity, "archive.key": keys.Archive} {
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, name+".sealed")); err != nil {
			t.Fatal(err)
		}
	}
	for what, secret := range privateKeys(t, keys) {
		if len(filesHoldingSecret(t, dir, secret)) == 0 {
			t.Fatalf("the %s is not found in the old layout: the search does not work", what)
		}
	}
	// Reading the keys does not need the lock and writes nothing.
	before := dirFiles(t, dir)
	if old, err := node.ReadNodeKeys(dir, []byte(pass)); err != nil || !old.Same(keys) {
		t.Fatalf("ReadNodeKeys of the old layout: %v", err)
	}
	_, _, err = cairn(t, dir, "start", "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--passphrase-file", passFile(t, "not the passphrase at all"))
	if err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("start with a wrong passphrase: %v", err)
	}
	if after := dirFiles(t, dir); !maps.Equal(before, after) {
		t.Fatal("reading the keys or a refused start changed the data dir")
	}

	r := runNode(t, dir, pass, nil)
	if r.ID() != keys.ID.String() {
		t.Fatalf("after sealing its keys the node is %s, not %s", r.ID(), keys.ID)
	}
	if !strings.Contains(ok(t, dir, "priority", "show", id), "Written before") {
		t.Fatal("the record written before does not read back")
	}
	for _, name := range []string{"identity.key", "archive.key"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s is still in clear after the first start with the passphrase (%v)", name, err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for what, secret := range privateKeys(t, keys) {
		if hits := filesHoldingSecret(t, dir, secret); len(hits) > 0 {
			t.Fatalf("the %s is still readable after sealing, in %v", what, hits)
		}
	}
	if now, err := node.ReadNodeKeys(dir, []byte(pass)); err != nil || !now.Same(keys) {
		t.Fatalf("sealing changed the keys (%v)", err)
	}
	if r := runNode(t, dir, pass, nil); r.ID() != keys.ID.String() {
		t.Fatalf("restarted as %s, not %s", r.ID(), keys.ID)
	}
}

// ed25519Key is the node key of keys as an Ed25519 private key.
func ed25519Key(t *testing.T, keys node.NodeKeys) ed25519.PrivateKey {
	t.Helper()
	priv, err := crypto.UnmarshalPrivateKey(keys.Identity)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := priv.Raw()
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.PrivateKey(raw)
}

// nodeSigner reads the keys of the node in dir (kept in clear), and its
// node key to sign with as the node does.
func nodeSigner(t *testing.T, dir string) (node.NodeKeys, ed25519.PrivateKey) {
	t.Helper()
	keys, err := node.ReadNodeKeys(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return keys, ed25519Key(t, keys)
}
