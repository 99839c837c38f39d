package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	stdsync "sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/registry"
	"github.com/inpud/cairn/node/store"
	cairnsync "github.com/inpud/cairn/sync"
)

// Custody copies (DESIGN §5, issue 5): a network names two or more other
// member networks as its custodians in the registry (`cairn custody set`),
// and its nodes push every version of their own records, private ones
// included, sealed under the archive key, to a node of each custodian
// network. Custodians keep the blobs (node/store/custody.go) and give them
// back to the origin's nodes (fetch, for restore); they hold no key and
// never open them.
//
// The pusher keeps one cursor per custodian network (the checkpoint
// "custody:<slug>"), scans its change feed after it for versions of its
// own network's records, seals them, pushes them in batches to the first
// node of that network that acknowledges, and advances the cursor only
// after the ack, which comes once the blobs are on the custodian's disk.
// A crash between ack and cursor pushes the batch again; the custodian
// counts it as duplicates. A custodian network that cannot be reached
// keeps its cursor and does not hold up the others. The loop runs on the
// store's Watch (own writes and records received, which move the cursor
// over entries that are not its own), when a node connects, and every
// sync interval.
//
// Each custodian network gets every version once, on one of its nodes
// (connected nodes first); copying between a custodian's own nodes is not
// done. `cairn custody status` shows what each of its nodes holds.
//
// The archive key is per data dir (archive.key): every node of a network
// seals with its own unless the operator gave its nodes the same file. A
// blob names its key (a one-way key id), so a node fetches back and opens
// the copies its key sealed and counts the others. Sharing one archive key
// among a network's nodes (handing it to a second node when it joins) is
// not built yet.

// custodyConfig tunes the pusher. Defaults come from the node's config.
type custodyConfig struct {
	// Retry is how often the pusher runs when the feed did not grow.
	Retry time.Duration
	// Backoff is how long a custodian network that could not be reached,
	// or refused (its registry replica may not know yet that it was
	// chosen), waits before it is tried again, unless a node connects first.
	Backoff time.Duration
	// Scan is the most feed entries one pass reads.
	Scan int
	// Passes bounds the passes of one round, per custodian network.
	Passes int
	// Timeout bounds one push or status request to one node.
	Timeout time.Duration
	// BatchBytes bounds the blob bytes of one push.
	BatchBytes int
}

func defaultCustodyConfig(syncInterval time.Duration) custodyConfig {
	return custodyConfig{Retry: syncInterval, Backoff: min(syncInterval, 10*time.Second), Scan: 4096, Passes: 64, Timeout: 30 * time.Second, BatchBytes: cairnsync.MaxBatchFrame - 64<<10}
}

// custodyCursor is the checkpoint name of a custodian network's cursor
// (slugs have no ':', peer IDs neither; see receiptCursor).
func custodyCursor(network string) string { return "custody:" + network }

// custody pushes this node's custody copies and keeps other networks'.
// Its loop runs from start to stop.
type custody struct {
	n      *Node
	cfg    custodyConfig
	key    *cairnsync.ArchiveKey
	server *cairnsync.CustodyServer
	kick   chan struct{}

	cancel context.CancelFunc
	wg     stdsync.WaitGroup

	mu     stdsync.Mutex
	failed map[string]time.Time   // custodian network → last failure; guarded by mu
	last   map[string]custodyPush // custodian network → last push; guarded by mu
}

// custodyPush is the outcome of the last push to a custodian network.
type custodyPush struct {
	At   time.Time
	Node peer.ID
	Ack  cairnsync.CustodyAck
	Err  string
}

