package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	badger "github.com/dgraph-io/badger"

	"github.com/inpud/cairn/model"
)

// FeedEntry is one change-feed entry as FeedWhere reads it: what the feed
// entry says of the version, and the envelope only if it was wanted.
type FeedEntry struct {
	Seq      uint64
	ID       string
	Version  uint64
	Hash     string
	Origin   string
	Audience model.Audience
	// Envelope is the signed bytes, checked against Hash; empty when the
	// entry was not wanted, or when the origin took the version's body
	// back from this node (TakenBack, which is known only for wanted
	// entries).
	Envelope  model.Envelope
	TakenBack bool
}

// FeedWhere pages through the change feed like Feed, but reads a version's
// envelope only when want(origin, audience) holds for it, and never
// decodes its JSON: the origin and audience come from the feed entry
// itself. A pull server skips the entries a requester may not see (its own
// records, say) without reading them. Entries written by a store from
// before the feed carried them are read and decoded instead.
func (s *Store) FeedWhere(after uint64, limit int, want func(origin string, aud model.Audience) bool) (entries []FeedEntry, last uint64, err error) {
	return s.feedWhere(after, limit, want, true)
}

// FeedHeld is FeedWhere for a caller that needs to know only whether this
// store still holds each wanted version whole (TakenBack), not its bytes:
// Envelope is left empty. A version stored whole says so in its history
// entry's metadata (metaEnvelope), so most wanted entries cost a key
// lookup and no read of the value log; the others (stubs, and versions
// stored before the mark existed) are read as FeedWhere reads them. The
// delivery receipts' feed scan uses it.
func (s *Store) FeedHeld(after uint64, limit int, want func(origin string, aud model.Audience) bool) (entries []FeedEntry, last uint64, err error) {
	entries, last, err = s.feedWhere(after, limit, want, false)
	for i := range entries {
		entries[i].Envelope = model.Envelope{}
	}
	return entries, last, err
}

func (s *Store) feedWhere(after uint64, limit int, want func(origin string, aud model.Audience) bool, bytes bool) (entries []FeedEntry, last uint64, err error) {
	// Wanted versions are read after the scan, in history-key order, with
	// one iterator (historyCursor); the rest need no read.
	type wanted struct {
		i  int // in entries
		hk []byte
	}
	var reads []wanted
	cutAt := uint64(0) // the seq a page cut short ends at
	last, err = s.scanFeed(after, limit, func(txn *badger.Txn, seq uint64, m feedMeta) error {
		if !m.full {
			e, err := s.oldFeedEntry(txn, seq, m, want) // an older entry: decode the version
			if err == nil {
				entries = append(entries, e)
			}
			return err
		}
		id, version, hash, err := parseHistoryKey(m.hk)
		if err != nil {
			return fmt.Errorf("%w: feed entry %d: %v", ErrDamaged, seq, err)
		}
		e := FeedEntry{Seq: seq, ID: id, Version: version, Hash: hash, Origin: m.origin, Audience: m.audience}
		if want(e.Origin, e.Audience) {
			reads = append(reads, wanted{i: len(entries), hk: m.hk})
		}
		entries = append(entries, e)
		return nil
	}, func(txn *badger.Txn) error {
		if len(reads) == 0 {
			return nil
		}
		slices.SortFunc(reads, func(a, b wanted) int { return cmpBytes(a.hk, b.hk) })
		hc := historyCursor{txn: txn}
		defer hc.close()
		// Past FeedPageBytes the page is cut before the first entry
		// (in feed order) not yet read; the first entry is always read.
		total, cut := 0, len(entries)
		for _, r := range reads {
			if total >= FeedPageBytes && r.i >= cut {
				continue
			}
			if total >= FeedPageBytes {
				cut = min(cut, r.i)
				continue
			}
			if err := s.readFeedEntry(&hc, &entries[r.i], r.hk, bytes); err != nil {
				return err
			}
			total += len(entries[r.i].Envelope.Payload) + len(entries[r.i].Envelope.Sig)
		}
		if cut < len(entries) && cut == 0 {
			// The first entry came late in key order: read it alone.
			if err := s.readFeedEntry(&hc, &entries[0], reads[slices.IndexFunc(reads, func(r wanted) bool { return r.i == 0 })].hk, bytes); err != nil {
				return err
			}
			cut = 1
		}
		if cut < len(entries) {
			entries = entries[:cut]
			cutAt = entries[cut-1].Seq
		}
		return nil
	})
	if err != nil {
		return nil, after, err
	}
	if cutAt != 0 {
		last = cutAt
	}
	return entries, last, nil
}

