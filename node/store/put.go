package store

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger"

	"github.com/inpud/cairn/model"
)

// PutResult says what one Put did.
type PutResult struct {
	// Stored lists the versions newly stored, in the order given, each
	// with the feed sequence number it got.
	Stored []Stored
	// Duplicates counts envelopes whose version (id, version, hash) the
	// store already held, or that appeared earlier in the same call; they
	// get no new sequence number.
	Duplicates int
	// Conflicts lists, once each, the ids of records for which this call
	// stored a version whose version number another held version of the
	// record already has (two nodes of one network wrote concurrently).
	// Both stay in history; the winner by model.Wins is current.
	Conflicts []string
	// Older lists, for PutOpened, the positions (in the call) of the
	// versions it did not store because the store held a newer version of
	// their record when the call began.
	Older []int
	// Forks lists the versions this call stored that fork their record or
	// break its chain (fork.go), each with the event noted for it.
	Forks []ForkOf
}

// decoded is an envelope with what Put needs from it.
type decoded struct {
	env  model.Envelope
	p    model.Payload
	hash string
	tmpl string // indexable template ref, "" for none
	from string // for PutOpened: the peer that delivered it (Opened.From)
	net  string // and its network
}

// Put stores envelopes in one transaction: either all of them are stored
// or, on error, none. It returns once the transaction is on disk
// (SyncWrites). Versions already held count as duplicates.
//
// The caller has verified signatures and bodies; Put only decodes each
// payload (model.Envelope.Open) for its id, kind, origin and version, and
// stores the envelope bytes exactly as given. A group too large for one
// transaction fails with ErrBatchTooLarge: split it into groups of at most
// MaxBatch. Concurrent calls are serialised.
func (s *Store) Put(envs ...model.Envelope) (PutResult, error) {
	if len(envs) == 0 {
		return PutResult{}, nil
	}
	recs, err := decodeAll(envs)
	if err != nil {
		return PutResult{}, fmt.Errorf("store records: %w", err)
	}
	return s.put(recs, false)
}

// Opened is an envelope with its payload as Envelope.Open returned it.
type Opened struct {
	Env     model.Envelope
	Payload model.Payload
	// Body is optional: Payload's body as model.DecodeBody returned it,
	// so the store need not decode it for an audit's template.
	Body any
	// From and FromNetwork name the peer (node ID) that delivered the
	// version, and its network, for the events a fork notes (fork.go);
	// empty for this node's own.
	From, FromNetwork string
}

// PutOpened is Put for envelopes a receiver has opened and checked
// already, so their JSON is not decoded again. Each Payload must be
// exactly what Env.Open() returned; the store still checks the
// signature's length and the origin, hashes the bytes, and checks every
// envelope against its hash when it reads it back. Unlike Put, it does
// not store a version older than the one the store holds of its record
// when the call begins (PutResult.Older): a receiver keeps the current
// version of another network's record, not its history.
func (s *Store) PutOpened(ops ...Opened) (PutResult, error) {
	if len(ops) == 0 {
		return PutResult{}, nil
	}
	recs := make([]decoded, len(ops))
	for i, o := range ops {
		r, err := opened(o.Env, o.Payload, o.Body)
		if err != nil {
			return PutResult{}, fmt.Errorf("store records: envelope %d of %d: %w", i+1, len(ops), err)
		}
		r.from, r.net = o.From, o.FromNetwork
		recs[i] = r
	}
	return s.put(recs, true)
}

