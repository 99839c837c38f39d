package p2p

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// guestGrace is how long a guest admitted at the handshake keeps its slot
// without the host reporting a connection to it. A handshake that passes
// the gater but fails later (muxer negotiation, resource limits) never
// produces a disconnect notification, so its slot is reclaimed after this.
const guestGrace = 10 * time.Second

// Gater is the host's connection gater: it admits members (peers its Allow
// function accepts) and, when asked, a bounded number of guests, and
// refuses everyone else as soon as their peer ID is authenticated.
//
// One Gater serves one host. All methods are safe for concurrent use.
type Gater struct {
	allow   atomic.Pointer[func(peer.ID) bool]
	blocked atomic.Pointer[map[peer.ID]bool]   // see Block; nil or read-only once stored
	removed atomic.Pointer[func(peer.ID) bool] // see RefuseAsGuests; nil: none

	mu        sync.Mutex
	maxGuests int
	guests    map[peer.ID]time.Time // guest -> when it was admitted
	held      map[peer.ID]int       // see Hold: peers Enforce leaves connected for now
	net       network.Network       // set by New; nil until then

	refusedPeerDial  atomic.Uint64
	refusedAddrDial  atomic.Uint64
	refusedSecured   atomic.Uint64
	refusedGuestFull atomic.Uint64
	refusedStream    atomic.Uint64
	closedByEnforce  atomic.Uint64
}

var _ connmgr.ConnectionGater = (*Gater)(nil)

// Refusals counts what the gater turned away since it was made, by reason.
// The counts only grow; export them as Prometheus counters.
type Refusals struct {
	PeerDial   uint64 // this node's own dials to non-members, stopped before dialling
	AddrDial   uint64 // the same, per address (normally caught by PeerDial first)
	Secured    uint64 // connections from or to non-members, closed after the handshake
	GuestsFull uint64 // of those, unknown peers refused because every guest slot was taken
	Streams    uint64 // streams reset by GuardStream because the peer may not use that protocol
	Enforced   uint64 // peers whose live connections Enforce closed
}

// NewGater returns a gater that admits the peers allow accepts and no
// guests. A nil allow admits no one.
func NewGater(allow func(peer.ID) bool) *Gater {
	g := &Gater{guests: make(map[peer.ID]time.Time)}
	g.SetAllow(allow)
	return g
}

// SetAllow replaces the membership test, for example after the registry
// changes. It applies to new connections at once; call Enforce to close
// live connections to peers it no longer accepts. allow is called on
// connection and stream set-up paths, concurrently: it must be safe for
// concurrent use, fast, and must not block. A nil allow admits no one.
func (g *Gater) SetAllow(allow func(peer.ID) bool) {
	if allow == nil {
		allow = func(peer.ID) bool { return false }
	}
	g.allow.Store(&allow)
}

// Allowed reports whether p is a member by the current Allow function,
// and not blocked.
func (g *Gater) Allowed(p peer.ID) bool {
	return !g.isBlocked(p) && (*g.allow.Load())(p)
}

// Block cuts this node off from peers ps, members or not, until Unblock:
// the gater refuses them as it refuses strangers (dials, handshakes,
// streams, and no guest slot), and Block closes their live connections.
// It returns how many of them were connected.
//
// Nothing in the node blocks a peer: membership is the registry's, through
// SetAllow. Block exists for fault tests that partition a federation of
// real hosts (node/partition_test.go), cutting sync and Raft both ways
// when both sides block each other.
func (g *Gater) Block(h host.Host, ps ...peer.ID) int {
	g.mu.Lock()
	next := map[peer.ID]bool{}
	if cur := g.blocked.Load(); cur != nil {
		for p := range *cur {
			next[p] = true
		}
	}
	for _, p := range ps {
		next[p] = true
	}
	g.blocked.Store(&next)
	g.mu.Unlock()
	closed := 0
	for _, p := range ps {
		if h.Network().Connectedness(p) == network.Connected {
			closed++
		}
		_ = h.Network().ClosePeer(p)
	}
	return closed
}

// Unblock lets peers ps through again, if Allow accepts them. It dials
// no one: connections come back as either side next dials the other.
func (g *Gater) Unblock(ps ...peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := g.blocked.Load()
	if cur == nil {
		return
	}
	next := map[peer.ID]bool{}
	for p := range *cur {
		next[p] = true
	}
	for _, p := range ps {
		delete(next, p)
	}
	g.blocked.Store(&next)
}

func (g *Gater) isBlocked(p peer.ID) bool {
	b := g.blocked.Load()
	return b != nil && (*b)[p]
}

// AdmitGuests lets at most n peers that are not members hold connections
// to this node at once (n <= 0: none, the default). Guests may only use
// protocols whose handlers are wrapped with GuardStream(true, ...), which
// is how the join protocol lets a joiner in. Lowering n refuses new
// guests; Enforce closes the guests above the new bound.
func (g *Gater) AdmitGuests(n int) {
	g.mu.Lock()
	g.maxGuests = max(n, 0)
	g.mu.Unlock()
}

// RefuseAsGuests makes the gater refuse a guest slot to every peer
// removed accepts: node keys the registry holds but no longer admits
// (revoked, or of a suspended or retired network), which have nothing to
// join. removed must be safe for concurrent use, fast, and not block.
func (g *Gater) RefuseAsGuests(removed func(peer.ID) bool) {
	g.removed.Store(&removed)
}

func (g *Gater) isRemoved(p peer.ID) bool {
	f := g.removed.Load()
	return f != nil && *f != nil && (*f)(p)
}

