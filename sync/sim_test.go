package sync_test

import (
	"context"
	"slices"
	"testing"
	"time"
)

// simSeed fixes the federation's random chords, so a failure replays.
const simSeed = 20261123

// simRecord is one record written in the simulation and who may hold it.
type simRecord struct {
	name    string
	origin  *simNode
	aud     []string
	allowed func(*simNode) bool // may this node hold (and relay) it?
	hash    string

	want []int       // the nodes the topology lets it reach, origin included
	dist map[int]int // hops from the origin over nodes allowed to hold it
	full int         // the round after which exactly want held it (0: not yet)
}

func inRegion(region string) func(*simNode) bool {
	return func(n *simNode) bool { return n.self.Region == region }
}

func isNetwork(slug string) func(*simNode) bool {
	return func(n *simNode) bool { return n.self.Network == slug }
}

func anyOf(fs ...func(*simNode) bool) func(*simNode) bool {
	return func(n *simNode) bool {
		for _, f := range fs {
			if f(n) {
				return true
			}
		}
		return false
	}
}

// notLinked returns a node of the federation that is not n, not linked to
// n and not linked to any of n's links: two hops away at least.
func notLinked(t *testing.T, f *simFederation, n *simNode) *simNode {
	t.Helper()
	near := map[*simNode]bool{n: true}
	for _, l := range n.links {
		near[l] = true
		for _, ll := range l.links {
			near[ll] = true
		}
	}
	for _, o := range f.nodes {
		if !near[o] && o.self.Region == n.self.Region {
			return o
		}
	}
	t.Fatalf("every node of %s's region is within two hops of it", n.self.Network)
	return nil
}