// put stores decoded envelopes in one transaction (see Put), leaving out
// those older than the version held when refuseOlder is set (PutOpened).
func (s *Store) put(recs []decoded, refuseOlder bool) (PutResult, error) {
	var res PutResult
	if err := s.begin(); err != nil {
		return res, err
	}
	defer s.end()
	s.putMu.Lock()
	defer s.putMu.Unlock()
	s.puts.Add(1)
	defer s.puts.Add(1)

	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	w := putTxn{
		s:      s,
		txn:    txn,
		head:   s.head.Load(),
		maxHLC: model.HLC(s.maxHLC.Load()),
		delta:  map[model.Kind]int{},
	}
	var older []bool
	var held []heldCurrent
	if refuseOlder {
		// Against what was held before this call: versions of one
		// record within the call are all stored, as Put stores them.
		older = make([]bool, len(recs))
		held = make([]heldCurrent, len(recs))
		for i := range recs {
			cur, ok, err := getCurrent(txn, recs[i].p.ID)
			if err != nil {
				return PutResult{}, fmt.Errorf("store record %s: %w", recs[i].p.ID, err)
			}
			older[i] = ok && cur.Version > recs[i].p.Version
			held[i] = heldCurrent{cur: cur, ok: ok}
		}
	}
	// Records this call has stored a version of: what the look-ups above
	// found for them is out of date, so w.put reads /r/<id> again.
	touched := map[string]bool{}
	conflicted := map[string]bool{}
	for i := range recs {
		if older != nil && older[i] {
			res.Older = append(res.Older, i)
			continue
		}
		var known *heldCurrent
		if held != nil && !touched[recs[i].p.ID] {
			known = &held[i]
		}
		st, dup, conflict, err := w.put(&recs[i], known)
		if err != nil {
			if errors.Is(err, badger.ErrTxnTooBig) {
				return PutResult{}, fmt.Errorf("store %d records: the group does not fit in one transaction; split it into groups of at most %d: %w", len(recs), MaxBatch, ErrBatchTooLarge)
			}
			return PutResult{}, fmt.Errorf("store record %s: %w", recs[i].p.ID, err)
		}
		if dup {
			res.Duplicates++
			continue
		}
		touched[recs[i].p.ID] = true
		if conflict && !conflicted[st.Payload.ID] {
			conflicted[st.Payload.ID] = true
			res.Conflicts = append(res.Conflicts, st.Payload.ID)
		}
		res.Stored = append(res.Stored, st)
	}
	if len(res.Stored) == 0 {
		return res, nil // only duplicates: nothing to write
	}
	for _, f := range w.forks[:min(len(w.forks), maxEventsPerPut)] {
		if err := addEvent(txn, f.ID, f.Event); err != nil {
			return PutResult{}, fmt.Errorf("note a fork of record %s: %w", f.ID, err)
		}
	}
	res.Forks = w.forks

	counts := s.countsAfter(w.delta)
	if err := w.meta(counts); err != nil {
		if errors.Is(err, badger.ErrTxnTooBig) {
			return PutResult{}, fmt.Errorf("store %d records: the group does not fit in one transaction; split it into groups of at most %d: %w", len(recs), MaxBatch, ErrBatchTooLarge)
		}
		return PutResult{}, fmt.Errorf("store %d records: %w", len(recs), err)
	}
	if err := txn.Commit(); err != nil {
		return PutResult{}, fmt.Errorf("store %d records: writing them to disk failed, so none were stored (check free space and the disk): %w", len(recs), err)
	}

	s.head.Store(w.head)
	s.maxHLC.Store(uint64(w.maxHLC))
	s.countMu.Lock()
	s.counts = counts
	s.countMu.Unlock()
	s.changed()
	return res, nil
}

// countsAfter returns the per-kind counts with delta applied.
func (s *Store) countsAfter(delta map[model.Kind]int) map[model.Kind]int {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	out := make(map[model.Kind]int, len(s.counts)+len(delta))
	for k, n := range s.counts {
		out[k] = n
	}
	for k, d := range delta {
		out[k] += d
	}
	return out
}

// putTxn is the state of one Put's transaction.
type putTxn struct {
	s      *Store
	txn    *badger.Txn
	head   uint64
	maxHLC model.HLC
	delta  map[model.Kind]int // change of the non-deleted current count per kind
	forks  []ForkOf           // forks and broken chains stored (chainCheck)
}

// heldCurrent is what getCurrent found for a record: its current version,
// if ok.
type heldCurrent struct {
	cur current
	ok  bool
}

