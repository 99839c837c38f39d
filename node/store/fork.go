package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	badger "github.com/dgraph-io/badger"
)

// Rollbacks and forks (issue 6).
//
// Every version names the hash of the one it follows (model.Payload.Prev),
// so the versions of a record form a chain. Two things break it:
//
//   - A fork: two versions of one record, both signed by a key of its
//     origin network, that follow the same version (the same Prev), or
//     that have the same version number and different hashes. A network
//     with several nodes writing at once makes forks honestly; a hostile
//     or broken node can too. The store keeps both (model.Wins picks the
//     current one) and marks them; the operator resolves a fork by writing
//     a new version, which follows the winner.
//   - A broken chain: a version whose Prev is not the hash of any version
//     with the number before it, while the store holds at least one
//     version with that number. A version that names no predecessor at
//     all is not checked: it claims nothing (data written before versions
//     named their predecessor). (When the store holds no such version it
//     cannot tell: a receiver keeps the current version of another
//     network's record, not its whole history.) It means a fork exists
//     that this node has not seen, or a version that skips one.
//
// The marks in a history (Marks) are worked out from the versions held
// each time a history is read, so they are always complete, including for
// versions stored before this code. In addition, what the store and the
// node notice as versions arrive is kept as events, per record: a fork or
// broken chain as it was stored (from which peer, when), and a rolled-back
// version the node refused (node/sink.go). Events live under
// /e/<id> (a JSON list, oldest first, at most MaxEvents: older ones are
// dropped). Like receipts and checkpoints they hold ids, version numbers,
// hashes and peer ids, never a body, and are not sealed.

// pfxEvents: /e/<id> → the record's events, JSON, oldest first.
const pfxEvents = "/e/"

func eventsKey(id string) []byte { return []byte(pfxEvents + id) }

// MaxEvents is how many events the store keeps per record.
const MaxEvents = 20

// maxEventsPerPut bounds the events one Put notes, so that a group of
// MaxBatch versions that all fork still fits in one transaction. Forks
// past it are still reported (PutResult.Forks, so counted per peer) and
// marked in histories (Marks works from the versions themselves); only
// their event (who delivered them, when) is not kept.
const maxEventsPerPut = 32

// Event kinds.
const (
	// EventRolledBack: a peer served a version older than one it had
	// served before; the node refused it (sync.ReasonRolledBack).
	EventRolledBack = "rolled-back"
	// EventFork: a version was stored that forks the record (see above).
	EventFork = "fork"
	// EventBrokenChain: a version was stored whose Prev is none of the held
	// versions with the number before it.
	EventBrokenChain = "broken-chain"
)

// Event is something the node noticed about a record's chain.
type Event struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"` // EventRolledBack, EventFork or EventBrokenChain
	// Peer is the node ID of the peer that delivered the version; empty
	// when it was this node's own write or an import.
	Peer    string `json:"peer,omitempty"`
	Network string `json:"network,omitempty"` // Peer's network, when known
	Version uint64 `json:"version"`           // the version's number
	Hash    string `json:"hash"`              // the version's hash
	Prev    string `json:"prev,omitempty"`    // the hash it names as its predecessor
	// Held: for a rollback, the newest version of the record the peer had
	// served before (and that this node refused this one against).
	Held uint64 `json:"held,omitempty"`
	// Others: for a fork, the hashes of the versions held that it forks
	// from; for a broken chain, those of the held versions with the
	// number before it.
	Others []string `json:"others,omitempty"`
}

// Fork is what a history shows of a version that is part of a fork.
type Fork struct {
	// Prev is the hash the forked versions all follow; empty when they do
	// not all name the same one (same version number, different
	// predecessors) or are first versions.
	Prev string `json:"prev,omitempty"`
	// Versions are the hashes of every held version in the fork, this
	// one included, in history order (the last is the winner among them).
	Versions []string `json:"versions"`
}

// Mark is what Marks says of one version of a history.
type Mark struct {
	Fork *Fork // nil when the version is not part of a fork
	// BrokenChain: the store holds versions with the number before this
	// one's, and this one follows none of them.
	BrokenChain bool
}

// Marks returns, for each version of a history as History returns it,
// whether it is part of a fork and whether its chain is broken (see the
// top of this file).
func Marks(hs []Stored) []Mark {
	out := make([]Mark, len(hs))
	byVersion := map[uint64][]int{}
	byPrev := map[string][]int{}
	for i, h := range hs {
		byVersion[h.Payload.Version] = append(byVersion[h.Payload.Version], i)
		if h.Payload.Prev != "" {
			byPrev[h.Payload.Prev] = append(byPrev[h.Payload.Prev], i)
		}
	}
	for i, h := range hs {
		p := h.Payload
		sib := slices.Clone(byVersion[p.Version])
		if p.Prev != "" {
			for _, j := range byPrev[p.Prev] {
				if !slices.Contains(sib, j) {
					sib = append(sib, j)
				}
			}
		}
		if len(sib) > 1 {
			slices.Sort(sib)
			f := &Fork{Prev: p.Prev}
			for _, j := range sib {
				f.Versions = append(f.Versions, hs[j].Hash)
				if hs[j].Payload.Prev != p.Prev {
					f.Prev = ""
				}
			}
			out[i].Fork = f
		}
		if before := byVersion[p.Version-1]; p.Version > 1 && p.Prev != "" && len(before) > 0 {
			follows := false
			for _, j := range before {
				follows = follows || hs[j].Hash == p.Prev
			}
			out[i].BrokenChain = !follows
		}
	}
	return out
}

