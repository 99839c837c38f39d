package store

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReceipts: the origin keeps, per network, the highest version that
// network acknowledged, only for versions it holds of its own records,
// and keeps them across a restart.
func TestReceipts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := openStore(t, dir, testConfig())
	gen := newIDGen(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	own, other := gen.next(), gen.next()
	v1 := unsignedRec(t, rec{id: own, origin: "tanpud", version: 1})
	v2 := unsignedRec(t, rec{id: own, origin: "tanpud", version: 2, note: "second"})
	foreign := unsignedRec(t, rec{id: other, origin: "ehrn", version: 1})
	mustPut(t, s, v1, v2, foreign)

	t0 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	put := func(network string, at time.Time, rs ...Receipt) ReceiptResult {
		t.Helper()
		res, err := s.PutReceipts(network, "tanpud", at, rs)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	r1 := Receipt{ID: own, Version: 1, Hash: v1.Hash()}
	r2 := Receipt{ID: own, Version: 2, Hash: v2.Hash()}

	if res := put("ehrn", t0, r1); res != (ReceiptResult{Accepted: 1, Updated: 1}) {
		t.Fatalf("first receipt: %+v", res)
	}
	if res := put("ehrn", t0.Add(time.Minute), r2, r1); res != (ReceiptResult{Accepted: 2, Updated: 1}) {
		t.Fatalf("v2 then v1 again: %+v", res)
	}
	// Through a relay, an older version arrives later: ehrn still holds v2.
	if res := put("ehrn", t0.Add(2*time.Minute), r1); res != (ReceiptResult{Accepted: 1}) {
		t.Fatalf("older version later: %+v", res)
	}
	put("anpud", t0.Add(3*time.Minute), r1)

	ignored := []Receipt{
		{ID: own, Version: 2, Hash: v1.Hash()},                      // a hash this store holds, under another version
		{ID: own, Version: 3, Hash: strings.Repeat("ab", 32)},       // a version never written
		{ID: own, Version: 1, Hash: strings.Repeat("AB", 32)},       // not lower-case hex
		{ID: other, Version: 1, Hash: foreign.Hash()},               // another network's record
		{ID: gen.next(), Version: 1, Hash: strings.Repeat("0", 64)}, // a record this store does not hold
		{ID: "../../r/x", Version: 1, Hash: v1.Hash()},              // not an id
		{ID: own, Version: 0, Hash: v1.Hash()},
	}
	if res := put("vnpud", t0, ignored...); res != (ReceiptResult{Ignored: len(ignored)}) {
		t.Fatalf("receipts the store cannot vouch for: %+v", res)
	}
	if _, err := s.PutReceipts("../x", "tanpud", t0, []Receipt{r1}); err == nil {
		t.Fatal("a receipt under a network that is not a slug was kept")
	}

	check := func(s *Store) {
		t.Helper()
		hs, err := s.Holders(own)
		if err != nil {
			t.Fatal(err)
		}
		want := []Holder{
			{Network: "anpud", Version: 1, Hash: v1.Hash(), At: t0.Add(3 * time.Minute)},
			{Network: "ehrn", Version: 2, Hash: v2.Hash(), At: t0.Add(time.Minute)},
		}
		if len(hs) != len(want) {
			t.Fatalf("holders %+v, want %+v", hs, want)
		}
		for i := range want {
			if hs[i] != want[i] {
				t.Errorf("holder %d: %+v, want %+v", i, hs[i], want[i])
			}
		}
		if hs, err := s.Holders(other); err != nil || len(hs) != 0 {
			t.Fatalf("holders of another network's record: %+v, %v", hs, err)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(openStore(t, dir, testConfig()))
}
