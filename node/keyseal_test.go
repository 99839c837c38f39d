package node

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/inpud/cairn/node/secrets"
)

const sealPass = "the passphrase of enpud's node"

// encryptedConfig is testConfig for a node encrypted at rest, with cheap
// Argon2id costs.
func encryptedConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.Encrypt = true
	cfg.Passphrase = Passphrase(sealPass)
	cfg.KDF = secrets.Params{Time: 1, MemoryKiB: 1024, Threads: 1}
	return cfg
}

// dirState is every file of dir with its bytes, to show that a refused
// command wrote nothing and lost nothing.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	st := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == lockFile {
			return err
		}
		b, err := os.ReadFile(p)
		st[strings.TrimPrefix(p, dir)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func fileNames(st map[string]string) []string {
	var out []string
	for k := range st {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// unseal turns an encrypted data dir back into what an encrypted node made
// before keys were sealed looked like: datakey.sealed beside identity.key
// and archive.key in clear.
func unseal(t *testing.T, dir string) {
	t.Helper()
	dk, err := openDataKey(dir, []byte(sealPass))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range keyNames {
		raw, err := readSealedKey(dir, name, dk)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, name+sealedSuffix)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEncryptedNodeKeepsKeysSealed: init writes the node key and the
// archive key only sealed; the node opens with its passphrase and keeps its
// peer ID; without the passphrase or with another, nothing reads them.
func TestEncryptedNodeKeepsKeysSealed(t *testing.T) {
	cfg := encryptedConfig(t)
	id, err := Init(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := cfg.DataDir
	for _, name := range keyNames {
		if exists(t, filepath.Join(dir, name)) {
			t.Fatalf("init of an encrypted node wrote %s in clear", name)
		}
		fi, err := os.Stat(filepath.Join(dir, name+sealedSuffix))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s%s: %v (mode %v); want a private sealed file", name, sealedSuffix, err, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(filepath.Join(dir, name+sealedSuffix))
		if !strings.HasPrefix(string(b), sealedKeyMagic+"\n") {
			t.Fatalf("%s%s does not name its format:\n%s", name, sealedSuffix, b)
		}
	}
	if got, err := PeerID(dir); err != nil || got != id.ID.String() {
		t.Fatalf("PeerID without the passphrase = %s, %v; want %s", got, err, id.ID)
	}
	if _, err := ReadNodeKeys(dir, nil); !errors.Is(err, ErrNeedPassphrase) {
		t.Fatalf("ReadNodeKeys without the passphrase: %v", err)
	}
	if _, err := ReadNodeKeys(dir, []byte("not the passphrase at all")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("ReadNodeKeys with a wrong passphrase: %v", err)
	}
	keys, err := ReadNodeKeys(dir, []byte(sealPass))
	if err != nil || keys.ID != id.ID || len(keys.Archive) != ArchiveKeySize {
		t.Fatalf("ReadNodeKeys = %s, %d-byte archive key, %v; want %s", keys.ID, len(keys.Archive), err, id.ID)
	}

	before := dirState(t, dir)
	for _, pass := range []string{"", "not the passphrase at all"} {
		c := cfg
		c.Passphrase = Passphrase(pass)
		if n, err := New(c); err == nil {
			n.Close()
			t.Fatalf("the node opened with passphrase %q", pass)
		}
	}
	if after := dirState(t, dir); !equalState(before, after) {
		t.Fatalf("a refused start changed the data dir: %v, then %v", fileNames(before), fileNames(after))
	}
	for range 2 {
		n := startNode(t, cfg)
		if n.ID() != id.ID.String() {
			t.Fatalf("the node restarted as %s, not %s", n.ID(), id.ID)
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if again, err := ReadNodeKeys(dir, []byte(sealPass)); err != nil || !again.Same(keys) {
		t.Fatalf("the keys changed across restarts (%v)", err)
	}
}

func equalState(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestSealedKeyFilesRefuseTampering: a sealed key file that was swapped
// for the other one, cut short, changed, or names another peer does not
// open, and the node says which file.
func TestSealedKeyFilesRefuseTampering(t *testing.T) {
	cfg := encryptedConfig(t)
	if _, err := Init(cfg); err != nil {
		t.Fatal(err)
	}
	dir := cfg.DataDir
	idPath, akPath := filepath.Join(dir, identityFile+sealedSuffix), filepath.Join(dir, archiveKeyFile+sealedSuffix)
	idFile, _ := os.ReadFile(idPath)
	akFile, _ := os.ReadFile(akPath)
	other := encryptedConfig(t)
	if _, err := Init(other); err != nil {
		t.Fatal(err)
	}
	otherID, _ := os.ReadFile(filepath.Join(other.DataDir, identityFile+sealedSuffix))
	lines := strings.Split(string(idFile), "\n")
	for _, tc := range []struct {
		name, file, want string
	}{
		{"archive key as node key", string(akFile), "mixed up"},
		{"cut short", string(idFile[:len(idFile)/2]), "cut short"},
		{"changed", strings.Replace(string(idFile), lines[3][:8], "AAAAAAAA", 1), "changed or damaged"},
		{"another peer in the header", strings.Replace(string(idFile), `"peer_id":"12D3KooW`, `"peer_id":"12D3KooX`, 1), "changed or damaged"},
		{"another node's key", string(otherID), "changed or damaged"},
		{"newer format", strings.Replace(string(idFile), "version 1", "version 2", 1), "newer version of Cairn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(idPath, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), idPath) {
				t.Fatalf("New with a %s: %v; want %q about %s", tc.name, err, tc.want, idPath)
			}
		})
	}
	if err := os.WriteFile(idPath, idFile, 0o600); err != nil {
		t.Fatal(err)
	}
	startNode(t, cfg).Close()
}

// TestEncryptedNodeMadeBeforeSealedKeys: a node encrypted before its keys
// were sealed (clear identity.key and archive.key beside datakey.sealed)
// seals them at its first start with the passphrase and removes the clear
// files; a refused start changes nothing; the keys and peer ID stay.
func TestEncryptedNodeMadeBeforeSealedKeys(t *testing.T) {
	cfg := encryptedConfig(t)
	id, err := Init(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := cfg.DataDir
	startNode(t, cfg).Close()
	unseal(t, dir)
	keys, err := ReadNodeKeys(dir, []byte(sealPass))
	if err != nil || keys.ID != id.ID {
		t.Fatalf("ReadNodeKeys of the old layout: %s, %v", keys.ID, err)
	}

	before := dirState(t, dir)
	bad := cfg
	bad.Passphrase = Passphrase("not the passphrase at all")
	if _, err := New(bad); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("a wrong passphrase: %v", err)
	}
	if after := dirState(t, dir); !equalState(before, after) {
		t.Fatalf("a refused start changed the data dir: %v, then %v", fileNames(before), fileNames(after))
	}

	n := startNode(t, cfg)
	if n.ID() != id.ID.String() {
		t.Fatalf("after sealing its keys the node is %s, not %s", n.ID(), id.ID)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range keyNames {
		if exists(t, filepath.Join(dir, name)) {
			t.Fatalf("%s is still in clear after the first start with the passphrase", name)
		}
		if !exists(t, filepath.Join(dir, name+sealedSuffix)) {
			t.Fatalf("%s was not sealed", name)
		}
	}
	if after, err := ReadNodeKeys(dir, []byte(sealPass)); err != nil || !after.Same(keys) {
		t.Fatalf("sealing changed the keys (%v)", err)
	}
	startNode(t, cfg).Close()

	// A seal that stopped after writing the sealed files but before removing
	// the clear ones: the next start removes them.
	raw, _ := os.ReadFile(filepath.Join(dir, identityFile+sealedSuffix))
	unseal(t, dir)
	os.WriteFile(filepath.Join(dir, identityFile+sealedSuffix), raw, 0o600)
	startNode(t, cfg).Close()
	if exists(t, filepath.Join(dir, identityFile)) || exists(t, filepath.Join(dir, archiveKeyFile)) {
		t.Fatal("clear key files left beside sealed ones survive a start")
	}
	// A clear node key that is not the sealed one: refused, nothing removed.
	_, otherRaw, err := newIdentity()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, identityFile), otherRaw, 0o600)
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "hold different keys") {
		t.Fatalf("a clear node key unlike the sealed one: %v", err)
	}
	if !exists(t, filepath.Join(dir, identityFile)) {
		t.Fatal("the refused start removed a key")
	}
}

// TestChangePassphraseSealsAndKeepsKeys: a passphrase change rewraps the
// data key only, so the sealed keys stay valid: the node starts with the
// new passphrase as the same peer. On a node made before keys were sealed,
// it seals them too.
func TestChangePassphraseSealsAndKeepsKeys(t *testing.T) {
	cfg := encryptedConfig(t)
	id, err := Init(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := cfg.DataDir
	unseal(t, dir)
	const nw = "the new passphrase of enpud"
	if err := ChangePassphrase(dir, []byte("not the passphrase at all"), []byte(nw), cfg.KDF); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("change with a wrong passphrase: %v", err)
	}
	if !exists(t, filepath.Join(dir, identityFile)) {
		t.Fatal("a refused change sealed the keys")
	}
	if err := ChangePassphrase(dir, []byte(sealPass), []byte(nw), cfg.KDF); err != nil {
		t.Fatal(err)
	}
	if exists(t, filepath.Join(dir, identityFile)) || exists(t, filepath.Join(dir, archiveKeyFile)) {
		t.Fatal("the keys are still in clear after the passphrase change")
	}
	cfg.Passphrase = Passphrase(nw)
	n := startNode(t, cfg)
	defer n.Close()
	if n.ID() != id.ID.String() {
		t.Fatalf("after the change the node is %s, not %s", n.ID(), id.ID)
	}
	if _, err := ReadNodeKeys(dir, []byte(sealPass)); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("the old passphrase still reads the keys: %v", err)
	}
	if k, err := ReadNodeKeys(dir, []byte(nw)); err != nil || k.ID != id.ID {
		t.Fatalf("the new passphrase: %s, %v", k.ID, err)
	}
}
