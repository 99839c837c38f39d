package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger"

	"github.com/inpud/cairn/model"
)

// feedRecords puts versions of several origins and audiences, through Put
// and PutOpened, and returns them in feed order.
func feedRecords(t *testing.T, s *Store) []model.Envelope {
	t.Helper()
	gen := newIDGen(t0)
	auds := []model.Audience{{"members"}, {"private"}, {"network:ehrn", "region:eeca"}, {"region:eeca"}}
	var envs []model.Envelope
	for i := range 12 {
		envs = append(envs, unsignedRec(t, rec{id: gen.next(), origin: []string{"inpud", "ehrn", "anpud"}[i%3], audience: auds[i%4], size: 600}))
	}
	mustPut(t, s, envs[:6]...)
	var ops []Opened
	for _, env := range envs[6:] {
		ops = append(ops, Opened{Env: env, Payload: must(env.Open())})
	}
	if res, err := s.PutOpened(ops...); err != nil || len(res.Stored) != 6 {
		t.Fatalf("PutOpened: %d stored, %v; want 6", len(res.Stored), err)
	}
	return envs
}

// checkFeedWhere reads the whole feed with FeedWhere, wanting the entries
// of origin "ehrn", and checks every entry against the envelope stored.
func checkFeedWhere(t *testing.T, s *Store, envs []model.Envelope) {
	t.Helper()
	want := func(origin string, _ model.Audience) bool { return origin == "ehrn" }
	var got []FeedEntry
	after := uint64(0)
	for range 20 {
		es, last, err := s.FeedWhere(after, 5, want)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		got = append(got, es...)
		after = last
	}
	if len(got) != len(envs) {
		t.Fatalf("FeedWhere returned %d entries, want %d", len(got), len(envs))
	}
	for i, e := range got {
		p := must(envs[i].Open())
		if e.Seq != uint64(i+1) || e.ID != p.ID || e.Version != p.Version || e.Hash != envs[i].Hash() ||
			e.Origin != p.Origin || !slices.Equal(e.Audience, p.Audience) {
			t.Fatalf("entry %d: %+v; want seq %d, record %s v%d, hash %s, origin %s, audience %v", i, e, i+1, p.ID, p.Version, envs[i].Hash(), p.Origin, p.Audience)
		}
		sent := e.Envelope.Payload != nil
		if sent != (p.Origin == "ehrn") {
			t.Fatalf("entry %d of %s: envelope read %v; want it read only for ehrn's", i, p.Origin, sent)
		}
		if sent && (string(e.Envelope.Payload) != string(envs[i].Payload) || string(e.Envelope.Sig) != string(envs[i].Sig)) {
			t.Fatalf("entry %d: the envelope read is not the one stored", i)
		}
	}
}

func TestFeedWhereMetadataMatchesEnvelopes(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	envs := feedRecords(t, s)
	checkFeedWhere(t, s, envs)
	// Feed, which decodes every version, agrees.
	sts, _, err := s.Feed(0, 100)
	if err != nil || len(sts) != len(envs) {
		t.Fatalf("Feed: %d entries, %v", len(sts), err)
	}
	for i, st := range sts {
		if st.Hash != envs[i].Hash() {
			t.Fatalf("Feed entry %d is %s, want %s", i, st.Hash, envs[i].Hash())
		}
	}
}

