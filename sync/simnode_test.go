package sync_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	mathrand "math/rand/v2"
	"runtime"
	"slices"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/inpud/cairn/model"
	cairnsync "github.com/inpud/cairn/sync"
)

// This file builds an in-process federation for the sync simulation
// (sim_test.go): member nodes on go-libp2p's mocknet, each with a real
// Ed25519 key, an in-memory change feed, a verifying Sink, a PullServer and
// a Puller. Mocknet bypasses the handshake and the connection gater
// (STYLE §12), so this is for protocol behaviour at scale, not security.

// simMaxDrift is how far ahead of a receiver's clock a record may be dated.
const simMaxDrift = 10 * time.Minute

// simRegistry stands in for the federation registry: each node's network,
// region and signing key. Nodes are added before any pulls start.
type simRegistry struct {
	mu      stdsync.RWMutex
	keys    map[string]simKey // by author peer ID (payload Author)
	readers map[peer.ID]model.Reader
}

type simKey struct {
	network string
	pub     ed25519.PublicKey
}

func newSimRegistry() *simRegistry {
	return &simRegistry{keys: map[string]simKey{}, readers: map[peer.ID]model.Reader{}}
}

func (r *simRegistry) add(id peer.ID, self model.Reader, pub ed25519.PublicKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys[id.String()] = simKey{network: self.Network, pub: pub}
	r.readers[id] = self
}

// Reader implements cairnsync.Members.
func (r *simRegistry) Reader(p peer.ID) (model.Reader, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	rd, ok := r.readers[p]
	return rd, ok
}

func (r *simRegistry) key(author string) (simKey, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.keys[author]
	return k, ok
}

// memStore is a node's records and change feed in memory: every version it
// holds, own or received, gets the next seq, once.
type memStore struct {
	mu      stdsync.Mutex
	entries []cairnsync.Entry // entries[i].Seq == i+1
	held    map[string]bool   // by envelope hash
	// changed gets a signal when the feed grows, if none is pending
	// (level-triggered, like node/store's Watch).
	changed chan struct{}
}

func newMemStore() *memStore {
	return &memStore{held: map[string]bool{}, changed: make(chan struct{}, 1)}
}

// Feed implements cairnsync.Feed.
func (m *memStore) Feed(after uint64, limit int) ([]cairnsync.Entry, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := uint64(len(m.entries))
	if after >= n || limit <= 0 {
		return nil, after, nil
	}
	end := min(n, after+uint64(limit))
	return slices.Clone(m.entries[after:end]), end, nil
}

// put appends env to the feed unless a version with its hash is held, and
// reports whether it did.
func (m *memStore) put(env model.Envelope, p model.Payload) bool {
	h := env.Hash()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held[h] {
		return false
	}
	m.held[h] = true
	m.entries = append(m.entries, cairnsync.Entry{Seq: uint64(len(m.entries) + 1), Env: env, Payload: p})
	select {
	case m.changed <- struct{}{}:
	default:
	}
	return true
}

// head is the seq of the last entry.
func (m *memStore) head() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return uint64(len(m.entries))
}

func (m *memStore) holds(hash string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held[hash]
}

// memCheckpoints implements cairnsync.Checkpoints in memory.
type memCheckpoints struct {
	mu  stdsync.Mutex
	seq map[peer.ID]uint64
}

func (c *memCheckpoints) Checkpoint(p peer.ID) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq[p], nil
}

func (c *memCheckpoints) SetCheckpoint(p peer.ID, seq uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seq == nil {
		c.seq = map[peer.ID]uint64{}
	}
	c.seq[p] = seq
	return nil
}

// simSink verifies every envelope as a receiving node must (strict decode,
// body, signature against the origin's registered key whoever relayed it,
// clock drift, audience admits this node) and stores the ones that pass. It
// also records every envelope it was offered, so a test can check what the
// servers sent, not only what was kept.
type simSink struct {
	self  model.Reader
	reg   *simRegistry
	store *memStore
	// skipHeld counts a version this node already holds as a duplicate
	// before decoding or verifying it (same hash, same signed bytes). Off,
	// every offer is verified, as node/sink.go does.
	skipHeld bool
	// cpu, shared by all sinks of the federation, bounds how many verify
	// at once: 100 nodes share this machine's cores, and with every pull
	// verifying at once the scheduler's queue alone would delay a notify
	// past its timeout.
	cpu chan struct{}

	mu       stdsync.Mutex
	offered  map[string]int   // envelope hash -> times offered, by anyone
	fromPeer map[simOffer]int // (relay, hash) -> times that relay offered it
	rejected map[string]error // envelope hash -> why it was refused
}

