package raftnet

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/inpud/cairn/node/p2p"
)

// counter is a trivial FSM: how many entries it applied, a running hash
// of their bytes (two replicas are equal only if they applied the same
// entries in the same order) and which distinct entries it saw (a retried
// apply after a leadership change may commit an entry twice).
type counter struct {
	mu       sync.Mutex
	st       counterState
	restores int
}

type counterState struct {
	N    uint64
	Sum  uint64
	Seen map[string]bool
}

func (c *counter) Apply(l *raft.Log) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := fnv.New64a()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], c.st.Sum)
	h.Write(b[:])
	h.Write(l.Data)
	c.st.Sum = h.Sum64()
	c.st.N++
	if c.st.Seen == nil {
		c.st.Seen = make(map[string]bool)
	}
	c.st.Seen[string(l.Data)] = true
	return nil
}

// state returns the count, the hash and the number of distinct entries.
func (c *counter) state() (n, sum uint64, distinct int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.N, c.st.Sum, len(c.st.Seen)
}

func (c *counter) restored() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restores
}

func (c *counter) Snapshot() (raft.FSMSnapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := json.Marshal(c.st)
	return snapshot(b), err
}

func (c *counter) Restore(r io.ReadCloser) error {
	defer r.Close()
	var st counterState
	if err := json.NewDecoder(r).Decode(&st); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st = st // replaces, never merges
	c.restores++
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (snapshot) Release() {}

// set is a goroutine-safe set of peers, used both as the p2p membership
// and as raftnet's allow function.
type set struct {
	mu sync.RWMutex
	m  map[peer.ID]bool
}

func newSet() *set { return &set{m: make(map[peer.ID]bool)} }

func (s *set) add(p peer.ID) {
	s.mu.Lock()
	s.m[p] = true
	s.mu.Unlock()
}

func (s *set) remove(p peer.ID) {
	s.mu.Lock()
	delete(s.m, p)
	s.mu.Unlock()
}

func (s *set) has(p peer.ID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[p]
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newHost(t testing.TB, members *set) host.Host {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := p2p.DefaultConfig()
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	h, err := p2p.New(key, cfg, p2p.NewGater(members.has))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	members.add(h.ID())
	return h
}

func testConfig() Config {
	c := DefaultConfig()
	c.Timeout = 2 * time.Second
	c.Logger = quiet
	return c
}

// node is one Raft server on a real libp2p host with a Bolt store.
type node struct {
	h       host.Host
	trans   *raft.NetworkTransport
	r       *raft.Raft
	fsm     *counter
	refused atomic.Int64
	stopped bool
}

func (n *node) id() raft.ServerID { return ServerID(n.h.ID()) }

// cluster is a set of nodes sharing one membership (for the gaters) and
// one voter set (for raftnet's allow).
type cluster struct {
	t       testing.TB
	members *set
	voters  *set
	nodes   []*node
	tweak   func(*raft.Config)
}

func newCluster(t testing.TB, voters int, tweak func(*raft.Config)) *cluster {
	c := &cluster{t: t, members: newSet(), voters: newSet(), tweak: tweak}
	for range voters {
		n := c.addNode()
		c.voters.add(n.h.ID())
	}
	var servers []raft.Server
	for _, n := range c.nodes {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: n.id(), Address: ServerAddress(n.h.ID())})
	}
	if err := c.nodes[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return c
}

// addNode starts a host and a Raft server that is in no configuration
// yet, and tells every host where every other one listens.
func (c *cluster) addNode() *node {
	t := c.t
	t.Helper()
	h := newHost(t, c.members)
	for _, o := range c.nodes {
		o.h.Peerstore().AddAddrs(h.ID(), h.Addrs(), peerstore.PermanentAddrTTL)
		h.Peerstore().AddAddrs(o.h.ID(), o.h.Addrs(), peerstore.PermanentAddrTTL)
	}
	n := &node{h: h, fsm: &counter{}}
	cfg := testConfig()
	cfg.OnRefused = func(peer.ID) { n.refused.Add(1) }
	trans, err := New(h, c.voters.has, cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.trans = trans

	dir := t.TempDir()
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")}) // fsync on
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = n.id()
	rc.HeartbeatTimeout = 250 * time.Millisecond
	rc.ElectionTimeout = 250 * time.Millisecond
	rc.LeaderLeaseTimeout = 150 * time.Millisecond
	rc.CommitTimeout = 10 * time.Millisecond
	rc.Logger = HCLog(quiet, slog.LevelError)
	if c.tweak != nil {
		c.tweak(rc)
	}
	r, err := raft.NewRaft(rc, n.fsm, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	n.r = r
	t.Cleanup(func() { n.stop(t) })
	c.nodes = append(c.nodes, n)
	return n
}

// stop shuts the Raft server down (which closes its transport) and waits.
func (n *node) stop(t testing.TB) {
	if n.stopped {
		return
	}
	n.stopped = true
	if err := n.r.Shutdown().Error(); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func (c *cluster) running() []*node {
	var out []*node
	for _, n := range c.nodes {
		if !n.stopped {
			out = append(out, n)
		}
	}
	return out
}

// leader waits for exactly one running node to lead.
func (c *cluster) leader() *node {
	c.t.Helper()
	var l *node
	eventually(c.t, 10*time.Second, "no leader elected", func() bool {
		l = nil
		for _, n := range c.running() {
			if n.r.State() == raft.Leader {
				if l != nil {
					return false
				}
				l = n
			}
		}
		return l != nil
	})
	return l
}

// apply commits count entries, one at a time, through whichever node
// leads; an entry whose leader stepped down is retried with the next one.
func (c *cluster) apply(from, count int) {
	c.t.Helper()
	for i := from; i < from+count; i++ {
		for try := 0; ; try++ {
			err := c.leader().r.Apply([]byte("entry "+strconv.Itoa(i)), 5*time.Second).Error()
			if err == nil {
				break
			}
			if try == 5 || !(errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrNotLeader)) {
				c.t.Fatalf("apply entry %d: %v", i, err)
			}
			c.t.Logf("apply entry %d: %v; retrying with the new leader", i, err)
		}
	}
}

// converge waits until every running node's FSM holds the same entries,
// want distinct ones.
func (c *cluster) converge(want int) {
	c.t.Helper()
	eventually(c.t, 10*time.Second, fmt.Sprintf("replicas did not all reach %d equal entries", want), func() bool {
		var n0, sum0 uint64
		for i, nd := range c.running() {
			n, sum, distinct := nd.fsm.state()
			if distinct != want {
				return false
			}
			if i == 0 {
				n0, sum0 = n, sum
			} else if n != n0 || sum != sum0 {
				return false // an entry retried may still be on its way
			}
		}
		return true
	})
}

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func term(r *raft.Raft) uint64 {
	v, err := strconv.ParseUint(r.Stats()["term"], 10, 64)
	if err != nil {
		panic(err)
	}
	return v
}

func TestThreeVotersReplicateAndFailOver(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.apply(0, 100)
	c.converge(100)

	old := c.leader()
	old.stop(t)
	if err := old.h.Close(); err != nil {
		t.Fatal(err)
	}
	if c.leader() == old {
		t.Fatal("stopped leader still leads")
	}
	c.apply(100, 10)
	c.converge(110)
}

func TestNonVoterCatchesUpBySnapshot(t *testing.T) {
	c := newCluster(t, 3, func(rc *raft.Config) {
		rc.SnapshotThreshold = 10
		rc.TrailingLogs = 5
		rc.SnapshotInterval = time.Hour // only the explicit Snapshot below
	})
	c.apply(0, 100)
	c.converge(100)
	l := c.leader()
	if err := l.r.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}

	nv := c.addNode() // not a voter: raftnet's allow stays the three voters
	if err := l.r.AddNonvoter(nv.id(), ServerAddress(nv.h.ID()), 0, 5*time.Second).Error(); err != nil {
		t.Fatalf("add non-voter: %v", err)
	}
	c.converge(100)
	if nv.fsm.restored() == 0 {
		t.Fatal("non-voter caught up without installing a snapshot")
	}
	c.apply(100, 5)
	c.converge(105)
}

// TestStrangerCannotSendRaftMessages is RELIABILITY T9's Raft half: a peer
// the connection gater lets in (so raftnet's check is all that stands)
// sends AppendEntries and RequestVote with a huge term.
func TestStrangerCannotSendRaftMessages(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.apply(0, 10)
	c.converge(10)
	l := c.leader()
	var f *node
	for _, n := range c.nodes {
		if n != l {
			f = n
			break
		}
	}

	stranger := newHost(t, c.members) // admitted by every gater, not a voter
	stranger.Peerstore().AddAddrs(f.h.ID(), f.h.Addrs(), peerstore.PermanentAddrTTL)
	st, err := New(stranger, func(peer.ID) bool { return true }, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })

	const huge = uint64(1) << 40
	header := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(ServerID(stranger.ID())), Addr: []byte(ServerAddress(stranger.ID()))}
	before, refusedBefore := term(f.r), f.refused.Load()

	var ae raft.AppendEntriesResponse
	err = st.AppendEntries(f.id(), ServerAddress(f.h.ID()), &raft.AppendEntriesRequest{
		RPCHeader:         header,
		Term:              huge,
		PrevLogEntry:      0,
		PrevLogTerm:       0,
		Entries:           []*raft.Log{{Index: 1, Term: huge, Type: raft.LogCommand, Data: []byte("forged")}},
		LeaderCommitIndex: 1,
	}, &ae)
	if err == nil {
		t.Fatalf("stranger's AppendEntries was answered: %+v", ae)
	}
	var rv raft.RequestVoteResponse
	err = st.RequestVote(f.id(), ServerAddress(f.h.ID()), &raft.RequestVoteRequest{
		RPCHeader: header, Term: huge, LastLogIndex: huge, LastLogTerm: huge,
	}, &rv)
	if err == nil {
		t.Fatalf("stranger's RequestVote was answered: %+v", rv)
	}
	after := term(f.r)
	if after >= huge {
		t.Fatalf("follower took the stranger's term %d", after)
	}
	if after != before {
		// Only an honest election (under -race on a busy machine) may move
		// it, and then the leader agrees.
		if lt := term(c.leader().r); lt != after {
			t.Fatalf("follower term went from %d to %d, leader's is %d", before, after, lt)
		}
		t.Logf("an honest election moved the term from %d to %d", before, after)
	}
	eventually(t, 5*time.Second, "refused streams not counted", func() bool {
		return f.refused.Load() >= refusedBefore+2
	})
	t.Logf("stranger refused: AppendEntries and RequestVote failed (%v), follower term %d", err, after)

	// The cluster is unharmed.
	c.apply(10, 5)
	c.converge(15)
}