func newCustody(n *Node) (*custody, error) {
	key, err := cairnsync.NewArchiveKey(n.archiveKey)
	if err != nil {
		return nil, err
	}
	cfg := cairnsync.DefaultPullConfig()
	if n.repl != nil { // a node restoring has none yet (restore.go); a nil *replication would not be a nil Faults
		cfg.Faults = n.repl // bad frames count against the sender, as on pull (drop.go)
	}
	srv, err := cairnsync.NewCustodyServer(registryMembers{n}, custodyPolicy{n}, custodyStore{n.store}, cfg)
	if err != nil {
		return nil, err
	}
	c := &custody{n: n, cfg: defaultCustodyConfig(n.cfg.SyncInterval), key: key, server: srv,
		kick: make(chan struct{}, 1), failed: map[string]time.Time{}, last: map[string]custodyPush{}}
	n.host.SetStreamHandler(cairnsync.CustodyProtocol, n.gater.GuardStream(false, srv.Handle))
	return c, nil
}

// start launches the pushing loop; stop ends it and waits.
func (c *custody) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	changed, unwatch := c.n.store.Watch()
	c.n.host.Network().Notify(c)
	c.wg.Go(func() {
		defer unwatch()
		c.loop(ctx, changed)
	})
}

func (c *custody) stop() {
	c.n.host.RemoveStreamHandler(cairnsync.CustodyProtocol)
	c.n.host.Network().StopNotify(c)
	if c.cancel != nil {
		c.cancel()
		c.wg.Wait()
	}
}

func (c *custody) loop(ctx context.Context, changed <-chan struct{}) {
	t := time.NewTicker(c.cfg.Retry)
	defer t.Stop()
	for {
		c.round(ctx)
		var retry <-chan time.Time
		c.mu.Lock()
		if len(c.failed) > 0 {
			retry = time.After(c.cfg.Backoff)
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		case <-retry:
		case <-c.kick:
			c.mu.Lock()
			clear(c.failed)
			c.mu.Unlock()
		}
	}
}

// poke makes the loop run a round soon, retrying failed custodians.
func (c *custody) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Connected is called by libp2p when a connection opens; it must not
// block. A node that comes back may be the custodian pushes wait for.
func (c *custody) Connected(network.Network, network.Conn)    { c.poke() }
func (c *custody) Disconnected(network.Network, network.Conn) {}
func (c *custody) Listen(network.Network, ma.Multiaddr)       {}
func (c *custody) ListenClose(network.Network, ma.Multiaddr)  {}

// custodians returns this network's custodian networks, each with its
// member nodes, as the registry names them.
func (c *custody) custodians() (names []string, nodes map[string][]peer.ID) {
	nodes = map[string][]peer.ID{}
	self := c.n.profile.Slug
	c.n.fed.View(func(s *registry.State) {
		own, ok := s.Network(self)
		if !ok {
			return
		}
		names = own.Custodians
		for _, k := range s.Peers() {
			if slices.Contains(names, k.Network) {
				if id, err := peer.Decode(k.PeerID); err == nil {
					nodes[k.Network] = append(nodes[k.Network], id)
				}
			}
		}
	})
	return names, nodes
}

// round brings every reachable custodian network up to the feed's head.
func (c *custody) round(ctx context.Context) {
	names, nodes := c.custodians()
	for _, name := range names {
		c.mu.Lock()
		at, failed := c.failed[name]
		c.mu.Unlock()
		if failed && time.Since(at) < c.cfg.Backoff {
			continue
		}
		c.mu.Lock()
		delete(c.failed, name)
		c.mu.Unlock()
		for range c.cfg.Passes {
			if ctx.Err() != nil {
				return
			}
			done, err := c.pass(ctx, name, nodes[name])
			if err != nil {
				c.mu.Lock()
				c.failed[name] = time.Now()
				c.last[name] = custodyPush{At: time.Now(), Err: err.Error()}
				c.mu.Unlock()
				c.n.log.Debug("custody: no node of the custodian took the copies; will retry", "custodian", name, "err", err)
				break
			}
			if done {
				break
			}
		}
	}
}

