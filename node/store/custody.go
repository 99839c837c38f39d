package store

import (
	"errors"
	"fmt"
	"strconv"

	badger "github.com/dgraph-io/badger"

	"github.com/inpud/cairn/model"
)

// Custody copies, kept on a custodian's nodes for other networks: sealed
// blobs this node cannot open, each one version of a record of the origin
// network (sync/custody.go has the blob format).
//
//	/u/b/<origin>/<pos %016x>                     a blob, as received; pos counts the
//	                                               origin's blobs from 1, with no gaps,
//	                                               in the order they were first kept
//	/u/v/<origin>/<id>/<version %020d>/<tag>      pos of that blob (8 bytes): the index
//	                                               that makes keeping idempotent
//	/u/m/<origin>                                 the last pos (8 bytes): how many are kept
//	/u/n/<origin>/<node>                          the feed seq node's last push reached (8 bytes)
//
// KeepCustody writes one push in one transaction; a push that raced
// another from the same origin is retried, so positions stay gapless.

// CustodyBlob is one blob to keep, with the clear fields of its header.
type CustodyBlob struct {
	ID      string
	Version uint64
	Tag     string // 32 lower-case hex digits
	Data    []byte // the whole blob
}

// CustodyKept says what KeepCustody did.
type CustodyKept struct {
	Stored     int    // blobs newly kept
	Duplicates int    // blobs kept already (also repeats within the push)
	Held       uint64 // blobs of the origin kept now, in all
	Through    uint64 // the feed seq recorded for the pushing node
}

// MaxCustodyPush is the most blobs KeepCustody takes at once.
const MaxCustodyPush = 1000

func custodyBlobPrefix(origin string) []byte { return []byte(pfxCustody + "b/" + origin + "/") }

func custodyBlobKey(origin string, pos uint64) []byte {
	return fmt.Appendf(nil, "%sb/%s/%016x", pfxCustody, origin, pos)
}

func custodyIndexKey(origin, id string, version uint64, tag string) []byte {
	return fmt.Appendf(nil, "%sv/%s/%s/%020d/%s", pfxCustody, origin, id, version, tag)
}

func custodyLastKey(origin string) []byte { return []byte(pfxCustody + "m/" + origin) }

func custodyNodeKey(origin, node string) []byte {
	return []byte(pfxCustody + "n/" + origin + "/" + node)
}

func validTag(t string) bool {
	if len(t) != 32 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// KeepCustody keeps blobs of network origin pushed by node (a peer ID),
// which says they bring its feed through seq through, and returns once
// they are on disk. Blobs it keeps already are counted, not stored again.
// A blob with a malformed id, version or tag fails the whole push, and
// nothing is kept.
func (s *Store) KeepCustody(origin, node string, through uint64, blobs []CustodyBlob) (CustodyKept, error) {
	if !model.ValidSlug(origin) || node == "" {
		return CustodyKept{}, fmt.Errorf("keep custody copies: %q is not a network slug, or no node given", origin)
	}
	if len(blobs) > MaxCustodyPush {
		return CustodyKept{}, fmt.Errorf("keep %d custody copies of %s: at most %d at once: %w", len(blobs), origin, MaxCustodyPush, ErrBatchTooLarge)
	}
	for _, b := range blobs {
		if model.ValidateID(b.ID) != nil || b.Version == 0 || !validTag(b.Tag) || len(b.Data) == 0 {
			return CustodyKept{}, fmt.Errorf("keep custody copies of %s: a copy names record %q version %d tag %q, which is not well formed", origin, b.ID, b.Version, b.Tag)
		}
	}
	if err := s.begin(); err != nil {
		return CustodyKept{}, err
	}
	defer s.end()
	var res CustodyKept
	var err error
	for range receiptRetries {
		res = CustodyKept{Through: through}
		err = s.db.Update(func(txn *badger.Txn) error {
			last, err := getU64(txn, custodyLastKey(origin))
			if err != nil {
				return err
			}
			for _, b := range blobs {
				ik := custodyIndexKey(origin, b.ID, b.Version, b.Tag)
				if _, err := txn.Get(ik); err == nil {
					res.Duplicates++
					continue
				} else if !errors.Is(err, badger.ErrKeyNotFound) {
					return err
				}
				last++
				if err := txn.Set(custodyBlobKey(origin, last), b.Data); err != nil {
					return err
				}
				if err := txn.Set(ik, u64(last)); err != nil {
					return err
				}
				res.Stored++
			}
			res.Held = last
			if err := txn.Set(custodyLastKey(origin), u64(last)); err != nil {
				return err
			}
			return txn.Set(custodyNodeKey(origin, node), u64(through))
		})
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	if err != nil {
		return CustodyKept{}, fmt.Errorf("keep %d custody copies of %s: %w", len(blobs), origin, err)
	}
	return res, nil
}

// CustodyBlobs returns origin's blobs after position after, in the order
// first kept: at most limit of them, and no more once maxBytes are reached
// (but at least one, if there is one). It returns the position of the last
// one returned (after if none) and whether more follow.
func (s *Store) CustodyBlobs(origin string, after uint64, limit, maxBytes int) (blobs [][]byte, last uint64, more bool, err error) {
	if !model.ValidSlug(origin) {
		return nil, after, false, fmt.Errorf("read custody copies: %q is not a network slug", origin)
	}
	if limit <= 0 {
		limit = DefaultFeedLimit
	}
	if err := s.begin(); err != nil {
		return nil, after, false, err
	}
	defer s.end()
	last = after
	if after == ^uint64(0) {
		return nil, last, false, nil
	}
	err = s.db.View(func(txn *badger.Txn) error {
		pfx := custodyBlobPrefix(origin)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
		defer it.Close()
		size := 0
		for it.Seek(custodyBlobKey(origin, after+1)); it.ValidForPrefix(pfx); it.Next() {
			if len(blobs) >= limit || (len(blobs) > 0 && size >= maxBytes) {
				more = true
				return nil
			}
			item := it.Item()
			pos, err := strconv.ParseUint(string(item.Key()[len(pfx):]), 16, 64)
			if err != nil {
				return fmt.Errorf("%w: custody key %q", ErrDamaged, item.Key())
			}
			if len(blobs) > 0 && size+int(item.ValueSize()) > maxBytes {
				more = true
				return nil
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			blobs = append(blobs, v)
			size += len(v)
			last = pos
		}
		return nil
	})
	if err != nil {
		return nil, after, false, fmt.Errorf("read custody copies of %s after %d: %w", origin, after, err)
	}
	return blobs, last, more, nil
}

// CustodyHolding returns how many blobs of origin this store keeps, and
// the feed seq node's last push reached (0 if it pushed none).
func (s *Store) CustodyHolding(origin, node string) (held, through uint64, err error) {
	if err := s.begin(); err != nil {
		return 0, 0, err
	}
	defer s.end()
	err = s.db.View(func(txn *badger.Txn) error {
		var err error
		if held, err = getU64(txn, custodyLastKey(origin)); err != nil {
			return err
		}
		through, err = getU64(txn, custodyNodeKey(origin, node))
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("read custody copies of %s: %w", origin, err)
	}
	return held, through, nil
}
