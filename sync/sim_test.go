package sync_test

import (
	"context"
	"slices"
	"testing"
	"time"
)

// simSeed fixes the federation's random chords, so a failure replays.
const simSeed = 20261123

// simNodes is the size of the simulated federation.
const simNodes = 100

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

// ecc is the most hops the record must travel.
func (r *simRecord) ecc() int {
	e := 0
	for _, d := range r.dist {
		e = max(e, d)
	}
	return e
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

// notLinked returns a node of n's region that is not n, not linked to n
// and not linked to any of n's links: two hops away at least.
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

// simRecords is what the tests write: one record per audience case, with
// the nodes the topology lets each reach. It checks that the topology
// makes the cases what their names say, so the assertions can fail.
func simRecords(t *testing.T, f *simFederation) []*simRecord {
	t.Helper()
	all := func(*simNode) bool { return true }
	none := func(*simNode) bool { return false }
	europe := f.nodes[60]
	spread := f.nodes[len(f.nodes)/len(simRegions)-1]
	if europe.self.Region != "europe" || spread.self.Region != simSpread {
		t.Fatalf("nodes 60 and %d are in %s and %s; the layout changed", spread.idx, europe.self.Region, spread.self.Region)
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
		{name: "private", origin: asia, aud: []string{"private"}, allowed: none},
		{name: "no audience (private)", origin: f.nodes[70], allowed: none},
	}
	for _, r := range recs {
		r.dist = f.reach(r.origin, func(n *simNode) bool { return n == r.origin || r.allowed(n) })
		r.want = sortedKeys(r.dist)
	}

	members, eu, pac := recs[0], recs[2], recs[3]
	if len(members.want) != len(f.nodes) || members.ecc() < 3 {
		t.Fatalf("the topology does not make members-wide records relay: reach %d, %d hops", len(members.want), members.ecc())
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
	return recs
}

// done reports whether every record is held by exactly the nodes it may
// reach.
func done(f *simFederation, recs []*simRecord) bool {
	for _, r := range recs {
		if !slices.Equal(f.holders(r.hash), r.want) {
			return false
		}
	}
	return true
}

// checkAudiences asserts what a member would check once sync is quiet:
// every record is held by exactly the nodes its audience and the topology
// let it reach; no node outside that set, and not its origin, was ever
// sent it; no relay sent any node the same version twice; nothing was
// rejected.
func checkAudiences(t *testing.T, f *simFederation, recs []*simRecord) {
	t.Helper()
	for _, r := range recs {
		if got := f.holders(r.hash); !slices.Equal(got, r.want) {
			t.Errorf("%s (%v from %s): held by %v, want %v", r.name, r.aud, r.origin.self.Network, got, r.want)
		}
		for _, n := range f.nodes {
			if _, ok := r.dist[n.idx]; !ok || n == r.origin {
				if c := n.sink.offers(r.hash); c != 0 {
					t.Errorf("%s: %s (%s) was sent it %d times, and may not hold it or wrote it", r.name, n.self.Network, n.self.Region, c)
				}
			}
		}
	}
	if got := f.holders(recs[0].hash); len(got) != len(f.nodes) {
		t.Errorf("the members-wide record reached %d of %d networks", len(got), len(f.nodes))
	}
	for _, n := range f.nodes {
		if tw := n.sink.twice(); len(tw) > 0 {
			t.Errorf("%s was sent the same version twice by one relay: %v", n.self.Network, tw)
		}
		if rej := n.sink.rejections(); len(rej) > 0 {
			t.Errorf("%s rejected %d versions: %v", n.self.Network, len(rej), rej)
		}
	}
}

// deliveries is how many (node, record) pairs the records must reach,
// origins not counted.
func deliveries(recs []*simRecord) int {
	d := 0
	for _, r := range recs {
		d += len(r.want) - 1
	}
	return d
}

// offered is how many envelopes all sinks were sent.
func offered(f *simFederation) int {
	total := 0
	for _, n := range f.nodes {
		n.sink.mu.Lock()
		for _, c := range n.sink.offered {
			total += c
		}
		n.sink.mu.Unlock()
	}
	return total
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
//     nothing is rejected;
//   - a record travels at least one hop per round.
func TestFederation100(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := newSimFederation(t, simConfig{Nodes: simNodes, Chords: 1, Seed: simSeed})
	recs := simRecords(t, f)
	body := simBody(t, 1000)
	for _, r := range recs {
		r.hash = r.origin.write(t, body, r.aud...)
	}

	start := time.Now()
	var fullAt time.Duration
	var fullBytes int64
	rounds, err := f.propagate(ctx, simNodes, func(round int) {
		for _, r := range recs {
			if r.full == 0 && slices.Equal(f.holders(r.hash), r.want) {
				r.full = round
			}
		}
		if fullAt == 0 && done(f, recs) {
			fullAt, fullBytes = time.Since(start), f.bytes.Load()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	total := time.Since(start)

	checkAudiences(t, f, recs)
	fullRounds := 0
	for _, r := range recs {
		// Pulls run concurrently, so a record can travel several hops in one
		// round, never fewer than one.
		if r.full == 0 || r.full > max(r.ecc(), 1) {
			t.Errorf("%s: reached its audience after round %d; it is %d hops from its farthest holder, one round per hop at most", r.name, r.full, r.ecc())
		}
		fullRounds = max(fullRounds, r.full)
	}
	links, received, duplicates := 0, 0, 0
	for _, n := range f.nodes {
		links += len(n.links)
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
	if want := deliveries(recs); received-duplicates != want {
		t.Errorf("%d envelopes received, %d of them duplicates; want %d newly stored", received, duplicates, want)
	}
	t.Logf("%d networks, %d links (ring + 1 chord per node, seed %d), %d records; members-wide: %d hops from its origin to the farthest node",
		simNodes, links, simSeed, len(recs), recs[0].ecc())
	t.Logf("rounds of pulls: every audience reached after %d rounds, %s, %d bytes on pull streams; quiet after %d rounds, %s, %d bytes",
		fullRounds, fullAt.Round(time.Millisecond), fullBytes, len(rounds), total.Round(time.Millisecond), f.bytes.Load())
	t.Logf("%d deliveries, %d envelopes received (%d duplicates, sent by a second relay)", deliveries(recs), received, duplicates)
}

// TestFederation100Notify is TestFederation100 with no rounds at all: the
// nodes only notify their links when their feed grows and pull when told.
// The same records must reach exactly the same nodes, the notify path
// alone must bring every node's checkpoint to each link's head (a lost
// notify would leave one behind), and a round of pulls afterwards must
// find nothing left to move.
func TestFederation100Notify(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := newSimFederation(t, simConfig{Nodes: simNodes, Chords: 1, Seed: simSeed, Notify: true})
	recs := simRecords(t, f)
	body := simBody(t, 1000)

	start := time.Now()
	for _, r := range recs {
		r.hash = r.origin.write(t, body, r.aud...)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !done(f, recs) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	fullAt, fullBytes := time.Since(start), f.bytes.Load()
	if err := f.waitSettled(time.Now().Add(20 * time.Second)); err != nil {
		t.Error(err)
	}
	total := time.Since(start)
	f.stopNotify()
	if err := f.notifyErrors(); err != nil {
		t.Errorf("the notify path failed: %v", err)
	}

	checkAudiences(t, f, recs)
	got := offered(f)
	if d := deliveries(recs); got < d {
		t.Errorf("%d envelopes sent for %d deliveries", got, d)
	}
	settledBytes := f.bytes.Load()
	st, err := f.round(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Received != 0 {
		t.Errorf("a round of pulls after the notify path settled moved %d envelopes; notify missed them", st.Received)
	}
	t.Logf("notify: every audience reached in %s, %d bytes on pull streams; settled after %s: %d bytes on pull streams, %d on notify streams, %d pulls",
		fullAt.Round(time.Millisecond), fullBytes, total.Round(time.Millisecond), settledBytes, f.notify.bytes.Load(), f.notify.pulls.Load())
	var heard uint64
	for _, n := range f.nodes {
		heard += n.notify.srv.Stats().Received
	}
	t.Logf("%d deliveries, %d envelopes sent (%d duplicates, sent by a second relay), %d notifies heard", deliveries(recs), got, got-deliveries(recs), heard)
}

func sorted(xs ...int) []int { slices.Sort(xs); return xs }

// BenchmarkFederation100 measures propagation of a burst of members-wide
// records through the 100-node federation of TestFederation100: each op,
// 20 networks write 10 records each (about 1.5 KB), and they travel until
// every node holds all of them and sync is quiet.
//   - rounds: every node pulls from its links, round after round, until a
//     round moves nothing; each sink verifies every envelope it is sent,
//     as node/sink.go does.
//   - rounds-skip-held: the same, but a sink skips versions it already
//     holds (by hash) before decoding and verifying them.
//   - notify: no rounds; nodes notify their links when their feed grows
//     and pull when told, until the path has settled.
//
// ns/op is the wall clock from the first pull (or the writes) to quiet;
// wire-B/op the bytes on pull (and notify) streams.
func BenchmarkFederation100(b *testing.B) {
	b.Run("rounds", func(b *testing.B) { benchFederation(b, false, false) })
	b.Run("rounds-skip-held", func(b *testing.B) { benchFederation(b, true, false) })
	b.Run("notify", func(b *testing.B) { benchFederation(b, false, true) })
}

func benchFederation(b *testing.B, skipHeld, notify bool) {
	const origins, perOrigin = 20, 10
	f := newSimFederation(b, simConfig{Nodes: simNodes, Chords: 1, Seed: simSeed, SkipHeld: skipHeld, Notify: notify})
	body := simBody(b, 1500)
	ctx := context.Background()
	var bytes, rounds, received int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var hashes []string
		before := f.bytes.Load() + f.notify.bytes.Load()
		sent := offered(f)
		if notify {
			b.StartTimer()
		}
		for o := range origins {
			n := f.nodes[o*simNodes/origins]
			for range perOrigin {
				hashes = append(hashes, n.write(b, body, "members"))
			}
		}
		if notify {
			if err := f.waitSettled(time.Now().Add(10 * time.Minute)); err != nil {
				b.Fatal(err)
			}
		} else {
			b.StartTimer()
			rs, err := f.propagate(ctx, simNodes, nil)
			if err != nil {
				b.Fatal(err)
			}
			rounds += int64(len(rs))
		}
		b.StopTimer()
		for _, h := range hashes {
			if got := len(f.holders(h)); got != simNodes {
				b.Fatalf("a record reached %d of %d networks", got, simNodes)
			}
		}
		bytes += f.bytes.Load() + f.notify.bytes.Load() - before
		received += int64(offered(f) - sent)
		b.StartTimer()
	}
	b.StopTimer()
	if err := f.notifyErrors(); err != nil {
		b.Fatal(err)
	}
	n := float64(b.N)
	deliveries := float64(origins * perOrigin * (simNodes - 1))
	b.ReportMetric(float64(bytes)/n, "wire-B/op")
	b.ReportMetric(float64(bytes)/n/deliveries, "wire-B/delivery")
	b.ReportMetric(float64(received)/n/deliveries, "received/delivery")
	if !notify {
		b.ReportMetric(float64(rounds)/n, "rounds/op")
	}
}