// pass pushes one batch to custodian network name: the own versions after
// its cursor. It reports done when the cursor reached the feed's head.
func (c *custody) pass(ctx context.Context, name string, nodes []peer.ID) (done bool, err error) {
	cursor, err := c.n.store.Checkpoint(custodyCursor(name))
	if err != nil {
		return false, err
	}
	if cursor >= c.n.store.Head() {
		return true, nil
	}
	blobs, end, err := c.batch(cursor)
	if err != nil || end == cursor {
		return end == cursor, err
	}
	if len(blobs) > 0 {
		if err := c.push(ctx, name, nodes, end, blobs); err != nil {
			return false, err
		}
	}
	if err := c.n.store.SetCheckpoint(custodyCursor(name), end); err != nil {
		return false, err
	}
	return false, nil
}

// batch seals the own versions after seq after, up to a push's limits,
// and returns them with the seq of the last feed entry they cover.
func (c *custody) batch(after uint64) (blobs []cairnsync.Blob, end uint64, err error) {
	self := c.n.profile.Slug
	end = after
	size, scanned := 0, 0
	for scanned < c.cfg.Scan {
		ask := min(256, c.cfg.Scan-scanned)
		entries, _, err := c.n.store.Feed(end, ask)
		if err != nil {
			return nil, after, err
		}
		for _, e := range entries {
			if e.Payload.Origin == self && !e.TakenBack {
				b, err := c.key.Seal(self, e.Envelope, e.Payload)
				if err != nil {
					return nil, after, err
				}
				if len(blobs) == cairnsync.MaxCustodyBlobs || (len(blobs) > 0 && size+len(b) > c.cfg.BatchBytes) {
					return blobs, end, nil
				}
				blobs = append(blobs, b)
				size += len(b)
			}
			scanned++
			end = e.Seq
		}
		if len(entries) < ask {
			break
		}
	}
	return blobs, end, nil
}

// push gives blobs to the first node of custodian network name that
// acknowledges them, connected nodes first.
func (c *custody) push(ctx context.Context, name string, nodes []peer.ID, through uint64, blobs []cairnsync.Blob) error {
	var errs []error
	for _, id := range connectedFirst(c.n, nodes) {
		sctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		ack, err := c.dialAnd(sctx, id, func(ctx context.Context) (cairnsync.CustodyAck, error) {
			return cairnsync.PushCustody(ctx, c.n.host, id, through, blobs)
		})
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.mu.Lock()
		c.last[name] = custodyPush{At: time.Now(), Node: id, Ack: ack}
		c.mu.Unlock()
		return nil
	}
	if len(errs) == 0 {
		return fmt.Errorf("custodian network %s has no member node", name)
	}
	return errors.Join(errs...)
}

// dialAnd connects to id if need be and runs f.
func (c *custody) dialAnd(ctx context.Context, id peer.ID, f func(context.Context) (cairnsync.CustodyAck, error)) (cairnsync.CustodyAck, error) {
	h := c.n.host
	if h.Network().Connectedness(id) != network.Connected {
		if err := h.Connect(ctx, peer.AddrInfo{ID: id}); err != nil {
			return cairnsync.CustodyAck{}, fmt.Errorf("connect to %s: %w", id, err)
		}
	}
	return f(ctx)
}

// connectedFirst orders nodes with the connected ones first.
func connectedFirst(n *Node, nodes []peer.ID) []peer.ID {
	out := make([]peer.ID, 0, len(nodes))
	for _, id := range nodes {
		if n.host.Network().Connectedness(id) == network.Connected {
			out = append(out, id)
		}
	}
	for _, id := range nodes {
		if n.host.Network().Connectedness(id) != network.Connected {
			out = append(out, id)
		}
	}
	return out
}

// custodyPolicy answers the custody server's questions from the registry.
type custodyPolicy struct{ n *Node }