// TestAllowIsCheckedOnPooledStreams: a peer that stops being allowed loses
// the stream it already holds at its next message.
func TestAllowIsCheckedOnPooledStreams(t *testing.T) {
	members, allowed := newSet(), newSet()
	a, b := newHost(t, members), newHost(t, members)
	a.Peerstore().AddAddrs(b.ID(), b.Addrs(), peerstore.PermanentAddrTTL)
	allowed.add(a.ID())

	var refused atomic.Int64
	cfg := testConfig()
	cfg.OnRefused = func(peer.ID) { refused.Add(1) }
	ta, err := New(a, func(peer.ID) bool { return true }, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	tb, err := New(b, allowed.has, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // b answers every heartbeat
		for {
			select {
			case rpc := <-tb.Consumer():
				rpc.Respond(&raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
			case <-done:
				return
			}
		}
	})
	t.Cleanup(func() {
		_ = ta.Close()
		_ = tb.Close()
		close(done)
		wg.Wait()
	})

	heartbeat := func() error {
		var resp raft.AppendEntriesResponse
		return ta.AppendEntries(ServerID(b.ID()), ServerAddress(b.ID()), &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(ServerID(a.ID())), Addr: []byte(ServerAddress(a.ID()))},
			Term:      1,
		}, &resp)
	}
	for range 3 {
		if err := heartbeat(); err != nil {
			t.Fatalf("allowed peer's heartbeat: %v", err)
		}
	}
	if n := len(b.Network().ConnsToPeer(a.ID())[0].GetStreams()); n > 2 {
		t.Fatalf("%d streams for 3 sequential heartbeats: the pool is not reused", n)
	}

	allowed.remove(a.ID())
	if err := heartbeat(); err == nil {
		t.Fatal("heartbeat over a pooled stream served after the peer lost its place")
	}
	eventually(t, 5*time.Second, "refusal not counted", func() bool { return refused.Load() > 0 })
	for range 2 { // new streams are refused at accept too
		if err := heartbeat(); err == nil {
			t.Fatal("heartbeat on a new stream served after the peer lost its place")
		}
	}

	allowed.add(a.ID())
	eventually(t, 5*time.Second, "peer not served again once allowed", func() bool { return heartbeat() == nil })
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"no pool", func(c *Config) { c.MaxPool = 0 }, false},
		{"no timeout", func(c *Config) { c.Timeout = 0 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mut(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := (AddressProvider{}).ServerAddr(""); err == nil {
		t.Fatal("AddressProvider accepted an empty server ID")
	}
	h := newHost(t, newSet())
	if _, err := New(h, nil, DefaultConfig()); err == nil {
		t.Fatal("New accepted a nil allow function")
	}
	got, err := (AddressProvider{}).ServerAddr(ServerID(h.ID()))
	if err != nil || got != ServerAddress(h.ID()) {
		t.Fatalf("ServerAddr = %q, %v", got, err)
	}
	tr, err := New(h, func(peer.ID) bool { return true }, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var resp raft.AppendEntriesResponse
	err = tr.AppendEntries("not-a-peer", "not-a-peer", &raft.AppendEntriesRequest{}, &resp)
	if err == nil || !strings.Contains(err.Error(), "not a peer ID") {
		t.Fatalf("RPC to a bad address: %v, want an error saying it is not a peer ID", err)
	}
}

// BenchmarkIdleClusterAllocRate measures what an idle 3-voter cluster
// (heartbeats only) allocates per second, the whole process counted. DESIGN
// §10: ~28 MiB/s with go-libp2p-raft's MaxPool 0, ~0.7 MiB/s with a pool of 3.
func BenchmarkIdleClusterAllocRate(b *testing.B) {
	c := newCluster(b, 3, nil)
	c.apply(0, 10)
	c.converge(10)
	time.Sleep(time.Second) // let replication settle into heartbeats
	const window = 5 * time.Second
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	time.Sleep(window)
	runtime.ReadMemStats(&after)
	rate := float64(after.TotalAlloc-before.TotalAlloc) / window.Seconds() / (1 << 20)
	b.ReportMetric(rate, "alloc-MiB/s")
	b.Logf("idle 3-voter cluster allocated %.2f MiB/s over %v (MaxPool %d)", rate, window, DefaultConfig().MaxPool)
}

// A node's stop asks raft for a snapshot; with nothing applied since the
// last one raft reports ErrNothingNewToSnapshot as an error, which the
// adapter logs at debug. A real snapshot failure still shows.
func TestSnapshotWithNothingNewIsNotAnError(t *testing.T) {
	var buf bytes.Buffer
	l := HCLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), slog.LevelError)
	l.Error("failed to take snapshot", "error", raft.ErrNothingNewToSnapshot)
	if buf.Len() != 0 {
		t.Fatalf("logged at info: %s", buf.String())
	}
	l.Error("failed to take snapshot", "error", errors.New("no space left on device"))
	if !strings.Contains(buf.String(), "level=ERROR") || !strings.Contains(buf.String(), "no space left on device") {
		t.Fatalf("a real snapshot failure was not logged as an error: %q", buf.String())
	}
}
