package store

import (
	"errors"
	"maps"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger"

	"github.com/inpud/cairn/model"
)

// gcConfig has 1 MiB value-log files, so a few thousand records fill many
// of them and GC has files to rewrite.
func gcConfig() Config {
	c := DefaultConfig()
	c.ValueLogFileSize = 1 << 20
	c.GCInterval = 0
	c.GCDiscardRatio = 0.01
	return c
}

// snapshot is what a user checks before and after GC: every record's
// current version and history, the feed, the counts.
type snapshot struct {
	current map[string]string   // id → hash
	history map[string][]string // id → hashes, oldest first
	feed    []string            // hashes in seq order
	counts  map[model.Kind]int
	head    uint64
	maxHLC  model.HLC
}

func takeSnapshot(t *testing.T, s *Store, idList []string) snapshot {
	t.Helper()
	sn := snapshot{current: map[string]string{}, history: map[string][]string{}, head: s.Head(), maxHLC: s.MaxHLC(), counts: must(s.Counts())}
	for _, id := range idList {
		// Every read checks the envelope against its hash, so equal
		// hashes mean equal bytes.
		st, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		sn.current[id] = st.Hash
		h, err := s.History(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range h {
			sn.history[id] = append(sn.history[id], v.Hash)
		}
	}
	after := uint64(0)
	for {
		e, last, err := s.Feed(after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(e) == 0 {
			break
		}
		for _, st := range e {
			sn.feed = append(sn.feed, st.Hash)
		}
		after = last
	}
	return sn
}

func (a snapshot) equal(b snapshot) bool {
	if len(a.history) != len(b.history) {
		return false
	}
	for id, h := range a.history {
		if len(h) != len(b.history[id]) {
			return false
		}
		for i := range h {
			if h[i] != b.history[id][i] {
				return false
			}
		}
	}
	if len(a.feed) != len(b.feed) {
		return false
	}
	for i := range a.feed {
		if a.feed[i] != b.feed[i] {
			return false
		}
	}
	return maps.Equal(a.current, b.current) && maps.Equal(a.counts, b.counts) && a.head == b.head && a.maxHLC == b.maxHLC
}

// writeWithGarbage writes n records, then new versions of most of them
// (some tombstones), so the value log holds replaced summaries and index
// entries that GC can drop.
func writeWithGarbage(t *testing.T, s *Store, gen *idGen, n int) []string {
	t.Helper()
	var idList []string
	var envs []model.Envelope
	for i := range n {
		id := gen.next()
		idList = append(idList, id)
		envs = append(envs, unsignedRec(t, rec{id: id, kind: model.Kinds[i%3]}))
		if len(envs) == 100 {
			mustPut(t, s, envs...)
			envs = envs[:0]
		}
	}
	mustPut(t, s, envs...)
	for v := uint64(2); v <= 3; v++ {
		envs = envs[:0]
		for i, id := range idList {
			if i%4 == 0 {
				continue
			}
			envs = append(envs, unsignedRec(t, rec{id: id, kind: model.Kinds[i%3], version: v, deleted: v == 3 && i%5 == 0, origin: []string{"inpud", "ehrn"}[v%2], size: 400}))
			if len(envs) == 100 {
				mustPut(t, s, envs...)
				envs = envs[:0]
			}
		}
		mustPut(t, s, envs...)
	}
	return idList
}

// TestGCKeepsRecords runs value-log GC on 1 MiB files until it finds
// nothing to rewrite, and checks that nothing a user can see changed, also
// after a reopen.
func TestGCKeepsRecords(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, gcConfig())
	if err != nil {
		t.Fatal(err)
	}
	idList := writeWithGarbage(t, s, newIDGen(t0), 1200)
	before := takeSnapshot(t, s, idList)
	// GC considers only value-log files before the head of the last
	// flushed memtable; Close flushes it, so every file but the
	// last is a candidate after a reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, gcConfig()); err != nil {
		t.Fatal(err)
	}

	// Round 1 runs GC over what round 0 left and rewrote, after a reopen.
	for round := range 2 {
		n := runGCUntilDone(t, s)
		t.Logf("round %d: GC rewrote %d value-log files", round, n)
		if round == 0 && n == 0 {
			t.Fatal("GC rewrote nothing; the test needs garbage in the value log")
		}
		if after := takeSnapshot(t, s, idList); !before.equal(after) {
			t.Fatal("records changed after value-log GC")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = Open(dir, gcConfig())
		if err != nil {
			t.Fatal(err)
		}
		if after := takeSnapshot(t, s, idList); !before.equal(after) {
			t.Fatal("records changed after value-log GC and a reopen")
		}
	}
	defer s.Close()
	// The store goes on working after GC.
	mustPut(t, s, sealRec(t, rec{id: newIDGen(t0.Add(time.Hour)).next()}))
}

// runGCUntilDone runs value-log GC until it declines 10 times in a row.
// Badger picks a file and a sample window at random, so one decline does
// not mean there is nothing left to rewrite.
func runGCUntilDone(t *testing.T, s *Store) int {
	t.Helper()
	n, declined := 0, 0
	for range 500 {
		err := s.db.RunValueLogGC(0.01)
		switch {
		case errors.Is(err, badger.ErrNoRewrite):
			if declined++; declined == 10 {
				return n
			}
		case err != nil:
			t.Fatal(err)
		default:
			n++
			declined = 0
		}
	}
	return n
}

// TestGCLoop checks the store's GC goroutine: it runs when the store is
// idle, not while Puts keep coming, and it loses nothing.
func TestGCLoop(t *testing.T) {
	cfg := gcConfig()
	cfg.GCInterval = 100 * time.Millisecond
	dir := t.TempDir()
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	gen := newIDGen(t0)
	idList := writeWithGarbage(t, s, gen, 700)
	// Flush the memtable (Close does) so GC has candidate files.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, cfg); err != nil {
		t.Fatal(err)
	}

	// Busy: a Put every 20 ms for 400 ms. No GC runs.
	busyFrom := s.gcRewrites.Load()
	for range 20 {
		id := gen.next()
		idList = append(idList, id)
		mustPut(t, s, unsignedRec(t, rec{id: id}))
		time.Sleep(20 * time.Millisecond)
	}
	if n := s.gcRewrites.Load(); n != busyFrom {
		t.Fatalf("GC rewrote %d files while Puts were coming every 20 ms", n-busyFrom)
	}
	before := takeSnapshot(t, s, idList)

	// Idle: GC runs within a few intervals.
	deadline := time.Now().Add(10 * time.Second)
	for s.gcRewrites.Load() == busyFrom {
		if time.Now().After(deadline) {
			t.Fatal("GC did not run within 10 s of idle")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if after := takeSnapshot(t, s, idList); !before.equal(after) {
		t.Fatal("records changed after the GC loop ran")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, gcConfig())
	if after := takeSnapshot(t, s, idList); !before.equal(after) {
		t.Fatal("records changed after GC and a reopen")
	}
}
