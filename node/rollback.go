package node

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/store"
)

// Rollback detection (issue 6). A rollback is a peer serving a version of
// a record older than one it served this node before: it goes back on
// what it said was the newest. The sink remembers, per peer, the newest
// version number of each record the peer served that passed the checks
// (or that this node held already), and refuses an older version that
// this node does not hold as sync.ReasonRolledBack, even within one
// batch. It counts against the peer (`cairn peers`, under rejections) and
// is noted in the record's events (`cairn record history`), but never
// drops the peer, like stale: an honest peer whose feed was started anew
// (restored) or that imported an older export can serve older versions
// after newer ones too.
//
// A version older than one this node holds, from a peer that never
// served the newer one, stays stale: that is how relays that received
// versions in another order look, and it is common in a mesh.
//
// The memory is in this process only (it starts empty when the node
// starts) and bounded per peer (maxServed records; past that an arbitrary
// one is forgotten), so a peer can only be caught rolling back what it
// served since this node started. Versions that come in offline bundles
// are not remembered: bundles may be imported in any order.

// maxServed bounds how many records' newest served version are
// remembered per peer.
const maxServed = 1 << 14

// served notes that peer id served version v of record rec and returns
// the newest version of rec it served before if that is newer than v (a
// rollback: then nothing is noted), else 0.
func (r *replication) served(id peer.ID, rec string, v uint64) (newer uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.servedBy[id]
	if m == nil {
		m = map[string]uint64{}
		r.servedBy[id] = m
	}
	if prev, ok := m[rec]; ok {
		if prev > v {
			return prev
		}
	} else if len(m) >= maxServed {
		for k := range m {
			delete(m, k)
			break
		}
	}
	m[rec] = v
	return 0
}

// forked counts, against the peer that delivered them, the versions that
// forked their record (store.EventFork). A fork is not refused and never
// drops the peer: nodes of one network writing at once make forks too.
func (r *replication) forked(id peer.ID, fs []store.ForkOf) {
	n := 0
	for _, f := range fs {
		if f.Event.Kind == store.EventFork {
			n++
		}
	}
	if n == 0 {
		return
	}
	r.mu.Lock()
	r.stateLocked(id).Forks += n
	r.mu.Unlock()
}

// rollbacks are the rolled-back versions one batch refused, to be noted
// in their records' events.
type rollbacks struct {
	ids []string
	evs []store.Event
}

func (rb *rollbacks) add(p model.Payload, hash string, newer uint64) {
	rb.ids = append(rb.ids, p.ID)
	rb.evs = append(rb.evs, store.Event{Kind: store.EventRolledBack, Version: p.Version, Hash: hash, Prev: p.Prev, Held: newer})
}

// note writes rb into the record events, in one write, naming peer from.
// Failing to note them is logged, not an error of the pull: the refusals
// are counted either way.
func (s recordSink) note(from peer.ID, rb rollbacks) {
	if len(rb.evs) == 0 {
		return
	}
	now, network := s.n.cfg.Now().UTC(), s.r.networkOf(from)
	for i := range rb.evs {
		rb.evs[i].At, rb.evs[i].Peer, rb.evs[i].Network = now, from.String(), network
	}
	if err := s.n.store.AddEvents(rb.ids, rb.evs); err != nil {
		s.n.log.Warn("sync: could not note refused rolled-back versions in their records' history", "peer", from, "count", len(rb.evs), "err", err)
	}
}
