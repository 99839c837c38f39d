package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger"

	"github.com/inpud/cairn/model"
)

var t0 = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

func TestPutGetHistory(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	id := model.NewID(t0, nil)
	v1 := sealRec(t, rec{id: id, note: "first"})
	if n := len(v1.Payload); n < 1300 || n > 1700 {
		t.Fatalf("test envelope payload is %d bytes, want about 1.5 KB", n)
	}
	res := mustPut(t, s, v1)
	if len(res.Stored) != 1 || res.Stored[0].Seq != 1 || res.Duplicates != 0 || len(res.Conflicts) != 0 {
		t.Fatalf("first put: %+v", res)
	}

	got, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Envelope.Payload, v1.Payload) || !bytes.Equal(got.Envelope.Sig, v1.Sig) {
		t.Fatal("Get returned different bytes from those put")
	}
	if err := checkStored(got); err != nil {
		t.Fatal(err)
	}
	if got.Seq != 1 || got.Hash != v1.Hash() || got.Payload.TemplateRef() != "iduit-bg/3.2@2017" {
		t.Fatalf("Get: seq %d hash %s template %q", got.Seq, got.Hash, got.Payload.TemplateRef())
	}

	v2 := sealRec(t, rec{id: id, version: 2, note: "second"})
	res = mustPut(t, s, v2)
	if len(res.Stored) != 1 || res.Stored[0].Seq != 2 {
		t.Fatalf("second put: %+v", res)
	}
	got, err = s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Payload.Version != 2 || got.Hash != v2.Hash() {
		t.Fatalf("Get after v2 returned version %d", got.Payload.Version)
	}

	// An older version arriving late is kept in history but does not win.
	other := model.NewID(t0.Add(time.Second), nil)
	o2 := sealRec(t, rec{id: other, version: 2})
	o1 := sealRec(t, rec{id: other, version: 1})
	mustPut(t, s, o2)
	mustPut(t, s, o1)
	if got, _ := s.Get(other); got.Payload.Version != 2 {
		t.Fatalf("late version 1 replaced version 2")
	}

	h, err := s.History(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Hash != v1.Hash() || h[1].Hash != v2.Hash() || h[0].Seq != 1 || h[1].Seq != 2 {
		t.Fatalf("history: %v", h)
	}
	if h, _ := s.History(other); len(h) != 2 || h[0].Payload.Version != 1 || h[1].Payload.Version != 2 {
		t.Fatalf("history of late arrival: %v", h)
	}

	if _, err := s.Get(model.NewID(t0, nil)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an unknown id: %v, want ErrNotFound", err)
	}
	if _, err := s.History(model.NewID(t0, nil)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("History of an unknown id: %v, want ErrNotFound", err)
	}
	if _, err := s.Get("not/an-id"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a malformed id: %v, want ErrNotFound", err)
	}
	counts, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if counts[model.KindAudit] != 2 || counts[model.KindPriority] != 0 || counts[model.KindReport] != 0 {
		t.Fatalf("counts: %v", counts)
	}
	if s.Head() != 4 {
		t.Fatalf("head %d, want 4", s.Head())
	}
}

