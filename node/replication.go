package node

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	stdsync "sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/p2p"
	"github.com/inpud/cairn/node/registry"
	"github.com/inpud/cairn/node/store"
	cairnsync "github.com/inpud/cairn/sync"
)

// replication wires package sync into the node: it serves this node's
// change feed to member nodes (filtered by each record's audience) and
// pulls from every member node it can reach, every SyncInterval and on
// `cairn sync now`.
type replication struct {
	n        *Node
	server   *cairnsync.PullServer
	notify   *cairnsync.NotifyServer
	puller   *cairnsync.Puller
	interval time.Duration

	round  stdsync.Mutex // one round at a time
	ctx    context.Context
	cancel context.CancelFunc
	wg     stdsync.WaitGroup // the periodic round, the notify loop and pulls after notifies

	mu        stdsync.Mutex
	closed    bool                          // guarded by mu; no goroutine starts once set
	peers     map[peer.ID]*PeerState        // guarded by mu
	pulling   map[peer.ID]bool              // guarded by mu: a pull after a notify runs
	again     map[peer.ID]bool              // guarded by mu: and must run once more
	servedBy  map[peer.ID]map[string]uint64 // guarded by mu: newest version served, per peer and record (rollback.go)
	lastRound time.Time                     // guarded by mu

	sources feedSources // what the sink stored from whom, for the notify loop (notify.go)
}

