package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/federation"
	"github.com/inpud/cairn/node/registry"
	"github.com/inpud/cairn/node/store"
)

// TestPartitionAndHeal is RELIABILITY T3 on real libp2p hosts on loopback
// (no netem): five member networks, three of them stewards, write records
// with mixed audiences while the federation is cut in two, then heal and
// sync until quiet, three times with different cuts. Afterwards every node
// must hold exactly what the audiences allow it: for each record the
// newest version whose audience admits it (all of its own), nothing
// missing, nothing extra, and each version once in its change feed.
func TestPartitionAndHeal(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	const stewards = 3 // the first three networks: a cut leaves two on one side

	c := newCluster(t, []Profile{
		{Slug: "inpud", Name: "INPUD", Level: "global"},
		{Slug: "anpud", Name: "ANPUD", Level: "regional", Region: "asia"},
		{Slug: "enpud", Name: "ENPUD", Level: "regional", Region: "eeca"},
		{Slug: "vnpud", Name: "VNPUD", Level: "national", Region: "asia"},
		{Slug: "unpud", Name: "UNPUD", Level: "national", Region: "eeca"},
	}, stewards)
	w := &writes{byOrigin: map[string]map[string][]version{}, deleted: map[string]bool{}}

	cuts := [][2][]int{
		{{0, 1}, {2, 3, 4}},
		{{2, 4}, {0, 1, 3}},
		{{0, 3}, {1, 2, 4}},
	}
	for cycle, cut := range cuts {
		w.phase = cycle + 1
		c.partition(t, cut[0], cut[1])
		for _, i := range slices.Concat(cut[0], cut[1]) {
			w.write(t, rng, c, i, 4)
		}
		// Sync inside each side while cut: the other side stays out of reach.
		for range 2 {
			for _, n := range c.nodes {
				if _, err := n.SyncNow(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		}
		c.checkSidesApart(t, w, cut)
		// The registry goes on where most stewards are, and only there.
		major, minor := stewardOf(cut[0], stewards), stewardOf(cut[1], stewards)
		if stewardsOn(cut[1], stewards) > stewardsOn(cut[0], stewards) {
			major, minor = minor, major
		}
		committed, lost := fmt.Sprintf("%032x", 2*cycle), fmt.Sprintf("%032x", 2*cycle+1)
		if err := proposeInvite(context.Background(), c.nodes[major], committed); err != nil {
			t.Fatalf("cycle %d: %s, on the side with most stewards, could not change the registry: %v", cycle+1, c.profiles[major].Slug, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if err := proposeInvite(ctx, c.nodes[minor], lost); err == nil {
			t.Errorf("cycle %d: %s changed the registry from the side with one steward", cycle+1, c.profiles[minor].Slug)
		}
		cancel()
		c.heal(t)
		// A write right after the heal, while the sides catch up.
		w.write(t, rng, c, cycle, 2)
		c.syncUntilQuiet(t)
		c.waitSameRegistry(t, committed, lost)
		t.Logf("cycle %d: cut %v | %v, healed; %d versions written so far", cycle+1, names(c, cut[0]), names(c, cut[1]), w.count())
	}
	for i, n := range c.nodes {
		current, feed, stubs := w.expected(c.profiles[i])
		checkHolds(t, n, current, feed, stubs)
	}
}

// stewardOf returns the first steward's node on a side.
func stewardOf(side []int, stewards int) int {
	for _, i := range side {
		if i < stewards {
			return i
		}
	}
	panic("a side without a steward")
}

func stewardsOn(side []int, stewards int) int {
	n := 0
	for _, i := range side {
		if i < stewards {
			n++
		}
	}
	return n
}

// proposeInvite has node n register an invite with the given id for a
// network that never joins: a registry change that needs a quorum.
func proposeInvite(ctx context.Context, n *Node, id string) error {
	_, err := n.fed.Propose(ctx, registry.CreateInvite, registry.CreateInviteArgs{
		ID: id, SecretHash: registry.HashSecret("never used"), Role: registry.RoleMember,
		Network: Profile{Slug: "x" + id[24:], Name: "Never joins", Level: "local"}, Expires: time.Now().Add(time.Hour).UnixMilli(),
	})
	return err
}

// waitSameRegistry waits until every replica holds the same registry,
// with invite committed and without invite lost.
func (c *cluster) waitSameRegistry(t *testing.T, committed, lost string) {
	t.Helper()
	waitFor(t, "every replica to hold the same registry after the heal", func() bool {
		var first string
		for i, n := range c.nodes {
			st, err := n.fed.Status()
			if err != nil || (i > 0 && st.StateHash != first) {
				return false
			}
			first = st.StateHash
			if _, ok := n.fed.State().Invite(committed); !ok {
				return false
			}
		}
		return true
	})
	for i, n := range c.nodes {
		if _, ok := n.fed.State().Invite(lost); ok {
			t.Errorf("%s holds the invite proposed on the side with one steward", c.profiles[i].Slug)
		}
	}
}

// cluster is a federation of real nodes on loopback.
type cluster struct {
	nodes    []*Node
	profiles []Profile
}

// newCluster starts one node per profile; the first bootstraps the
// federation and the first stewards of them are stewards, the others
// members. It waits until every node knows every other's address.
func newCluster(t *testing.T, profiles []Profile, stewards int) *cluster {
	t.Helper()
	ctx := context.Background()
	c := &cluster{profiles: profiles}
	for i, p := range profiles {
		cfg := DefaultConfig(filepath.Join(t.TempDir(), p.Slug))
		cfg.API = "127.0.0.1:0"
		cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		cfg.Registry = federation.FastConfig("")
		cfg.Network = p
		cfg.Bootstrap = i == 0
		cfg.SyncInterval = 300 * time.Millisecond // periodic pulls run alongside the test's own
		n := startNode(t, cfg)
		t.Cleanup(func() { n.Close() })
		c.nodes = append(c.nodes, n)
		if i == 0 {
			continue
		}
		role := registry.RoleMember
		if i < stewards {
			role = registry.RoleSteward
		}
		code, err := c.nodes[0].Federation().Invite(ctx, p, role, time.Hour)
		if err != nil {
			t.Fatalf("invite %s: %v", p.Slug, err)
		}
		if _, err := n.Join(ctx, code.String()); err != nil {
			t.Fatalf("%s joins: %v", p.Slug, err)
		}
	}
	waitFor(t, "every node to know every member node's address, and three voters", func() bool {
		st, err := c.nodes[0].Federation().Status()
		if err != nil || len(st.Voters) != stewards {
			return false
		}
		for _, n := range c.nodes {
			peers := n.fed.State().Peers()
			if len(peers) != len(c.nodes) {
				return false
			}
			for _, k := range peers {
				if len(k.Addrs) == 0 {
					return false
				}
			}
		}
		return true
	})
	return c
}

// partition cuts every node of side a off from every node of side b, both
// ways: each blocks the other side in its gater (sync and Raft alike) and
// closes its connections to it.
func (c *cluster) partition(t *testing.T, a, b []int) {
	t.Helper()
	for _, i := range a {
		for _, j := range b {
			c.nodes[i].gater.Block(c.nodes[i].host, c.nodes[j].host.ID())
			c.nodes[j].gater.Block(c.nodes[j].host, c.nodes[i].host.ID())
		}
	}
	waitFor(t, "the two sides to hold no connection to each other", func() bool {
		for _, i := range a {
			for _, j := range b {
				if len(c.nodes[i].host.Network().ConnsToPeer(c.nodes[j].host.ID())) > 0 ||
					len(c.nodes[j].host.Network().ConnsToPeer(c.nodes[i].host.ID())) > 0 {
					return false
				}
			}
		}
		return true
	})
}

// heal lifts every block.
func (c *cluster) heal(t *testing.T) {
	t.Helper()
	var all []peer.ID
	for _, n := range c.nodes {
		all = append(all, n.host.ID())
	}
	for _, n := range c.nodes {
		n.gater.Unblock(all...)
	}
}

// syncUntilQuiet has every node pull from every other until one whole pass
// stores nothing anywhere and no feed head moved during it (the periodic
// pulls run too), bounded in passes and time.
func (c *cluster) syncUntilQuiet(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for pass := 0; pass < 100 && time.Now().Before(deadline); pass++ {
		before := c.heads()
		stored, failed := 0, 0
		for _, n := range c.nodes {
			res, err := n.SyncNow(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, ps := range res.([]PeerSync) {
				stored += ps.Stored
				if ps.Error != "" {
					failed++
				}
			}
		}
		if stored == 0 && failed == 0 && slices.Equal(before, c.heads()) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, n := range c.nodes {
		st, _ := n.SyncNow(context.Background())
		t.Logf("%s: %+v", n.profile.Slug, st)
	}
	t.Fatal("the federation did not go quiet within 60 s of healing")
}

func (c *cluster) heads() []uint64 {
	var hs []uint64
	for _, n := range c.nodes {
		hs = append(hs, n.store.Head())
	}
	return hs
}

// checkSidesApart: while cut, no node holds a version written on the
// other side since the cut.
func (c *cluster) checkSidesApart(t *testing.T, w *writes, cut [2][]int) {
	t.Helper()
	for s, side := range cut {
		for _, i := range side {
			for _, j := range cut[1-s] {
				for id, vs := range w.byOrigin[c.profiles[j].Slug] {
					hist, _ := c.nodes[i].store.History(id)
					for _, h := range hist {
						for _, v := range vs {
							if v.phase == w.phase && v.hash == h.Hash {
								t.Errorf("%s holds %s's version %d of %s, written on the other side of the cut", c.profiles[i].Slug, c.profiles[j].Slug, v.number, id)
							}
						}
					}
				}
			}
		}
	}
}

func names(c *cluster, idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, c.profiles[i].Slug)
	}
	return out
}

// version is one version a node wrote.
type version struct {
	number   uint64
	hash     string
	audience model.Audience
	phase    int           // the partition it was written in (1, 2, 3)
	header   model.Payload // without the body: says whether it takes bodies back
}

// writes is every version every origin wrote, by origin and record id.
type writes struct {
	byOrigin map[string]map[string][]version
	deleted  map[string]bool // record ids whose last version is a tombstone
	phase    int
}

// write has node i write n new priorities, each shared with a random
// audience (or left private), re-share one of its earlier records with a
// new audience (which may narrow it), and now and then delete one.
func (w *writes) write(t *testing.T, rng *rand.Rand, c *cluster, i, n int) {
	t.Helper()
	node, slug := c.nodes[i], c.profiles[i].Slug
	if w.byOrigin[slug] == nil {
		w.byOrigin[slug] = map[string][]version{}
	}
	mine := w.byOrigin[slug]
	var earlier []string
	for id := range mine {
		if !w.deleted[id] {
			earlier = append(earlier, id)
		}
	}
	slices.Sort(earlier)
	for k := range n {
		rec, err := node.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: fmt.Sprintf("%s priority %d.%d", slug, w.phase, k), Importance: 1 + rng.IntN(5), Achievability: 1 + rng.IntN(5)}, false)
		if err != nil {
			t.Fatal(err)
		}
		w.learn(t, node, mine, rec.ID)
		aud := randomAudience(rng, c.profiles, slug)
		if aud.IsPrivate() {
			continue
		}
		if _, err = node.Records().Share(rec.ID, aud); err != nil {
			t.Fatal(err)
		}
		w.learn(t, node, mine, rec.ID)
	}
	if len(earlier) == 0 {
		return
	}
	id := earlier[rng.IntN(len(earlier))]
	aud := randomAudience(rng, c.profiles, slug)
	if _, err := node.Records().Share(id, aud); err != nil {
		t.Fatal(err)
	}
	w.learn(t, node, mine, id) // narrowing writes two versions: a withdrawal, then the full one
	if rng.IntN(3) == 0 {
		del := earlier[rng.IntN(len(earlier))]
		if _, err := node.Records().Delete(del); err != nil {
			t.Fatal(err)
		}
		w.learn(t, node, mine, del)
		w.deleted[del] = true
	}
}

// learn adds the versions of record id that origin node n wrote since
// last asked, from its history.
func (w *writes) learn(t *testing.T, n *Node, mine map[string][]version, id string) {
	t.Helper()
	hs, err := n.store.History(id)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, v := range mine[id] {
		known[v.hash] = true
	}
	for _, h := range hs {
		if !known[h.Hash] {
			p := h.Payload
			p.Body = nil
			mine[id] = append(mine[id], version{h.Payload.Version, h.Hash, h.Payload.Audience, w.phase, p})
		}
	}
}

func (w *writes) count() int {
	n := 0
	for _, recs := range w.byOrigin {
		for _, vs := range recs {
			n += len(vs)
		}
	}
	return n
}

// randomAudience picks one of: private, members, one other network, a
// region, or a network and a region together.
func randomAudience(rng *rand.Rand, ps []Profile, self string) model.Audience {
	var others []string
	for _, p := range ps {
		if p.Slug != self {
			others = append(others, p.Slug)
		}
	}
	regions := []string{"asia", "eeca", "latam"} // nobody is in latam
	var s string
	switch rng.IntN(6) {
	case 0:
		s = model.AudiencePrivate
	case 1:
		s = model.AudienceMembers
	case 2, 3:
		s = "network:" + others[rng.IntN(len(others))]
	case 4:
		s = "region:" + regions[rng.IntN(len(regions))]
	case 5:
		s = "network:" + others[rng.IntN(len(others))] + ",region:" + regions[rng.IntN(len(regions))]
	}
	a, err := model.ParseAudience(s)
	if err != nil {
		panic(err)
	}
	return a
}

// expected is what the node of network p must hold: every version of its
// own records, and of other networks' records every version whose audience
// admits p; its current version of a record is the newest of those. Of
// another network's record, the versions before a deletion or a withdrawal
// that leaves p out are held without their bodies (stubs).
func (w *writes) expected(p Profile) (current map[string]string, feed, stubs map[string]bool) {
	current, feed, stubs = map[string]string{}, map[string]bool{}, map[string]bool{}
	reader := model.Reader{Network: p.Slug, Region: p.Region, Member: true}
	for origin, recs := range w.byOrigin {
		for id, vs := range recs {
			var admitted []string
			for _, v := range vs {
				if origin != p.Slug && !v.audience.Admits(reader) {
					continue
				}
				k := feedKeyOf(id, v.number, v.hash)
				current[id] = v.hash // versions are in order: the last admitted wins
				feed[k] = true
				if v.header.TakesBackFrom(reader) {
					for _, a := range admitted {
						stubs[a] = true
					}
				}
				admitted = append(admitted, k)
			}
		}
	}
	return current, feed, stubs
}

func feedKeyOf(id string, version uint64, hash string) string {
	return fmt.Sprintf("%s/%d/%s", id, version, hash)
}

// checkHolds compares what node n holds with what it should: its current
// versions (record id → hash), and its change feed (each version once,
// all of them, nothing else).
func checkHolds(t *testing.T, n *Node, want map[string]string, wantFeed, wantStubs map[string]bool) {
	t.Helper()
	slug := n.profile.Slug
	cur, err := n.store.List(store.Query{IncludeDeleted: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, st := range cur {
		got[st.Payload.ID] = st.Hash
	}
	var missing, extra, stale []string
	for id, h := range want {
		switch g, ok := got[id]; {
		case !ok:
			missing = append(missing, id)
		case g != h:
			stale = append(stale, id)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra = append(extra, id)
		}
	}
	if len(missing)+len(extra)+len(stale) > 0 {
		t.Errorf("%s holds %d records, want %d: %d missing %v, %d not allowed %v, %d at another version %v", slug, len(got), len(want), len(missing), few(missing), len(extra), few(extra), len(stale), few(stale))
	}

	seen := map[string]int{}
	var wrongBody []string // a body held that was taken back, or one lost that was not
	var after uint64
	for range 1000 {
		entries, last, err := n.store.Feed(after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			k := feedKeyOf(e.Payload.ID, e.Payload.Version, e.Hash)
			seen[k]++
			if e.TakenBack != wantStubs[k] {
				wrongBody = append(wrongBody, k)
			}
		}
		if len(entries) == 0 {
			break
		}
		after = last
	}
	if after != n.store.Head() {
		t.Fatalf("%s: read its feed to seq %d, but its head is %d", slug, after, n.store.Head())
	}
	var dups, feedMissing, feedExtra []string
	for k, c := range seen {
		if c > 1 {
			dups = append(dups, k)
		}
		if !wantFeed[k] {
			feedExtra = append(feedExtra, k)
		}
	}
	for k := range wantFeed {
		if seen[k] == 0 {
			feedMissing = append(feedMissing, k)
		}
	}
	if len(wrongBody) > 0 {
		t.Errorf("%s holds %d versions with the wrong body (kept though taken back, or lost): %v", slug, len(wrongBody), few(wrongBody))
	}
	if len(dups)+len(feedMissing)+len(feedExtra) > 0 {
		t.Errorf("%s's change feed: %d versions, want %d; %d more than once %v, %d missing %v, %d not allowed %v", slug, len(seen), len(wantFeed), len(dups), few(dups), len(feedMissing), few(feedMissing), len(feedExtra), few(feedExtra))
		return
	}
	t.Logf("%s holds %d records (%d versions), as its audiences allow", slug, len(got), len(seen))
}

// few is the first few of a list, for messages.
func few(s []string) []string {
	slices.Sort(s)
	return s[:min(len(s), 5)]
}
