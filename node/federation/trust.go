package federation

import (
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/node/registry"
)

// trust is who may connect and who may send Raft RPCs, precomputed so the
// connection gater and the Raft stream guard (which asks on every read)
// cost a map lookup, whatever the size of the federation.
//
// The registry decides for every node key it holds. A node that has just
// restarted holds its snapshot but not yet the log entries after it (raft
// does not persist the commit index, so they are applied only once a leader
// is heard from); for a peer its registry does not know at all, it trusts
// raft's own configuration, which is persisted with the log. Without that,
// a restarted node would refuse the very leader that brings it up to date.
type trust struct {
	known  map[string]bool // node keys the registry holds, any status
	member map[string]bool // keys of active networks, not revoked
	voter  map[string]bool // keys of active steward networks, not revoked
}

type configTrust struct {
	server map[string]bool // in raft's latest configuration
	voter  map[string]bool // voters in it
}

type trustCache struct {
	fsm atomic.Pointer[trust]
	cfg atomic.Pointer[configTrust]
}

// fromState recomputes the registry's part. It is cheap enough to run
// after every applied command.
func (c *trustCache) fromState(s *registry.State) {
	t := &trust{known: map[string]bool{}, member: map[string]bool{}, voter: map[string]bool{}}
	for id := range s.Nodes { // any status: a suspended, retired or revoked key is known, and refused
		t.known[id] = true
	}
	for _, id := range s.Voters() {
		t.member[id], t.voter[id] = true, true
	}
	for _, id := range s.NonVoters() {
		t.member[id] = true
	}
	c.fsm.Store(t)
}

// removed reports whether the registry holds p's key but no longer admits
// it: revoked, or of a suspended or retired network.
func (c *trustCache) removed(p peer.ID) bool {
	t := c.fsm.Load()
	return t != nil && t.known[p.String()] && !t.member[p.String()]
}

// fromConfig recomputes raft's part.
func (c *trustCache) fromConfig(cfg raft.Configuration) {
	t := &configTrust{server: map[string]bool{}, voter: map[string]bool{}}
	for _, s := range cfg.Servers {
		t.server[string(s.ID)] = true
		if s.Suffrage == raft.Voter {
			t.voter[string(s.ID)] = true
		}
	}
	c.cfg.Store(t)
}

func (c *trustCache) allows(p peer.ID, raftOnly bool) bool {
	id := p.String()
	if t := c.fsm.Load(); t != nil && t.known[id] {
		if raftOnly {
			return t.voter[id]
		}
		return t.member[id]
	}
	if t := c.cfg.Load(); t != nil {
		if raftOnly {
			return t.voter[id]
		}
		return t.server[id]
	}
	return false
}
