package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/node/registry"
	cairnsync "github.com/inpud/cairn/sync"
)

// The drop rule. Every refusal of what a member node sent is counted
// against it, by reason (PeerState.Rejections, `cairn peers`). Then:
//
//   - What an honest node never sends drops the peer at once: a bad
//     signature, an envelope that does not decode (or names no valid
//     author key), a malformed or oversized frame, in a pull answer or a
//     request on any Cairn protocol (pull, notify, receipt, custody). Relays verify before they store, so only a broken or
//     hostile node sends these.
//   - What an honest node can cause only counts: an unknown key (the
//     registry has not replicated it here yet), a revoked key (the relay
//     stored the version before it learnt of the revocation), outside the
//     audience (a region changed), a future timestamp (clock
//     skew), a body this node's rules refuse (a template not here yet),
//     stalled (a slow link). After Config.Sync.DropAfter of these in a
//     row from one peer, with no version accepted in between, the peer is
//     dropped too. Stale (an older version than the one held) and
//     rolled-back (older than one the same peer served before,
//     rollback.go) only count, never towards that run: relays send
//     versions in the order they received them, and a restored node
//     serves its feed anew.
//
// Dropping closes every connection to the peer and stops pulling from it
// for Config.Sync.DropBackoff. The node still serves it (what it may see)
// if it connects again, and the registry still replicates with it: the
// gater admits members, and a steward's Raft must not stall for a sync
// quarrel.

// errDropped: this node stopped pulling from the peer for a while.
var errDropped = errors.New("this node dropped the peer")

// stateLocked returns id's state, adding it if new. r.mu must be held.
func (r *replication) stateLocked(id peer.ID) *PeerState {
	ps := r.peers[id]
	if ps == nil {
		ps = &PeerState{ID: id.String(), Rejections: map[cairnsync.Reason]int{}}
		r.n.fed.View(func(s *registry.State) {
			if k, ok := s.Node(id.String()); ok {
				ps.Network = k.Network
			}
		})
		r.peers[id] = ps
	}
	return ps
}

// reject counts one refusal of what id sent and drops id if the rule says
// so (at once, or after DropAfter refusals in a row). It reports whether
// id was dropped.
func (r *replication) reject(id peer.ID, reason cairnsync.Reason, atOnce bool) bool {
	now := r.n.cfg.Now()
	r.mu.Lock()
	ps := r.stateLocked(id)
	ps.Rejected++
	ps.Rejections[reason]++
	if reason != cairnsync.ReasonStale && reason != cairnsync.ReasonRolledBack { // honest relays send older versions too (rollback.go)
		ps.streak++
	}
	drop := atOnce || ps.streak >= r.n.cfg.Sync.DropAfter
	if drop {
		ps.streak = 0
		ps.Drops++
		ps.DroppedUntil = now.Add(r.n.cfg.Sync.DropBackoff).UTC()
		ps.DropReason = reason
	}
	network, streak := ps.Network, ps.streak
	r.mu.Unlock()
	if !drop {
		r.n.log.Debug("sync: refused what a member node sent", "peer", id, "network", network, "reason", reason, "in_a_row", streak)
		return false
	}
	r.n.log.Warn("sync: dropped a member node: closed its connections and stopped pulling from it for a while",
		"peer", id, "network", network, "reason", reason, "for", r.n.cfg.Sync.DropBackoff)
	_ = r.n.host.Network().ClosePeer(id)
	return true
}

// dropsAtOnce says whether a protocol fault drops the peer at once.
func dropsAtOnce(reason cairnsync.Reason) bool {
	return reason == cairnsync.ReasonOversizedFrame || reason == cairnsync.ReasonMalformedFrame
}

// accept notes that id sent a version that passed every check: its run of
// refusals ends.
func (r *replication) accept(id peer.ID) {
	r.mu.Lock()
	if ps := r.peers[id]; ps != nil {
		ps.streak = 0
	}
	r.mu.Unlock()
}

// MayPull refuses to pull from a peer dropped less than DropBackoff ago
// (cairnsync.Gate).
func (r *replication) MayPull(id peer.ID) error {
	now := r.n.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.peers[id]
	if ps == nil || !now.Before(ps.DroppedUntil) {
		return nil
	}
	return fmt.Errorf("%w (it sent %s); not pulling from it until %s", errDropped, ps.DropReason, ps.DroppedUntil.Format(time.RFC3339))
}

// Fault counts a faulty pull request against the peer that sent it
// (cairnsync.Faults).
func (r *replication) Fault(id peer.ID, reason cairnsync.Reason) {
	r.reject(id, reason, dropsAtOnce(reason))
}
