package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	stdsync "sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
	"github.com/inpud/cairn/node/registry"
	"github.com/inpud/cairn/node/store"
	cairnsync "github.com/inpud/cairn/sync"
)

// Delivery receipts (DESIGN §5): every node tells the origin network of
// the records it stored which versions it holds, so the origin's nodes can
// answer "who holds which version of this record" (`cairn record holders`).
//
// The sender writes nothing when it stores records: its change feed already
// lists every version it stored. It keeps one cursor per origin network
// (the checkpoint "receipt:<slug>"; slugs have no ':' and peer IDs, the
// other checkpoints, have none either), scans the feed after it, sends the
// versions of that origin's records to any reachable node of the origin
// network, and advances the cursor only after that node's ack. A crash
// between the ack and the cursor sends the same receipts again, which the
// origin keeps idempotently. An unreachable origin keeps its cursor and
// does not hold up the others.

// receiptConfig tunes the sender. Defaults come from the node's config.
type receiptConfig struct {
	// Retry is how often the sender runs when the feed did not grow, and
	// how long an origin that could not be reached waits before it is
	// tried again, unless a node connects first.
	Retry time.Duration
	// Scan is the most feed entries one pass reads.
	Scan int
	// Passes bounds the passes of one round.
	Passes int
	// Timeout bounds sending one frame to one node.
	Timeout time.Duration
	// Settle is how long the feed must stay unchanged before a round its
	// growth asked for runs, and MaxDefer the longest such a round waits
	// (from the first change it has not sent). A first sync from an
	// origin stores a batch every few tens of milliseconds; sending a
	// receipt round after each batch made the origin spend about as much
	// CPU keeping receipts as serving the records (store.PutReceipts on
	// every receipt, during the sync). Waiting until the sync has settled
	// sends the same receipts once it is done, in full frames, with the
	// origin's cores free for the sync meanwhile. A change after a quiet
	// spell (the usual case: a few records) waits Settle.
	Settle, MaxDefer time.Duration
}

func defaultReceiptConfig(syncInterval time.Duration) receiptConfig {
	return receiptConfig{Retry: syncInterval, Scan: 4096, Passes: 64, Timeout: 20 * time.Second,
		Settle: time.Second, MaxDefer: 30 * time.Second}
}

// receiptCursor is the checkpoint name of an origin network's cursor.
func receiptCursor(network string) string { return "receipt:" + network }

// receipts sends this node's receipts and serves other nodes' receipts for
// this network's records. Its loop runs from start to stop.
type receipts struct {
	n      *Node
	cfg    receiptConfig
	server *cairnsync.ReceiptServer
	kick   chan struct{} // a member node connected: retry failed origins now

	cancel context.CancelFunc
	wg     stdsync.WaitGroup

	mu     stdsync.Mutex
	failed map[string]time.Time // origin network → last failure; guarded by mu
}

func newReceipts(n *Node) (*receipts, error) {
	cfg := cairnsync.DefaultPullConfig()
	if n.repl != nil { // a node restoring has none yet (restore.go); a nil *replication would not be a nil Faults
		cfg.Faults = n.repl // bad frames count against the sender, as on pull (drop.go)
	}
	srv, err := cairnsync.NewReceiptServer(registryMembers{n}, receiptStore{n}, cfg)
	if err != nil {
		return nil, err
	}
	r := &receipts{n: n, cfg: defaultReceiptConfig(n.cfg.SyncInterval), server: srv, kick: make(chan struct{}, 1), failed: map[string]time.Time{}}
	n.host.SetStreamHandler(cairnsync.ReceiptProtocol, n.gater.GuardStream(false, srv.Handle))
	return r, nil
}

// start launches the sending loop; stop ends it and waits.
func (r *receipts) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	changed, unwatch := r.n.store.Watch()
	r.n.host.Network().Notify(r)
	r.wg.Go(func() {
		defer unwatch()
		r.loop(ctx, changed)
	})
}

func (r *receipts) stop() {
	r.n.host.RemoveStreamHandler(cairnsync.ReceiptProtocol)
	r.n.host.Network().StopNotify(r)
	if r.cancel != nil {
		r.cancel()
		r.wg.Wait()
	}
}

