package federation

import "github.com/libp2p/go-libp2p/core/peer"

// TrustForRestore admits ids, the member nodes an operator named to
// restore a node from its key backup (`cairn restore --peer`), as
// connections and Raft senders while this replica holds no registry yet:
// without it a replica with an empty log refuses the very leader that
// would bring it up to date. release ends the trust; the registry decides
// from then on, as for any replica.
func (r *Registry) TrustForRestore(ids ...peer.ID) (release func()) {
	r.mu.Lock()
	for _, id := range ids {
		r.trusted[id] = true
	}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		for _, id := range ids {
			delete(r.trusted, id)
		}
		r.mu.Unlock()
	}
}
