package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger"
)

// The feed's identity. Sequence numbers name entries of one store's feed
// only: a node restored into a new data dir (cairn restore) numbers its
// feed from 1 again, and a peer's checkpoint for it, from the old feed,
// would skip the new one's first entries. So each store has a random feed
// id, made when the store is (or, for a store from before, when it is
// first opened by this code), served with every pull answer and kept with
// each pull checkpoint: a puller that sees another id than the one it
// checkpointed starts again from 0 (what it holds already costs only a
// lookup).
const (
	keyFeedID        = "/m/feedid" // 16 random bytes, hex
	pfxCheckpointFor = "/kf/"      // /kf/<peer> → the feed id its /k/<peer> checkpoint is in
)

// FeedID names this store's change feed (32 hex digits).
func (s *Store) FeedID() string { return s.feedID }

// loadFeedID reads the feed id, making one if the store has none.
func (s *Store) loadFeedID() error {
	return s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyFeedID))
		if err == nil {
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if _, err := hex.DecodeString(string(v)); err != nil || len(v) != 32 {
				return fmt.Errorf("%w: the feed id %q is not 32 hex digits", ErrDamaged, v)
			}
			s.feedID = string(v)
			return nil
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		s.feedID = hex.EncodeToString(b[:])
		return txn.Set([]byte(keyFeedID), []byte(s.feedID))
	})
}

// CheckpointIn returns the checkpoint saved for peer and the id of the
// peer's feed it counts in ("" for one saved before feed ids, or none).
func (s *Store) CheckpointIn(peer string) (seq uint64, feed string, err error) {
	if peer == "" {
		return 0, "", errors.New("read sync checkpoint: no peer given")
	}
	if err := s.begin(); err != nil {
		return 0, "", err
	}
	defer s.end()
	err = s.db.View(func(txn *badger.Txn) error {
		if seq, err = getU64(txn, checkpointKey(peer)); err != nil {
			return err
		}
		item, err := txn.Get([]byte(pfxCheckpointFor + peer))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		feed = string(v)
		return err
	})
	if err != nil {
		return 0, "", fmt.Errorf("read sync checkpoint for %s: %w", peer, err)
	}
	return seq, feed, nil
}

// SetCheckpointIn saves peer's checkpoint with the id of the feed it
// counts in, in one write, and returns once it is on disk.
func (s *Store) SetCheckpointIn(peer string, seq uint64, feed string) error {
	if peer == "" {
		return errors.New("save sync checkpoint: no peer given")
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(checkpointKey(peer), u64(seq)); err != nil {
			return err
		}
		return txn.Set([]byte(pfxCheckpointFor+peer), []byte(feed))
	})
	if err != nil {
		return fmt.Errorf("save sync checkpoint for %s: %w", peer, err)
	}
	return nil
}