// FeedPageBytes bounds the envelope bytes one FeedWhere call reads (give
// or take one envelope): past it, the page ends early, before the first
// entry not read, and the next page starts there. A page of many large
// records (a payload may be 1 MB) so holds about this much, not its
// entry limit times 1 MB. A page cut short is not the end of the feed:
// only an empty one is.
const FeedPageBytes = 8 << 20

// cmpBytes is bytes.Compare, for functions whose parameter bytes hides the
// package.
func cmpBytes(a, b []byte) int { return bytes.Compare(a, b) }

// historyCursor finds history entries in ascending key order with one
// iterator, instead of a Txn.Get each. A Get looks in every level of the
// LSM tree afresh and reads a table block from disk (FileIO tables) for
// each version; wanted keys in order are mostly a few steps apart, and a
// step within a block reads nothing. A key further on than a few steps is
// sought, which costs about what a Get does.
type historyCursor struct {
	txn *badger.Txn
	it  *badger.Iterator
}

// cursorSteps is how many keys the cursor steps over before it seeks.
const cursorSteps = 16

// get returns the history item with key hk, or badger.ErrKeyNotFound. Keys
// in ascending order are cheapest; any order works. The item is valid
// until the next call.
func (c *historyCursor) get(hk []byte) (*badger.Item, error) {
	if c.it == nil {
		c.it = c.txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxHistory)})
		c.it.Seek(hk)
	} else {
		steps := 0
		for c.it.Valid() && cmpBytes(c.it.Item().Key(), hk) < 0 && steps < cursorSteps {
			c.it.Next()
			steps++
		}
		if !c.it.Valid() || cmpBytes(c.it.Item().Key(), hk) != 0 {
			c.it.Seek(hk) // further on, or behind (seeks go either way)
		}
	}
	if c.it.Valid() && cmpBytes(c.it.Item().Key(), hk) == 0 {
		return c.it.Item(), nil
	}
	return nil, badger.ErrKeyNotFound
}

// close closes the iterator, if one was opened, before the transaction
// ends.
func (c *historyCursor) close() {
	if c.it != nil {
		c.it.Close()
		c.it = nil
	}
}

// oldFeedEntry reads an entry written before feed entries carried origin
// and audience, by decoding its version.
func (s *Store) oldFeedEntry(txn *badger.Txn, seq uint64, m feedMeta, want func(string, model.Audience) bool) (FeedEntry, error) {
	st, err := s.readFeedVersion(txn, seq, m.hk)
	if err != nil {
		return FeedEntry{}, err
	}
	e := FeedEntry{Seq: seq, ID: st.Payload.ID, Version: st.Payload.Version, Hash: st.Hash,
		Origin: st.Payload.Origin, Audience: st.Payload.Audience, TakenBack: st.TakenBack}
	if want(e.Origin, e.Audience) {
		e.Envelope = st.Envelope
	}
	return e, nil
}

// readFeedEntry reads the wanted version e names (history key hk) into e.
// Without bytes, a version whose history entry is marked metaEnvelope is
// not read: it is held whole.
func (s *Store) readFeedEntry(hc *historyCursor, e *FeedEntry, hk []byte, bytes bool) error {
	seq, id, version, hash := e.Seq, e.ID, e.Version, e.Hash
	item, err := hc.get(hk)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("%w: feed entry %d names version %s, which is missing from history; restore this record from a peer", ErrDamaged, seq, hk)
	}
	if err != nil {
		return err
	}
	if !bytes && item.UserMeta() == metaEnvelope {
		return nil
	}
	val, err := item.ValueCopy(nil)
	if err != nil {
		return fmt.Errorf("read %s: %w", hk, err)
	}
	if val, err = s.openValue(hk, val); err != nil {
		return err
	}
	damaged := func(what string, args ...any) error {
		return fmt.Errorf("%w: record %s version %d: %s; fetch it again from a peer", ErrDamaged, id, version, fmt.Sprintf(what, args...))
	}
	if len(val) < 9 {
		return damaged("the stored entry is %d bytes", len(val))
	}
	if got, _ := readU64(val[:8]); got != seq {
		return fmt.Errorf("%w: feed entry %d points at a version stored as %d", ErrDamaged, seq, got)
	}
	if val[8] == stubMark {
		e.TakenBack = true // no signed bytes left to send
		return nil
	}
	if err := e.Envelope.UnmarshalBinary(val[8:]); err != nil {
		return damaged("%v", err)
	}
	sum := sha256.Sum256(e.Envelope.Payload)
	if hex.EncodeToString(sum[:]) != hash {
		return damaged("the stored bytes do not match their hash")
	}
	return nil
}
