package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger"

	"github.com/inpud/cairn/model"
)

// Delivery receipts, kept on the origin's nodes: which version of each own
// record every other network says it holds.
//
//	/d/<id>/<network>   the highest version network acknowledged of record
//	                    id: format byte 1, uvarint version, the 32-byte
//	                    hash, and when it was first acknowledged (unix ms,
//	                    8 bytes)
//
// Only versions the store holds of records whose origin is the caller's
// network are kept (PutReceipts checks both in the same transaction), so a
// receipt can never name a version the origin did not write.

// Receipt says that a network holds one version of a record.
type Receipt struct {
	ID      string
	Version uint64
	Hash    string // hex, as model.Envelope.Hash
}

// Holder is what a network last acknowledged holding of a record: the
// highest version it acknowledged, and since when.
type Holder struct {
	Network string
	Version uint64
	Hash    string
	At      time.Time // when this node first received a receipt for that version
}

// ReceiptResult says what PutReceipts did.
type ReceiptResult struct {
	// Accepted receipts name a version this store holds of a record of the
	// origin network; Updated of those moved the network's entry to a higher
	// version (the others repeated or were older than what it had said).
	Accepted, Updated int
	// Ignored receipts are malformed, for a record of another origin, or
	// for a version (or hash) this store does not hold. Nothing is kept.
	Ignored int
}

const receiptFormat = 1

// receiptRetries bounds how often PutReceipts retries a transaction that
// conflicted with a concurrent PutReceipts for the same entries.
const receiptRetries = 5

func receiptPrefix(id string) []byte { return []byte(pfxReceipt + id + "/") }

func receiptKey(id, network string) []byte { return []byte(pfxReceipt + id + "/" + network) }

// PutReceipts keeps the receipts network sent for records whose origin is
// origin, as received at at, and returns once they are on disk. For each
// record it keeps the highest version network acknowledged: a network that
// said it holds version 3 and then (through a relay) version 2 still holds
// 3. Receipts this store cannot vouch for are counted as ignored.
func (s *Store) PutReceipts(network, origin string, at time.Time, rs []Receipt) (ReceiptResult, error) {
	if !model.ValidSlug(network) || !model.ValidSlug(origin) {
		return ReceiptResult{}, fmt.Errorf("keep delivery receipts: %q or %q is not a network slug", network, origin)
	}
	if err := s.begin(); err != nil {
		return ReceiptResult{}, err
	}
	defer s.end()
	var res ReceiptResult
	var err error
	for range receiptRetries {
		res = ReceiptResult{}
		err = s.db.Update(func(txn *badger.Txn) error {
			for _, r := range rs {
				ok, updated, err := putReceipt(txn, network, origin, at, r)
				if err != nil {
					return err
				}
				switch {
				case !ok:
					res.Ignored++
				case updated:
					res.Accepted++
					res.Updated++
				default:
					res.Accepted++
				}
			}
			return nil
		})
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	if err != nil {
		return ReceiptResult{}, fmt.Errorf("keep %d delivery receipts from %s: %w", len(rs), network, err)
	}
	return res, nil
}

// putReceipt checks one receipt and keeps it if it raises network's entry.
func putReceipt(txn *badger.Txn, network, origin string, at time.Time, r Receipt) (ok, updated bool, err error) {
	if model.ValidateID(r.ID) != nil || !validHash(r.Hash) || r.Version == 0 {
		return false, false, nil
	}
	cur, found, err := getCurrent(txn, r.ID)
	if err != nil {
		return false, false, err
	}
	if !found || cur.Origin != origin {
		return false, false, nil
	}
	// The current version is held (the record entry names a version in
	// history), so only a receipt for an earlier one needs a history read.
	// After a first sync every receipt names the current version, and
	// that read was a third of the work.
	if r.Version != cur.Version || r.Hash != cur.Hash {
		if _, err := txn.Get(historyKey(r.ID, r.Version, r.Hash)); errors.Is(err, badger.ErrKeyNotFound) {
			return false, false, nil
		} else if err != nil {
			return false, false, err
		}
	}
	key := receiptKey(r.ID, network)
	item, err := txn.Get(key)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return false, false, err
	default:
		var h Holder
		if err := item.Value(func(v []byte) error { return h.unmarshal(v) }); err != nil {
			return false, false, fmt.Errorf("%w: receipt of %s for record %s: %v", ErrDamaged, network, r.ID, err)
		}
		if h.Version >= r.Version {
			return true, false, nil
		}
	}
	v, err := Holder{Version: r.Version, Hash: r.Hash, At: at}.marshal()
	if err != nil {
		return false, false, err
	}
	return true, true, txn.Set(key, v)
}

// Holders returns, for record id, what each network acknowledged holding,
// sorted by network. A record with no receipts (or none held) gives none.
func (s *Store) Holders(id string) ([]Holder, error) {
	if err := model.ValidateID(id); err != nil {
		return nil, err
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	var out []Holder
	err := s.db.View(func(txn *badger.Txn) error {
		pfx := receiptPrefix(id)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx, PrefetchValues: false})
		defer it.Close()
		for it.Seek(pfx); it.ValidForPrefix(pfx); it.Next() {
			item := it.Item()
			h := Holder{Network: string(item.Key()[len(pfx):])}
			if err := item.Value(func(v []byte) error { return h.unmarshal(v) }); err != nil {
				return fmt.Errorf("%w: receipt of %s for record %s: %v", ErrDamaged, h.Network, id, err)
			}
			out = append(out, h)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read delivery receipts of record %s: %w", id, err)
	}
	return out, nil
}

func validHash(h string) bool {
	if len(h) != hashLen {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (h Holder) marshal() ([]byte, error) {
	raw, err := hex.DecodeString(h.Hash)
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("version hash %q is not 64 hex digits", h.Hash)
	}
	b := []byte{receiptFormat}
	b = binary.AppendUvarint(b, h.Version)
	b = append(b, raw...)
	return binary.BigEndian.AppendUint64(b, uint64(h.At.UnixMilli())), nil
}

var errBadReceipt = errors.New("receipt entry is malformed")

func (h *Holder) unmarshal(b []byte) error {
	if len(b) < 1 || b[0] != receiptFormat {
		return errBadReceipt
	}
	v, n := binary.Uvarint(b[1:])
	if n <= 0 || len(b) != 1+n+32+8 {
		return errBadReceipt
	}
	b = b[1+n:]
	h.Version = v
	h.Hash = hex.EncodeToString(b[:32])
	h.At = time.UnixMilli(int64(binary.BigEndian.Uint64(b[32:]))).UTC()
	return nil
}
