package store

import (
	"slices"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
)

// chain seals versions 1..n of record id, each following the one before.
func chain(t *testing.T, id string, n int) []model.Envelope {
	t.Helper()
	var out []model.Envelope
	prev := ""
	for v := 1; v <= n; v++ {
		env := sealRec(t, rec{id: id, kind: model.KindPriority, version: uint64(v), prev: prev})
		out = append(out, env)
		prev = env.Hash()
	}
	return out
}

// marksOf reads id's history and its marks, by version hash.
func marksOf(t *testing.T, s *Store, id string) ([]Stored, map[string]Mark) {
	t.Helper()
	hs, err := s.History(id)
	if err != nil {
		t.Fatal(err)
	}
	ms := Marks(hs)
	out := map[string]Mark{}
	for i, h := range hs {
		out[h.Hash] = ms[i]
	}
	return hs, out
}

// TestForkSameNumber: a second version 2 following version 1, written
// locally, is stored, reported as a fork, marked on both versions 2 and
// noted as an event of this node's own; a version 3 that follows the
// winner resolves it without new marks.
func TestForkSameNumber(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	id := idAt(time.Unix(1_800_000_000, 0), 1)
	vs := chain(t, id, 2)
	if res := mustPut(t, s, vs...); len(res.Forks) != 0 {
		t.Fatalf("a plain chain reported forks: %+v", res.Forks)
	}
	twin := sealRec(t, rec{id: id, kind: model.KindPriority, version: 2, prev: vs[0].Hash(), note: "concurrent", hlc: model.MakeHLC(1_800_000_002_500, 0)})
	res := mustPut(t, s, twin)
	if len(res.Stored) != 1 || len(res.Forks) != 1 {
		t.Fatalf("the twin: stored %d, forks %+v; want it stored and reported", len(res.Stored), res.Forks)
	}
	ev := res.Forks[0].Event
	if res.Forks[0].ID != id || ev.Kind != EventFork || ev.Hash != twin.Hash() || ev.Prev != vs[0].Hash() || !slices.Equal(ev.Others, []string{vs[1].Hash()}) || ev.Peer != "" {
		t.Fatalf("the fork reported: %+v", res.Forks[0])
	}
	hs, ms := marksOf(t, s, id)
	if len(hs) != 3 {
		t.Fatalf("history holds %d versions, want both versions 2 kept", len(hs))
	}
	for _, h := range []string{vs[1].Hash(), twin.Hash()} {
		f := ms[h].Fork
		if f == nil || f.Prev != vs[0].Hash() || len(f.Versions) != 2 || !slices.Contains(f.Versions, vs[1].Hash()) || !slices.Contains(f.Versions, twin.Hash()) {
			t.Fatalf("version %s is marked %+v; want a fork of both versions 2 after version 1", h[:8], f)
		}
		if ms[h].BrokenChain {
			t.Fatalf("version %s is marked a broken chain", h[:8])
		}
	}
	if m := ms[vs[0].Hash()]; m.Fork != nil || m.BrokenChain {
		t.Fatalf("version 1 is marked %+v", m)
	}
	evs, err := s.Events(id)
	if err != nil || len(evs) != 1 || evs[0].Kind != EventFork || evs[0].Hash != twin.Hash() || evs[0].At.IsZero() {
		t.Fatalf("events after the fork: %+v, %v", evs, err)
	}

	// The operator resolves it: version 3 follows the current version 2.
	cur, err := s.Get(id)
	if err != nil || cur.Hash != twin.Hash() {
		t.Fatalf("current is %v (%v), want the later twin", cur.Hash, err)
	}
	v3 := sealRec(t, rec{id: id, kind: model.KindPriority, version: 3, prev: cur.Hash})
	if res := mustPut(t, s, v3); len(res.Forks) != 0 {
		t.Fatalf("the resolving version reported %+v", res.Forks)
	}
	if _, ms := marksOf(t, s, id); ms[v3.Hash()].Fork != nil || ms[v3.Hash()].BrokenChain {
		t.Fatalf("the resolving version is marked %+v", ms[v3.Hash()])
	}
	if evs, _ := s.Events(id); len(evs) != 1 {
		t.Fatalf("events after resolving: %+v", evs)
	}
}

