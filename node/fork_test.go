package node

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
	"github.com/inpud/cairn/node/store"
	cairnsync "github.com/inpud/cairn/sync"
)

// rogueChain seals versions 1..n of one rogue priority, each following
// the one before, signed with the rogue's registered key. edit, if not
// nil, changes version v's payload before it is sealed.
func rogueChain(t *testing.T, f *hostileFed, n int) []model.Envelope {
	t.Helper()
	rogue := nodeSigner(t, f.rogue)
	var out []model.Envelope
	var id, prev string
	for v := 1; v <= n; v++ {
		env, _ := seal(t, rogue, f.rogue.ID(), "rogue", func(p *model.Payload) {
			if id == "" {
				id = p.ID
			}
			p.ID, p.Version, p.Prev = id, uint64(v), prev
			p.HLC += model.HLC(v) << 16
		})
		out = append(out, env)
		prev = env.Hash()
	}
	return out
}

// twinOf seals another version with env's number and predecessor (or,
// with prev set, following prev and numbered version), a later HLC and
// another title, with the rogue's registered key: a fork.
func twinOf(t *testing.T, f *hostileFed, env model.Envelope, version uint64, prev string) model.Envelope {
	t.Helper()
	p, err := env.Open()
	if err != nil {
		t.Fatal(err)
	}
	p.Version, p.Prev = version, prev
	p.HLC += 1 << 20
	p.Body = json.RawMessage(`{"kind":"change-needed","title":"Concurrent wording ` + prev[:6] + `","importance":3,"achievability":3,"horizon_years":"` + model.DefaultHorizon + `"}`)
	twin, err := model.Seal(nodeSigner(t, f.rogue).key, p)
	if err != nil {
		t.Fatal(err)
	}
	return twin
}

