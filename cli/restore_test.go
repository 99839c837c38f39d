package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/federation"
)

// restartNode starts the node already in dir, as cairn start would.
func restartNode(t *testing.T, dir string) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig(dir)
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Registry = federation.FastConfig("")
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

// TestRestoreCommand follows docs/OPERATIONS.md "Restore a node": a
// network with two custodians backs up its node's keys (a passphrase
// backup and 2-of-3 shares), loses its data dir, and restore brings back
// its identity, its private and shared records and a record another
// network shared with it; the node then starts and works as before. Bad
// input first: each one sentence, nothing written.
func TestRestoreCommand(t *testing.T) {
	steward, inpud := startFederationNode(t, "inpud", "global", true)
	tn, tanpud := startFederationNode(t, "tanpud", "national", false)
	bnpud := federationNode(t, "bnpud", "national", false)
	cnpud := federationNode(t, "cnpud", "national", false)
	for _, dir := range []string{tanpud, bnpud, cnpud} {
		slug := filepath.Base(dir)
		ok(t, dir, "join", strings.TrimSpace(ok(t, inpud, "invite", "--network", slug, "--name", strings.ToUpper(slug), "--level", "national")))
	}
	eventually(t, "tanpud to see its custodians as members", func() bool {
		_, _, err := cairn(t, tanpud, "custody", "set", "bnpud,cnpud")
		return err == nil
	})
	private := strings.TrimSpace(ok(t, tanpud, "priority", "add", "--title", "Kept inside TANPUD", "--kind", "action", "--importance", "3", "--achievability", "3"))
	shared := strings.TrimSpace(ok(t, tanpud, "priority", "add", "--title", "Naloxone in pharmacies", "--kind", "change", "--importance", "5", "--achievability", "4"))
	ok(t, tanpud, "share", shared, "--audience", "members")
	fromInpud := strings.TrimSpace(ok(t, inpud, "priority", "add", "--title", "Decriminalise possession", "--kind", "change", "--importance", "5", "--achievability", "2"))
	ok(t, inpud, "share", fromInpud, "--audience", "members")
	eventually(t, "tanpud to hold inpud's record", func() bool {
		ok(t, tanpud, "sync", "now")
		_, _, err := cairn(t, tanpud, "priority", "show", fromInpud)
		return err == nil
	})
	eventually(t, "both custodians to hold every version", func() bool {
		st := jsonOf[node.CustodyStatus](t, ok(t, tanpud, "custody", "status", "--json"))
		return len(st.Custodians) == 2 && st.Custodians[0].CaughtUp && st.Custodians[1].CaughtUp
	})

	// Back up the keys, then lose the data dir.
	backups := t.TempDir()
	keyFile := filepath.Join(backups, "tanpud.key")
	pf := passFile(t, goodPass)
	ok(t, tanpud, "key", "backup", "--out", keyFile, "--passphrase-file", pf)
	ok(t, tanpud, "key", "backup", "--shares", "3", "--threshold", "2", "--out", filepath.Join(backups, "set1"))
	ok(t, tanpud, "key", "backup", "--shares", "3", "--threshold", "2", "--out", filepath.Join(backups, "set2"))
	share := func(set string, i int) string {
		return filepath.Join(backups, set, "tanpud-key-share-"+string(rune('0'+i))+"-of-3.txt")
	}
	id := tn.ID()
	if err := tn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(tanpud); err != nil {
		t.Fatal(err)
	}
	peerFlag := steward.Addrs()[0]

	// Bad input: one sentence each, nothing written.
	fails(t, tanpud, "cairn restore needs the node's key backup", "restore", "--peer", peerFlag)
	fails(t, tanpud, "cairn restore needs --peer", "restore", "--key", keyFile, "--passphrase-file", pf)
	fails(t, tanpud, "the passphrase does not open this backup", "restore", "--key", keyFile, "--passphrase-file", passFile(t, "river stone lantern 43"), "--peer", peerFlag)
	fails(t, tanpud, "too few shares: 2 different shares of set", "restore", "--shares", share("set1", 1), "--peer", peerFlag)
	fails(t, tanpud, "the shares come from different sets", "restore", "--shares", share("set1", 1)+","+share("set2", 2), "--peer", peerFlag)
	if _, err := os.Stat(tanpud); !os.IsNotExist(err) {
		t.Fatalf("a refused restore wrote the data dir: %v", err)
	}
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "notes.txt"), []byte("mine"), 0o600)
	fails(t, full, "restore writes only into an empty data dir", "restore", "--key", keyFile, "--passphrase-file", pf, "--peer", peerFlag)
	if got := entries(t, full); len(got) != 1 {
		t.Fatalf("restore into a non-empty dir changed it: %v", got)
	}

	// Restore from two shares of one set.
	out, progress, err := cairn(t, tanpud, "restore", "--shares", share("set1", 1)+","+share("set1", 3), "--peer", peerFlag,
		"--listen", "/ip4/127.0.0.1/tcp/0", "--registry-heartbeat-timeout", "200ms", "--registry-election-timeout", "400ms")
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, progress)
	}
	if !strings.Contains(out, "Restored node "+id+" of network tanpud") || !strings.Contains(out, "own record versions from custodians (bnpud, cnpud): 3") || !strings.Contains(progress, "restore: the registry arrived") {
		t.Fatalf("restore output:\n%s\nprogress:\n%s", out, progress)
	}
	if node.RestorePending(tanpud) {
		t.Fatal("the restore marker is left after a finished restore")
	}

	// cairn start carries on as before.
	r := restartNode(t, tanpud)
	if r.ID() != id || r.Profile().Name != "TANPUD" {
		t.Fatalf("restored node %s of %+v", r.ID(), r.Profile())
	}
	for _, rid := range []string{private, shared, fromInpud} {
		ok(t, tanpud, "priority", "show", rid)
	}
	if got := jsonOf[rec](t, ok(t, tanpud, "priority", "show", shared, "--json")); got.Version != 2 {
		t.Fatalf("shared priority restored at version %d, want 2", got.Version)
	}
	ok(t, tanpud, "priority", "update", private, "--importance", "4")

	// A node kept in clear becomes an encrypted one (docs/OPERATIONS.md
	// "Encrypting a node kept in clear"): stop it, move its data dir away,
	// restore with --encrypt into a new one. The backup's passphrase then
	// seals its records too.
	eventually(t, "both custodians to hold the new version", func() bool {
		st := jsonOf[node.CustodyStatus](t, ok(t, tanpud, "custody", "status", "--json"))
		return len(st.Custodians) == 2 && st.Custodians[0].CaughtUp && st.Custodians[1].CaughtUp
	})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	sealed := filepath.Join(t.TempDir(), "tanpud-sealed")
	out, progress, err = cairn(t, sealed, "restore", "--key", keyFile, "--passphrase-file", pf, "--encrypt", "--peer", peerFlag,
		"--listen", "/ip4/127.0.0.1/tcp/0", "--registry-heartbeat-timeout", "200ms", "--registry-election-timeout", "400ms")
	if err != nil {
		t.Fatalf("restore --encrypt: %v\n%s", err, progress)
	}
	if !node.Encrypted(sealed) || !strings.Contains(progress, "sealed at rest") {
		t.Fatalf("restore --encrypt made a node in clear:\n%s\n%s", out, progress)
	}
	for _, f := range []string{"identity.key", "archive.key"} {
		if _, err := os.Stat(filepath.Join(sealed, f)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("restore --encrypt wrote %s in clear (%v)", f, err)
		}
	}
	restored, err := node.ReadNodeKeys(sealed, []byte(goodPass))
	if err != nil || restored.ID.String() != id {
		t.Fatalf("the keys of the node restored with --encrypt: %s, %v", restored.ID, err)
	}
	for what, secret := range privateKeys(t, restored) {
		if hits := filesHoldingSecret(t, sealed, secret); len(hits) > 0 {
			t.Fatalf("the %s is readable after restore --encrypt in %v", what, hits)
		}
	}
	cfg := node.DefaultConfig(sealed)
	cfg.API, cfg.Listen, cfg.Registry = "127.0.0.1:0", []string{"/ip4/127.0.0.1/tcp/0"}, federation.FastConfig("")
	if _, err := node.New(cfg); !errors.Is(err, node.ErrNeedPassphrase) {
		t.Fatalf("the encrypted node opened without its passphrase: %v", err)
	}
	cfg.Passphrase = node.Passphrase(goodPass)
	e, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		e.Close()
		t.Fatal(err)
	}
	defer e.Close()
	if got := jsonOf[rec](t, ok(t, sealed, "priority", "show", private, "--json")); got.Version != 2 {
		t.Fatalf("private priority restored into the encrypted node at version %d, want 2", got.Version)
	}
	ok(t, sealed, "priority", "show", shared)
	ok(t, sealed, "priority", "show", fromInpud)
	e.Close()
	filepath.WalkDir(sealed, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(path); bytes.Contains(b, []byte("Kept inside TANPUD")) {
				t.Errorf("%s holds a record's text in clear after restore --encrypt", path)
			}
		}
		return nil
	})
}
