package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/inpud/cairn/node/durable"
)

// archiveKeyFile holds the network's archive key beside identity.key, mode
// 0600: 32 random bytes. Custody copies and encryption at rest are sealed
// under it; `cairn key backup` saves it with the node key.
const archiveKeyFile = "archive.key"

// ArchiveKeySize is the archive key's length in bytes.
const ArchiveKeySize = 32

// ErrNoArchiveKey is returned for a data dir made before archive keys
// existed and not started since.
var ErrNoArchiveKey = errors.New("this node has no archive key yet")

// loadOrCreateArchiveKey reads the archive key, creating it when create is
// set and there is none. Init creates it; New creates it for data dirs made
// before it existed.
func loadOrCreateArchiveKey(dir string, create bool) ([]byte, error) {
	path := filepath.Join(dir, archiveKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("%w: %s has none; start the node once (cairn start) and it makes one", ErrNoArchiveKey, dir)
		}
		b = make([]byte, ArchiveKeySize)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("create archive key: %w", err)
		}
		if err := durable.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("save archive key: %w", err)
		}
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read archive key %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("archive key %s can be read by other users (mode %v); make it private with: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	if len(b) != ArchiveKeySize {
		return nil, fmt.Errorf("archive key %s is damaged (%d bytes, not %d); restore it from your key backup", path, len(b), ArchiveKeySize)
	}
	return b, nil
}
