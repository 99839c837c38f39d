package federation

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model/templates"
	"github.com/inpud/cairn/node/p2p"
	"github.com/inpud/cairn/node/registry"
)

// The registry benchmarks of issue 3 ("make bench"): commit latency with
// three stewards on loopback, and the time a new member takes to receive a
// registry of 500 networks. Real libp2p hosts on 127.0.0.1, real raft
// logs in temp dirs, FastConfig timings (DESIGN §10's loopback profile).

// benchNode is one node of a benchmark federation. It mirrors member in
// federation_test.go, built from a testing.TB.
type benchNode struct {
	h   host.Host
	g   *p2p.Gater
	reg *Registry
}

func newBenchNode(tb testing.TB) *benchNode {
	tb.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	raw, _ := priv.Raw()
	n := &benchNode{}
	n.g = p2p.NewGater(func(peer.ID) bool { return false })
	n.g.AdmitGuests(4)
	cfg := p2p.DefaultConfig()
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	if n.h, err = p2p.New(priv, cfg, n.g); err != nil {
		tb.Fatal(err)
	}
	if n.reg, err = Open(FastConfig(filepath.Join(tb.TempDir(), "registry")), n.h, n.g, ed25519.PrivateKey(raw)); err != nil {
		n.h.Close()
		tb.Fatal(err)
	}
	n.g.SetAllow(n.reg.Allowed)
	tb.Cleanup(func() {
		if err := n.reg.Close(); err != nil {
			tb.Errorf("close registry: %v", err)
		}
		n.h.Close()
	})
	return n
}

func (n *benchNode) publish(tb testing.TB) {
	tb.Helper()
	var addrs []string
	for _, a := range n.h.Addrs() {
		addrs = append(addrs, a.String())
	}
	if _, err := n.reg.Propose(context.Background(), registry.SetAddrs, registry.SetAddrsArgs{Addrs: addrs}); err != nil {
		tb.Fatalf("publish addresses: %v", err)
	}
}

func benchWait(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// benchFederation forms a federation of three stewards the way people do:
// the first bootstraps (with the built-in templates), invites the other
// two as stewards, and they join. It returns once raft has three voters.
func benchFederation(tb testing.TB) []*benchNode {
	tb.Helper()
	ctx := context.Background()
	nodes := []*benchNode{newBenchNode(tb), newBenchNode(tb), newBenchNode(tb)}
	first := nodes[0]
	if _, err := first.reg.Bootstrap(ctx, registry.GenesisArgs{Network: registry.Profile{Slug: "inpud", Name: "INPUD", Level: "global"}, Templates: templates.Builtin()}); err != nil {
		tb.Fatal(err)
	}
	first.publish(tb)
	for i, n := range nodes[1:] {
		slug := []string{"anpud", "enpud"}[i]
		code, err := first.reg.Invite(ctx, registry.Profile{Slug: slug, Name: slug, Level: "regional"}, registry.RoleSteward, time.Hour)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := n.reg.Join(ctx, code); err != nil {
			tb.Fatalf("%s join: %v", slug, err)
		}
		n.publish(tb)
	}
	benchWait(tb, 20*time.Second, "three voters", func() bool {
		st, err := first.reg.Status()
		return err == nil && len(st.Voters) == 3 && st.Role == "leader"
	})
	return nodes
}

// benchPercentile returns the p-th percentile (0-100) of sorted durations, in ms.
func benchPercentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// reportLatencies reports the ms-p50, ms-p99 and ms-max of lat, and sets
// ns/op to the mean (lat may hold more proposals than b.N).
func reportLatencies(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	b.ReportMetric(float64(sum)/float64(len(lat)), "ns/op")
	b.ReportMetric(benchPercentile(lat, 50), "ms-p50")
	b.ReportMetric(benchPercentile(lat, 99), "ms-p99")
	b.ReportMetric(benchPercentile(lat, 100), "ms-max")
}

// proposeUpdates has n propose count updates of its own network's
// profile prof (the name alternates), one after another, and returns the end-to-end time of each
// Propose call: signing, forwarding if n is not the leader, commit by a
// quorum and apply on the leader. The whole run is bounded by limit.
func proposeUpdates(tb testing.TB, n *benchNode, prof registry.Profile, count int, limit time.Duration) []time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	lat := make([]time.Duration, 0, count)
	for i := range count {
		p := prof
		p.Name = fmt.Sprintf("%s (%d)", prof.Name, i%2)
		args := registry.UpdateNetworkArgs{Network: p}
		start := time.Now()
		if _, err := n.reg.Propose(ctx, registry.UpdateNetwork, args); err != nil {
			tb.Fatalf("proposal %d of %d: %v", i+1, count, err)
		}
		lat = append(lat, time.Since(start))
	}
	return lat
}

