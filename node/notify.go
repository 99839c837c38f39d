package node

import (
	"context"
	stdsync "sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	cairnsync "github.com/inpud/cairn/sync"
)

// Notify (DESIGN §5): whenever this node's change feed grows, by its own
// writes or by records it received, it tells the member nodes it is
// connected to its new head; a node told of a head beyond its checkpoint
// pulls from the teller at once. Relaying needs nothing more: B stores
// A's record, B's feed grows, B notifies C, C pulls from B.
//
// Cost: every change makes one small stream to each connected member and,
// at each, one pull request (which may bring nothing that member may
// see). Bursts coalesce: the store's Watch signal is level-triggered, and
// a pull already running for a peer is simply run once more afterwards.

// maxNotifyFanout bounds the notifies in flight at once.
const maxNotifyFanout = 16

// notifyGather is how long the notify loop waits after a change for more
// before it tells anyone: a catch-up stores one batch after another, and
// a member told once pulls them all.
const notifyGather = 10 * time.Millisecond

// notifyLoop sends this node's feed head to connected member nodes after
// every change, until ctx ends.
func (r *replication) notifyLoop(ctx context.Context, changed <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(notifyGather):
		}
		select {
		case <-changed: // a change during the wait: the head read below covers it
		default:
		}
		head := r.n.store.Head()
		var wg stdsync.WaitGroup
		slots := make(chan struct{}, maxNotifyFanout)
		for _, p := range r.connectedMembers() {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				if err := cairnsync.Notify(ctx, r.n.host, p, head); err != nil {
					r.n.log.Debug("sync: notify failed", "peer", p, "err", err)
				}
			})
		}
		wg.Wait()
	}
}

// connectedMembers lists the current member nodes this node has a
// connection to.
func (r *replication) connectedMembers() []peer.ID {
	members := registryMembers{r.n}
	var out []peer.ID
	for _, p := range r.n.host.Network().Peers() {
		if rd, ok := members.Reader(p); ok && rd.Member {
			out = append(out, p)
		}
	}
	return out
}

// onNotify is the notify server's callback: a member node says its feed is
// at head. It runs on the stream's goroutine, so it only schedules a pull.
func (r *replication) onNotify(from peer.ID, head uint64) {
	r.mu.Lock()
	if ps := r.stateLocked(from); head > ps.Head {
		ps.Head = head // their feed head, for the lag `cairn peers` shows
	}
	r.mu.Unlock()
	if cp, err := r.puller.Checkpoints.Checkpoint(from); err == nil && head <= cp {
		return // nothing this node has not scanned already
	}
	r.kick(from)
}

// kick makes sure a pull from p runs after now: it starts one, or, if one
// is running, has it run once more when it ends (it may have started
// before the change it was kicked for).
func (r *replication) kick(p peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.pulling[p] {
		r.again[p] = true
		return
	}
	r.pulling[p] = true
	r.wg.Go(func() { r.pullUntilQuiet(p) })
}

// pullUntilQuiet catches up with p, again while kicks arrived meanwhile.
func (r *replication) pullUntilQuiet(p peer.ID) {
	network := r.networkOf(p)
	for {
		ctx, cancel := context.WithTimeout(r.ctx, time.Minute)
		st, err := r.puller.CatchUp(ctx, p)
		cancel()
		if err != nil {
			r.n.log.Debug("sync: pull after notify failed", "peer", p, "network", network, "err", err)
		}
		r.record(p, network, st, err)
		r.mu.Lock()
		if !r.again[p] || r.closed {
			delete(r.pulling, p)
			delete(r.again, p)
			r.mu.Unlock()
			return
		}
		delete(r.again, p)
		r.mu.Unlock()
	}
}

// networkOf names p's network from the registry ("" if unknown).
func (r *replication) networkOf(p peer.ID) string {
	rd, _ := registryMembers{r.n}.Reader(p)
	return rd.Network
}