// The feed names versions out of their history keys' order once records
// get new versions (an older record's version 2 comes after a newer
// record's version 1), and some entries are not wanted; FeedWhere, which
// reads the wanted ones in key order with one iterator, stepping or
// seeking, still returns each envelope as stored, in feed order, page by
// page, and FeedHeld agrees.
func TestFeedWhereOutOfHistoryOrder(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	gen := newIDGen(t0)
	ids := make([]string, 40)
	var envs []model.Envelope
	for i := range ids {
		ids[i] = gen.next()
		envs = append(envs, unsignedRec(t, rec{id: ids[i], size: 400, origin: []string{"inpud", "ehrn"}[i%2]}))
	}
	// Stored in an order of their own, so the feed is not in id order.
	perm := []int{3, 0, 39, 17, 1, 2, 38, 20, 21, 22, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14, 16, 19, 18, 23, 25, 24, 27, 26, 29, 28, 31, 30, 33, 32, 35, 34, 37, 36}
	var order []model.Envelope
	for _, i := range perm {
		order = append(order, envs[i])
	}
	mustPut(t, s, order[:20]...)
	mustPut(t, s, order[20:]...)
	for _, c := range []struct {
		i       int
		version uint64
	}{{7, 2}, {2, 2}, {39, 2}, {0, 2}, {2, 3}, {25, 2}, {4, 2}} {
		env := unsignedRec(t, rec{id: ids[c.i], version: c.version, size: 400, note: "again", origin: []string{"inpud", "ehrn"}[c.i%2]})
		mustPut(t, s, env)
		order = append(order, env)
	}
	for _, w := range []struct {
		name string
		want func(string, model.Audience) bool
	}{
		{"all", func(string, model.Audience) bool { return true }},
		{"ehrn's", func(origin string, _ model.Audience) bool { return origin == "ehrn" }},
	} {
		var got []FeedEntry
		after := uint64(0)
		for range 40 {
			es, last, err := s.FeedWhere(after, 7, w.want)
			if err != nil {
				t.Fatal(err)
			}
			held, heldLast, err := s.FeedHeld(after, 7, w.want)
			if err != nil || heldLast != last || len(held) != len(es) {
				t.Fatalf("%s: FeedHeld after %d: %d entries to %d, %v; FeedWhere: %d to %d", w.name, after, len(held), heldLast, err, len(es), last)
			}
			if len(es) == 0 {
				break
			}
			got = append(got, es...)
			after = last
		}
		if len(got) != len(order) {
			t.Fatalf("%s: FeedWhere returned %d entries, want %d", w.name, len(got), len(order))
		}
		for i, e := range got {
			p := must(order[i].Open())
			if e.Seq != uint64(i+1) || e.ID != p.ID || e.Version != p.Version {
				t.Fatalf("%s: entry %d is seq %d, record %s v%d; want seq %d, record %s v%d", w.name, i, e.Seq, e.ID, e.Version, i+1, p.ID, p.Version)
			}
			if !w.want(p.Origin, p.Audience) {
				if e.Envelope.Payload != nil {
					t.Fatalf("%s: entry %d, not wanted, came with its envelope", w.name, i)
				}
				continue
			}
			if string(e.Envelope.Payload) != string(order[i].Payload) || string(e.Envelope.Sig) != string(order[i].Sig) {
				t.Fatalf("%s: entry %d (record %s v%d): the envelope read is not the one stored", w.name, i, p.ID, p.Version)
			}
		}
	}
}

// A page of large records ends once FeedPageBytes have been read, before
// the first entry it did not read, and paging on from there returns every
// envelope, in feed order, none twice.
func TestFeedWherePageBytes(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	gen := newIDGen(t0)
	var envs []model.Envelope
	for i := range 30 {
		// Large and small, the large ones about 700 KB: 30 of them are
		// several times FeedPageBytes.
		size := 700 << 10
		if i%3 == 2 {
			size = 500
		}
		envs = append(envs, unsignedRec(t, rec{id: gen.next(), size: size, kind: model.KindPriority}))
	}
	// Stored in an order of their own, so key order is not feed order.
	var order []model.Envelope
	for _, i := range []int{29, 0, 14, 3, 27, 1, 2, 16, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 18, 17, 20, 19, 22, 21, 24, 23, 26, 25, 28} {
		order = append(order, envs[i])
	}
	for _, env := range order {
		mustPut(t, s, env)
	}
	all := func(string, model.Audience) bool { return true }
	var got []FeedEntry
	after, pages := uint64(0), 0
	for range 40 {
		es, last, err := s.FeedWhere(after, 100, all)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		pages++
		read := 0
		for _, e := range es {
			read += len(e.Envelope.Payload) + len(e.Envelope.Sig)
		}
		if read > FeedPageBytes+model.LimitPayload {
			t.Fatalf("page %d read %d envelope bytes; FeedPageBytes is %d", pages, read, FeedPageBytes)
		}
		if last != es[len(es)-1].Seq {
			t.Fatalf("page %d ends at seq %d but says %d", pages, es[len(es)-1].Seq, last)
		}
		got = append(got, es...)
		after = last
	}
	if pages < 3 {
		t.Fatalf("%d pages for %d MB of envelopes; want them cut at FeedPageBytes", pages, len(order)*700/1024)
	}
	if len(got) != len(order) {
		t.Fatalf("paging returned %d entries, want %d", len(got), len(order))
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) || string(e.Envelope.Payload) != string(order[i].Payload) {
			t.Fatalf("entry %d: seq %d with %d payload bytes; want seq %d as stored", i, e.Seq, len(e.Envelope.Payload), i+1)
		}
	}
}