// loop runs a round at start, once the store's feed grew (a sync stored
// something) and then stayed unchanged for Settle (or MaxDefer after the
// first growth not sent yet), when a node connects, and every Retry.
func (r *receipts) loop(ctx context.Context, changed <-chan struct{}) {
	t := time.NewTicker(r.cfg.Retry)
	defer t.Stop()
	settled := time.NewTimer(time.Hour)
	settled.Stop()
	defer settled.Stop()
	var since time.Time // the first feed growth no round has sent; zero if none
	for {
		// A round sends at most Passes frames to each origin; one that
		// stopped there goes on at once (a round after a first sync of
		// many records has more to send than one round sends).
		for r.round(ctx) && ctx.Err() == nil {
		}
		since = time.Time{}
		settled.Stop()
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				now := time.Now()
				if since.IsZero() {
					since = now
				}
				d := min(r.cfg.Settle, r.cfg.MaxDefer-now.Sub(since))
				if d <= 0 {
					break wait
				}
				settled.Reset(d)
			case <-settled.C:
				break wait
			case <-t.C:
				break wait
			case <-r.kick:
				r.mu.Lock()
				clear(r.failed)
				r.mu.Unlock()
				break wait
			}
		}
	}
}

// Connected is called by libp2p when a connection opens; it must not
// block. A node that comes back may be the origin receipts wait for.
func (r *receipts) Connected(network.Network, network.Conn) {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *receipts) Disconnected(network.Network, network.Conn) {}
func (r *receipts) Listen(network.Network, ma.Multiaddr)       {}
func (r *receipts) ListenClose(network.Network, ma.Multiaddr)  {}

// round sends what every reachable origin network is owed. Origins whose
// cursors are equal share one scan of the feed (in steady state that is
// all of them), so a round costs one read of what is new. It reports
// whether it stopped at its bound of passes with receipts still owed to
// an origin it reached.
func (r *receipts) round(ctx context.Context) (more bool) {
	origins := r.origins()
	if len(origins) == 0 {
		return false
	}
	cursors := map[string]uint64{}
	for o := range origins {
		c, err := r.n.store.Checkpoint(receiptCursor(o))
		if err != nil {
			r.n.log.Warn("receipts: could not read a cursor", "origin", o, "err", err)
			return false
		}
		cursors[o] = c
	}
	start := maps.Clone(cursors)
	head := r.n.store.Head()
	for range r.cfg.Passes {
		groups := map[uint64][]string{}
		for o, c := range cursors {
			if c < head {
				groups[c] = append(groups[c], o)
			}
		}
		if len(groups) == 0 || ctx.Err() != nil {
			return false
		}
		for after, group := range groups {
			if err := r.pass(ctx, after, group, origins, cursors); err != nil {
				r.n.log.Warn("receipts: reading the change feed failed", "err", err)
				return false
			}
		}
	}
	for o, c := range cursors {
		if c < head && c > start[o] {
			return true // owed more, and this round moved it on
		}
	}
	return false
}

// origins returns the other member networks not waiting out a failure,
// each with its member nodes.
func (r *receipts) origins() map[string][]peer.ID {
	out := map[string][]peer.ID{}
	self := r.n.profile.Slug
	r.n.fed.View(func(s *registry.State) {
		for _, k := range s.Peers() {
			if k.Network == self {
				continue
			}
			if id, err := peer.Decode(k.PeerID); err == nil {
				out[k.Network] = append(out[k.Network], id)
			}
		}
	})
	r.mu.Lock()
	for o, at := range r.failed {
		if time.Since(at) < r.cfg.Retry {
			delete(out, o)
		}
	}
	r.mu.Unlock()
	return out
}

// pass scans the feed after seq after for the origins in group (whose
// cursors are all at after), sends each its receipts, and moves each
// cursor that was acknowledged (or had nothing to send). An origin that
// fails is dropped from cursors for the rest of the round.
func (r *receipts) pass(ctx context.Context, after uint64, group []string, nodes map[string][]peer.ID, cursors map[string]uint64) error {
	pending := map[string]map[string]cairnsync.Receipt{}
	for _, o := range group {
		pending[o] = map[string]cairnsync.Receipt{}
	}
	end, scanned := after, 0
scan:
	for scanned < r.cfg.Scan {
		ask := min(256, r.cfg.Scan-scanned)
		// Only the group's origins' versions are looked at (to tell
		// stubs), none is decoded, and one stored whole is not read
		// (FeedHeld).
		entries, _, err := r.n.store.FeedHeld(end, ask, func(origin string, _ model.Audience) bool {
			_, ok := pending[origin]
			return ok
		})
		if err != nil {
			return err
		}
		for _, e := range entries {
			scanned++
			end = e.Seq
			p, ok := pending[e.Origin]
			if !ok || e.TakenBack {
				continue // another origin's, or a stub: this node no longer holds that version
			}
			if cur, seen := p[e.ID]; !seen || e.Version > cur.Version {
				p[e.ID] = cairnsync.Receipt{ID: e.ID, Version: e.Version, Hash: e.Hash}
			}
			if len(p) == cairnsync.MaxReceipts {
				break scan // a full frame: every origin of the group stops here
			}
		}
		if len(entries) < ask {
			break // the end of the feed
		}
	}
	if end == after {
		return nil
	}
	for _, o := range group {
		if len(pending[o]) > 0 {
			rs := make([]cairnsync.Receipt, 0, len(pending[o]))
			for _, rc := range pending[o] {
				rs = append(rs, rc)
			}
			if err := r.send(ctx, o, nodes[o], rs); err != nil {
				delete(cursors, o)
				r.mu.Lock()
				r.failed[o] = time.Now()
				r.mu.Unlock()
				r.n.log.Debug("receipts: no node of the origin took them; will retry", "origin", o, "receipts", len(rs), "err", err)
				continue
			}
		}
		if err := r.n.store.SetCheckpoint(receiptCursor(o), end); err != nil {
			delete(cursors, o)
			r.n.log.Warn("receipts: could not save a cursor", "origin", o, "err", err)
			continue
		}
		cursors[o] = end
	}
	return nil
}

