package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/secrets"
)

// Backups in these tests use cheap Argon2id costs; node/secrets tests the
// defaults.
func init() { backupParams = secrets.Params{Time: 1, MemoryKiB: 1024, Threads: 1} }

// stoppedNode initialises a data dir without starting a node.
func stoppedNode(t *testing.T, slug string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	cfg := node.DefaultConfig(dir)
	cfg.Network = node.Profile{Slug: slug, Name: "Network " + slug, Level: "national", Country: "TZ", Region: "africa"}
	if _, err := node.Init(cfg); err != nil {
		t.Fatal(err)
	}
	return dir
}

// passFile writes a passphrase file and returns its path.
func passFile(t *testing.T, p string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(f, []byte(p+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

const goodPass = "river stone lantern 42"

func TestKeyBackupRoundTripWhileRunning(t *testing.T) {
	dir := testNode(t)
	keys, err := node.ReadNodeKeys(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tanpud.key")
	pf := passFile(t, goodPass)
	msg := ok(t, dir, "key", "backup", "--out", out, "--passphrase-file", pf)
	if !strings.Contains(msg, keys.ID.String()) || !strings.Contains(msg, "tanpud") {
		t.Fatalf("backup output does not say whose keys:\n%s", msg)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(out)
	if !strings.HasPrefix(string(b), "cairn key backup, version 1\n") {
		t.Fatalf("backup does not name its format:\n%s", b)
	}
	// No key material and no passphrase in the file, in any encoding.
	for name, raw := range map[string][]byte{"node key": keys.Identity, "archive key": keys.Archive} {
		for _, enc := range [][]byte{raw, raw[len(raw)-16:], []byte(base64.StdEncoding.EncodeToString(raw)[8:40]), []byte(hex.EncodeToString(raw[len(raw)-16:]))} {
			if bytes.Contains(b, enc) {
				t.Errorf("backup contains the %s (%q)", name, enc)
			}
		}
	}
	if bytes.Contains(b, []byte(goodPass)) {
		t.Error("backup contains the passphrase")
	}

	check := ok(t, dir, "key", "check", out, "--passphrase-file", pf)
	if !strings.Contains(check, keys.ID.String()) || !strings.Contains(check, "network tanpud") || !strings.Contains(check, "They are the keys of the node in "+dir) {
		t.Fatalf("key check output:\n%s", check)
	}
	rep := jsonOf[keyReport](t, ok(t, dir, "--json", "key", "check", out, "--passphrase-file", pf))
	if rep.ID != keys.ID.String() || rep.Kind != "backup" || rep.MatchesDataDir == nil || !*rep.MatchesDataDir {
		t.Fatalf("key check --json: %+v", rep)
	}
	// Another node's dir: the backup opens but is not its keys.
	other := stoppedNode(t, "anpud")
	check = ok(t, other, "key", "check", out, "--passphrase-file", pf)
	if !strings.Contains(check, "NOT the keys of the node in "+other) {
		t.Fatalf("key check against another node:\n%s", check)
	}
}

func TestKeyBackupWithEnvPassphrase(t *testing.T) {
	dir := stoppedNode(t, "tanpud")
	out := filepath.Join(t.TempDir(), "k")
	t.Setenv(passphraseEnv, goodPass)
	ok(t, dir, "key", "backup", "--out", out)
	ok(t, dir, "key", "check", out)
	t.Setenv(passphraseEnv, goodPass+"x")
	fails(t, dir, "the passphrase does not open this backup", "key", "check", out)
	t.Setenv(passphraseEnv, "")
	fails(t, dir, "is set but empty", "key", "check", out)
	os.Unsetenv(passphraseEnv) // t.Setenv restores it after the test
	fails(t, dir, "no passphrase given: run this in a terminal", "key", "check", out)
	t.Setenv(passphraseEnv, "too short")
	fails(t, dir, "needs at least 12", "key", "backup", "--out", out+"2")
	if _, err := os.Stat(out + "2"); !os.IsNotExist(err) {
		t.Fatalf("a refused backup wrote %s", out+"2")
	}
}

func TestKeyCheckRefusesWrongPassphraseAndDamage(t *testing.T) {
	dir := stoppedNode(t, "tanpud")
	out := filepath.Join(t.TempDir(), "k")
	pf := passFile(t, goodPass)
	ok(t, dir, "key", "backup", "--out", out, "--passphrase-file", pf)
	fails(t, dir, out+": the passphrase does not open this backup", "key", "check", out, "--passphrase-file", passFile(t, "river stone lantern 43"))

	b, _ := os.ReadFile(out)
	cut := filepath.Join(t.TempDir(), "cut")
	os.WriteFile(cut, b[:len(b)-20], 0o600)
	fails(t, dir, cut+": the file is damaged", "key", "check", cut, "--passphrase-file", pf)
	renamed := filepath.Join(t.TempDir(), "renamed")
	os.WriteFile(renamed, bytes.Replace(b, []byte(`"network":"tanpud"`), []byte(`"network":"anpud"`), 1), 0o600)
	fails(t, dir, renamed+": the file is damaged", "key", "check", renamed, "--passphrase-file", pf)
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("not a key\n"), 0o600)
	fails(t, dir, "is not a Cairn key backup or key share", "key", "check", junk)
	fails(t, dir, "needs a backup file", "key", "check")
}

func TestKeySharesRoundTripAndRefusals(t *testing.T) {
	dir := stoppedNode(t, "tanpud")
	keys, err := node.ReadNodeKeys(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	sd := filepath.Join(t.TempDir(), "shares")
	rep := jsonOf[keyReport](t, ok(t, dir, "--json", "key", "backup", "--shares", "5", "--threshold", "3", "--out", sd))
	if rep.ID != keys.ID.String() || len(rep.Files) != 5 || rep.Threshold != 3 || rep.Shares != 5 || rep.Set == "" {
		t.Fatalf("key backup --shares --json: %+v", rep)
	}
	f := rep.Files
	for _, name := range f {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range [][]byte{keys.Identity[len(keys.Identity)-16:], keys.Archive[:16], []byte(base64.StdEncoding.EncodeToString(keys.Archive)[:16])} {
			if bytes.Contains(b, raw) {
				t.Errorf("%s holds key bytes in clear", name)
			}
		}
	}
	out := ok(t, dir, "key", "check", f[4], f[0], f[2])
	if !strings.Contains(out, "3 shares combine") || !strings.Contains(out, keys.ID.String()) || !strings.Contains(out, "They are the keys of the node in") {
		t.Fatalf("key check of 3 shares:\n%s", out)
	}
	// Too few, twice the same, two sets, a changed share: one sentence each.
	fails(t, dir, "3 different shares of set "+rep.Set+" are needed to open the key, and only 2 given", "key", "check", f[0], f[1])
	dup := filepath.Join(t.TempDir(), "copy.txt")
	b, _ := os.ReadFile(f[1])
	os.WriteFile(dup, b, 0o600)
	fails(t, dir, "the same share was given twice: "+f[1]+" and "+dup+" are both share 2", "key", "check", f[0], f[1], dup)
	sd2 := filepath.Join(t.TempDir(), "shares2")
	rep2 := jsonOf[keyReport](t, ok(t, dir, "--json", "key", "backup", "--shares", "3", "--threshold", "2", "--out", sd2))
	fails(t, dir, "the shares come from different sets", "key", "check", f[0], f[1], rep2.Files[0])
	bad := filepath.Join(t.TempDir(), "bad.txt")
	os.WriteFile(bad, bytes.Replace(b, []byte(`"index":2`), []byte(`"index":4`), 1), 0o600)
	fails(t, dir, bad+": the file is damaged", "key", "check", f[0], f[2], bad)
	// A passphrase backup mixed with shares.
	pb := filepath.Join(t.TempDir(), "k")
	ok(t, dir, "key", "backup", "--out", pb, "--passphrase-file", passFile(t, goodPass))
	fails(t, dir, "not a mix", "key", "check", pb, f[0])

	// Existing output: never overwritten, nothing written.
	before, _ := os.ReadFile(f[0])
	fails(t, dir, "already exists: Cairn never overwrites", "key", "backup", "--shares", "5", "--threshold", "3", "--out", sd)
	after, _ := os.ReadFile(f[0])
	if !bytes.Equal(before, after) || len(entries(t, sd)) != 5 {
		t.Fatalf("a refused backup changed %s", sd)
	}
}

func TestKeyBackupRefusals(t *testing.T) {
	dir := stoppedNode(t, "tanpud")
	tmp := t.TempDir()
	pf := passFile(t, goodPass)
	sd := filepath.Join(tmp, "s")
	for _, c := range []struct {
		want string
		args []string
	}{
		{"--shares must be from 2 to 255, not 1", []string{"--shares", "1", "--threshold", "2", "--out", sd}},
		{"--shares must be from 2 to 255, not 256", []string{"--shares", "256", "--threshold", "2", "--out", sd}},
		{"--threshold must be at least 2, not 1", []string{"--shares", "3", "--threshold", "1", "--out", sd}},
		{"--threshold 4 is more than --shares 3", []string{"--shares", "3", "--threshold", "4", "--out", sd}},
		{"--shares needs --threshold", []string{"--shares", "3", "--out", sd}},
		{"--threshold needs --shares", []string{"--threshold", "2", "--out", sd}},
		{"--passphrase-file is not used with --shares", []string{"--shares", "3", "--threshold", "2", "--out", sd, "--passphrase-file", pf}},
		{"needs at least 12", []string{"--out", filepath.Join(tmp, "k"), "--passphrase-file", passFile(t, "short pass")}},
		{"has nothing on its first line", []string{"--out", filepath.Join(tmp, "k"), "--passphrase-file", passFile(t, "")}},
		{"takes no arguments", []string{"--out", filepath.Join(tmp, "k"), "extra"}},
	} {
		fails(t, dir, c.want, append([]string{"key", "backup"}, c.args...)...)
	}
	if names := entries(t, tmp); len(names) != 0 {
		t.Fatalf("refused backups wrote %v", names)
	}

	existing := filepath.Join(tmp, "existing")
	os.WriteFile(existing, []byte("keep me"), 0o600)
	fails(t, dir, existing+" already exists: Cairn never overwrites a file", "key", "backup", "--out", existing, "--passphrase-file", pf)
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Fatalf("existing file was overwritten: %q", b)
	}
	fails(t, dir, "is a file; with --shares, give a directory", "key", "backup", "--shares", "2", "--threshold", "2", "--out", existing)

	empty := filepath.Join(t.TempDir(), "nothing-here")
	fails(t, empty, "has no node yet", "key", "backup", "--out", filepath.Join(tmp, "k2"), "--passphrase-file", pf)

	// A data dir from before archive keys: refused until the node starts.
	if err := os.Remove(filepath.Join(dir, "archive.key")); err != nil {
		t.Fatal(err)
	}
	fails(t, dir, "this node has no archive key yet", "key", "backup", "--out", filepath.Join(tmp, "k3"), "--passphrase-file", pf)
	if names := entries(t, tmp); len(names) != 1 {
		t.Fatalf("refused backups wrote %v", names)
	}
}

// TestKeyBackupOfEncryptedNode: on a node encrypted at rest the keys are
// sealed, so key backup asks for the node's passphrase: without it or with
// another it refuses in one sentence and writes nothing; with it the backup
// (sealed under that passphrase) and the shares hold the node's keys.
func TestKeyBackupOfEncryptedNode(t *testing.T) {
	t.Setenv(passphraseEnv, "")
	os.Unsetenv(passphraseEnv)
	dir := filepath.Join(t.TempDir(), "data")
	pf := passFile(t, goodPass)
	ok(t, dir, "init", "--network", "tanpud", "--name", "TANPUD", "--level", "national", "--encrypt", "--passphrase-file", pf)
	n := runNode(t, dir, goodPass, nil)

	out := filepath.Join(t.TempDir(), "tanpud.key")
	fails(t, dir, "no passphrase given", "key", "backup", "--out", out)
	fails(t, dir, "wrong passphrase", "key", "backup", "--out", out, "--passphrase-file", passFile(t, "not the passphrase at all"))
	sd := filepath.Join(t.TempDir(), "shares")
	fails(t, dir, "wrong passphrase", "key", "backup", "--shares", "3", "--threshold", "2", "--out", sd, "--passphrase-file", passFile(t, "not the passphrase at all"))
	if got := append(entries(t, filepath.Dir(out)), entries(t, sd)...); len(got) != 0 {
		t.Fatalf("a refused backup wrote %v", got)
	}

	msg := ok(t, dir, "key", "backup", "--out", out, "--passphrase-file", pf)
	if !strings.Contains(msg, n.ID()) {
		t.Fatalf("backup output does not say whose keys:\n%s", msg)
	}
	keys, err := node.ReadNodeKeys(dir, []byte(goodPass))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	for what, secret := range privateKeys(t, keys) {
		if holdsSecret(b, secret) {
			t.Fatalf("the backup shows the %s", what)
		}
	}
	check := ok(t, dir, "key", "check", out, "--passphrase-file", pf)
	if !strings.Contains(check, n.ID()) || !strings.Contains(check, "They are the keys of the node in "+dir) {
		t.Fatalf("key check of the encrypted node's backup:\n%s", check)
	}

	rep := jsonOf[keyReport](t, ok(t, dir, "--json", "key", "backup", "--shares", "3", "--threshold", "2", "--out", sd, "--passphrase-file", pf))
	if rep.PeerID != n.ID() || len(rep.Files) != 3 {
		t.Fatalf("key backup --shares of an encrypted node: %+v", rep)
	}
	// Shares need no passphrase, so the node's sealed keys are not compared.
	check = ok(t, dir, "key", "check", rep.Files[0], rep.Files[2])
	if !strings.Contains(check, n.ID()) || !strings.Contains(check, "not compared") {
		t.Fatalf("key check of the encrypted node's shares:\n%s", check)
	}
	if got := jsonOf[keyReport](t, ok(t, dir, "--json", "key", "check", rep.Files[0], rep.Files[1])); got.MatchesDataDir != nil {
		t.Fatalf("key check claims to have compared sealed keys: %+v", got)
	}
	// The node still runs on its keys, and restarts as itself.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if r := runNode(t, dir, goodPass, nil); r.ID() != keys.ID.String() {
		t.Fatalf("restarted as %s, not %s", r.ID(), keys.ID)
	}
}
