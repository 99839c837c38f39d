package federation

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/inpud/cairn/node/p2p"
	"github.com/inpud/cairn/node/raftnet"
	"github.com/inpud/cairn/node/registry"
)

// Config tunes the replicated registry. DefaultConfig suits real links
// between member networks; FastConfig is for tests on loopback.
type Config struct {
	// Dir holds raft.db (the log and stable store) and snapshots/.
	Dir                string
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// ApplyTimeout bounds one proposal, forwarding included.
	ApplyTimeout time.Duration
	Logger       *slog.Logger
}

// DefaultConfig returns timeouts for slow, lossy links: raft's defaults are
// 1 s, RELIABILITY asks for more headroom between member networks.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:                dir,
		HeartbeatTimeout:   2 * time.Second,
		ElectionTimeout:    5 * time.Second,
		LeaderLeaseTimeout: time.Second,
		CommitTimeout:      50 * time.Millisecond,
		SnapshotThreshold:  1024,
		SnapshotInterval:   2 * time.Minute,
		TrailingLogs:       1024,
		ApplyTimeout:       30 * time.Second,
	}
}

// FastConfig is DefaultConfig with loopback timings (DESIGN §10), for tests.
func FastConfig(dir string) Config {
	c := DefaultConfig(dir)
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.CommitTimeout = 250*time.Millisecond, 250*time.Millisecond, 150*time.Millisecond, 10*time.Millisecond
	c.ApplyTimeout = 10 * time.Second
	return c
}

// Validate checks the timings, one sentence per problem.
func (c Config) Validate() error {
	switch {
	case c.HeartbeatTimeout < 5*time.Millisecond:
		return fmt.Errorf("registry-heartbeat-timeout: %s is too short; use at least 5ms (1s or more between real sites)", c.HeartbeatTimeout)
	case c.ElectionTimeout < c.HeartbeatTimeout:
		return fmt.Errorf("registry-election-timeout: %s is shorter than the heartbeat timeout %s; it must be at least as long", c.ElectionTimeout, c.HeartbeatTimeout)
	case c.SnapshotThreshold < 1:
		return errors.New("registry-snapshot-threshold: must be at least 1")
	}
	return nil
}