// send gives rs to the first node of origin that acknowledges them,
// connected nodes first.
func (r *receipts) send(ctx context.Context, origin string, nodes []peer.ID, rs []cairnsync.Receipt) error {
	h := r.n.host
	ordered := make([]peer.ID, 0, len(nodes))
	for _, id := range nodes {
		if h.Network().Connectedness(id) == network.Connected {
			ordered = append(ordered, id)
		}
	}
	for _, id := range nodes {
		if h.Network().Connectedness(id) != network.Connected {
			ordered = append(ordered, id)
		}
	}
	var errs []error
	for _, id := range ordered {
		sctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		if h.Network().Connectedness(id) != network.Connected {
			if err := h.Connect(sctx, peer.AddrInfo{ID: id}); err != nil {
				cancel()
				errs = append(errs, fmt.Errorf("connect to %s: %w", id, err))
				continue
			}
		}
		ack, err := cairnsync.SendReceipts(sctx, h, id, rs)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ack.Ignored > 0 {
			r.n.log.Debug("receipts: the origin ignored some", "origin", origin, "node", id, "ignored", ack.Ignored)
		}
		return nil
	}
	if len(errs) == 0 {
		return fmt.Errorf("network %s has no member node", origin)
	}
	return errors.Join(errs...)
}

// receiptStore keeps receipts for this network's records in the store.
type receiptStore struct{ n *Node }

func (s receiptStore) Receive(network string, rs []cairnsync.Receipt) (int, error) {
	if network == s.n.profile.Slug {
		return 0, nil // the origin's own nodes hold its records already
	}
	in := make([]store.Receipt, len(rs))
	for i, rc := range rs {
		in[i] = store.Receipt{ID: rc.ID, Version: rc.Version, Hash: rc.Hash}
	}
	res, err := s.n.store.PutReceipts(network, s.n.profile.Slug, s.n.cfg.Now(), in)
	return res.Accepted, err
}

// RecordHolder is one network's copy of a record, as `cairn record
// holders` shows it: the origin's current version, or the highest version
// another network acknowledged holding.
type RecordHolder struct {
	ID      string    `json:"id"` // the record's id
	Network string    `json:"network"`
	Version uint64    `json:"version"`
	Hash    string    `json:"hash"`
	At      time.Time `json:"at"` // the origin: when the version was written; others: when their receipt for it arrived
}

// Holders says which networks hold which version of one of this network's
// records ([]RecordHolder): this network first, then every network whose
// receipts reached this node, by slug.
func (n *Node) Holders(id string) (any, error) {
	if err := model.ValidateID(id); err != nil {
		return nil, err
	}
	cur, err := n.store.Get(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", records.ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	if origin := cur.Payload.Origin; origin != n.profile.Slug {
		return nil, fmt.Errorf("%w: %s comes from %s, and only the nodes of %s collect its delivery receipts; ask one of them who holds it", records.ErrNotOwn, id, origin, origin)
	}
	hs, err := n.store.Holders(id)
	if err != nil {
		return nil, err
	}
	out := make([]RecordHolder, 0, len(hs)+1)
	out = append(out, RecordHolder{ID: id, Network: n.profile.Slug, Version: cur.Payload.Version, Hash: cur.Hash, At: cur.Payload.HLC.Time().UTC()})
	for _, h := range hs {
		if h.Network != n.profile.Slug {
			out = append(out, RecordHolder{ID: id, Network: h.Network, Version: h.Version, Hash: h.Hash, At: h.At})
		}
	}
	return out, nil
}