// put adds one version to the transaction. known, if not nil, is what
// getCurrent returns for the record in this transaction, read by the
// caller; nil makes put read it.
func (w *putTxn) put(r *decoded, known *heldCurrent) (st Stored, dup, conflict bool, err error) {
	id, v := r.p.ID, r.p.Version
	hk := historyKey(id, v, r.hash)
	var cur current
	var hasCur bool
	if known != nil {
		cur, hasCur = known.cur, known.ok
	} else if cur, hasCur, err = getCurrent(w.txn, id); err != nil {
		return Stored{}, false, false, err
	}
	// Every version is stored together with /r/<id> in one transaction,
	// and /r/<id> is never removed: without it no version of the record
	// is held, so this one is not either, and a new record costs no
	// look-up of its history key (most of a first sync's records).
	if hasCur {
		if _, err := w.txn.Get(hk); err == nil {
			return Stored{}, true, false, nil
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return Stored{}, false, false, err
		}
	}
	// The current version has the highest version number held (model.Wins
	// orders by version first). So another version with this number can
	// exist only if the current one has it, or a higher one.
	if hasCur {
		switch {
		case cur.Version == v:
			conflict = true
		case cur.Version > v:
			conflict, err = hasOtherVersion(w.txn, id, v)
			if err != nil {
				return Stored{}, false, false, err
			}
		}
	}
	ev, err := w.chainCheck(r, cur, hasCur, conflict)
	if err != nil {
		return Stored{}, false, false, err
	}
	if ev.Kind != "" {
		ev.At, ev.Peer, ev.Network = time.Now().UTC(), r.from, r.net
		w.forks = append(w.forks, ForkOf{ID: id, Event: ev})
	}

	w.head++
	seq := w.head
	// The seq, then the envelope as MarshalBinary encodes it, built in
	// one slice of the right size (not encoded and then copied).
	val := make([]byte, 8, 8+binary.MaxVarintLen64+len(r.env.Payload)+len(r.env.Sig))
	binary.BigEndian.PutUint64(val, seq)
	val = binary.AppendUvarint(val, uint64(len(r.env.Payload)))
	val = append(append(val, r.env.Payload...), r.env.Sig...)
	stored := Stored{Envelope: r.env, Payload: r.p, Hash: r.hash, Seq: seq}
	if hasCur && cur.Version > v {
		// An older version arriving late: if a newer one held took the
		// body back from this node, keep only its stub.
		by, err := w.takenBackBy(w.s, id, v)
		if err != nil {
			return Stored{}, false, false, err
		}
		if by != "" {
			if val, err = stubValue(seq, r.p, by); err != nil {
				return Stored{}, false, false, err
			}
			p := r.p
			p.Body = nil
			stored = Stored{Payload: p, Hash: r.hash, Seq: seq, TakenBack: true, TakenBackBy: by}
		}
	}
	if val, err = w.s.sealValue(hk, val); err != nil {
		return Stored{}, false, false, err
	}
	if err := w.txn.SetEntry(historyEntry(hk, val, !stored.TakenBack)); err != nil {
		return Stored{}, false, false, err
	}
	if w.s.takesBack(r.p) {
		if _, err := w.takeBackBefore(id, v, r.hash); err != nil {
			return Stored{}, false, false, err
		}
	}
	if err := w.txn.Set(feedKey(seq), feedValue(hk, r.p.Origin, r.p.Audience)); err != nil {
		return Stored{}, false, false, err
	}
	if r.p.HLC > w.maxHLC {
		w.maxHLC = r.p.HLC
	}

	if !hasCur || model.Wins(r.p, cur.payload(), r.hash, cur.Hash) {
		next := current{
			Version:  v,
			HLC:      r.p.HLC,
			Hash:     r.hash,
			Deleted:  r.p.Deleted || r.p.Withdrawn, // gone from lists, either way
			Kind:     r.p.Kind,
			Origin:   r.p.Origin,
			Author:   r.p.Author,
			Template: r.tmpl,
		}
		// A tombstone usually carries no body; keep it indexed under the
		// template of the version it deletes, so List can show it.
		if next.Deleted && next.Template == "" && hasCur && cur.Kind == next.Kind {
			next.Template = cur.Template
		}
		if err := w.setCurrent(id, cur, hasCur, next); err != nil {
			return Stored{}, false, false, err
		}
	}
	return stored, false, conflict, nil
}