func (c Config) raftConfig(self peer.ID, log *slog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raftnet.ServerID(self)
	// The leader lease may not exceed the heartbeat timeout (raft refuses it).
	lease := min(c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout, rc.CommitTimeout = c.HeartbeatTimeout, c.ElectionTimeout, lease, c.CommitTimeout
	rc.SnapshotThreshold, rc.SnapshotInterval, rc.TrailingLogs = c.SnapshotThreshold, c.SnapshotInterval, c.TrailingLogs
	rc.Logger = raftnet.HCLog(slog.New(newQuietHandler(log.Handler(), time.Minute)), slog.LevelWarn)
	return rc
}

// Errors callers branch on.
var (
	ErrNotBootstrapped = errors.New("this node is not part of a federation yet")
	ErrAlreadyExists   = errors.New("this node already holds a federation registry")
	ErrNoLeader        = errors.New("no registry leader is reachable")
)

// Registry is this node's replica of the federation registry: a raft
// server (a voter on stewards' nodes, a non-voter elsewhere) applying signed
// commands to the registry.FSM, over libp2p streams guarded by membership.
//
// Open starts raft and one goroutine that follows registry changes; Close
// stops both and waits. Propose may be called from any goroutine.
type Registry struct {
	cfg   Config
	log   *slog.Logger
	host  host.Host
	gater *p2p.Gater
	key   ed25519.PrivateKey
	self  peer.ID

	fsm   *registry.FSM
	raft  *raft.Raft
	trans *raft.NetworkTransport
	bolt  *raftboltdb.BoltStore
	snaps raft.SnapshotStore

	trust    trustCache
	book     []byte      // the address book as last written (follow goroutine only, after Open)
	reaching atomic.Bool // reachVoters is dialling
	// publishing: republish is proposing this node's addresses
	publishing atomic.Bool
	mu         stdsync.Mutex
	trusted    map[peer.ID]bool // stewards named by an invite, while joining
	changed    chan struct{}
	cancel     context.CancelFunc
	wg         stdsync.WaitGroup
	closeErr   error
	closed     stdsync.Once
}

// Open starts this node's registry replica. It does not bootstrap: a new
// federation starts with Bootstrap, a new member with registry.Join.
func Open(cfg Config, h host.Host, gater *p2p.Gater, key ed25519.PrivateKey) (*Registry, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create registry dir: %w", err)
	}
	r := &Registry{cfg: cfg, log: cfg.Logger, host: h, gater: gater, key: key, self: h.ID(), fsm: registry.NewFSM(), trusted: map[peer.ID]bool{}, changed: make(chan struct{}, 1)}
	r.fsm.OnChange = func() {
		r.fsm.View(r.trust.fromState)
		r.notify()
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("open registry log %s: %w", filepath.Join(cfg.Dir, "raft.db"), err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 3, raftnet.HCLog(cfg.Logger, slog.LevelWarn))
	if err != nil {
		bolt.Close()
		return nil, fmt.Errorf("open registry snapshots: %w", err)
	}
	tcfg := raftnet.DefaultConfig()
	tcfg.Logger = cfg.Logger
	trans, err := raftnet.New(h, r.allowRaft, tcfg)
	if err != nil {
		bolt.Close()
		return nil, err
	}
	ra, err := raft.NewRaft(cfg.raftConfig(r.self, cfg.Logger), r.fsm, bolt, bolt, snaps, trans)
	if err != nil {
		trans.Close()
		bolt.Close()
		return nil, fmt.Errorf("start registry replica: %w", err)
	}
	r.raft, r.trans, r.bolt, r.snaps = ra, trans, bolt, snaps
	r.fsm.View(r.trust.fromState)
	r.refreshConfigTrust()
	r.loadAddrBook()
	h.SetStreamHandler(ProposeProtocol, gater.GuardStream(false, r.handlePropose))
	h.SetStreamHandler(JoinProtocol, gater.GuardStream(true, r.handleJoin))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Go(func() { r.follow(ctx) })
	r.notify()
	return r, nil
}

// Close stops raft and the follower goroutine, and closes the log store.
// It is safe to call more than once.
func (r *Registry) Close() error {
	r.closed.Do(func() {
		r.host.RemoveStreamHandler(ProposeProtocol)
		r.host.RemoveStreamHandler(JoinProtocol)
		// A snapshot of what this replica applied, so that it starts with
		// its registry even if no leader is reachable then (raft applies
		// log entries after the last snapshot only once a leader says they
		// are committed): a member node restarted offline can still check
		// keys, read bundles, and name its stewards.
		r.snapshotAtClose()
		// Raft first: it resolves any future the follower waits on.
		err := r.raft.Shutdown().Error()
		r.cancel()
		r.wg.Wait()
		r.closeErr = errors.Join(err, r.bolt.Close())
	})
	return r.closeErr
}

// snapshotAtClose snapshots the applied registry. Raft refuses while the
// latest configuration entry is not applied yet (a leader's heartbeat is
// on its way), so it tries again for up to two seconds.
func (r *Registry) snapshotAtClose() {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := r.raft.Snapshot().Error()
		if err == nil || errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return
		}
		if !strings.Contains(err.Error(), "wait until the configuration entry") || time.Now().After(deadline) {
			r.log.Debug("registry: no snapshot at close", "err", err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Empty reports whether this replica holds no registry yet.
func (r *Registry) Empty() bool {
	var empty bool
	r.fsm.View(func(s *registry.State) { empty = s.Empty() })
	return empty && r.raft.LastIndex() == 0
}

// registry.State returns a copy of the registry as this replica has applied it.
func (r *Registry) State() *registry.State { return r.fsm.State() }

// View calls fn with the live state under a read lock (see registry.FSM.View).
func (r *Registry) View(fn func(*registry.State)) { r.fsm.View(fn) }

// Allowed reports whether p may hold a connection to this node: a key of
// an active network, or a steward named by the invite this node is joining
// with (see trust for a node still catching up after a restart).
func (r *Registry) Allowed(p peer.ID) bool {
	return p == r.self || r.isTrusted(p) || r.trust.allows(p, false)
}

// Removed reports whether p is a node key the registry holds but no
// longer admits (revoked, or of a suspended or retired network): such a
// node may not even hold a guest's connection (p2p.Gater.RefuseAsGuests).
func (r *Registry) Removed(p peer.ID) bool { return r.trust.removed(p) }

// allowRaft admits Raft RPC streams from current voters only (non-voters
// never originate Raft RPCs: the leader dials them), and from the stewards
// an invite named while this node joins.
func (r *Registry) allowRaft(p peer.ID) bool {
	return r.isTrusted(p) || r.trust.allows(p, true)
}

func (r *Registry) isTrusted(p peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.trusted[p]
}

// refreshConfigTrust reads raft's latest configuration into the trust cache.
func (r *Registry) refreshConfigTrust() {
	f := r.raft.GetConfiguration()
	if f.Error() == nil {
		r.trust.fromConfig(f.Configuration())
	}
}

// Bootstrap creates a new federation with this node's network as its first
// steward: a one-voter raft cluster whose first entry is the genesis command.
func (r *Registry) Bootstrap(ctx context.Context, args registry.GenesisArgs) (registry.Result, error) {
	existing, err := raft.HasExistingState(r.bolt, r.bolt, r.snaps)
	if err != nil {
		return registry.Result{}, err
	}
	if existing || !r.Empty() {
		return registry.Result{}, fmt.Errorf("%w: bootstrap only creates a new federation on a node that belongs to none", ErrAlreadyExists)
	}
	self := raft.Server{Suffrage: raft.Voter, ID: raftnet.ServerID(r.self), Address: raftnet.ServerAddress(r.self)}
	if err := r.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{self}}).Error(); err != nil {
		return registry.Result{}, fmt.Errorf("bootstrap registry: %w", err)
	}
	return r.Propose(ctx, registry.Genesis, args)
}

// Propose signs a command with this node's key and has the leader commit
// it. It returns once the command is applied (or refused) by the registry.
func (r *Registry) Propose(ctx context.Context, kind registry.Kind, args any) (registry.Result, error) {
	sc, err := registry.Sign(r.key, r.self.String(), kind, args)
	if err != nil {
		return registry.Result{}, err
	}
	return r.Submit(ctx, sc)
}

// Submit has the leader commit a command someone already signed (a
// joiner's registry.Join, relayed by the steward it reached).
func (r *Registry) Submit(ctx context.Context, sc registry.SignedCommand) (registry.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ApplyTimeout)
	defer cancel()
	var lastErr error
	// Bounded retries across an election: at most ~ApplyTimeout.
	for attempt := 0; attempt < 50; attempt++ {
		res, err, retry := r.submitOnce(ctx, sc)
		if !retry {
			if attempt > 0 && errors.Is(err, registry.ErrAlreadyApplied) {
				// An earlier attempt reached the leader, which applied the
				// command, but its answer was lost (the stream failed, or
				// the leader changed). The command took effect once.
				return appliedResult(sc), nil
			}
			return res, err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return registry.Result{}, r.noLeader(lastErr)
		case <-time.After(min(r.cfg.HeartbeatTimeout, 200*time.Millisecond)):
		}
	}
	return registry.Result{}, r.noLeader(lastErr)
}