type simOffer struct {
	from peer.ID
	hash string
}

func newSimSink(self model.Reader, reg *simRegistry, st *memStore) *simSink {
	return &simSink{
		self: self, reg: reg, store: st,
		offered: map[string]int{}, fromPeer: map[simOffer]int{}, rejected: map[string]error{},
	}
}

// Store implements cairnsync.Sink.
func (k *simSink) Store(from peer.ID, envs []model.Envelope) (cairnsync.Counts, error) {
	var c cairnsync.Counts
	k.cpu <- struct{}{}
	defer func() { <-k.cpu }()
	now := time.Now()
	for _, env := range envs {
		h := env.Hash()
		k.mu.Lock()
		k.offered[h]++
		k.fromPeer[simOffer{from, h}]++
		k.mu.Unlock()
		if k.skipHeld && k.store.holds(h) {
			c.Duplicates++
			continue
		}
		p, err := k.check(env, now)
		if err != nil {
			c.Rejected++
			k.mu.Lock()
			k.rejected[h] = err
			k.mu.Unlock()
			continue
		}
		if !k.store.put(env, p) {
			c.Duplicates++
			continue
		}
		c.Stored++
	}
	return c, nil
}

func (k *simSink) check(env model.Envelope, now time.Time) (model.Payload, error) {
	p, err := env.Open()
	if err != nil {
		return p, err
	}
	if err := p.ValidateBody(nil, true); err != nil {
		return p, err
	}
	key, ok := k.reg.key(p.Author)
	if !ok || key.network != p.Origin {
		return p, fmt.Errorf("author %s is not a registered node of %s", p.Author, p.Origin)
	}
	if err := env.Verify(key.pub); err != nil {
		return p, err
	}
	if err := p.HLC.CheckDrift(now, simMaxDrift); err != nil {
		return p, err
	}
	if p.Origin != k.self.Network && !p.Audience.Admits(k.self) {
		return p, fmt.Errorf("audience %s does not admit %s", p.Audience, k.self.Network)
	}
	return p, nil
}

// twice lists the envelopes some one relay offered this node more than
// once: a checkpoint that failed to move.
func (k *simSink) twice() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for o, n := range k.fromPeer {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s from %s %d times", o.hash[:12], o.from, n))
		}
	}
	return out
}

func (k *simSink) offers(hash string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.offered[hash]
}

func (k *simSink) rejections() map[string]error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.rejected)
}

// countingStream counts the bytes a pull server reads and writes: the
// request and answer frames, both directions of every pull stream (the
// protocol negotiation before the handler runs is not counted).
type countingStream struct {
	network.Stream
	n *atomic.Int64
}

func (s countingStream) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	s.n.Add(int64(n))
	return n, err
}

func (s countingStream) Write(b []byte) (int, error) {
	n, err := s.Stream.Write(b)
	s.n.Add(int64(n))
	return n, err
}

// simNode is one member node of the simulation.
type simNode struct {
	idx    int
	self   model.Reader
	key    ed25519.PrivateKey
	h      host.Host
	store  *memStore
	sink   *simSink
	srv    *cairnsync.PullServer
	puller *cairnsync.Puller
	links  []*simNode // the nodes it pulls from (and that pull from it)
	notify *simNodeNotify
}

// simRegions are the regions whose members sit next to each other on the
// ring; simSpread is a region whose few members are spread around it and
// never linked to each other.
var simRegions = []string{"africa", "asia", "europe", "latin-america"}

const simSpread = "pacific"

// simConfig shapes a simulated federation.
type simConfig struct {
	Nodes  int    // member networks, one node each; at least 2*len(simRegions)
	Chords int    // random extra links per node, besides its two ring neighbours
	Seed   uint64 // for the chords
	// SkipHeld makes every sink skip verifying versions it already holds.
	SkipHeld bool
	// Notify runs the notify-driven path (simnotify_test.go): nodes tell
	// their links when their feed grows and pull when told.
	Notify bool
}

// simFederation is the simulated federation: its mocknet, its registry and
// its nodes. Close stops every host.
type simFederation struct {
	cfg   simConfig
	mn    mocknet.Mocknet
	reg   *simRegistry
	nodes []*simNode
	bytes atomic.Int64  // bytes on pull streams, both directions
	cpu   chan struct{} // shared by the sinks: 2×GOMAXPROCS verify at once

	notify simNotify // the notify-driven path, if cfg.Notify
}