// A store written before feed entries carried origin and audience holds
// only the history key in /c/<seq>; it still reads, by decoding.
func TestFeedReadsOldEntries(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, testConfig())
	envs := feedRecords(t, s)
	err := s.db.Update(func(txn *badger.Txn) error {
		for i, env := range envs {
			if i%2 == 1 {
				continue // a mix of both forms
			}
			p := must(env.Open())
			if err := txn.Set(feedKey(uint64(i+1)), historyKey(p.ID, p.Version, env.Hash())); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, testConfig())
	checkFeedWhere(t, s, envs)
	sts, _, err := s.Feed(0, 100)
	if err != nil || len(sts) != len(envs) {
		t.Fatalf("Feed of old entries: %d entries, %v; want %d", len(sts), err, len(envs))
	}
	for i, st := range sts {
		if st.Hash != envs[i].Hash() || st.Seq != uint64(i+1) {
			t.Fatalf("Feed entry %d: seq %d hash %s; want %d, %s", i, st.Seq, st.Hash, i+1, envs[i].Hash())
		}
	}
}

// A feed entry whose origin or audience the disk changed is reported as
// damage, never used to decide who may read the record.
func TestFeedEntryDamaged(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	env := unsignedRec(t, rec{id: model.NewID(t0, nil), audience: model.Audience{"region:eeca"}})
	mustPut(t, s, env)
	err := s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(feedKey(1))
		if err != nil {
			return err
		}
		v, _ := item.ValueCopy(nil)
		v[len(v)-1] = 'X' // "region:eecX"
		return txn.Set(feedKey(1), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	all := func(string, model.Audience) bool { return true }
	if _, _, err := s.FeedWhere(0, 10, all); !errors.Is(err, ErrDamaged) {
		t.Fatalf("FeedWhere of a changed entry: %v, want ErrDamaged", err)
	}
	if _, _, err := s.Feed(0, 10); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Feed of a changed entry: %v, want ErrDamaged", err)
	}
}

// Known answers Holds and the current version in one read.
func TestKnown(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	id := model.NewID(t0, nil)
	v1 := unsignedRec(t, rec{id: id})
	v2 := unsignedRec(t, rec{id: id, version: 2})
	if held, cur, err := s.Known(id, 1, v1.Hash()); err != nil || held || cur != 0 {
		t.Fatalf("Known before any put: %v, %d, %v; want false, 0", held, cur, err)
	}
	mustPut(t, s, v2)
	if held, cur, err := s.Known(id, 1, v1.Hash()); err != nil || held || cur != 2 {
		t.Fatalf("Known of v1 with v2 held: %v, %d, %v; want false, 2", held, cur, err)
	}
	if held, _, err := s.Known(id, 2, v2.Hash()); err != nil || !held {
		t.Fatalf("Known of v2 held: %v, %v; want true", held, err)
	}
}

// PutOpened leaves out versions older than the one held when it is
// called, but stores every version of a record new in the same call.
func TestPutOpenedRefusesOlder(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	held, fresh := model.NewID(t0, nil), model.NewID(t0.Add(time.Second), nil)
	mustPut(t, s, unsignedRec(t, rec{id: held, version: 3}))
	var ops []Opened
	for _, env := range []model.Envelope{
		unsignedRec(t, rec{id: held, version: 2}),  // older than held: left out
		unsignedRec(t, rec{id: fresh, version: 2}), // both versions of a new record stored
		unsignedRec(t, rec{id: fresh, version: 1}),
		unsignedRec(t, rec{id: held, version: 4}),
	} {
		ops = append(ops, Opened{Env: env, Payload: must(env.Open())})
	}
	res, err := s.PutOpened(ops...)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Older, []int{0}) || len(res.Stored) != 3 {
		t.Fatalf("PutOpened: older %v, %d stored; want [0] and 3", res.Older, len(res.Stored))
	}
	if hs, err := s.History(held); err != nil || len(hs) != 2 || hs[0].Payload.Version != 3 || hs[1].Payload.Version != 4 {
		t.Fatalf("history of the held record: %d versions, %v; want 3 and 4", len(hs), err)
	}
	if hs, err := s.History(fresh); err != nil || len(hs) != 2 {
		t.Fatalf("history of the new record: %d versions, %v; want 2", len(hs), err)
	}
}