// appliedResult is the answer to a command whose own answer was lost:
// its kind and that it took effect (the registry shows the rest).
func appliedResult(sc registry.SignedCommand) registry.Result {
	res := registry.Result{Summary: "the registry applied this command (its first answer was lost on the way; the registry shows the change)"}
	if c, err := sc.Open(); err == nil {
		res.Kind = c.Kind
		res.Summary = fmt.Sprintf("the registry applied this %s command (its first answer was lost on the way; the registry shows the change)", c.Kind)
	}
	return res
}

// noLeader says that no leader answered, naming the stewards' nodes this
// node knows of and so tried, and that nothing changed.
func (r *Registry) noLeader(last error) error {
	var tried []string
	r.fsm.View(func(s *registry.State) {
		for _, v := range s.Voters() {
			n, _ := s.Node(v)
			tried = append(tried, fmt.Sprintf("%s (%s)", v, n.Network))
		}
	})
	who := "no steward node is known to this node"
	if len(tried) > 0 {
		who = "tried the stewards' nodes " + strings.Join(tried, ", ")
	}
	return fmt.Errorf("%w: %s; the registry is unchanged (last error: %v)", ErrNoLeader, who, last)
}

func (r *Registry) submitOnce(ctx context.Context, sc registry.SignedCommand) (res registry.Result, err error, retry bool) {
	if r.raft.State() == raft.Leader {
		// A dry run first, so a refused command never takes a log entry
		// (the log time may differ by milliseconds; Apply decides).
		now := time.Now().UnixMilli()
		var checkErr error
		r.fsm.View(func(s *registry.State) { _, checkErr = s.Check(sc, now) })
		if checkErr != nil {
			return registry.Result{}, checkErr, false
		}
		remaining := time.Until(deadline(ctx, r.cfg.ApplyTimeout))
		f := r.raft.Apply(registry.EncodeSigned(sc), remaining)
		if err := f.Error(); err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
				return registry.Result{}, err, true
			}
			return registry.Result{}, fmt.Errorf("commit registry change: %w", err), false
		}
		ar, _ := f.Response().(registry.ApplyResult)
		return ar.Result, ar.Err, false
	}
	_, leader := r.raft.LeaderWithID()
	if leader == "" {
		return registry.Result{}, ErrNoLeader, true
	}
	lp, err := peer.Decode(string(leader))
	if err != nil {
		return registry.Result{}, fmt.Errorf("leader id %q: %w", leader, err), false
	}
	res, err = r.forward(ctx, lp, sc)
	var re *remoteError
	if errors.As(err, &re) && re.Code == codeNotLeader {
		return registry.Result{}, err, true
	}
	if err != nil && !errors.As(err, &re) {
		return registry.Result{}, err, true // the stream failed: the leader may have changed
	}
	return res, err, false
}