// TestForkAcrossNumbers: a version 3 that follows version 1, like the held
// version 2 does, is a fork; received through PutOpened it names the peer
// that delivered it, and the event outlives a reopen.
func TestForkAcrossNumbers(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, testConfig())
	id := idAt(time.Unix(1_800_000_000, 0), 2)
	vs := chain(t, id, 2)
	mustPut(t, s, vs...)
	skip := sealRec(t, rec{id: id, kind: model.KindPriority, version: 3, prev: vs[0].Hash()})
	p, err := skip.Open()
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.PutOpened(Opened{Env: skip, Payload: p, From: "12D3KooWRogue", FromNetwork: "rogue"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stored) != 1 || len(res.Forks) != 1 || res.Forks[0].Event.Kind != EventFork || !slices.Equal(res.Forks[0].Event.Others, []string{vs[1].Hash()}) {
		t.Fatalf("version 3 after version 1: %+v", res)
	}
	_, ms := marksOf(t, s, id)
	if f := ms[skip.Hash()].Fork; f == nil || f.Prev != vs[0].Hash() || len(f.Versions) != 2 {
		t.Fatalf("version 3 is marked %+v", ms[skip.Hash()])
	}
	if !ms[skip.Hash()].BrokenChain {
		t.Fatal("version 3 follows none of the held versions 2 but is not marked a broken chain")
	}
	if ms[vs[1].Hash()].Fork == nil {
		t.Fatal("version 2 is not marked as part of the fork")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, testConfig())
	evs, err := s.Events(id)
	if err != nil || len(evs) != 1 || evs[0].Peer != "12D3KooWRogue" || evs[0].Network != "rogue" || evs[0].Version != 3 {
		t.Fatalf("events after reopening: %+v, %v", evs, err)
	}
}

// TestBrokenChain: a version naming a predecessor the store does not hold,
// while it holds the version before, is a broken chain (not a fork); a
// receiver that holds no version before it cannot tell, and marks nothing.
func TestBrokenChain(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	id := idAt(time.Unix(1_800_000_000, 0), 3)
	vs := chain(t, id, 1)
	mustPut(t, s, vs...)
	stray := sealRec(t, rec{id: id, kind: model.KindPriority, version: 2, prev: "9e0f" + vs[0].Hash()[4:]})
	res := mustPut(t, s, stray)
	if len(res.Forks) != 1 || res.Forks[0].Event.Kind != EventBrokenChain || !slices.Equal(res.Forks[0].Event.Others, []string{vs[0].Hash()}) {
		t.Fatalf("a version 2 after an unknown version 1: %+v", res.Forks)
	}
	_, ms := marksOf(t, s, id)
	if m := ms[stray.Hash()]; !m.BrokenChain || m.Fork != nil {
		t.Fatalf("the stray version is marked %+v; want a broken chain only", m)
	}

	// A version 2 that names no predecessor claims nothing: not checked.
	bare := idAt(time.Unix(1_800_000_000, 0), 8)
	mustPut(t, s, chain(t, bare, 1)...)
	if res := mustPut(t, s, sealRec(t, rec{id: bare, kind: model.KindPriority, version: 2})); len(res.Forks) != 0 {
		t.Fatalf("a version 2 naming no predecessor reported %+v", res.Forks)
	}
	if hs, ms := marksOf(t, s, bare); ms[hs[1].Hash].BrokenChain {
		t.Fatal("a version 2 naming no predecessor is marked a broken chain")
	}

	// A receiver holding only version 5 of another record: nothing to say.
	other := idAt(time.Unix(1_800_000_000, 0), 4)
	five := chain(t, other, 5)[4]
	if res := mustPut(t, s, five); len(res.Forks) != 0 {
		t.Fatalf("version 5 alone reported %+v", res.Forks)
	}
	if _, ms := marksOf(t, s, other); ms[five.Hash()].BrokenChain || ms[five.Hash()].Fork != nil {
		t.Fatalf("version 5 alone is marked %+v", ms[five.Hash()])
	}
	if evs, err := s.Events(other); err != nil || len(evs) != 0 {
		t.Fatalf("events of version 5 alone: %+v, %v", evs, err)
	}
}

