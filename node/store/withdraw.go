package store

import (
	"encoding/json"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger"

	"github.com/inpud/cairn/model"
)

// Taking bodies back (DESIGN §3, retraction). When a record's origin
// deletes it, or narrows its audience with a withdrawn version
// (model.Payload.Withdrawn), holders the new audience leaves out drop the
// bodies of the versions before it. The store does that inside the Put
// that stores the retracting version, so the bodies are gone in the same
// durable write; and a version older than a retraction that applies,
// arriving later (relayed, or replayed), is kept without its body from the
// start.
//
// A version whose body was taken back stays in history as a stub: its
// header (id, version, time, author, audience; no body) and the hash of
// the retracting version, which is signed and says why. Its feed entry
// stays, so sequence numbers keep no gaps, but a stub is never sent on:
// it no longer has signed bytes. (Badger keeps overwritten values in its
// value log until garbage collection rewrites the file; encryption at
// rest, not this, is what protects a seized disk.)

// stubMark follows the seq in a history value that holds a stub instead of
// an envelope. An envelope's binary form starts with its payload length as
// a uvarint, never 0.
const stubMark = 0x00

// stub is the stored form of a version whose body was taken back.
type stub struct {
	Payload model.Payload `json:"p"`  // the version's header; Body is empty
	By      string        `json:"by"` // hash of the version that took the body back
}

// SetTakeBack sets the rule that says whether a retracting version takes
// bodies back from this store (node: model.Payload.TakesBackFrom for this
// node's network). Without one, the store keeps every body. Set it before
// the first Put.
func (s *Store) SetTakeBack(applies func(model.Payload) bool) {
	s.takeBack.Store(&applies)
}

// takesBack applies the rule, if any.
func (s *Store) takesBack(p model.Payload) bool {
	f := s.takeBack.Load()
	return f != nil && *f != nil && p.Retracts() && (*f)(p)
}

// stubValue encodes a history value holding a stub.
func stubValue(seq uint64, p model.Payload, by string) ([]byte, error) {
	p.Body = nil
	b, err := json.Marshal(stub{Payload: p, By: by})
	if err != nil {
		return nil, err
	}
	return append(append(u64(seq), stubMark), b...), nil
}

// decodeStub reads a stub value (after its seq).
func decodeStub(b []byte) (stub, error) {
	var st stub
	if len(b) < 1 || b[0] != stubMark {
		return st, errors.New("not a stub")
	}
	err := json.Unmarshal(b[1:], &st)
	return st, err
}

// takeBackBefore replaces with stubs the bodies of every version of id
// older than version that still has one, in the Put's transaction.
func (w *putTxn) takeBackBefore(id string, version uint64, by string) (int, error) {
	pfx := historyPrefix(id)
	type entry struct {
		key []byte
		val []byte
	}
	var todo []entry
	it := w.txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
	for it.Seek(pfx); it.ValidForPrefix(pfx); it.Next() {
		item := it.Item()
		_, v, _, err := parseHistoryKey(item.Key())
		if err != nil {
			it.Close()
			return 0, fmt.Errorf("%w: %v", ErrDamaged, err)
		}
		if v >= version {
			break // keys sort by version
		}
		val, err := item.ValueCopy(nil)
		if err == nil {
			val, err = w.s.openValue(item.Key(), val)
		}
		if err != nil {
			it.Close()
			return 0, err
		}
		if len(val) > 8 && val[8] == stubMark {
			continue // already a stub
		}
		todo = append(todo, entry{item.KeyCopy(nil), val})
	}
	it.Close()
	for _, e := range todo {
		st, err := decodeValue(e.key, e.val)
		if err != nil {
			return 0, err
		}
		val, err := stubValue(st.Seq, st.Payload, by)
		if err != nil {
			return 0, err
		}
		if val, err = w.s.sealValue(e.key, val); err != nil {
			return 0, err
		}
		if err := w.txn.Set(e.key, val); err != nil {
			return 0, err
		}
	}
	return len(todo), nil
}

// takenBackBy returns the hash of a held version of id newer than version
// that takes the body back from this store, if there is one.
func (w *putTxn) takenBackBy(s *Store, id string, version uint64) (string, error) {
	pfx := historyPrefix(id)
	it := w.txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
	defer it.Close()
	for it.Seek(versionPrefix(id, version+1)); it.ValidForPrefix(pfx); it.Next() {
		item := it.Item()
		val, err := item.ValueCopy(nil)
		if err == nil {
			val, err = s.openValue(item.Key(), val)
		}
		if err != nil {
			return "", err
		}
		if len(val) > 8 && val[8] == stubMark {
			continue
		}
		st, err := decodeValue(item.KeyCopy(nil), val)
		if err != nil {
			return "", err
		}
		if s.takesBack(st.Payload) {
			return st.Hash, nil
		}
	}
	return "", nil
}
