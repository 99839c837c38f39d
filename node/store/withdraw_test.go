package store

import (
	"errors"
	"testing"

	"github.com/inpud/cairn/model"
)

// tanpud is the network of the store under test: it holds inpud's records.
var tanpud = model.Reader{Network: "tanpud", Member: true}

func takeBackStore(t *testing.T) *Store {
	t.Helper()
	s := openStore(t, t.TempDir(), testConfig())
	s.SetTakeBack(func(p model.Payload) bool { return p.TakesBackFrom(tanpud) })
	return s
}

// bodies reports, per version, whether the store still holds its body.
func bodies(t *testing.T, s *Store, id string) map[uint64]bool {
	t.Helper()
	hs, err := s.History(id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]bool{}
	for _, h := range hs {
		has := !h.TakenBack && len(h.Payload.Body) > 0
		if h.TakenBack && (len(h.Envelope.Payload) != 0 || len(h.Payload.Body) != 0 || h.TakenBackBy == "") {
			t.Fatalf("version %d is taken back but still has bytes or no reason: %+v", h.Payload.Version, h)
		}
		out[h.Payload.Version] = has
	}
	return out
}

// TestWithdrawalTakesBodiesBack: a withdrawal that leaves this network out
// turns the earlier versions into stubs in the same write; one that keeps
// it changes nothing; a stub is never offered on the feed as sendable
// bytes; an older version relayed late is kept without its body.
func TestWithdrawalTakesBodiesBack(t *testing.T) {
	s := takeBackStore(t)
	id := model.NewID(t0, nil)
	v1 := sealRec(t, rec{id: id, version: 1, note: "one"})
	v2 := sealRec(t, rec{id: id, version: 2, note: "two"})
	mustPut(t, s, v2) // v1 arrives later, after the withdrawal

	// A withdrawal that keeps tanpud: nothing is taken back.
	other := model.NewID(t0, nil)
	mustPut(t, s, sealRec(t, rec{id: other, version: 1}), sealRec(t, rec{id: other, version: 2, keep: model.Audience{"network:tanpud"}}), sealRec(t, rec{id: other, version: 3}))
	if b := bodies(t, s, other); !b[1] {
		t.Fatalf("a withdrawal keeping tanpud took its body: %v", b)
	}

	w := sealRec(t, rec{id: id, version: 3, keep: model.Audience{"network:vnpud"}})
	res := mustPut(t, s, w)
	if len(res.Stored) != 1 {
		t.Fatalf("the withdrawal was not stored: %+v", res)
	}
	if b := bodies(t, s, id); b[2] || b[3] {
		t.Fatalf("bodies after the withdrawal: %v, want none", b)
	}
	res = mustPut(t, s, v1) // relayed late
	if len(res.Stored) != 1 || !res.Stored[0].TakenBack {
		t.Fatalf("the late version 1 was stored with its body: %+v", res.Stored)
	}
	if b := bodies(t, s, id); b[1] {
		t.Fatalf("the late version 1 kept its body: %v", b)
	}
	// The record is gone from lists; its history stays, stubs and all.
	if got := must(s.List(Query{})); len(got) != 1 || got[0].Payload.ID != other {
		t.Fatalf("list holds %+v, want only the record still shared with tanpud", got)
	}
	// Stubs survive a reopen, and the feed still has every seq, stubs
	// without bytes.
	feed, last, err := s.Feed(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if last != s.Head() || len(feed) != int(s.Head()) {
		t.Fatalf("feed has %d entries to %d, head %d", len(feed), last, s.Head())
	}
	stubs := 0
	for _, e := range feed {
		if e.TakenBack {
			stubs++
			if e.Envelope.Payload != nil {
				t.Fatalf("stub %d in the feed has bytes", e.Seq)
			}
		}
	}
	if stubs != 2 {
		t.Fatalf("feed holds %d stubs, want 2 (versions 1 and 2)", stubs)
	}
	// A deletion takes back from everyone but the origin.
	gone := model.NewID(t0, nil)
	mustPut(t, s, sealRec(t, rec{id: gone, version: 1}))
	mustPut(t, s, sealRec(t, rec{id: gone, version: 2, deleted: true}))
	if b := bodies(t, s, gone); b[1] {
		t.Fatalf("a deletion left the body: %v", b)
	}
	// The origin itself keeps its history whole.
	own := openStore(t, t.TempDir(), testConfig())
	own.SetTakeBack(func(p model.Payload) bool { return p.TakesBackFrom(model.Reader{Network: "inpud", Member: true}) })
	mustPut(t, own, sealRec(t, rec{id: id, version: 2}), w)
	if b := bodies(t, own, id); !b[2] {
		t.Fatalf("the origin lost its own body: %v", b)
	}
}

func TestStubIsCheckedOnRead(t *testing.T) {
	s := takeBackStore(t)
	id := model.NewID(t0, nil)
	mustPut(t, s, sealRec(t, rec{id: id, version: 1}), sealRec(t, rec{id: id, version: 2, keep: model.Audience{"private"}}))
	hs := must(s.History(id))
	// Point the stub at another record: reads report damage, not garbage.
	val, err := stubValue(hs[0].Seq, model.Payload{ID: model.NewID(t0, nil), Version: 1}, hs[1].Hash)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeValue(historyKey(id, 1, hs[0].Hash), val); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a stub of another record read as %v, want ErrDamaged", err)
	}
}
