package store

import (
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger"
)

// Sealer encrypts the values that hold record contents (history values:
// the envelope, or a stub) before they reach the disk, and opens them when
// they are read back. ad is the value's key (/h/<id>/<version>/<hash>), so
// a sealed value moved to another key does not open. The node's
// implementation is node/atrest.go (XChaCha20-Poly1305 under a data key
// wrapped by a passphrase).
//
// Only history values are sealed: summaries (/r/), feed entries (/c/),
// indexes, counters, checkpoints and receipts hold ids, versions, hashes,
// kinds, origins and audiences, never a body, and stay in clear so indexes
// work without the key. Custody blobs (/u/) are sealed by their origin.
type Sealer interface {
	Seal(plain, ad []byte) ([]byte, error)
	Open(sealed, ad []byte) ([]byte, error)
}

// keySealed marks a store whose history values are sealed: "1". It is
// written on first open with a Sealer, and Open refuses a sealed store
// without one, and a plain store that holds records with one.
const keySealed = "/m/sealed"

// ErrSealed: the store's values are sealed and no Sealer was given.
var ErrSealed = errors.New("record store is encrypted")

// sealValue seals a history value when the store has a Sealer.
func (s *Store) sealValue(key, val []byte) ([]byte, error) {
	if s.cfg.Sealer == nil {
		return val, nil
	}
	out, err := s.cfg.Sealer.Seal(val, key)
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: %w", key, err)
	}
	return out, nil
}

// openValue opens a history value read from disk when the store has a
// Sealer. A value that does not open is damaged (or sealed with another
// key).
func (s *Store) openValue(key, val []byte) ([]byte, error) {
	if s.cfg.Sealer == nil {
		return val, nil
	}
	out, err := s.cfg.Sealer.Open(val, key)
	if err != nil {
		return nil, fmt.Errorf("%w: %s does not decrypt with this node's data key: %v", ErrDamaged, key, err)
	}
	return out, nil
}

// checkSealed compares the store's seal marker with the Config, writing
// it into a store that holds no records yet.
func (s *Store) checkSealed() error {
	var marked, hasHistory bool
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(keySealed))
		switch {
		case err == nil:
			marked = true
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		pfx := []byte(pfxHistory)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx, PrefetchValues: false})
		defer it.Close()
		it.Seek(pfx)
		hasHistory = it.ValidForPrefix(pfx)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the store's encryption marker: %w", err)
	}
	switch {
	case marked && s.cfg.Sealer == nil:
		return fmt.Errorf("the record store is encrypted and was opened without its data key: start the node with its passphrase (the data dir must still hold datakey.sealed): %w", ErrSealed)
	case !marked && s.cfg.Sealer != nil && hasHistory:
		return fmt.Errorf("the record store holds records in clear and cannot be opened encrypted; encrypting an existing store is not supported, start a new data dir with --encrypt and restore into it: %w", ErrUnknownFormat)
	case !marked && s.cfg.Sealer != nil:
		if err := s.db.Update(func(txn *badger.Txn) error {
			return txn.Set([]byte(keySealed), []byte("1"))
		}); err != nil {
			return fmt.Errorf("mark the store encrypted: %w", err)
		}
	}
	return nil
}