// TestForkInOneCall: both versions 2 in one Put are a fork too.
func TestForkInOneCall(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	id := idAt(time.Unix(1_800_000_000, 0), 5)
	vs := chain(t, id, 2)
	twin := sealRec(t, rec{id: id, kind: model.KindPriority, version: 2, prev: vs[0].Hash(), note: "concurrent"})
	res := mustPut(t, s, vs[0], vs[1], twin)
	if len(res.Stored) != 3 || len(res.Forks) != 1 || res.Forks[0].Event.Hash != twin.Hash() {
		t.Fatalf("one call with both versions 2: %+v", res)
	}
}

// TestEventsBounded: a record keeps its last MaxEvents events, oldest
// first, and events of one record do not show on another.
func TestEventsBounded(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	id := idAt(time.Unix(1_800_000_000, 0), 6)
	other := idAt(time.Unix(1_800_000_000, 0), 7)
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for i := range MaxEvents + 5 {
		ev := Event{At: t0.Add(time.Duration(i) * time.Second), Kind: EventRolledBack, Peer: "12D3KooWRogue", Version: uint64(i + 1), Hash: "ab", Held: 100}
		if err := s.AddEvents([]string{id}, []Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.Events(id)
	if err != nil || len(evs) != MaxEvents {
		t.Fatalf("%d events kept (%v), want %d", len(evs), err, MaxEvents)
	}
	if evs[0].Version != 6 || evs[MaxEvents-1].Version != MaxEvents+5 || !evs[0].At.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("kept events %d..%d from %v; want the last %d, oldest first", evs[0].Version, evs[len(evs)-1].Version, evs[0].At, MaxEvents)
	}
	if evs, _ := s.Events(other); len(evs) != 0 {
		t.Fatalf("another record shows %d events", len(evs))
	}
	if err := s.AddEvents([]string{id, other}, []Event{{}}); err == nil {
		t.Fatal("AddEvents took two ids for one event")
	}
}

// TestForkEventsPerPutBounded: a Put of many forks reports and marks them
// all, and notes at most maxEventsPerPut events.
func TestForkEventsPerPutBounded(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	const n = maxEventsPerPut + 8
	var ids []string
	var firsts, twins []model.Envelope
	for i := range n {
		id := idAt(time.Unix(1_800_000_000, 0), uint64(100+i))
		ids = append(ids, id)
		v1 := unsignedRec(t, rec{id: id, kind: model.KindPriority})
		firsts = append(firsts, v1)
		twins = append(twins, unsignedRec(t, rec{id: id, kind: model.KindPriority, note: "twin"}))
	}
	mustPut(t, s, firsts...)
	res := mustPut(t, s, twins...)
	if len(res.Stored) != n || len(res.Forks) != n {
		t.Fatalf("stored %d, forks %d; want %d of each", len(res.Stored), len(res.Forks), n)
	}
	noted := 0
	for _, id := range ids {
		evs, err := s.Events(id)
		if err != nil {
			t.Fatal(err)
		}
		noted += len(evs)
		_, ms := marksOf(t, s, id)
		for h, m := range ms {
			if m.Fork == nil || len(m.Fork.Versions) != 2 {
				t.Fatalf("record %s version %s is not marked a fork of its two versions 1: %+v", id, h[:8], m)
			}
		}
	}
	if noted != maxEventsPerPut {
		t.Fatalf("%d events noted, want %d", noted, maxEventsPerPut)
	}
}