func deadline(ctx context.Context, d time.Duration) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(d)
}

// notify marks the registry changed; the follower goroutine reacts.
func (r *Registry) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// follow reacts to registry changes and leadership: it keeps the peerstore
// and live connections in line with the membership and, on the leader,
// the raft voter set in line with the steward set.
func (r *Registry) follow(ctx context.Context) {
	leader := r.raft.LeaderCh()
	tick := time.NewTicker(max(r.cfg.HeartbeatTimeout, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.changed:
		case <-leader:
		case <-tick.C:
		}
		r.refreshConfigTrust()
		st := r.fsm.State()
		r.updatePeerstore(st)
		r.saveAddrBook(st)
		r.reachVoters(ctx)
		r.republish(ctx, st)
		if n := r.gater.Enforce(r.host); n > 0 {
			r.log.Info("closed connections to peers no longer in the federation", "peers", n)
		}
		if r.raft.State() == raft.Leader {
			if err := r.reconcile(st); err != nil {
				r.log.Warn("registry: could not update the voter set", "err", err)
			}
		}
	}
}

// updatePeerstore records every member node's published addresses.
func (r *Registry) updatePeerstore(st *registry.State) {
	for _, n := range st.Peers() {
		id, err := peer.Decode(n.PeerID)
		if err != nil || id == r.self {
			continue
		}
		var addrs []ma.Multiaddr
		for _, a := range n.Addrs {
			if m, err := ma.NewMultiaddr(a); err == nil {
				addrs = append(addrs, m)
			}
		}
		if len(addrs) > 0 {
			r.host.Peerstore().AddAddrs(id, addrs, peerstore.PermanentAddrTTL)
		}
	}
}