// BenchmarkCommitLatency: three stewards on loopback; a profile update
// proposed on the leader, then on a follower steward (which forwards it to
// the leader over ProposeProtocol). Each op is one Propose call, timed
// from the call until it returns with the change committed and applied.
func BenchmarkCommitLatency(b *testing.B) {
	nodes := benchFederation(b)
	var leader, follower *benchNode
	for _, n := range nodes {
		if n.reg.isLeader() {
			leader = n
		} else if follower == nil {
			follower = n
		}
	}
	if leader == nil || follower == nil {
		b.Fatal("no leader and follower among the three stewards")
	}
	profileOf := func(n *benchNode) registry.Profile {
		var p registry.Profile
		n.reg.View(func(s *registry.State) {
			k, _ := s.Node(n.h.ID().String())
			net, _ := s.Network(k.Network)
			p = net.Profile
		})
		return p
	}
	run := func(name string, n *benchNode) {
		b.Run(name, func(b *testing.B) {
			term := leader.reg.raft.CurrentTerm()
			b.ResetTimer()
			lat := proposeUpdates(b, n, profileOf(n), max(b.N, 200), 5*time.Minute)
			b.StopTimer()
			reportLatencies(b, lat)
			if t := leader.reg.raft.CurrentTerm(); t != term || !leader.reg.isLeader() {
				b.Errorf("the leader changed during the run (term %d -> %d): the numbers include an election", term, t)
			}
		})
	}
	run("leader", leader)
	run("forwarded", follower)
}

// joinKeyOnly registers network slug as a member whose node exists only as
// a key: the leader invites it and submits the join the key signed. Such
// a node publishes no address; raft lists it as a non-voter it cannot reach.
func joinKeyOnly(tb testing.TB, ctx context.Context, leader *benchNode, slug string) {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	lpub, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(lpub)
	if err != nil {
		tb.Fatal(err)
	}
	invite, secret := randomHex(16), randomHex(32)
	if _, err := leader.reg.Propose(ctx, registry.CreateInvite, registry.CreateInviteArgs{ID: invite, SecretHash: registry.HashSecret(secret),
		Network: registry.Profile{Slug: slug, Name: "Network " + slug, Level: "local", Country: "TZ"}, Role: registry.RoleMember, Expires: time.Now().Add(time.Hour).UnixMilli()}); err != nil {
		tb.Fatalf("invite %s: %v", slug, err)
	}
	sc, err := registry.Sign(priv, id.String(), registry.Join, registry.JoinArgs{Invite: invite, Secret: secret})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := leader.reg.Submit(ctx, sc); err != nil {
		tb.Fatalf("join %s: %v", slug, err)
	}
}

func benchNetworkCount(r *Registry) int {
	var n int
	r.View(func(s *registry.State) { n = len(s.Networks) })
	return n
}