func TestPutIdempotent(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	a := sealRec(t, rec{id: model.NewID(t0, nil)})
	b := sealRec(t, rec{id: model.NewID(t0, nil), kind: model.KindPriority})

	res := mustPut(t, s, a, a, b) // a twice in one call
	if len(res.Stored) != 2 || res.Duplicates != 1 {
		t.Fatalf("first put: stored %d duplicates %d", len(res.Stored), res.Duplicates)
	}
	res = mustPut(t, s, b, a)
	if len(res.Stored) != 0 || res.Duplicates != 2 {
		t.Fatalf("repeat put: stored %d duplicates %d", len(res.Stored), res.Duplicates)
	}
	if s.Head() != 2 {
		t.Fatalf("head %d after duplicates, want 2", s.Head())
	}
	feed, last, err := s.Feed(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(feed) != 2 || last != 2 {
		t.Fatalf("feed has %d entries up to %d, want 2", len(feed), last)
	}
	c, _ := s.Counts()
	if c[model.KindAudit] != 1 || c[model.KindPriority] != 1 {
		t.Fatalf("counts after duplicates: %v", c)
	}
}

func TestConflict(t *testing.T) {
	id := model.NewID(t0, nil)
	v1 := sealRec(t, rec{id: id, author: "a"})
	// Two nodes of one network both write version 2.
	x := sealRec(t, rec{id: id, version: 2, author: "a", hlc: model.MakeHLC(1_800_000_005_000, 0), note: "x"})
	y := sealRec(t, rec{id: id, version: 2, author: "b", hlc: model.MakeHLC(1_800_000_005_000, 3), note: "y"})
	px, _ := x.Open()
	py, _ := y.Open()
	winner, loser := y, x
	if model.Wins(px, py, x.Hash(), y.Hash()) {
		winner, loser = x, y
	}

	// Every arrival order gives the same current version and history.
	for _, order := range [][]model.Envelope{{v1, x, y}, {v1, y, x}, {y, v1, x}} {
		t.Run("", func(t *testing.T) {
			s := openStore(t, t.TempDir(), testConfig())
			var conflicts []string
			for _, env := range order {
				conflicts = append(conflicts, mustPut(t, s, env).Conflicts...)
			}
			if !slices.Equal(conflicts, []string{id}) {
				t.Fatalf("conflicts %v, want [%s] once", conflicts, id)
			}
			got, err := s.Get(id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Hash != winner.Hash() {
				t.Fatalf("current is %s, want the winner %s", got.Payload.Author, testAuthor("b"))
			}
			h, err := s.History(id)
			if err != nil {
				t.Fatal(err)
			}
			if len(h) != 3 || h[0].Hash != v1.Hash() || h[1].Hash != loser.Hash() || h[2].Hash != winner.Hash() {
				t.Fatalf("history order: %v", h)
			}
			if c, _ := s.Counts(); c[model.KindAudit] != 1 {
				t.Fatalf("counts %v", c)
			}
		})
	}

	// A conflicting old version arriving after a newer one is still found.
	s := openStore(t, t.TempDir(), testConfig())
	v1b := sealRec(t, rec{id: id, author: "b", note: "other v1"})
	mustPut(t, s, v1, x)
	if res := mustPut(t, s, v1b); !slices.Equal(res.Conflicts, []string{id}) || len(res.Stored) != 1 {
		t.Fatalf("late conflicting version 1: %+v", res)
	}
	if got, _ := s.Get(id); got.Hash != x.Hash() {
		t.Fatal("late conflicting version 1 became current")
	}
	// Both in one call: reported once.
	s2 := openStore(t, t.TempDir(), testConfig())
	if res := mustPut(t, s2, v1, x, y); !slices.Equal(res.Conflicts, []string{id}) {
		t.Fatalf("conflict within one call: %v", res.Conflicts)
	}
}

func TestTombstone(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	id := model.NewID(t0, nil)
	keep := model.NewID(t0.Add(time.Second), nil)
	mustPut(t, s, sealRec(t, rec{id: id}), sealRec(t, rec{id: keep}))
	tomb := sealRec(t, rec{id: id, version: 2, deleted: true})
	mustPut(t, s, tomb)

	got, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Payload.Deleted || got.Hash != tomb.Hash() {
		t.Fatal("Get does not return the tombstone")
	}
	if c, _ := s.Counts(); c[model.KindAudit] != 1 {
		t.Fatalf("counts after delete: %v", c)
	}
	for _, q := range []Query{{}, {Kind: model.KindAudit}, {Origin: "inpud"}, {Template: "iduit-bg/3.2"}, {Template: "iduit-bg/3.2@2017"}} {
		l, err := s.List(q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(l), []string{keep}) {
			t.Fatalf("List(%+v) = %v, want only the record not deleted", q, ids(l))
		}
		q.IncludeDeleted = true
		l, err = s.List(q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(l), []string{keep, id}) || !l[1].Payload.Deleted {
			t.Fatalf("List(%+v) = %v, want both, tombstone included", q, ids(l))
		}
	}
	// A new version after the tombstone brings the record back.
	mustPut(t, s, sealRec(t, rec{id: id, version: 3}))
	if c, _ := s.Counts(); c[model.KindAudit] != 2 {
		t.Fatalf("counts after restore: %v", c)
	}
	if h, _ := s.History(id); len(h) != 3 || !h[1].Payload.Deleted {
		t.Fatal("history lost the tombstone")
	}
}

func TestListFilters(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	gen := newIDGen(t0)
	type want struct {
		id               string
		kind             model.Kind
		origin, template string
	}
	var all []want
	var envs []model.Envelope
	origins := []string{"inpud", "ehrn", "vnpud"}
	templates := []string{"iduit-bg/3.2@2017", "iduit-bg/3.2@2024", "iduit-bg/3@2017", "iduit-bg/3.20@2017"}
	for i := range 60 {
		w := want{id: gen.next(), kind: model.Kinds[i%3], origin: origins[(i/3)%3]}
		if w.kind == model.KindAudit {
			w.template = templates[(i/9)%4]
		}
		all = append(all, w)
		envs = append(envs, sealRec(t, rec{id: w.id, kind: w.kind, origin: w.origin, template: w.template}))
	}
	mustPut(t, s, envs...)

	expect := func(f func(w want) bool) []string {
		var out []string
		for i := len(all) - 1; i >= 0; i-- {
			if f(all[i]) {
				out = append(out, all[i].id)
			}
		}
		return out
	}
	cases := []struct {
		name string
		q    Query
		f    func(w want) bool
	}{
		{"all", Query{}, func(w want) bool { return true }},
		{"kind", Query{Kind: model.KindPriority}, func(w want) bool { return w.kind == model.KindPriority }},
		{"origin", Query{Origin: "ehrn"}, func(w want) bool { return w.origin == "ehrn" }},
		{"kind+origin", Query{Kind: model.KindReport, Origin: "vnpud"}, func(w want) bool { return w.kind == model.KindReport && w.origin == "vnpud" }},
		{"template exact", Query{Template: "iduit-bg/3.2@2024"}, func(w want) bool { return w.template == "iduit-bg/3.2@2024" }},
		{"template any version", Query{Template: "iduit-bg/3.2"}, func(w want) bool { return strings.HasPrefix(w.template, "iduit-bg/3.2@") }},
		{"template id is not a prefix of another id", Query{Template: "iduit-bg/3"}, func(w want) bool { return w.template == "iduit-bg/3@2017" }},
		{"template+origin", Query{Template: "iduit-bg/3.2", Origin: "inpud"}, func(w want) bool {
			return strings.HasPrefix(w.template, "iduit-bg/3.2@") && w.origin == "inpud"
		}},
		{"unknown template", Query{Template: "iduit-bg/9.9"}, func(w want) bool { return false }},
		{"unknown origin", Query{Origin: "nobody"}, func(w want) bool { return false }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.List(c.q)
			if err != nil {
				t.Fatal(err)
			}
			if w := expect(c.f); !slices.Equal(ids(got), w) {
				t.Fatalf("got %d ids %v\nwant %d ids %v", len(got), ids(got), len(w), w)
			}
			for _, st := range got {
				if err := checkStored(st); err != nil {
					t.Fatal(err)
				}
			}
			c.q.Limit = 3
			got, err = s.List(c.q)
			if err != nil {
				t.Fatal(err)
			}
			w := expect(c.f)
			if len(w) > 3 {
				w = w[:3]
			}
			if !slices.Equal(ids(got), w) {
				t.Fatalf("with limit 3: got %v want %v", ids(got), w)
			}
		})
	}

	// A new version moving to another template leaves the old index.
	moved := all[0] // an audit
	mustPut(t, s, sealRec(t, rec{id: moved.id, version: 2, origin: moved.origin, template: "iduit-bg/3.2@2024"}))
	if l, _ := s.List(Query{Template: moved.template}); slices.Contains(ids(l), moved.id) {
		t.Fatal("record still listed under its old template")
	}
	if l, _ := s.List(Query{Template: "iduit-bg/3.2@2024"}); !slices.Contains(ids(l), moved.id) {
		t.Fatal("record not listed under its new template")
	}

	for _, q := range []Query{{Kind: "audits"}, {Origin: "Not A Slug"}, {Template: "a@b@c"}} {
		if _, err := s.List(q); err == nil {
			t.Fatalf("List(%+v) accepted a bad query", q)
		}
	}
}

func TestFeedPagination(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	gen := newIDGen(t0)
	var want []string // hashes in put order
	put := func(n int) {
		var envs []model.Envelope
		for range n {
			env := sealRec(t, rec{id: gen.next(), size: 600})
			envs = append(envs, env)
			want = append(want, env.Hash())
		}
		res := mustPut(t, s, envs...)
		for i, st := range res.Stored {
			if st.Seq != uint64(len(want)-n+i+1) {
				t.Fatalf("stored seq %d at position %d", st.Seq, len(want)-n+i+1)
			}
		}
	}
	put(1)
	put(12)
	put(1)
	put(11) // 25 in all

	var got []string
	after := uint64(0)
	for page := 0; page < 10; page++ {
		entries, last, err := s.Feed(after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			if last != after {
				t.Fatalf("empty page moved last from %d to %d", after, last)
			}
			break
		}
		for i, e := range entries {
			if e.Seq != after+uint64(i)+1 {
				t.Fatalf("page after %d: entry %d has seq %d", after, i, e.Seq)
			}
			got = append(got, e.Hash)
		}
		if last != entries[len(entries)-1].Seq {
			t.Fatalf("last %d, but the page ends at %d", last, entries[len(entries)-1].Seq)
		}
		after = last
	}
	if !slices.Equal(got, want) {
		t.Fatalf("feed returned %d entries, want %d in put order", len(got), len(want))
	}
	if e, last, _ := s.Feed(20, 0); len(e) != 5 || last != 25 {
		t.Fatalf("Feed(20, 0): %d entries, last %d", len(e), last)
	}
	if e, last, _ := s.Feed(1000, 10); len(e) != 0 || last != 1000 {
		t.Fatalf("Feed past the head: %d entries, last %d", len(e), last)
	}
	// A new version of an old record goes to the end of the feed.
	e, _, _ := s.Feed(0, 1)
	upd := sealRec(t, rec{id: e[0].Payload.ID, version: 2, size: 600})
	mustPut(t, s, upd)
	if e, last, _ := s.Feed(25, 10); len(e) != 1 || last != 26 || e[0].Hash != upd.Hash() {
		t.Fatalf("feed after an update: %d entries, last %d", len(e), last)
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	gen := newIDGen(t0)
	var envs []model.Envelope
	var maxHLC model.HLC
	for i := range 30 {
		hlc := model.MakeHLC(1_800_000_000_000+int64(i*7919%1000), uint16(i))
		maxHLC = max(maxHLC, hlc)
		envs = append(envs, sealRec(t, rec{id: gen.next(), kind: model.Kinds[i%3], hlc: hlc, size: 500}))
	}
	mustPut(t, s, envs...)
	p0, _ := envs[0].Open()
	tomb := sealRec(t, rec{id: p0.ID, version: 2, deleted: true})
	mustPut(t, s, tomb)
	maxHLC = max(maxHLC, must(tomb.Open()).HLC)
	if err := s.SetCheckpoint("peer-1", 17); err != nil {
		t.Fatal(err)
	}
	head, counts, hlc := s.Head(), must(s.Counts()), s.MaxHLC()
	if hlc != maxHLC {
		t.Fatalf("MaxHLC %d, want %d", hlc, maxHLC)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir, testConfig())
	if s.Head() != head || s.MaxHLC() != hlc {
		t.Fatalf("after reopen head %d maxHLC %d, want %d and %d", s.Head(), s.MaxHLC(), head, hlc)
	}
	if c := must(s.Counts()); fmt.Sprint(c) != fmt.Sprint(counts) {
		t.Fatalf("after reopen counts %v, want %v", c, counts)
	}
	if counts[model.KindAudit] != 9 || counts[model.KindPriority] != 10 || counts[model.KindReport] != 10 {
		t.Fatalf("counts %v", counts)
	}
	if cp, err := s.Checkpoint("peer-1"); err != nil || cp != 17 {
		t.Fatalf("checkpoint after reopen: %d, %v", cp, err)
	}
	res := mustPut(t, s, sealRec(t, rec{id: gen.next()}))
	if res.Stored[0].Seq != head+1 {
		t.Fatalf("first seq after reopen %d, want %d", res.Stored[0].Seq, head+1)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestCheckpoint(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	if cp, err := s.Checkpoint("12D3KooWpeer"); err != nil || cp != 0 {
		t.Fatalf("unknown peer: %d, %v", cp, err)
	}
	for _, seq := range []uint64{5, 900, 3} {
		if err := s.SetCheckpoint("12D3KooWpeer", seq); err != nil {
			t.Fatal(err)
		}
		if cp, _ := s.Checkpoint("12D3KooWpeer"); cp != seq {
			t.Fatalf("checkpoint %d, want %d", cp, seq)
		}
	}
	if err := s.SetCheckpoint("", 1); err == nil {
		t.Fatal("empty peer accepted")
	}
}

func TestOpenLocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := openStore(t, dir, testConfig())
	_, err := Open(dir, testConfig())
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Fatalf("error does not name the directory: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, testConfig())
	if err != nil {
		t.Fatalf("Open after the first Close: %v", err)
	}
	s2.Close()
}

func TestOpenUnknownFormat(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, testConfig())
	mustPut(t, s, sealRec(t, rec{id: model.NewID(t0, nil)}))
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyFormat), []byte("2")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(dir, testConfig())
	if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), `"2"`) {
		t.Fatalf("Open of a format-2 store: %v, want ErrUnknownFormat naming the format", err)
	}

	// A badger database that is not a cairn store.
	dir = t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("/blocks/x"), []byte("y")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(dir, testConfig()); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("Open of a foreign badger database: %v, want ErrUnknownFormat", err)
	}
}

