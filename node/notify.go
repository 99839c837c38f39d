package node

import (
	"context"
	stdsync "sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/node/store"
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
//
// A member is not told of growth that consists only of versions this
// node stored from that very member (feedSources): pulling them back
// would bring it nothing, as it holds them (in a first sync, a few hundred
// pull requests that each scanned the new part of the feed for nothing).
// Everything else is told as before: this node's own writes, versions from
// any other peer (a relay: B stores A's records from A and tells C, not
// A), and any feed position the sink did not attribute in time, so a skip
// can only ever save a notify that could not matter.
func (r *replication) notifyLoop(ctx context.Context, changed <-chan struct{}) {
	// prev is the head of the last round; covered[p] == prev says p was
	// told prev, or needed not be (a member missing from covered is told,
	// unless the feed was empty).
	var prev uint64
	covered := map[peer.ID]uint64{}
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
		fromPeer := r.sources.take(prev, head)
		members := r.connectedMembers()
		next := make(map[peer.ID]uint64, len(members))
		var (
			wg       stdsync.WaitGroup
			failedMu stdsync.Mutex
			failed   []peer.ID
		)
		slots := make(chan struct{}, maxNotifyFanout)
		for _, p := range members {
			next[p] = head
			// A member not seen last round may have missed what came
			// before, unless nothing did (prev 0: the whole feed is new).
			// A round without growth tells everyone, as it always did.
			if c, ok := covered[p]; (ok || prev == 0) && c == prev && head > prev && fromPeer[p] == head-prev {
				continue // all the growth since it was last told came from p itself
			}
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				if err := cairnsync.Notify(ctx, r.n.host, p, head); err != nil {
					r.n.log.Debug("sync: notify failed", "peer", p, "err", err)
					failedMu.Lock()
					failed = append(failed, p)
					failedMu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, p := range failed {
			delete(next, p) // not told: told at the next change, whatever it is
		}
		prev, covered = head, next
	}
}

// feedSources remembers which feed positions the sink stored from which
// peer, until the notify loop has used them. It holds runs of consecutive
// positions (a stored batch is one run); if the notify loop falls behind
// by more than maxSourceRuns, the oldest are forgotten, which costs only
// notifies that are sent although they need not be.
type feedSources struct {
	mu   stdsync.Mutex
	runs []sourceRun // in the order stored
}

// sourceRun is feed positions lo..hi, all stored from peer p.
type sourceRun struct {
	lo, hi uint64
	p      peer.ID
}

const maxSourceRuns = 4096

// add notes that the versions in stored came from p.
func (f *feedSources) add(p peer.ID, stored []store.Stored) {
	if len(stored) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, st := range stored {
		if n := len(f.runs); n > 0 && f.runs[n-1].p == p && f.runs[n-1].hi+1 == st.Seq {
			f.runs[n-1].hi = st.Seq
			continue
		}
		f.runs = append(f.runs, sourceRun{lo: st.Seq, hi: st.Seq, p: p})
	}
	if over := len(f.runs) - maxSourceRuns; over > 0 {
		f.runs = append(f.runs[:0], f.runs[over:]...)
	}
}

// take counts, per peer, the positions in (after, upTo] stored from it,
// forgets those at or below upTo, and keeps the rest for the next round.
func (f *feedSources) take(after, upTo uint64) map[peer.ID]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	counts := map[peer.ID]uint64{}
	keep := f.runs[:0]
	for _, run := range f.runs {
		lo, hi := max(run.lo, after+1), min(run.hi, upTo)
		if lo <= hi {
			counts[run.p] += hi - lo + 1
		}
		if run.hi > upTo {
			run.lo = max(run.lo, upTo+1)
			keep = append(keep, run)
		}
	}
	f.runs = keep
	return counts
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