// Events returns what the node noticed about record id's chain, oldest
// first (at most MaxEvents); none if nothing.
func (s *Store) Events(id string) ([]Event, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	var evs []Event
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		evs, err = getEvents(txn, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the events of record %s: %w", id, err)
	}
	return evs, nil
}

// AddEvents appends events (each naming its record in ids, at the same
// position) in one durable write, keeping the last MaxEvents per record.
// An event without At gets the current time.
func (s *Store) AddEvents(ids []string, evs []Event) error {
	if len(ids) != len(evs) {
		return fmt.Errorf("add record events: %d ids for %d events", len(ids), len(evs))
	}
	if len(evs) == 0 {
		return nil
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	s.putMu.Lock() // the put transaction writes events too
	defer s.putMu.Unlock()
	err := s.db.Update(func(txn *badger.Txn) error {
		for i := range evs {
			if err := addEvent(txn, ids[i], evs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record %d events of record chains: %w", len(evs), err)
	}
	return nil
}

func getEvents(txn *badger.Txn, id string) ([]Event, error) {
	item, err := txn.Get(eventsKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var evs []Event
	err = item.Value(func(v []byte) error { return json.Unmarshal(v, &evs) })
	if err != nil {
		return nil, fmt.Errorf("%w: the events of record %s are unreadable: %v", ErrDamaged, id, err)
	}
	return evs, nil
}

// addEvent appends ev to id's events in txn, dropping the oldest beyond
// MaxEvents.
func addEvent(txn *badger.Txn, id string, ev Event) error {
	evs, err := getEvents(txn, id)
	if err != nil {
		return err
	}
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	ev.At = ev.At.UTC()
	evs = append(evs, ev)
	if len(evs) > MaxEvents {
		evs = evs[len(evs)-MaxEvents:]
	}
	b, err := json.Marshal(evs)
	if err != nil {
		return err
	}
	return txn.Set(eventsKey(id), b)
}

// chainCheck looks at where a version about to be stored sits in the
// record's chain, in the put's transaction, and returns the event to note
// ("" kind for none). cur is the record's current version (hasCur false
// when none is held) and conflict says another version with r's number is
// held.
//
// The common case costs nothing more: a version that follows the current
// one, with no other version of its number. Otherwise it lists the keys of
// the versions with r's number and the number before; only when r follows
// none of the latter (the rare case) does it read the history, to find the
// versions that follow the same predecessor (a fork across version
// numbers) and tell that from a broken chain.
func (w *putTxn) chainCheck(r *decoded, cur current, hasCur, conflict bool) (Event, error) {
	p := r.p
	ev := Event{Version: p.Version, Hash: r.hash, Prev: p.Prev}
	if conflict {
		others, err := versionHashes(w.txn, p.ID, p.Version)
		if err != nil {
			return Event{}, err
		}
		ev.Kind, ev.Others = EventFork, slices.DeleteFunc(others, func(h string) bool { return h == r.hash })
		return ev, nil
	}
	if p.Version <= 1 || !hasCur || cur.Version < p.Version-1 {
		// The store holds no version with the number before r's (the
		// current one has the highest number held): nothing to check.
		return Event{}, nil
	}
	if p.Prev == "" || (cur.Version == p.Version-1 && cur.Hash == p.Prev) {
		// Following the current version; or naming no predecessor at
		// all, which claims nothing to check (versions written before
		// versions named their predecessor).
		return Event{}, nil
	}
	before, err := versionHashes(w.txn, p.ID, p.Version-1)
	if err != nil {
		return Event{}, err
	}
	if len(before) == 0 || slices.Contains(before, p.Prev) {
		return Event{}, nil
	}
	// Does a held version follow the same predecessor? Then it is a fork.
	var siblings []string
	pfx := historyPrefix(p.ID)
	it := w.txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
	defer it.Close()
	for it.Seek(pfx); it.ValidForPrefix(pfx); it.Next() {
		st, err := w.s.decodeVersion(it.Item())
		if err != nil {
			return Event{}, err
		}
		if p.Prev != "" && st.Payload.Prev == p.Prev && st.Hash != r.hash {
			siblings = append(siblings, st.Hash)
		}
	}
	if len(siblings) > 0 {
		ev.Kind, ev.Others = EventFork, siblings
		return ev, nil
	}
	ev.Kind, ev.Others = EventBrokenChain, before
	return ev, nil
}

// versionHashes lists the hashes of the held versions of id with number v,
// from their keys alone.
func versionHashes(txn *badger.Txn, id string, v uint64) ([]string, error) {
	pfx := versionPrefix(id, v)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx, PrefetchValues: false})
	defer it.Close()
	var out []string
	for it.Seek(pfx); it.ValidForPrefix(pfx); it.Next() {
		_, _, h, err := parseHistoryKey(it.Item().Key())
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
		}
		out = append(out, h)
	}
	return out, nil
}

// ForkOf is one fork or broken chain a Put stored (PutResult.Forks).
type ForkOf struct {
	ID    string
	Event Event // Kind EventFork or EventBrokenChain
}