func TestOpenBadConfig(t *testing.T) {
	c := testConfig()
	c.ValueLogFileSize = 1000
	c.GCInterval = time.Second
	c.GCDiscardRatio = 1
	_, err := Open(t.TempDir(), c)
	if err == nil || !strings.Contains(err.Error(), "ValueLogFileSize") || !strings.Contains(err.Error(), "GCDiscardRatio") {
		t.Fatalf("bad settings: %v", err)
	}
	if _, err := Open("", DefaultConfig()); err == nil {
		t.Fatal("empty directory accepted")
	}
}

func TestClose(t *testing.T) {
	c := testConfig()
	c.GCInterval = 10 * time.Millisecond
	s, err := Open(t.TempDir(), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Put(sealRec(t, rec{id: model.NewID(t0, nil)})); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, err := s.Get(model.NewID(t0, nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, _, err := s.Feed(0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Feed after Close: %v", err)
	}
}

func TestPutRefusesMalformed(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	good := sealRec(t, rec{id: model.NewID(t0, nil)})
	bad := []model.Envelope{
		{Payload: []byte(`{"id":"x"}`), Sig: good.Sig},
		{Payload: good.Payload, Sig: good.Sig[:10]},
		sealRec(t, rec{id: model.NewID(t0, nil), origin: "Not/A/Slug"}),
	}
	for i, b := range bad {
		_, err := s.Put(good, b)
		if err == nil {
			t.Fatalf("bad envelope %d accepted", i)
		}
		if !errors.Is(err, model.ErrMalformed) {
			t.Fatalf("bad envelope %d: %v, want model.ErrMalformed", i, err)
		}
	}
	if s.Head() != 0 {
		t.Fatalf("a refused group stored something: head %d", s.Head())
	}
	if _, err := s.Get(must(good.Open()).ID); !errors.Is(err, ErrNotFound) {
		t.Fatal("the good envelope of a refused group was stored")
	}
}

// TestMaxBatch measures how many envelopes fit in one Put with
// DefaultConfig, checks that MaxBatch fits in the worst case real records
// reach, and that a group too large fails whole with ErrBatchTooLarge.
func TestMaxBatch(t *testing.T) {
	gen := newIDGen(t0)
	const poolSize = 3000
	pool := make([]model.Envelope, poolSize)
	moved := make([]model.Envelope, poolSize) // new versions moving origin and template
	for i := range pool {
		id := gen.next()
		pool[i] = unsignedRec(t, rec{id: id})
		moved[i] = unsignedRec(t, rec{id: id, version: 2, origin: "ehrn-longer-origin-slug", template: "iduit-bg/3.9@2024-revised"})
	}

	s := openStore(t, t.TempDir(), testConfig())
	newFit := largestFit(t, s, pool)
	t.Logf("measured: at most %d new ~1.5 KB audits fit in one Put (MaxBatch = %d)", newFit, MaxBatch)
	if newFit < MaxBatch || newFit == poolSize {
		t.Fatalf("%d new records fit in one Put; MaxBatch is %d", newFit, MaxBatch)
	}
	for i := 0; i < poolSize; i += MaxBatch {
		mustPut(t, s, pool[i:i+MaxBatch]...)
	}
	movedFit := largestFit(t, s, moved)
	t.Logf("measured: at most %d new versions that move their origin and template index fit in one Put", movedFit)
	if movedFit < MaxBatch {
		t.Fatalf("only %d replacements fit in one Put; MaxBatch is %d", movedFit, MaxBatch)
	}
	// For real: MaxBatch replacements in one Put.
	res, err := s.Put(moved[:MaxBatch]...)
	if err != nil || len(res.Stored) != MaxBatch {
		t.Fatalf("Put of MaxBatch replacements: %v", err)
	}

	s = openStore(t, t.TempDir(), testConfig())
	_, err = s.Put(pool...)
	if !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("Put of %d: %v, want ErrBatchTooLarge", len(pool), err)
	}
	if s.Head() != 0 {
		t.Fatal("a group too large stored part of itself")
	}
}

// largestFit finds by bisection the longest prefix of envs whose Put
// transaction (with its metadata) badger accepts, building each candidate
// transaction as Put does and discarding it.
func largestFit(t *testing.T, s *Store, envs []model.Envelope) int {
	t.Helper()
	recs, err := decodeAll(envs)
	if err != nil {
		t.Fatal(err)
	}
	fits := func(n int) bool {
		txn := s.db.NewTransaction(true)
		defer txn.Discard()
		w := putTxn{s: s, txn: txn, head: s.Head(), maxHLC: s.MaxHLC(), delta: map[model.Kind]int{}}
		for i := range recs[:n] {
			if _, _, _, err := w.put(&recs[i], nil); err != nil {
				if errors.Is(err, badger.ErrTxnTooBig) {
					return false
				}
				t.Fatal(err)
			}
		}
		if err := w.meta(s.countsAfter(w.delta)); err != nil {
			if errors.Is(err, badger.ErrTxnTooBig) {
				return false
			}
			t.Fatal(err)
		}
		return true
	}
	if fits(len(recs)) {
		return len(recs)
	}
	lo, hi := 0, len(recs)
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

func TestConcurrentPuts(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	gen := newIDGen(t0)
	const writers, each = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				n := 1 + (w+i)%3
				envs := make([]model.Envelope, n)
				for j := range envs {
					envs[j] = sealRec(t, rec{id: gen.next(), kind: model.Kinds[j%3], size: 400})
				}
				if _, err := s.Put(envs...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// Readers alongside.
	stop := make(chan struct{})
	var rg sync.WaitGroup
	rg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, _, err := s.Feed(s.Head()/2, 50); err != nil {
				errs <- err
				return
			}
			if _, err := s.List(Query{Kind: model.KindAudit, Limit: 10}); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for w := range writers {
		for i := range each {
			total += 1 + (w+i)%3
		}
	}
	checkFeed(t, s, uint64(total))
	c := must(s.Counts())
	if c[model.KindAudit]+c[model.KindPriority]+c[model.KindReport] != total {
		t.Fatalf("counts %v, want %d in all", c, total)
	}
}

// checkFeed checks the feed holds exactly seqs 1..head, each a valid
// version, and returns the number of entries.
func checkFeed(t *testing.T, s *Store, head uint64) {
	t.Helper()
	if s.Head() != head {
		t.Fatalf("head %d, want %d", s.Head(), head)
	}
	after := uint64(0)
	for {
		e, last, err := s.Feed(after, 500)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range e {
			if st.Seq != after+1 {
				t.Fatalf("feed gap: %d follows %d", st.Seq, after)
			}
			if err := checkStored(st); err != nil {
				t.Fatal(err)
			}
			after = st.Seq
		}
		if len(e) == 0 {
			if last != head {
				t.Fatalf("feed ends at %d, head is %d", last, head)
			}
			return
		}
	}
}

// TestDamagedRecordIsReported: bytes changed on disk are refused, not
// returned.
func TestDamagedRecordIsReported(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	env := sealRec(t, rec{id: model.NewID(t0, nil)})
	mustPut(t, s, env)
	p := must(env.Open())
	hk := historyKey(p.ID, 1, env.Hash())
	err := s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(hk)
		if err != nil {
			return err
		}
		v, _ := item.ValueCopy(nil)
		i := bytes.Index(v, []byte("City OAT clinic"))
		v[i] = 'X'
		return txn.Set(hk, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(p.ID); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Get of changed bytes: %v, want ErrDamaged", err)
	}
}