func (p custodyPolicy) Keeps(origin string) bool {
	keeps := false
	p.n.fed.View(func(s *registry.State) {
		if net, ok := s.Network(origin); ok {
			keeps = slices.Contains(net.Custodians, p.n.profile.Slug)
		}
	})
	return keeps
}

// MayFetch lets a node of the origin fetch its copies, and, after a
// handover, a node of the steward network holding its archive.
func (p custodyPolicy) MayFetch(requester, origin string) bool {
	if requester == origin {
		return true
	}
	may := false
	p.n.fed.View(func(s *registry.State) {
		if net, ok := s.Network(origin); ok {
			may = net.Steward != "" && net.Steward == requester
		}
	})
	return may
}

// custodyStore keeps custody copies in the record store.
type custodyStore struct{ st *store.Store }

func (s custodyStore) Keep(origin string, from peer.ID, through uint64, blobs []cairnsync.Blob) (cairnsync.CustodyAck, error) {
	in := make([]store.CustodyBlob, len(blobs))
	for i, b := range blobs {
		h, err := b.Header()
		if err != nil {
			return cairnsync.CustodyAck{}, err
		}
		in[i] = store.CustodyBlob{ID: h.ID, Version: h.Version, Tag: h.Tag, Data: b}
	}
	k, err := s.st.KeepCustody(origin, from.String(), through, in)
	return cairnsync.CustodyAck{Stored: k.Stored, Duplicates: k.Duplicates, Held: k.Held, Through: k.Through}, err
}

func (s custodyStore) Blobs(origin string, after uint64, limit, maxBytes int) (cairnsync.CustodyBatch, error) {
	bs, last, more, err := s.st.CustodyBlobs(origin, after, limit, maxBytes)
	out := cairnsync.CustodyBatch{Last: last, More: more, Blobs: make([]cairnsync.Blob, len(bs))}
	for i, b := range bs {
		out.Blobs[i] = b
	}
	return out, err
}

func (s custodyStore) Holding(origin string, from peer.ID) (cairnsync.CustodyHolding, error) {
	held, through, err := s.st.CustodyHolding(origin, from.String())
	return cairnsync.CustodyHolding{Held: held, Through: through}, err
}

// ---- Setting custodians ----

// custodyRefusal is bad input for `cairn custody set`: one sentence,
// matching the registry's error kinds for the API's status codes.
type custodyRefusal struct {
	kind error
	msg  string
}

func (e *custodyRefusal) Error() string { return e.msg }
func (e *custodyRefusal) Unwrap() error { return e.kind }

