package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
)

// archiveKeyFile holds the network's archive key beside identity.key, mode
// 0600: 32 random bytes; on an encrypted node, only sealed, as
// archive.key.sealed (keyseal.go). Custody copies are sealed under it;
// `cairn key backup` saves it with the node key.
const archiveKeyFile = "archive.key"

// ArchiveKeySize is the archive key's length in bytes.
const ArchiveKeySize = 32

// ErrNoArchiveKey is returned for a data dir made before archive keys
// existed and not started since.
var ErrNoArchiveKey = errors.New("this node has no archive key yet")

// loadOrCreateArchiveKey reads the archive key, creating it when create is
// set and there is none. Init creates it; New creates it for data dirs made
// before it existed. With a data key (an encrypted node) it is read from,
// and created as, archive.key.sealed; peerID names the node in its header.
func loadOrCreateArchiveKey(dir string, dk *dataKey, peerID string, create bool) ([]byte, error) {
	b, err := readKey(dir, archiveKeyFile, dk)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("%w: %s has none; start the node once (cairn start) and it makes one", ErrNoArchiveKey, dir)
		}
		b = make([]byte, ArchiveKeySize)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("create archive key: %w", err)
		}
		if err := writeKey(dir, archiveKeyFile, b, peerID, dk); err != nil {
			return nil, err
		}
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) != ArchiveKeySize {
		return nil, fmt.Errorf("archive key %s is damaged (%d bytes, not %d); restore it from your key backup", filepath.Join(dir, archiveKeyFile), len(b), ArchiveKeySize)
	}
	return b, nil
}
