package node

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestArchiveKeyMadeAtInitAndBackedUp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := DefaultConfig(dir)
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Network = Profile{Slug: "tanpud", Name: "TANPUD", Level: "national", Country: "TZ", Region: "africa"}
	id, err := Init(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, archiveKeyFile))
	if err != nil {
		t.Fatalf("init made no archive key: %v", err)
	}
	if fi.Size() != ArchiveKeySize || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive key is %d bytes, mode %v; want %d bytes, 0600", fi.Size(), fi.Mode().Perm(), ArchiveKeySize)
	}
	k, err := ReadNodeKeys(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != id.ID || k.Network != "tanpud" {
		t.Fatalf("ReadNodeKeys = %s of %s, want %s of tanpud", k.ID, k.Network, id.ID)
	}
	b, err := k.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeNodeKeys(b)
	if err != nil || !back.Same(k) {
		t.Fatalf("DecodeNodeKeys = %+v, %v", back, err)
	}

	// A data dir made before archive keys: reading refuses and writes
	// nothing; the next start makes one and keeps it after.
	if err := os.Remove(filepath.Join(dir, archiveKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadNodeKeys(dir, nil); !errors.Is(err, ErrNoArchiveKey) {
		t.Fatalf("ReadNodeKeys without an archive key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, archiveKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadNodeKeys wrote an archive key: %v", err)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	k1, err := ReadNodeKeys(dir, nil)
	if err != nil {
		t.Fatalf("after a start: %v", err)
	}
	n, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	k2, err := ReadNodeKeys(dir, nil)
	if err != nil || !k2.Same(k1) {
		t.Fatalf("a second start changed the archive key (%v)", err)
	}
}

func TestDecodeNodeKeysRefusesAMismatch(t *testing.T) {
	a := NodeKeys{Network: "x", Archive: make([]byte, ArchiveKeySize)}
	dir := t.TempDir()
	id, err := loadOrCreateIdentity(dir, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	other, err := loadOrCreateIdentity(t.TempDir(), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, identityFile))
	a.Identity, a.ID = raw, other.ID
	b, _ := a.Encode()
	if _, err := DecodeNodeKeys(b); err == nil {
		t.Fatalf("keys recorded as %s but holding %s's key were accepted", other.ID, id.ID)
	}
}
