package node

import (
	"github.com/libp2p/go-libp2p/core/network"

	cairnsync "github.com/inpud/cairn/sync"
)

// streamLimits applies Config.Sync.Streams to the Cairn protocols' stream
// handlers (cairnsync.StreamAdmitter, through registryMembers) and counts
// every stream it refuses against its peer as "rate-limited" (`cairn
// peers`). A refusal is something an honest node can cause too (a burst
// after a long partition), so it only counts towards Config.Sync.DropAfter
// and never drops the peer at once.
type streamLimits struct {
	limiter *cairnsync.StreamLimiter
	r       *replication
}

// newStreamLimits makes the limiter for n, counting refusals through r.
// The limiter runs on the real clock, not Config.Now: it measures how fast
// streams arrive, which a test's frozen clock would make look infinite.
func newStreamLimits(n *Node, r *replication) (*streamLimits, error) {
	l, err := cairnsync.NewStreamLimiter(n.cfg.Sync.Streams, nil)
	if err != nil {
		return nil, err
	}
	return &streamLimits{limiter: l, r: r}, nil
}

// AdmitStream asks the limiter about s, and counts a refusal against its
// peer. It is called on every inbound pull, notify, receipt and custody
// stream before anything is read from it.
func (m registryMembers) AdmitStream(s network.Stream) (release func(), ok bool) {
	sl := m.n.limits
	if sl == nil { // handlers registered before replication (none today)
		return func() {}, true
	}
	p := s.Conn().RemotePeer()
	release, ok = sl.limiter.Admit(p, s.Protocol())
	if !ok {
		sl.r.reject(p, cairnsync.ReasonRateLimited, false)
	}
	return release, ok
}