// BenchmarkJoin500: a federation of 500 networks (3 steward nodes with
// hosts, 497 members that exist only as keys), then a new member node:
// each op is one Join, from the call until the new node's own replica
// holds every network. "log" is a young federation (the new node replays
// the whole raft log); "snapshot" is after the leader has taken a snapshot
// and compacted its log (the new node installs the snapshot).
func BenchmarkJoin500(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a 500-network federation; skipped with -short")
	}
	const networks = 500
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	nodes := benchFederation(b)
	leader := nodes[0]

	// Build the registry, timing each invite + join to see whether commits
	// slow down as the registry (and raft's set of unreachable non-voters)
	// grows.
	start := time.Now()
	var early, late []time.Duration
	for i := 3; i < networks; i++ {
		t0 := time.Now()
		joinKeyOnly(b, ctx, leader, fmt.Sprintf("net-%03d", i))
		d := time.Since(t0)
		if i < 100 {
			early = append(early, d)
		} else if i >= networks-100 {
			late = append(late, d)
		}
	}
	built := time.Since(start)
	// Raft follows the registry: 497 non-voters nobody can reach.
	t0 := time.Now()
	benchWait(b, 2*time.Minute, "raft to list every member as a non-voter", func() bool {
		st, err := leader.reg.Status()
		return err == nil && len(st.NonVoters) == networks-3
	})
	reconciled := time.Since(t0)
	slices.Sort(early)
	slices.Sort(late)
	b.Logf("built %d networks in %v (invite + join per network: p50 %.1f ms for networks 4-100, %.1f ms for 401-500); raft listed every non-voter %v later; last log index %d",
		networks, built.Round(time.Millisecond), benchPercentile(early, 50), benchPercentile(late, 50), reconciled.Round(time.Millisecond), leader.reg.raft.LastIndex())
	// Commit latency with 497 unreachable non-voters in the configuration.
	lat := proposeUpdates(b, leader, registry.Profile{Slug: "inpud", Name: "INPUD", Level: "global"}, 200, 5*time.Minute)
	slices.Sort(lat)
	commitP50, commitP99 := benchPercentile(lat, 50), benchPercentile(lat, 99)
	b.Logf("commit latency on the leader with %d networks: p50 %.2f ms, p99 %.2f ms", networks, commitP50, commitP99)

	joined := 0 // new member nodes added so far
	join := func(b *testing.B) {
		b.ReportMetric(commitP50, "ms-commit-p50")
		b.ReportMetric(commitP99, "ms-commit-p99")
		var total, worst time.Duration
		for range b.N {
			b.StopTimer()
			n := newBenchNode(b)
			joined++
			code, err := leader.reg.Invite(ctx, registry.Profile{Slug: fmt.Sprintf("new-%03d", joined), Name: "New network", Level: "national", Country: "KE"}, registry.RoleMember, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			want := benchNetworkCount(leader.reg) + 1 // and the new node's own
			b.StartTimer()
			t0 := time.Now()
			if _, err := n.reg.Join(ctx, code); err != nil {
				b.Fatalf("join: %v", err)
			}
			benchWait(b, 30*time.Second, fmt.Sprintf("the new node to hold %d networks", want), func() bool { return benchNetworkCount(n.reg) >= want })
			d := time.Since(t0)
			b.StopTimer()
			total += d
			worst = max(worst, d)
			if got := n.reg.State(); got.Genesis != leader.reg.State().Genesis {
				b.Fatal("the new node holds another federation")
			}
		}
		b.ReportMetric(total.Seconds()/float64(b.N), "s-to-receive-500")
		b.ReportMetric(worst.Seconds(), "s-worst")
	}
	b.Run("log", join)
	// hashicorp/raft refuses a user snapshot while the latest configuration
	// change (here the new node becoming a non-voter) is newer than the last
	// command the FSM applied: apply one more command, then retry.
	var snapErr error
	for i := range 20 {
		if snapErr = leader.reg.raft.Snapshot().Error(); snapErr == nil {
			break
		}
		proposeUpdates(b, leader, registry.Profile{Slug: "inpud", Name: "INPUD", Level: "global"}, 1, time.Minute)
		time.Sleep(time.Duration(i) * 10 * time.Millisecond)
	}
	if snapErr != nil {
		b.Fatalf("snapshot: %v", snapErr)
	}
	first, _ := leader.reg.bolt.FirstIndex()
	b.Logf("after the snapshot the leader's log starts at index %d of %d: a new node installs the snapshot", first, leader.reg.raft.LastIndex())
	b.Run("snapshot", join)
}