// regionOf places node i of n: the ring is cut into len(simRegions) equal
// segments, and the last node of each segment belongs to simSpread.
func regionOf(i, n int) string {
	seg := n / len(simRegions)
	if i%seg == seg-1 || i >= seg*len(simRegions) {
		return simSpread
	}
	return simRegions[i/seg]
}

// newSimFederation starts cfg.Nodes member nodes on a mocknet and links
// them in a ring plus cfg.Chords random chords per node (never between two
// members of simSpread). The ring keeps each of simRegions connected within
// itself.
func newSimFederation(tb testing.TB, cfg simConfig) *simFederation {
	tb.Helper()
	if cfg.Nodes < 2*len(simRegions) {
		tb.Fatalf("a simulated federation needs at least %d nodes, got %d", 2*len(simRegions), cfg.Nodes)
	}
	f := &simFederation{cfg: cfg, mn: mocknet.New(), reg: newSimRegistry(), cpu: make(chan struct{}, 2*runtime.GOMAXPROCS(0))}
	tb.Cleanup(func() { _ = f.mn.Close() })
	if cfg.Notify {
		f.initNotify(tb)
	}
	for i := range cfg.Nodes {
		f.nodes = append(f.nodes, f.addNode(tb, i, model.Reader{
			Network: fmt.Sprintf("net-%03d", i),
			Region:  regionOf(i, cfg.Nodes),
			Member:  true,
		}))
	}
	n := cfg.Nodes
	for i := range n {
		f.link(tb, f.nodes[i], f.nodes[(i+1)%n])
	}
	rng := mathrand.New(mathrand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	for i := range n {
		for added, tries := 0, 0; added < cfg.Chords && tries < 100; tries++ {
			j := rng.IntN(n)
			a, b := f.nodes[i], f.nodes[j]
			if i == j || slices.Contains(a.links, b) || (a.self.Region == simSpread && b.self.Region == simSpread) {
				continue
			}
			f.link(tb, a, b)
			added++
		}
	}
	f.waitIdentified(tb)
	if cfg.Notify {
		f.startNotify()
	}
	return f
}

// waitIdentified waits (at most 20 s) until libp2p's identify has finished
// on every connection, as on a node that has been up a while: until then,
// opening a stream waits for it, and under load that wait alone can outlast
// a notify's timeout. (Identify may fail under load; streams then negotiate
// their protocol instead, which is fine.)
func (f *simFederation) waitIdentified(tb testing.TB) {
	tb.Helper()
	deadline := time.After(20 * time.Second)
	for _, n := range f.nodes {
		h, ok := n.h.(interface{ IDService() identify.IDService })
		if !ok {
			tb.Fatalf("node %d's host (%T) has no identify service", n.idx, n.h)
		}
		for _, c := range n.h.Network().Conns() {
			select {
			case <-h.IDService().IdentifyWait(c):
			case <-deadline:
				tb.Fatalf("identify between node %d and %s has not finished after 20 s", n.idx, c.RemotePeer())
			}
		}
	}
}

func (f *simFederation) addNode(tb testing.TB, i int, self model.Reader) *simNode {
	tb.Helper()
	priv, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := priv.Raw()
	if err != nil {
		tb.Fatal(err)
	}
	rawPub, err := pub.Raw()
	if err != nil {
		tb.Fatal(err)
	}
	// Mocknet carries no traffic on this address; it only names the peer.
	addr := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 20000+i))
	h, err := f.mn.AddPeer(priv, addr)
	if err != nil {
		tb.Fatalf("add node %d to the mocknet: %v", i, err)
	}
	st := newMemStore()
	n := &simNode{idx: i, self: self, key: ed25519.PrivateKey(raw), h: h, store: st}
	n.sink = newSimSink(self, f.reg, st)
	n.sink.skipHeld = f.cfg.SkipHeld
	n.sink.cpu = f.cpu
	if n.srv, err = cairnsync.NewPullServer(st, f.reg, cairnsync.DefaultPullConfig()); err != nil {
		tb.Fatal(err)
	}
	h.SetStreamHandler(cairnsync.PullProtocol, func(s network.Stream) {
		n.srv.Handle(countingStream{Stream: s, n: &f.bytes})
	})
	n.puller = &cairnsync.Puller{Host: h, Sink: n.sink, Checkpoints: &memCheckpoints{}}
	if f.cfg.Notify {
		f.addNotify(tb, n)
	}
	f.reg.add(h.ID(), self, ed25519.PublicKey(rawPub))
	return n
}