// PutOpened finds a version already held, and one that came twice in the
// same call, as duplicates: a record it held no version of before the call
// is not looked up again (put.go), but one it stored a version of earlier
// in the call is.
func TestPutOpenedDuplicates(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	held, fresh, other := model.NewID(t0, nil), model.NewID(t0.Add(time.Second), nil), model.NewID(t0.Add(2*time.Second), nil)
	heldEnv := unsignedRec(t, rec{id: held})
	mustPut(t, s, heldEnv)
	freshEnv := unsignedRec(t, rec{id: fresh})
	var ops []Opened
	for _, env := range []model.Envelope{
		heldEnv,  // held before the call
		freshEnv, // new
		freshEnv, // the same again, in the same call
		unsignedRec(t, rec{id: other}),
		unsignedRec(t, rec{id: fresh, version: 2}), // a newer version of the new one
	} {
		ops = append(ops, Opened{Env: env, Payload: must(env.Open())})
	}
	res, err := s.PutOpened(ops...)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stored) != 3 || res.Duplicates != 2 || len(res.Older) != 0 {
		t.Fatalf("PutOpened: %d stored, %d duplicates, older %v; want 3, 2 and none", len(res.Stored), res.Duplicates, res.Older)
	}
	if s.Head() != 4 {
		t.Fatalf("head %d; want 4 (one version before the call, three in it)", s.Head())
	}
	if hs, err := s.History(fresh); err != nil || len(hs) != 2 || hs[0].Payload.Version != 1 || hs[1].Payload.Version != 2 {
		t.Fatalf("history of the new record: %d versions, %v; want 1 and 2", len(hs), err)
	}
	// Again: version 1 of the new record is older than the 2 now held.
	res, err = s.PutOpened(ops...)
	if err != nil || len(res.Stored) != 0 || res.Duplicates != 3 || !slices.Equal(res.Older, []int{1, 2}) || s.Head() != 4 {
		t.Fatalf("the same call again: %d stored, %d duplicates, older %v, head %d, %v; want 0, 3, [1 2], 4", len(res.Stored), res.Duplicates, res.Older, s.Head(), err)
	}
}

// TestFeedHeldTellsStubsLikeFeedWhere: FeedHeld, which trusts a history
// entry's metaEnvelope mark instead of reading the value, says of every
// entry what FeedWhere says after reading it: a version stored whole and
// later taken back (rewritten as a stub), one stored as a stub at once,
// versions held whole, and history entries written without the mark (as
// by a store from before it) alike.
func TestFeedHeldTellsStubsLikeFeedWhere(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, testConfig())
	s.SetTakeBack(func(p model.Payload) bool { return p.TakesBackFrom(tanpud) })
	id, kept := model.NewID(t0, nil), model.NewID(t0.Add(time.Millisecond), nil)
	mustPut(t, s, sealRec(t, rec{id: kept, version: 1}), sealRec(t, rec{id: id, version: 2, note: "two"}))
	mustPut(t, s, sealRec(t, rec{id: id, version: 3, keep: model.Audience{"network:vnpud"}})) // takes version 2 back
	mustPut(t, s, sealRec(t, rec{id: id, version: 1, note: "one"}))                           // late: stored as a stub
	mustPut(t, s, sealRec(t, rec{id: kept, version: 2}))

	check := func(wantMarked int) {
		t.Helper()
		all := func(string, model.Audience) bool { return true }
		where, _, err := s.FeedWhere(0, 100, all)
		if err != nil {
			t.Fatal(err)
		}
		held, _, err := s.FeedHeld(0, 100, all)
		if err != nil {
			t.Fatal(err)
		}
		if len(where) != 5 || len(held) != len(where) {
			t.Fatalf("FeedWhere gave %d entries, FeedHeld %d; want 5", len(where), len(held))
		}
		stubs, marked := 0, 0
		for i := range where {
			w, h := where[i], held[i]
			if h.TakenBack != w.TakenBack || h.Seq != w.Seq || h.ID != w.ID || h.Version != w.Version || h.Hash != w.Hash {
				t.Fatalf("entry %d: FeedHeld says %+v, FeedWhere %+v", i, h, w)
			}
			if h.Envelope.Payload != nil {
				t.Fatalf("entry %d: FeedHeld returned bytes", i)
			}
			if w.TakenBack {
				stubs++
			}
			err := s.db.View(func(txn *badger.Txn) error {
				item, err := txn.Get(historyKey(w.ID, w.Version, w.Hash))
				if err == nil && item.UserMeta() == metaEnvelope {
					if w.TakenBack {
						t.Errorf("entry %d is a stub marked as held whole", i)
					}
					marked++
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if stubs != 2 || marked != wantMarked {
			t.Fatalf("%d stubs and %d entries marked whole; want 2 and %d", stubs, marked, wantMarked)
		}
	}
	check(3)
	// Entries written without the mark (a store from before it) read the
	// same, by reading their values.
	err := s.db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxHistory)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := txn.Set(it.Item().KeyCopy(nil), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, testConfig())
	check(0)
}
