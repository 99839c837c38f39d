package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

func custodyBlob(g *idGen, n int) CustodyBlob {
	return CustodyBlob{ID: g.next(), Version: 1, Tag: fmt.Sprintf("%032x", n), Data: fmt.Appendf(nil, "sealed-%d", n)}
}

// TestKeepCustodyIsIdempotentAndSurvivesReopen: a push is kept once, a
// repeat (also within one push) is counted as a duplicate, positions count
// up with no gaps, each node's position is its own, and it all survives a
// reopen; fetching pages through the blobs in order, by count and bytes.
func TestKeepCustodyIsIdempotentAndSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, testConfig())
	g := newIDGen(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	var first []CustodyBlob
	for i := range 5 {
		first = append(first, custodyBlob(g, i))
	}
	k, err := s.KeepCustody("tanpud", "12D3KooWNodeA", 7, append(first, first[0]))
	if err != nil {
		t.Fatal(err)
	}
	if k != (CustodyKept{Stored: 5, Duplicates: 1, Held: 5, Through: 7}) {
		t.Fatalf("first push: %+v", k)
	}
	// The same version with another tag (a concurrent write) is another blob.
	other := first[2]
	other.Tag = fmt.Sprintf("%032x", 99)
	other.Data = []byte("sealed-concurrent")
	k, err = s.KeepCustody("tanpud", "12D3KooWNodeB", 3, append(first[:3:3], other))
	if err != nil {
		t.Fatal(err)
	}
	if k != (CustodyKept{Stored: 1, Duplicates: 3, Held: 6, Through: 3}) {
		t.Fatalf("second push: %+v", k)
	}
	if _, err := s.KeepCustody("vnpud", "12D3KooWNodeV", 1, first[:1]); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openStore(t, dir, testConfig())
	defer s.Close()
	for _, c := range []struct {
		origin, node  string
		held, through uint64
	}{{"tanpud", "12D3KooWNodeA", 6, 7}, {"tanpud", "12D3KooWNodeB", 6, 3}, {"tanpud", "12D3KooWNodeC", 6, 0}, {"vnpud", "12D3KooWNodeV", 1, 1}, {"nobody", "x", 0, 0}} {
		held, through, err := s.CustodyHolding(c.origin, c.node)
		if err != nil || held != c.held || through != c.through {
			t.Errorf("holding of %s for %s: %d, %d, %v; want %d, %d", c.origin, c.node, held, through, err, c.held, c.through)
		}
	}
	want := [][]byte{first[0].Data, first[1].Data, first[2].Data, first[3].Data, first[4].Data, other.Data}
	var got [][]byte
	after := uint64(0)
	for range 10 {
		bs, last, more, err := s.CustodyBlobs("tanpud", after, 4, 18) // two blobs of 8-9 bytes fill 18
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) > 2 || (len(bs) == 0 && more) {
			t.Fatalf("page after %d: %d blobs, more %v", after, len(bs), more)
		}
		got = append(got, bs...)
		after = last
		if !more {
			break
		}
	}
	if len(got) != len(want) || after != 6 {
		t.Fatalf("fetched %d blobs up to %d, want %d up to 6", len(got), after, len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("blob %d: %q, want %q", i, got[i], want[i])
		}
	}
	if bs, last, more, err := s.CustodyBlobs("tanpud", 6, 10, 1<<20); err != nil || len(bs) != 0 || last != 6 || more {
		t.Errorf("after the end: %d blobs, %d, %v, %v", len(bs), last, more, err)
	}
	if bs, _, _, _ := s.CustodyBlobs("vnpud", 0, 10, 1<<20); len(bs) != 1 {
		t.Errorf("vnpud's blobs: %d, want 1 (origins kept apart)", len(bs))
	}
}

// TestKeepCustodyRefusesMalformedAndKeepsNothing: one bad blob and the
// whole push is refused.
func TestKeepCustodyRefusesMalformedAndKeepsNothing(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	defer s.Close()
	g := newIDGen(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	good := custodyBlob(g, 1)
	for name, bad := range map[string]CustodyBlob{
		"bad id":      {ID: "nope", Version: 1, Tag: good.Tag, Data: []byte("x")},
		"version 0":   {ID: good.ID, Version: 0, Tag: good.Tag, Data: []byte("x")},
		"short tag":   {ID: good.ID, Version: 1, Tag: "abc", Data: []byte("x")},
		"upper tag":   {ID: good.ID, Version: 1, Tag: "ABCDEF0123456789ABCDEF0123456789", Data: []byte("x")},
		"empty blob":  {ID: good.ID, Version: 1, Tag: good.Tag},
		"another tag": {ID: good.ID, Version: 1, Tag: "zz" + good.Tag[2:], Data: []byte("x")},
	} {
		if _, err := s.KeepCustody("tanpud", "n", 1, []CustodyBlob{good, bad}); err == nil {
			t.Errorf("%s: kept", name)
		}
	}
	if _, err := s.KeepCustody("Not A Slug", "n", 1, []CustodyBlob{good}); err == nil {
		t.Error("a bad origin slug was accepted")
	}
	if _, err := s.KeepCustody("tanpud", "n", 1, make([]CustodyBlob, MaxCustodyPush+1)); !errors.Is(err, ErrBatchTooLarge) {
		t.Errorf("an oversized push: %v", err)
	}
	if held, _, err := s.CustodyHolding("tanpud", "n"); err != nil || held != 0 {
		t.Fatalf("held %d after refused pushes (%v), want 0", held, err)
	}
}