// reconcile makes the raft configuration match the registry: stewards'
// node keys vote, other members' keys are non-voters, anyone else is
// removed. Only the leader calls it.
func (r *Registry) reconcile(st *registry.State) error {
	if st.Empty() {
		return nil
	}
	f := r.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	want := map[raft.ServerID]raft.ServerSuffrage{}
	for _, v := range st.Voters() {
		want[raft.ServerID(v)] = raft.Voter
	}
	for _, v := range st.NonVoters() {
		want[raft.ServerID(v)] = raft.Nonvoter
	}
	have := map[raft.ServerID]raft.ServerSuffrage{}
	for _, s := range f.Configuration().Servers {
		have[s.ID] = s.Suffrage
	}
	timeout := r.cfg.ApplyTimeout
	var errs []error
	for id, suf := range want {
		cur, ok := have[id]
		addr := raft.ServerAddress(id)
		switch {
		case suf == raft.Voter && (!ok || cur != raft.Voter) && r.reachable(id):
			errs = append(errs, r.raft.AddVoter(id, addr, 0, timeout).Error())
		case suf == raft.Voter && !ok:
			// Not reachable yet: a non-voter first, so an absent steward's
			// node never counts toward the quorum (after a recovery, the
			// registry still lists stewards whose nodes are gone).
			errs = append(errs, r.raft.AddNonvoter(id, addr, 0, timeout).Error())
		case suf == raft.Nonvoter && !ok:
			errs = append(errs, r.raft.AddNonvoter(id, addr, 0, timeout).Error())
		case suf == raft.Nonvoter && cur == raft.Voter:
			errs = append(errs, r.raft.DemoteVoter(id, 0, timeout).Error())
		}
	}
	for id := range have {
		if _, ok := want[id]; !ok {
			errs = append(errs, r.raft.RemoveServer(id, 0, timeout).Error())
		}
	}
	if len(errs) > 0 {
		// Followers learn that an entry is committed only with the entries
		// after it: a barrier after a configuration change lets them apply
		// it, so they can snapshot (snapshotAtClose) without waiting for
		// the next registry change.
		errs = append(errs, r.raft.Barrier(timeout).Error())
	}
	return errors.Join(errs...)
}

// reachable reports whether this node holds a live connection to id.
func (r *Registry) reachable(id raft.ServerID) bool {
	if id == raftnet.ServerID(r.self) {
		return true
	}
	p, err := peer.Decode(string(id))
	return err == nil && r.host.Network().Connectedness(p) == network.Connected
}

// RaftStatus describes this replica.
type RaftStatus struct {
	ID          string   `json:"id"` // this node's peer ID
	Genesis     string   `json:"genesis"`
	Leader      string   `json:"leader"`
	Voters      []string `json:"voters"`
	NonVoters   []string `json:"non_voters"`
	Term        uint64   `json:"term"`
	CommitIndex uint64   `json:"commit_index"`
	Applied     uint64   `json:"applied_index"`
	Role        string   `json:"role"` // leader, voter, non-voter or none
	State       string   `json:"state"`
	// StateHash is a SHA-256 of the registry as this replica holds it:
	// equal hashes mean identical replicas.
	StateHash string `json:"state_hash"`
}

// Status reports the raft view of the registry.
func (r *Registry) Status() (RaftStatus, error) {
	st := RaftStatus{ID: r.self.String(), Term: r.raft.CurrentTerm(), Applied: r.raft.AppliedIndex(), State: r.raft.State().String(), Role: "none", Voters: []string{}, NonVoters: []string{}}
	snap := r.fsm.State()
	st.Genesis = snap.Genesis
	snap.Applied = 0 // the index differs between replicas holding the same registry
	if b, err := registry.EncodeSnapshot(snap); err == nil {
		sum := sha256.Sum256(b)
		st.StateHash = hex.EncodeToString(sum[:])
	}
	_, leader := r.raft.LeaderWithID()
	st.Leader = string(leader)
	st.CommitIndex, _ = strconv.ParseUint(r.raft.Stats()["commit_index"], 10, 64)
	f := r.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return st, err
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			st.Voters = append(st.Voters, string(s.ID))
		} else {
			st.NonVoters = append(st.NonVoters, string(s.ID))
		}
		if s.ID == raftnet.ServerID(r.self) {
			st.Role = map[bool]string{true: "voter", false: "non-voter"}[s.Suffrage == raft.Voter]
		}
	}
	if r.raft.State() == raft.Leader {
		st.Role = "leader"
	}
	slices.Sort(st.Voters)
	slices.Sort(st.NonVoters)
	return st, nil
}

func (r *Registry) isLeader() bool { return r.raft.State() == raft.Leader }