func historyOf(t *testing.T, n *Node, id string) []records.Record {
	t.Helper()
	hs, err := n.Records().History(id)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

// TestRolledBackVersionRefused: the rogue serves version 5 of its record,
// then version 3. The victim refuses version 3 as rolled back, stores
// nothing of it, counts it against the rogue in `cairn peers` (without
// dropping it), and the record's history tells which peer served which
// version, against which. An honest member's record still arrives.
func TestRolledBackVersionRefused(t *testing.T) {
	f := startHostileFed(t, nil)
	vs := rogueChain(t, f, 5)
	p5, _ := vs[4].Open()
	id := p5.ID

	f.serveEnvelopes(vs[4])
	if ps := f.syncVictim(t); ps.Stored != 1 || ps.Rejected != 0 {
		t.Fatalf("the round with version 5: %+v", ps)
	}
	f.serveEnvelopes(vs[2])
	if ps := f.syncVictim(t); ps.Stored != 0 || ps.Rejected != 1 || ps.Error != "" {
		t.Fatalf("the round with version 3 after 5: %+v; want it refused", ps)
	}
	if held, _ := f.victim.store.Holds(id, 3, vs[2].Hash()); held {
		t.Fatal("the victim stored the rolled-back version 3")
	}
	if cur, err := f.victim.store.Get(id); err != nil || cur.Hash != vs[4].Hash() {
		t.Fatalf("current after the rollback: version %d (%v), want 5", cur.Payload.Version, err)
	}
	ps := f.refused(t, cairnsync.ReasonRolledBack, 1, false)
	b, err := json.Marshal(ps)
	if err != nil || !strings.Contains(string(b), `"rolled-back":1`) {
		t.Fatalf("cairn peers --json shows %s (%v); want rolled-back counted", b, err)
	}

	hs := historyOf(t, f.victim, id)
	if len(hs) != 1 || hs[0].Version != 5 {
		t.Fatalf("the victim's history: %+v", hs)
	}
	evs := hs[0].Events
	if len(evs) != 1 || evs[0].Kind != store.EventRolledBack || evs[0].Peer != f.rogue.ID() || evs[0].Network != "rogue" ||
		evs[0].Version != 3 || evs[0].Hash != vs[2].Hash() || evs[0].Held != 5 || evs[0].At.IsZero() {
		t.Fatalf("the history's events: %+v; want version 3 from the rogue refused against 5", evs)
	}

	// The same version 3 again, with version 4: both rolled back, counted
	// again, still never a drop.
	f.serveEnvelopes(vs[2], vs[3])
	if ps := f.syncVictim(t); ps.Stored != 0 || ps.Rejected != 2 {
		t.Fatalf("the round with versions 3 and 4 after 5: %+v", ps)
	}
	f.refused(t, cairnsync.ReasonRolledBack, 3, false)
	if evs := historyOf(t, f.victim, id)[0].Events; len(evs) != 3 || evs[2].Version != 4 {
		t.Fatalf("events after the second rollback: %+v", evs)
	}
	f.honestStillArrives(t, false)
}

// TestStaleIsNotRollback: a version older than one the victim holds, from
// a peer that never served the newer one, stays stale (relays hold
// versions out of order) and notes nothing in the history.
func TestStaleIsNotRollback(t *testing.T) {
	f := startHostileFed(t, nil)
	vs := rogueChain(t, f, 3)
	p, _ := vs[2].Open()
	if _, err := f.victim.store.Put(vs[2]); err != nil { // as if from another relay
		t.Fatal(err)
	}
	f.serveEnvelopes(vs[1])
	if ps := f.syncVictim(t); ps.Stored != 0 || ps.Rejected != 1 {
		t.Fatalf("the round with version 2: %+v", ps)
	}
	f.refused(t, cairnsync.ReasonStale, 1, false)
	if evs := historyOf(t, f.victim, p.ID)[0].Events; len(evs) != 0 {
		t.Fatalf("a stale version noted events: %+v", evs)
	}
}

// TestForkDetected: the rogue serves versions 1 and 2 of its record, then
// another version 2 following version 1, then a version 3 following
// version 1 too, all signed with its registered key. Both are stored (the
// data holds a fork; the current version is the winner), counted against
// the rogue as forks in `cairn peers`, never refused or dropped, and the
// history marks the forked versions, with a `fork` field in its JSON and
// events naming the rogue. An honest member's record still arrives.
func TestForkDetected(t *testing.T) {
	f := startHostileFed(t, nil)
	vs := rogueChain(t, f, 2)
	p1, _ := vs[0].Open()
	id := p1.ID
	f.serveEnvelopes(vs...)
	if ps := f.syncVictim(t); ps.Stored != 2 || ps.Rejected != 0 {
		t.Fatalf("the round with versions 1 and 2: %+v", ps)
	}

	twin := twinOf(t, f, vs[1], 2, vs[0].Hash())
	f.serveEnvelopes(twin)
	if ps := f.syncVictim(t); ps.Stored != 1 || ps.Rejected != 0 || ps.Error != "" {
		t.Fatalf("the round with the second version 2: %+v", ps)
	}
	ps := f.refused(t, "", 0, false)
	if ps.Forks != 1 {
		t.Fatalf("the rogue's forks: %d, want 1", ps.Forks)
	}
	if b, _ := json.Marshal(ps); !strings.Contains(string(b), `"forks":1`) {
		t.Fatalf("cairn peers --json: %s", b)
	}

	hs := historyOf(t, f.victim, id)
	if len(hs) != 3 {
		t.Fatalf("the victim holds %d versions, want version 1 and both versions 2", len(hs))
	}
	for _, h := range hs[1:] {
		if h.Fork == nil || h.Fork.Prev != vs[0].Hash() || !slices.Equal(sorted(h.Fork.Versions), sorted([]string{vs[1].Hash(), twin.Hash()})) {
			t.Fatalf("version %d (%s) is marked %+v; want a fork of both versions 2 after version 1", h.Version, h.Hash[:8], h.Fork)
		}
	}
	if hs[0].Fork != nil || hs[0].BrokenChain {
		t.Fatalf("version 1 is marked: %+v", hs[0])
	}
	b, err := json.Marshal(hs)
	if err != nil || strings.Count(string(b), `"fork":{"prev":"`+vs[0].Hash()+`"`) != 2 {
		t.Fatalf("the history's JSON does not carry the fork on both versions 2:\n%s", b)
	}
	evs := hs[len(hs)-1].Events
	if len(evs) != 1 || evs[0].Kind != store.EventFork || evs[0].Peer != f.rogue.ID() || evs[0].Hash != twin.Hash() || !slices.Equal(evs[0].Others, []string{vs[1].Hash()}) {
		t.Fatalf("the history's events: %+v", evs)
	}

	// A version 3 that follows version 1 as well: the same predecessor
	// for a third time, another fork.
	skip := twinOf(t, f, vs[1], 3, vs[0].Hash())
	f.serveEnvelopes(skip)
	if ps := f.syncVictim(t); ps.Stored != 1 || ps.Rejected != 0 {
		t.Fatalf("the round with version 3 after version 1: %+v", ps)
	}
	if ps := f.refused(t, "", 0, false); ps.Forks != 2 {
		t.Fatalf("the rogue's forks: %d, want 2", ps.Forks)
	}
	hs = historyOf(t, f.victim, id)
	last := hs[len(hs)-1]
	if last.Hash != skip.Hash() || last.Fork == nil || len(last.Fork.Versions) != 3 || !last.BrokenChain {
		t.Fatalf("version 3 after version 1 is marked %+v (broken chain %v)", last.Fork, last.BrokenChain)
	}
	f.honestStillArrives(t, false)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