func refuseCustodians(kind error, format string, args ...any) error {
	return &custodyRefusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// SetCustodians names this network's custodians in the registry: at least
// two (at most registry.MaxCustodians) other active member networks. Bad
// input is refused with one sentence and nothing changes.
func (n *Node) SetCustodians(ctx context.Context, slugs []string) (registry.Result, error) {
	self := n.profile.Slug
	if len(slugs) < registry.MinCustodians {
		return registry.Result{}, refuseCustodians(registry.ErrInvalidCommand, "%s needs at least %d custodians (other member networks that keep encrypted copies of its records), not %d: name them as SLUG,SLUG", self, registry.MinCustodians, len(slugs))
	}
	if len(slugs) > registry.MaxCustodians {
		return registry.Result{}, refuseCustodians(registry.ErrInvalidCommand, "%s may have at most %d custodians, not %d", self, registry.MaxCustodians, len(slugs))
	}
	st := n.fed.State()
	seen := map[string]bool{}
	for _, s := range slugs {
		switch {
		case !model.ValidSlug(s):
			return registry.Result{}, refuseCustodians(registry.ErrInvalidCommand, "%q is not a network slug (lower-case letters, digits and hyphens); cairn members lists the member networks", s)
		case s == self:
			return registry.Result{}, refuseCustodians(registry.ErrInvalidCommand, "%s cannot be its own custodian: choose other member networks", self)
		case seen[s]:
			return registry.Result{}, refuseCustodians(registry.ErrInvalidCommand, "custodian %s is named twice: name each network once", s)
		}
		seen[s] = true
		net, ok := st.Network(s)
		if !ok {
			return registry.Result{}, refuseCustodians(registry.ErrNotFound, "%s is not a member network of this federation; cairn members lists them", s)
		}
		if net.Status != registry.StatusActive {
			return registry.Result{}, refuseCustodians(registry.ErrConflict, "%s is %s and cannot be a custodian: choose an active member network", s, net.Status)
		}
	}
	res, err := n.fed.Propose(ctx, registry.SetCustodians, registry.SetCustodiansArgs{Custodians: slugs})
	if err != nil {
		return res, err
	}
	if n.cust != nil {
		n.cust.poke()
	}
	return res, nil
}

// ---- Status ----

// CustodyStatus is what `cairn custody status` shows.
type CustodyStatus struct {
	ID         string            `json:"id"` // this network's slug
	Network    string            `json:"network"`
	ArchiveKey string            `json:"archive_key"` // the key id this node's copies carry
	FeedHead   uint64            `json:"feed_head"`
	Custodians []CustodianStatus `json:"custodians"`
	// Keeping lists the networks this node keeps custody copies for.
	Keeping []KeptCopies `json:"keeping"`
}

// CustodianStatus is one custodian network as this node sees it.
type CustodianStatus struct {
	ID      string `json:"id"` // the custodian network's slug
	Network string `json:"network"`
	Status  string `json:"status"` // the custodian network's status in the registry
	// Acknowledged is this node's feed seq up to which the custodian
	// network has acknowledged every own version.
	Acknowledged uint64 `json:"acknowledged_seq"`
	// Behind counts own versions after it, not yet acknowledged (at least
	// that many when BehindMore).
	Behind     int             `json:"behind"`
	BehindMore bool            `json:"behind_more,omitempty"`
	CaughtUp   bool            `json:"caught_up"`
	LastPush   *time.Time      `json:"last_push,omitempty"`
	Problem    string          `json:"problem,omitempty"`
	Nodes      []CustodianNode `json:"nodes"`
}

// CustodianNode is what one node of a custodian network says it keeps.
type CustodianNode struct {
	ID string `json:"id"` // peer ID
	// Held counts the copies of this network's versions the node keeps,
	// from all of this network's nodes.
	Held uint64 `json:"held"`
	// Acknowledged is this node's feed seq its last push to that node reached.
	Acknowledged uint64 `json:"acknowledged_seq"`
	Error        string `json:"error,omitempty"`
}

// KeptCopies is a network whose custody copies this node keeps.
type KeptCopies struct {
	ID   string `json:"id"` // the network's slug
	Held uint64 `json:"held"`
}

// maxBehindScan bounds the feed entries status reads to count what a
// custodian lacks.
const maxBehindScan = 200_000

// CustodyStatus reports, for each custodian network, what its nodes keep
// of this network's versions and how far behind it is, asking each of its
// nodes it can reach; and what this node keeps for others.
func (n *Node) CustodyStatus(ctx context.Context) (any, error) {
	if n.cust == nil {
		return nil, errors.New("the node is not started")
	}
	c := n.cust
	out := CustodyStatus{ID: n.profile.Slug, Network: n.profile.Slug, ArchiveKey: c.key.ID(), FeedHead: n.store.Head(), Custodians: []CustodianStatus{}, Keeping: []KeptCopies{}}
	names, nodes := c.custodians()
	st := n.fed.State()
	for _, name := range names {
		cs := CustodianStatus{ID: name, Network: name, Nodes: []CustodianNode{}}
		if net, ok := st.Network(name); ok {
			cs.Status = string(net.Status)
		}
		cur, err := n.store.Checkpoint(custodyCursor(name))
		if err != nil {
			return nil, err
		}
		cs.Acknowledged = cur
		if cs.Behind, cs.BehindMore, err = n.ownVersionsAfter(cur); err != nil {
			return nil, err
		}
		cs.CaughtUp = cs.Behind == 0 && !cs.BehindMore
		c.mu.Lock()
		if lp, ok := c.last[name]; ok {
			at := lp.At.UTC()
			cs.LastPush = &at
			cs.Problem = lp.Err
		}
		c.mu.Unlock()
		for _, id := range nodes[name] {
			cn := CustodianNode{ID: id.String()}
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			var hold cairnsync.CustodyHolding
			_, err := c.dialAnd(sctx, id, func(ctx context.Context) (cairnsync.CustodyAck, error) {
				var err error
				hold, err = cairnsync.CustodyStatus(ctx, n.host, id)
				return cairnsync.CustodyAck{}, err
			})
			cancel()
			if err != nil {
				cn.Error = err.Error()
			}
			cn.Held, cn.Acknowledged = hold.Held, hold.Through
			cs.Nodes = append(cs.Nodes, cn)
		}
		out.Custodians = append(out.Custodians, cs)
	}
	for _, net := range st.NetworkList() {
		if slices.Contains(net.Custodians, n.profile.Slug) {
			held, _, err := n.store.CustodyHolding(net.Slug, n.ID())
			if err != nil {
				return nil, err
			}
			out.Keeping = append(out.Keeping, KeptCopies{ID: net.Slug, Held: held})
		}
	}
	return out, nil
}

// ownVersionsAfter counts the own versions in the feed after seq after.
func (n *Node) ownVersionsAfter(after uint64) (count int, more bool, err error) {
	self := n.profile.Slug
	for scanned := 0; scanned < maxBehindScan; {
		entries, last, err := n.store.Feed(after, 1000)
		if err != nil {
			return 0, false, err
		}
		for _, e := range entries {
			if e.Payload.Origin == self && !e.TakenBack {
				count++
			}
		}
		scanned += len(entries)
		if len(entries) < 1000 {
			return count, false, nil
		}
		after = last
	}
	return count, true, nil
}

// ---- Fetching back ----

// maxFetchPages bounds the fetches of one FetchCustodyCopies.
const maxFetchPages = 100_000

// CustodyCopies is what FetchCustodyCopies brought back.
type CustodyCopies struct {
	// Envelopes are the versions this node's archive key opened, exactly
	// the signed bytes sealed, in the order the custodian first kept them.
	Envelopes []model.Envelope
	// OtherKeys counts blobs sealed with another archive key (another node
	// of this network with its own key).
	OtherKeys int
}

// FetchCustodyCopies fetches this network's custody copies from custodian
// node from and opens those its archive key sealed. A blob that names this
// node's key but does not open fails the fetch: the custodian changed it.
func (n *Node) FetchCustodyCopies(ctx context.Context, from peer.ID) (CustodyCopies, error) {
	if n.cust == nil {
		return CustodyCopies{}, errors.New("the node is not started")
	}
	key := n.cust.key
	var out CustodyCopies
	after := uint64(0)
	for range maxFetchPages {
		b, err := cairnsync.FetchCustody(ctx, n.host, from, n.profile.Slug, after, 0)
		if err != nil {
			return out, err
		}
		for _, bl := range b.Blobs {
			h, err := bl.Header()
			if err != nil {
				return out, fmt.Errorf("custody copy from %s: %w", from, err)
			}
			if h.KeyID != key.ID() {
				out.OtherKeys++
				continue
			}
			env, _, err := key.Open(bl)
			if err != nil {
				return out, fmt.Errorf("custody copy from %s: %w", from, err)
			}
			out.Envelopes = append(out.Envelopes, env)
		}
		after = b.Last
		if !b.More {
			return out, nil
		}
	}
	return out, fmt.Errorf("fetch custody copies from %s: more than %d pages", from, maxFetchPages)
}