// IsGuest reports whether p holds a connection as a guest: admitted
// although not a member. A guest that becomes a member stops being one.
func (g *Gater) IsGuest(p peer.ID) bool {
	if g.Allowed(p) || g.isBlocked(p) {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.guests[p]
	return ok
}

// Refused returns the refusal counts so far.
func (g *Gater) Refused() Refusals {
	return Refusals{
		PeerDial:   g.refusedPeerDial.Load(),
		AddrDial:   g.refusedAddrDial.Load(),
		Secured:    g.refusedSecured.Load(),
		GuestsFull: g.refusedGuestFull.Load(),
		Streams:    g.refusedStream.Load(),
		Enforced:   g.closedByEnforce.Load(),
	}
}

// GuardStream wraps a stream handler so that it serves members only, and
// guests too when allowGuests is set; any other peer's stream is reset
// unread. Wrap every handler the node registers: a guest's connection
// otherwise reaches them all.
func (g *Gater) GuardStream(allowGuests bool, h network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		p := s.Conn().RemotePeer()
		if g.Allowed(p) || (allowGuests && g.IsGuest(p)) {
			h(s)
			return
		}
		g.refusedStream.Add(1)
		_ = s.Reset()
	}
}

// Enforce closes the live connections of every peer that is neither a
// member nor a guest within the current bound, and returns how many peers
// it cut off. The gater only sees new connections, so call Enforce after
// every change to Allow (a member suspended, retired or its key revoked)
// or to AdmitGuests. It takes as long as closing those connections does.
func (g *Gater) Enforce(h host.Host) int {
	closed := 0
	for _, p := range h.Network().Peers() {
		if g.Allowed(p) {
			g.forgetGuest(p)
			continue
		}
		if g.keepGuest(p) || g.isHeld(p) {
			continue
		}
		_ = h.Network().ClosePeer(p)
		g.closedByEnforce.Add(1)
		closed++
	}
	return closed
}

// Hold keeps Enforce from closing p's connections until release is
// called, so that an answer already being written reaches it: the
// registry leader holds a proposer while it answers, because the change
// it answers may be the one that ends the proposer's membership (a
// network retiring itself by handing over its archive). The gater still
// refuses p's new streams and connections at once. Call Enforce after
// release to close what the hold kept open.
func (g *Gater) Hold(p peer.ID) (release func()) {
	g.mu.Lock()
	if g.held == nil {
		g.held = map[peer.ID]int{}
	}
	g.held[p]++
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			if g.held[p]--; g.held[p] <= 0 {
				delete(g.held, p)
			}
			g.mu.Unlock()
		})
	}
}

func (g *Gater) isHeld(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held[p] > 0
}

// keepGuest reports whether p is a guest within the current bound; a
// guest beyond it is dropped from the table.
func (g *Gater) keepGuest(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.guests[p]; !ok {
		return false
	}
	if len(g.guests) > g.maxGuests || g.isRemoved(p) {
		delete(g.guests, p)
		return false
	}
	return true
}

func (g *Gater) forgetGuest(p peer.ID) {
	g.mu.Lock()
	delete(g.guests, p)
	g.mu.Unlock()
}

// bind lets the gater see the host's connections, so that guest slots are
// freed when a guest disconnects. New calls it once.
func (g *Gater) bind(n network.Network) {
	g.mu.Lock()
	g.net = n
	g.mu.Unlock()
	n.Notify(&network.NotifyBundle{
		DisconnectedF: func(n network.Network, c network.Conn) {
			p := c.RemotePeer()
			if n.Connectedness(p) != network.Connected {
				g.forgetGuest(p)
			}
		},
	})
}

// admitGuest decides whether p, not a member, may connect as a guest.
func (g *Gater) admitGuest(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.isRemoved(p) {
		return false
	}
	if _, ok := g.guests[p]; ok {
		return true // another connection from a guest already admitted
	}
	if g.maxGuests == 0 {
		return false
	}
	if len(g.guests) >= g.maxGuests && g.net != nil {
		// Reclaim slots of guests whose connection never came up.
		now := time.Now()
		for q, at := range g.guests {
			if now.Sub(at) > guestGrace && g.net.Connectedness(q) != network.Connected {
				delete(g.guests, q)
			}
		}
	}
	if len(g.guests) >= g.maxGuests {
		g.refusedGuestFull.Add(1)
		return false
	}
	g.guests[p] = time.Now()
	return true
}

// InterceptPeerDial refuses to dial a peer that is not a member.
func (g *Gater) InterceptPeerDial(p peer.ID) bool {
	if g.Allowed(p) {
		return true
	}
	g.refusedPeerDial.Add(1)
	return false
}

// InterceptAddrDial refuses to dial any address of a peer that is not a
// member.
func (g *Gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool {
	if g.Allowed(p) {
		return true
	}
	g.refusedAddrDial.Add(1)
	return false
}

// InterceptAccept lets every inbound connection start its handshake: the
// peer ID is not known yet. The transient resource limits bound how many
// handshakes run at once.
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured admits an authenticated connection from or to a member,
// and an inbound one from a guest while a guest slot is free.
func (g *Gater) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	if g.Allowed(p) {
		g.forgetGuest(p) // a guest that became a member no longer takes a slot
		return true
	}
	if dir == network.DirInbound && !g.isBlocked(p) && g.admitGuest(p) {
		return true
	}
	g.refusedSecured.Add(1)
	return false
}

// InterceptUpgraded admits every connection that passed InterceptSecured.
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