// PeerState is what this node knows of its replication with one member node.
type PeerState struct {
	ID         string    `json:"id"` // the peer's node ID
	Network    string    `json:"network"`
	Address    string    `json:"address,omitempty"` // of the live connection, if any
	Connected  bool      `json:"connected"`
	LastPull   time.Time `json:"last_pull,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	Checkpoint uint64    `json:"checkpoint"` // how far this node has pulled the peer's feed
	Head       uint64    `json:"head"`       // the peer's feed head when last pulled
	Lag        uint64    `json:"lag"`        // head minus checkpoint
	Received   int       `json:"received"`   // envelopes received from it, all time since start
	Stored     int       `json:"stored"`
	Rejected   int       `json:"rejected"` // all refusals: the sum of Rejections
	// Rejections counts what this node refused from the peer, by reason
	// (cairnsync.Reasons): versions it sent, and frames or requests.
	Rejections map[cairnsync.Reason]int `json:"rejections"`
	// Drops counts how often this node dropped the peer (drop.go);
	// DroppedUntil is when it pulls from it again, and DropReason why
	// it dropped it last.
	Drops        int              `json:"drops"`
	DroppedUntil time.Time        `json:"dropped_until,omitzero"`
	DropReason   cairnsync.Reason `json:"drop_reason,omitempty"`
	// Forks counts the versions the peer delivered that forked their
	// record: another version of it held follows the same version, or has
	// the same number (node/store/fork.go). They are stored, not refused,
	// and never drop the peer; the record's history shows the fork.
	Forks int `json:"forks"`

	streak int // refusals in a row that an honest node can cause too
}

func newReplication(n *Node) (*replication, error) {
	r := &replication{n: n, interval: n.cfg.SyncInterval,
		peers: map[peer.ID]*PeerState{}, pulling: map[peer.ID]bool{}, again: map[peer.ID]bool{},
		servedBy: map[peer.ID]map[string]uint64{}}
	sc := n.cfg.Sync
	srv, err := cairnsync.NewPullServer(storeFeed{n.store}, registryMembers{n},
		cairnsync.PullConfig{RequestTimeout: sc.RequestTimeout, WriteTimeout: sc.WriteTimeout, Faults: r})
	if err != nil {
		return nil, err
	}
	r.server = srv
	r.puller = &cairnsync.Puller{Host: n.host, Sink: recordSink{n: n, r: r}, Checkpoints: storeCheckpoints{n.store},
		Timeout: sc.PullTimeout, Gate: r}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.notify, err = cairnsync.NewNotifyServer(registryMembers{n}, r.onNotify, 0)
	if err != nil {
		return nil, err
	}
	// Bad notify frames count against the sender, as on pull (drop.go).
	r.notify.ReportFaults(r)
	if n.limits, err = newStreamLimits(n, r); err != nil { // before any Cairn handler (ratelimit.go)
		return nil, err
	}
	n.host.SetStreamHandler(cairnsync.PullProtocol, n.gater.GuardStream(false, srv.Handle))
	n.host.SetStreamHandler(cairnsync.NotifyProtocol, n.gater.GuardStream(false, r.notify.Handle))
	return r, nil
}

// start launches the periodic pull and the notify loop; stop ends them
// and waits.
func (r *replication) start() {
	r.seedPeers()
	ctx := r.ctx
	changed, unwatch := r.n.store.Watch()
	r.wg.Go(func() {
		defer unwatch()
		r.notifyLoop(ctx, changed)
	})
	r.wg.Go(func() {
		t := time.NewTicker(r.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.Round(ctx)
			}
		}
	})
}

func (r *replication) stop() {
	r.n.host.RemoveStreamHandler(cairnsync.PullProtocol)
	r.n.host.RemoveStreamHandler(cairnsync.NotifyProtocol)
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// seedPeers lists the member nodes the registry knows at start with the
// checkpoints saved for them, so `cairn peers` shows them before the first
// pull. (Later, a peer's state changes only when a pull from it ends, so
// its checkpoint and its counts always agree.)
func (r *replication) seedPeers() {
	var others []peer.ID
	r.n.fed.View(func(s *registry.State) {
		for _, k := range s.Peers() {
			if k.PeerID == r.n.ID() {
				continue
			}
			if id, err := peer.Decode(k.PeerID); err == nil {
				others = append(others, id)
			}
		}
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range others {
		ps := r.stateLocked(id)
		ps.Checkpoint, _ = r.n.store.Checkpoint(id.String())
	}
}

// PeerSync is what one round did with one member node.
type PeerSync struct {
	ID       string `json:"id"` // the peer's node ID
	Network  string `json:"network"`
	Received int    `json:"received"`
	Stored   int    `json:"stored"`
	Rejected int    `json:"rejected"`
	Error    string `json:"error,omitempty"`
}

// Round pulls from every other active member node whose address this node
// knows, one after another.
func (r *replication) Round(ctx context.Context) []PeerSync {
	r.round.Lock()
	defer r.round.Unlock()
	type target struct {
		id      peer.ID
		network string
	}
	var targets []target
	r.n.fed.View(func(s *registry.State) {
		for _, k := range s.Peers() {
			if k.PeerID == r.n.ID() {
				continue
			}
			if _, _, ok := s.Member(k.PeerID); !ok {
				continue
			}
			if id, err := peer.Decode(k.PeerID); err == nil {
				targets = append(targets, target{id, k.Network})
			}
		}
	})
	out := make([]PeerSync, 0, len(targets))
	for _, t := range targets {
		ps := PeerSync{ID: t.id.String(), Network: t.network}
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		if r.MayPull(t.id) == nil && r.n.host.Network().Connectedness(t.id) != network.Connected {
			r.n.host.Connect(pctx, peer.AddrInfo{ID: t.id})
		}
		st, err := r.puller.CatchUp(pctx, t.id)
		cancel()
		ps.Received, ps.Stored, ps.Rejected = st.Received, st.Stored, st.Rejected
		if err != nil {
			ps.Error = err.Error()
			r.n.log.Debug("sync: pull failed", "peer", t.id, "network", t.network, "err", err)
		}
		r.record(t.id, t.network, st, err)
		out = append(out, ps)
	}
	r.mu.Lock()
	r.lastRound = time.Now()
	r.mu.Unlock()
	return out
}

func (r *replication) record(id peer.ID, network string, st cairnsync.PullStats, err error) {
	if reason, ok := cairnsync.FaultOf(err); ok {
		// Deferred before the unlock below, so it runs after it.
		defer r.reject(id, reason, dropsAtOnce(reason))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.stateLocked(id)
	ps.Network = network
	if errors.Is(err, errDropped) && st.Requests == 0 {
		ps.LastError = err.Error() // not pulled: the peer is dropped for now
		return
	}
	ps.LastPull = time.Now().UTC()
	ps.Received += st.Received
	ps.Stored += st.Stored
	// Rejections were counted as the sink refused them (drop.go).
	ps.Checkpoint = st.To
	ps.LastError = ""
	if err != nil {
		ps.LastError = err.Error()
		return
	}
	ps.Head = st.To // caught up: the last seq the peer scanned is its head
}

// Peers reports every member node this node has pulled from or is
// connected to, with its replication state.
func (r *replication) Peers() []PeerState {
	r.mu.Lock()
	out := make([]PeerState, 0, len(r.peers))
	for id, ps := range r.peers {
		p := *ps
		p.Rejections = maps.Clone(ps.Rejections)
		p.Lag = 0
		if p.Head > p.Checkpoint {
			p.Lag = p.Head - p.Checkpoint
		}
		if conns := r.n.host.Network().ConnsToPeer(id); len(conns) > 0 {
			p.Connected, p.Address = true, conns[0].RemoteMultiaddr().String()
		}
		out = append(out, p)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b PeerState) int { return strings.Compare(a.Network+a.ID, b.Network+b.ID) })
	return out
}

// SyncStatus is what `cairn sync status` shows.
type SyncStatus struct {
	ID        string                      `json:"id"` // this node's peer ID
	FeedHead  uint64                      `json:"feed_head"`
	Interval  string                      `json:"interval"`
	LastRound time.Time                   `json:"last_round,omitzero"`
	Server    cairnsync.PullServerStats   `json:"served"`
	Refused   p2p.Refusals                `json:"connections_refused"` // by the gater: non-members, suspended and retired members
	Notifies  cairnsync.NotifyServerStats `json:"notifies"`
	Peers     []PeerState                 `json:"peers"`
}

// Peers reports the member nodes this node replicates with ([]PeerState).
func (n *Node) Peers() (any, error) {
	if n.repl == nil {
		return nil, errors.New("the node is not started")
	}
	return n.repl.Peers(), nil
}

// SyncStatus reports replication as a whole (SyncStatus).
func (n *Node) SyncStatus() (any, error) {
	if n.repl == nil {
		return nil, errors.New("the node is not started")
	}
	n.repl.mu.Lock()
	last := n.repl.lastRound
	n.repl.mu.Unlock()
	return SyncStatus{ID: n.ID(), FeedHead: n.store.Head(), Interval: n.cfg.SyncInterval.String(), LastRound: last, Server: n.repl.server.Stats(), Refused: n.gater.Refused(), Notifies: n.repl.notify.Stats(), Peers: n.repl.Peers()}, nil
}

// SyncNow pulls from every reachable member node now and reports, per
// node, what it received ([]PeerSync).
func (n *Node) SyncNow(ctx context.Context) (any, error) {
	if n.repl == nil {
		return nil, errors.New("the node is not started")
	}
	return n.repl.Round(ctx), nil
}

// storeFeed serves the record store's change feed.
type storeFeed struct{ st *store.Store }

func (f storeFeed) Feed(after uint64, limit int) ([]cairnsync.Entry, uint64, error) {
	sts, last, err := f.st.Feed(after, limit)
	if err != nil {
		return nil, after, err
	}
	out := make([]cairnsync.Entry, len(sts))
	for i, s := range sts {
		out[i] = cairnsync.Entry{Seq: s.Seq, Env: s.Envelope, Payload: s.Payload}
	}
	return out, last, nil
}

// FeedWhere reads the feed without decoding envelopes: the pull server
// skips what a requester may not see (its own records, say) from each
// entry's origin and audience alone.
func (f storeFeed) FeedWhere(after uint64, limit int, want func(string, model.Audience) bool) ([]cairnsync.Entry, uint64, error) {
	es, last, err := f.st.FeedWhere(after, limit, want)
	if err != nil {
		return nil, after, err
	}
	out := make([]cairnsync.Entry, len(es))
	for i, e := range es {
		out[i] = cairnsync.Entry{Seq: e.Seq, Env: e.Envelope, Payload: model.Payload{
			ID: e.ID, Version: e.Version, Origin: e.Origin, Audience: e.Audience}}
	}
	return out, last, nil
}

// registryMembers says who a requesting node is, from the registry.
type registryMembers struct{ n *Node }

func (m registryMembers) Reader(p peer.ID) (model.Reader, bool) {
	var r model.Reader
	known := false
	m.n.fed.View(func(s *registry.State) {
		k, ok := s.Node(p.String())
		if !ok {
			return
		}
		net, ok := s.Network(k.Network)
		if !ok {
			return
		}
		known = true
		_, _, member := s.Member(p.String())
		r = model.Reader{Network: net.Slug, Region: net.Region, Member: member}
	})
	return r, known
}

// storeCheckpoints keeps pull checkpoints in the record store.
type storeCheckpoints struct{ st *store.Store }

func (c storeCheckpoints) Checkpoint(p peer.ID) (uint64, error) { return c.st.Checkpoint(p.String()) }

func (c storeCheckpoints) SetCheckpoint(p peer.ID, seq uint64) error {
	return c.st.SetCheckpoint(p.String(), seq)
}

// CheckpointIn and SetCheckpointIn keep the id of the peer's feed with
// its checkpoint (cairnsync.FeedCheckpoints).
func (c storeCheckpoints) CheckpointIn(p peer.ID) (uint64, string, error) {
	return c.st.CheckpointIn(p.String())
}

func (c storeCheckpoints) SetCheckpointIn(p peer.ID, seq uint64, feed string) error {
	return c.st.SetCheckpointIn(p.String(), seq, feed)
}

// FeedID names this node's feed in pull answers (cairnsync.FeedIdentity).
func (f storeFeed) FeedID() string { return f.st.FeedID() }