// setCurrent makes next the current version of id: /r/<id>, the indexes
// and the counters.
func (w *putTxn) setCurrent(id string, old current, hasOld bool, next current) error {
	val, err := next.marshal()
	if err != nil {
		return err
	}
	if err := w.txn.Set(recordKey(id), val); err != nil {
		return err
	}
	newKeys := next.indexKeys(id)
	var oldKeys [][]byte
	if hasOld {
		oldKeys = old.indexKeys(id)
	}
	for _, k := range oldKeys {
		if !containsKey(newKeys, k) {
			if err := w.txn.Delete(k); err != nil {
				return err
			}
		}
	}
	for _, k := range newKeys {
		if !containsKey(oldKeys, k) {
			if err := w.txn.Set(k, nil); err != nil {
				return err
			}
		}
	}
	if hasOld && !old.Deleted {
		w.delta[old.Kind]--
	}
	if !next.Deleted {
		w.delta[next.Kind]++
	}
	return nil
}

// meta writes the head, max HLC and changed counters.
func (w *putTxn) meta(counts map[model.Kind]int) error {
	if err := w.txn.Set([]byte(keyHead), u64(w.head)); err != nil {
		return err
	}
	if err := w.txn.Set([]byte(keyMaxHLC), u64(uint64(w.maxHLC))); err != nil {
		return err
	}
	for k, d := range w.delta {
		if d == 0 {
			continue
		}
		n := counts[k]
		if n < 0 {
			return fmt.Errorf("%w: the %s count would go below zero", ErrDamaged, k)
		}
		if err := w.txn.Set(countKey(k), u64(uint64(n))); err != nil {
			return err
		}
	}
	return nil
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}

// getCurrent reads /r/<id>.
func getCurrent(txn *badger.Txn, id string) (current, bool, error) {
	var c current
	item, err := txn.Get(recordKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	err = item.Value(func(v []byte) error { return c.unmarshal(v) })
	if err != nil {
		return c, false, fmt.Errorf("%w: record %s: %v", ErrDamaged, id, err)
	}
	return c, true, nil
}

// hasOtherVersion reports whether history holds any version of id with
// version number v (the caller knows the exact one it has is absent).
func hasOtherVersion(txn *badger.Txn, id string, v uint64) (bool, error) {
	pfx := versionPrefix(id, v)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
	defer it.Close()
	it.Seek(pfx)
	return it.ValidForPrefix(pfx), nil
}

// decodeAll opens every envelope, on several cores for a large group.
func decodeAll(envs []model.Envelope) ([]decoded, error) {
	recs := make([]decoded, len(envs))
	errs := make([]error, len(envs))
	one := func(i int) {
		recs[i], errs[i] = decode(envs[i])
	}
	workers := min(runtime.GOMAXPROCS(0), len(envs)/32)
	if workers <= 1 {
		for i := range envs {
			one(i)
		}
	} else {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(envs); i += workers {
					one(i)
				}
			})
		}
		wg.Wait()
	}
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("envelope %d of %d: %w", i+1, len(envs), err)
		}
	}
	return recs, nil
}

func decode(env model.Envelope) (decoded, error) {
	p, err := env.Open()
	if err != nil {
		return decoded{}, fmt.Errorf("cannot read its payload: %w", err)
	}
	return opened(env, p, nil)
}

// opened checks what Put needs of an envelope whose payload p is opened;
// body, if not nil, is p's body decoded.
func opened(env model.Envelope, p model.Payload, body any) (decoded, error) {
	if len(env.Sig) != ed25519.SignatureSize {
		return decoded{}, fmt.Errorf("record %s: the signature is %d bytes, not %d: %w", p.ID, len(env.Sig), ed25519.SignatureSize, model.ErrMalformed)
	}
	if !model.ValidSlug(p.Origin) {
		return decoded{}, fmt.Errorf("record %s: origin %q is not a network slug: %w", p.ID, p.Origin, model.ErrMalformed)
	}
	return decoded{env: env, p: p, hash: env.Hash(), tmpl: indexableTemplate(templateRef(p, body))}, nil
}

// templateRef is p.TemplateRef(), from body when the caller decoded it.
func templateRef(p model.Payload, body any) string {
	if body == nil {
		return p.TemplateRef()
	}
	if a, ok := body.(*model.Audit); ok && p.Kind == model.KindAudit {
		return a.Template
	}
	return ""
}