// link lets a and b reach each other and connects them.
func (f *simFederation) link(tb testing.TB, a, b *simNode) {
	tb.Helper()
	if _, err := f.mn.LinkPeers(a.h.ID(), b.h.ID()); err != nil {
		tb.Fatalf("link nodes %d and %d: %v", a.idx, b.idx, err)
	}
	if _, err := f.mn.ConnectPeers(a.h.ID(), b.h.ID()); err != nil {
		tb.Fatalf("connect nodes %d and %d: %v", a.idx, b.idx, err)
	}
	a.links = append(a.links, b)
	b.links = append(b.links, a)
}

// simBody is a priority body of roughly size bytes, as a member network
// would write one.
func simBody(tb testing.TB, size int) json.RawMessage {
	tb.Helper()
	pr := model.Priority{
		Kind:          model.PriorityChange,
		Title:         "Naloxone in every outreach kit",
		Area:          "harm reduction",
		Importance:    5,
		Achievability: 4,
		Ask:           "Fund take-home naloxone for peer outreach workers",
		TalkingPoints: strings.Repeat("Peers reach people who use drugs first. ", max(1, size/41)),
	}
	b, err := json.Marshal(pr)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// write seals a new priority of n's network with audience aud, stores it in
// n's feed and returns its envelope hash.
func (n *simNode) write(tb testing.TB, body json.RawMessage, aud ...string) string {
	tb.Helper()
	now := time.Now()
	p := model.Payload{
		ID:       model.NewID(now, rand.Reader),
		Kind:     model.KindPriority,
		Schema:   model.SchemaVersion,
		Origin:   n.self.Network,
		Author:   n.h.ID().String(),
		Version:  1,
		HLC:      model.MakeHLC(now.UnixMilli(), 0),
		Audience: model.Audience(aud),
		Body:     body,
	}
	env, err := model.Seal(n.key, p)
	if err != nil {
		tb.Fatal(err)
	}
	if !n.store.put(env, p) {
		tb.Fatalf("node %d already held its new record", n.idx)
	}
	return env.Hash()
}

// simRound says what one round of pulls moved.
type simRound struct {
	Requests, Received int
	cairnsync.Counts
}

// round makes every node catch up with each of its links once; the nodes
// pull concurrently, each from its links one after another. It returns once
// every pull has finished.
func (f *simFederation) round(ctx context.Context) (simRound, error) {
	var (
		mu   stdsync.Mutex
		tot  simRound
		errs []error
		wg   stdsync.WaitGroup
	)
	for _, n := range f.nodes {
		wg.Go(func() {
			for _, l := range n.links {
				st, err := n.puller.CatchUp(ctx, l.h.ID())
				mu.Lock()
				tot.Requests += st.Requests
				tot.Received += st.Received
				tot.Stored += st.Stored
				tot.Duplicates += st.Duplicates
				tot.Rejected += st.Rejected
				if err != nil {
					errs = append(errs, fmt.Errorf("node %d pulling from node %d: %w", n.idx, l.idx, err))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return tot, errors.Join(errs...)
}

// propagate runs rounds until one moves nothing, at most maxRounds, calling
// after (if not nil) once each round has finished. It returns every round's
// totals, the quiet last one included.
func (f *simFederation) propagate(ctx context.Context, maxRounds int, after func(round int)) ([]simRound, error) {
	var rounds []simRound
	for r := 1; r <= maxRounds; r++ {
		st, err := f.round(ctx)
		rounds = append(rounds, st)
		if err != nil {
			return rounds, fmt.Errorf("round %d: %w", r, err)
		}
		if after != nil {
			after(r)
		}
		if st.Received == 0 {
			return rounds, nil
		}
	}
	return rounds, fmt.Errorf("records still moving after %d rounds", maxRounds)
}

// holders lists the nodes that hold the version with this hash.
func (f *simFederation) holders(hash string) []int {
	var out []int
	for _, n := range f.nodes {
		if n.store.holds(hash) {
			out = append(out, n.idx)
		}
	}
	return out
}

// reach is what the topology lets a record from origin reach when only
// nodes allowed(n) may hold it (and so relay it): each such node's hop
// count from origin over links between allowed nodes.
func (f *simFederation) reach(origin *simNode, allowed func(*simNode) bool) map[int]int {
	dist := map[int]int{origin.idx: 0}
	queue := []*simNode{origin}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, l := range n.links {
			if _, seen := dist[l.idx]; seen || !allowed(l) {
				continue
			}
			dist[l.idx] = dist[n.idx] + 1
			queue = append(queue, l)
		}
	}
	return dist
}

// sortedKeys returns m's keys in increasing order.
func sortedKeys(m map[int]int) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
