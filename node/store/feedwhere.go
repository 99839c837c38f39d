package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

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
	last, err = s.scanFeed(after, limit, func(txn *badger.Txn, seq uint64, m feedMeta) error {
		e, err := s.feedEntry(txn, seq, m, want, bytes)
		if err == nil {
			entries = append(entries, e)
		}
		return err
	})
	if err != nil {
		return nil, after, err
	}
	return entries, last, nil
}

// feedEntry reads the entry at seq that m describes.
// Without bytes, a version whose history entry is marked metaEnvelope is
// not read: it is held whole.
func (s *Store) feedEntry(txn *badger.Txn, seq uint64, m feedMeta, want func(string, model.Audience) bool, bytes bool) (FeedEntry, error) {
	if !m.full {
		st, err := s.readFeedVersion(txn, seq, m.hk) // an older entry: decode the version
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
	id, version, hash, err := parseHistoryKey(m.hk)
	if err != nil {
		return FeedEntry{}, fmt.Errorf("%w: feed entry %d: %v", ErrDamaged, seq, err)
	}
	e := FeedEntry{Seq: seq, ID: id, Version: version, Hash: hash, Origin: m.origin, Audience: m.audience}
	if !want(e.Origin, e.Audience) {
		return e, nil
	}
	item, err := txn.Get(m.hk)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return FeedEntry{}, fmt.Errorf("%w: feed entry %d names version %s, which is missing from history; restore this record from a peer", ErrDamaged, seq, m.hk)
	}
	if err != nil {
		return FeedEntry{}, err
	}
	if !bytes && item.UserMeta() == metaEnvelope {
		return e, nil
	}
	val, err := item.ValueCopy(nil)
	if err != nil {
		return FeedEntry{}, fmt.Errorf("read %s: %w", m.hk, err)
	}
	if val, err = s.openValue(m.hk, val); err != nil {
		return FeedEntry{}, err
	}
	damaged := func(what string, args ...any) error {
		return fmt.Errorf("%w: record %s version %d: %s; fetch it again from a peer", ErrDamaged, id, version, fmt.Sprintf(what, args...))
	}
	if len(val) < 9 {
		return FeedEntry{}, damaged("the stored entry is %d bytes", len(val))
	}
	if got, _ := readU64(val[:8]); got != seq {
		return FeedEntry{}, fmt.Errorf("%w: feed entry %d points at a version stored as %d", ErrDamaged, seq, got)
	}
	if val[8] == stubMark {
		e.TakenBack = true // no signed bytes left to send
		return e, nil
	}
	if err := e.Envelope.UnmarshalBinary(val[8:]); err != nil {
		return FeedEntry{}, damaged("%v", err)
	}
	sum := sha256.Sum256(e.Envelope.Payload)
	if hex.EncodeToString(sum[:]) != hash {
		return FeedEntry{}, damaged("the stored bytes do not match their hash")
	}
	return e, nil
}