// TestFederation100 runs 100 member networks in one process, each node
// linked to its two ring neighbours and one random other node, so most
// records must be relayed. Every node pulls from its links, round after
// round, until a round moves nothing. What a member would check:
//   - a members-wide record reaches all 100 networks, through relays;
//   - a region:X record reaches exactly the members of X, relayed only
//     by them: a region whose members are not linked to each other gets
//     it only as far as its own links carry it (here: nowhere);
//   - a network:SLUG record reaches SLUG if SLUG pulls from its origin
//     directly, and nobody otherwise: no other node may relay it;
//   - a private record reaches nobody;
//   - nothing arrives twice from the same relay, nothing comes back to its
//     origin, no node sees a record its audience does not admit, and
//     nothing is rejected.
func TestFederation100(t *testing.T) {
	const nodes = 100
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := newSimFederation(t, simConfig{Nodes: nodes, Chords: 1, Seed: simSeed})
	body := simBody(t, 1000)
	all := func(*simNode) bool { return true }
	none := func(*simNode) bool { return false }

	europe := f.nodes[60]
	if europe.self.Region != "europe" {
		t.Fatalf("node 60 is in %s; the layout changed", europe.self.Region)
	}
	spread := f.nodes[nodes/len(simRegions)-1]
	if spread.self.Region != simSpread {
		t.Fatalf("node %d is in %s; the layout changed", spread.idx, spread.self.Region)
	}
	sender := f.nodes[10]
	direct := sender.links[0]
	far := notLinked(t, f, sender)
	asia := f.nodes[30]
	recs := []*simRecord{
		{name: "members, from the first node", origin: f.nodes[0], aud: []string{"members"}, allowed: all},
		{name: "members, from europe", origin: europe, aud: []string{"members"}, allowed: all},
		{name: "region:europe", origin: europe, aud: []string{"region:europe"}, allowed: inRegion("europe")},
		{name: "region:" + simSpread + " (members not linked to each other)", origin: spread, aud: []string{"region:" + simSpread}, allowed: inRegion(simSpread)},
		{name: "network:SLUG of a direct link", origin: sender, aud: []string{"network:" + direct.self.Network}, allowed: isNetwork(direct.self.Network)},
		{name: "network:SLUG two hops or more away", origin: sender, aud: []string{"network:" + far.self.Network}, allowed: isNetwork(far.self.Network)},
		{name: "region:asia plus one network elsewhere", origin: asia, aud: []string{"network:net-090", "region:asia"}, allowed: anyOf(inRegion("asia"), isNetwork("net-090"))},
		{name: "private", origin: f.nodes[30], aud: []string{"private"}, allowed: none},
		{name: "no audience (private)", origin: f.nodes[70], allowed: none},
	}
	for _, r := range recs {
		r.dist = f.reach(r.origin, func(n *simNode) bool { return n == r.origin || r.allowed(n) })
		r.want = sortedKeys(r.dist)
		r.hash = r.origin.write(t, body, r.aud...)
	}

	// The topology is what the assertions below need, so they can fail.
	members, eu, pac := recs[0], recs[2], recs[3]
	if len(members.want) != nodes || slices.Max(sortedValues(members.dist)) < 3 {
		t.Fatalf("the topology does not make members-wide records relay: reach %d, eccentricity %d", len(members.want), slices.Max(sortedValues(members.dist)))
	}
	var euNodes []int
	for _, n := range f.nodes {
		if n.self.Region == "europe" {
			euNodes = append(euNodes, n.idx)
		}
	}
	if !slices.Equal(eu.want, euNodes) {
		t.Fatalf("europe's members are not connected among themselves: reach %v, region %v", eu.want, euNodes)
	}
	if !slices.Equal(pac.want, []int{spread.idx}) {
		t.Fatalf("%s's members are linked to each other: reach %v", simSpread, pac.want)
	}
	if !slices.Equal(recs[4].want, sorted(sender.idx, direct.idx)) || !slices.Equal(recs[5].want, []int{sender.idx}) {
		t.Fatalf("network records: reach %v and %v", recs[4].want, recs[5].want)
	}

	bytesBefore := f.bytes.Load()
	start := time.Now()
	var fullAt time.Duration
	var fullBytes int64
	rounds, err := f.propagate(ctx, nodes, func(round int) {
		done := true
		for _, r := range recs {
			if r.full == 0 && slices.Equal(f.holders(r.hash), r.want) {
				r.full = round
			}
			done = done && r.full != 0
		}
		if done && fullAt == 0 {
			fullAt, fullBytes = time.Since(start), f.bytes.Load()-bytesBefore
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	total := time.Since(start)

	for _, r := range recs {
		if got := f.holders(r.hash); !slices.Equal(got, r.want) {
			t.Errorf("%s (%v from %s): held by %v, want %v", r.name, r.aud, r.origin.self.Network, got, r.want)
		}
		// Pulls run concurrently, so a record can travel several hops in one
		// round, never fewer than one.
		if ecc := slices.Max(sortedValues(r.dist)); r.full == 0 || r.full > max(ecc, 1) {
			t.Errorf("%s: reached its audience after round %d; it is %d hops from its farthest holder, one round per hop at most", r.name, r.full, ecc)
		}
		for _, n := range f.nodes {
			if _, ok := r.dist[n.idx]; !ok || n == r.origin {
				if c := n.sink.offers(r.hash); c != 0 {
					t.Errorf("%s: %s (%s) was sent it %d times, and may not hold it or wrote it", r.name, n.self.Network, n.self.Region, c)
				}
			}
		}
	}
	if got := f.holders(members.hash); len(got) != nodes {
		t.Errorf("the members-wide record reached %d of %d networks", len(got), nodes)
	}
	links, received, duplicates := 0, 0, 0
	for _, n := range f.nodes {
		links += len(n.links)
		if tw := n.sink.twice(); len(tw) > 0 {
			t.Errorf("%s was sent the same version twice by one relay: %v", n.self.Network, tw)
		}
		if rej := n.sink.rejections(); len(rej) > 0 {
			t.Errorf("%s rejected %d versions: %v", n.self.Network, len(rej), rej)
		}
	}
	links /= 2
	for _, r := range rounds {
		received += r.Received
		duplicates += r.Duplicates
	}
	quiet := rounds[len(rounds)-1]
	if quiet.Received != 0 || quiet.Requests != 2*links {
		t.Errorf("the last round sent %d envelopes in %d requests; want none in one request per pull (%d)", quiet.Received, quiet.Requests, 2*links)
	}
	stored := 0
	for _, r := range recs {
		stored += len(r.want) - 1
	}
	if received-duplicates != stored {
		t.Errorf("%d envelopes received, %d of them duplicates; want %d newly stored", received, duplicates, stored)
	}
	t.Logf("%d networks, %d links (ring + %d chord per node, seed %d), %d records; members-wide eccentricity %d hops",
		nodes, links, 1, simSeed, len(recs), slices.Max(sortedValues(members.dist)))
	t.Logf("all audiences reached after %d rounds, %s, %d bytes on pull streams; quiet after %d rounds, %s, %d bytes",
		slices.MaxFunc(recs, func(a, b *simRecord) int { return a.full - b.full }).full, fullAt.Round(time.Millisecond), fullBytes,
		len(rounds), total.Round(time.Millisecond), f.bytes.Load()-bytesBefore)
	t.Logf("%d deliveries stored, %d envelopes received (%d duplicates from a second relay)", stored, received, duplicates)
}

func sortedValues(m map[int]int) []int {
	out := make([]int, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func sorted(xs ...int) []int { slices.Sort(xs); return xs }

// BenchmarkFederation100 measures propagation of a burst of members-wide
// records through the 100-node federation of TestFederation100: each op,
// 20 networks write 10 records each (1.5 KB), and the nodes pull in rounds
// until a round moves nothing. ns/op is the wall clock from the first pull
// to the quiet round; wire-B/op the bytes on pull streams.
func BenchmarkFederation100(b *testing.B) {
	const nodes, origins, perOrigin = 100, 20, 10
	f := newSimFederation(b, simConfig{Nodes: nodes, Chords: 1, Seed: simSeed})
	body := simBody(b, 1500)
	ctx := context.Background()
	var bytes, rounds, received int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var hashes []string
		for o := range origins {
			n := f.nodes[o*nodes/origins]
			for range perOrigin {
				hashes = append(hashes, n.write(b, body, "members"))
			}
		}
		before := f.bytes.Load()
		b.StartTimer()
		rs, err := f.propagate(ctx, nodes, nil)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		for _, h := range hashes {
			if got := len(f.holders(h)); got != nodes {
				b.Fatalf("a record reached %d of %d networks", got, nodes)
			}
		}
		bytes += f.bytes.Load() - before
		rounds += int64(len(rs))
		for _, r := range rs {
			received += int64(r.Received)
		}
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N)
	deliveries := float64(origins * perOrigin * (nodes - 1))
	b.ReportMetric(float64(bytes)/n, "wire-B/op")
	b.ReportMetric(float64(bytes)/n/deliveries, "wire-B/delivery")
	b.ReportMetric(float64(rounds)/n, "rounds/op")
	b.ReportMetric(float64(received)/n/deliveries, "received/delivery")
}
