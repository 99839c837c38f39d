package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/inpud/cairn/node/durable"
	"github.com/inpud/cairn/node/registry"
)

// The address book: coming back on another address.
//
// A node that restarts does not know where anyone is until its registry
// replica catches up, and its replica catches up only when a leader
// reaches it: at the address the registry published, which may be gone
// (a laptop on another network, a new port). So each replica keeps the
// member nodes' published addresses in a file beside its log
// (addrbook.json), loads them at Open, and, while it has no connection to
// any voter, dials the voters itself; the leader then reaches it over that
// connection. Once its registry shows this node's addresses differ from
// the ones it listens on, it publishes the new ones (SetAddrs).
//
// The file holds what the registry already holds on this disk (raft.db):
// peer IDs and addresses of member nodes, nothing more.

const addrBookFile = "addrbook.json"

// bookEntry is one member node in the address book.
type bookEntry struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

// loadAddrBook adds the book's addresses to the peerstore. A missing or
// unreadable book is no error: the registry fills it again.
func (r *Registry) loadAddrBook() {
	b, err := os.ReadFile(filepath.Join(r.cfg.Dir, addrBookFile))
	if err != nil {
		return
	}
	var book []bookEntry
	if err := json.Unmarshal(b, &book); err != nil {
		r.log.Warn("registry: the address book is unreadable; it is rebuilt from the registry", "err", err)
		return
	}
	r.book = b
	for _, e := range book {
		id, err := peer.Decode(e.ID)
		if err != nil || id == r.self {
			continue
		}
		r.host.Peerstore().AddAddrs(id, multiaddrs(e.Addrs), peerstore.PermanentAddrTTL)
	}
}

// saveAddrBook writes the registry's member addresses, if they changed.
func (r *Registry) saveAddrBook(st *registry.State) {
	if st.Empty() {
		return
	}
	var book []bookEntry
	for _, k := range st.Peers() {
		if len(k.Addrs) > 0 {
			book = append(book, bookEntry{ID: k.PeerID, Addrs: k.Addrs})
		}
	}
	b, err := json.Marshal(book)
	if err != nil || bytes.Equal(b, r.book) {
		return
	}
	if err := durable.WriteFile(filepath.Join(r.cfg.Dir, addrBookFile), b, 0o600); err != nil {
		r.log.Warn("registry: could not save the address book", "err", err)
		return
	}
	r.book = b
}

func multiaddrs(ss []string) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, s := range ss {
		if m, err := ma.NewMultiaddr(s); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// reachVoters dials the voters of raft's configuration while this node has
// a connection to none of them, at most once per call of follow; a voter
// itself never needs to (the others dial it too).
func (r *Registry) reachVoters(ctx context.Context) {
	f := r.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	var voters []peer.ID
	for _, s := range f.Configuration().Servers {
		id, err := peer.Decode(string(s.ID))
		if err != nil || s.Suffrage != raft.Voter {
			continue
		}
		if id == r.self {
			return
		}
		if r.host.Network().Connectedness(id) == network.Connected {
			return
		}
		voters = append(voters, id)
	}
	if len(voters) == 0 || !r.reaching.CompareAndSwap(false, true) {
		return
	}
	r.wg.Go(func() {
		defer r.reaching.Store(false)
		for _, id := range voters {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := r.host.Connect(dctx, peer.AddrInfo{ID: id})
			cancel()
			if err == nil {
				return
			}
		}
	})
}

// PublishAddrs records this node's listen addresses in the registry if it
// is a member and they differ from the ones published.
func (r *Registry) PublishAddrs(ctx context.Context) error {
	addrs, changed := r.addrsToPublish(r.fsm.State())
	if !changed {
		return nil
	}
	_, err := r.Propose(ctx, registry.SetAddrs, registry.SetAddrsArgs{Addrs: addrs})
	return err
}

// addrsToPublish returns this node's addresses and whether the registry
// holds others for it (false if it is not a member).
func (r *Registry) addrsToPublish(st *registry.State) ([]string, bool) {
	key, _, ok := st.Member(r.self.String())
	if !ok {
		return nil, false
	}
	var addrs []string
	for _, a := range r.host.Addrs() {
		if len(addrs) < registry.MaxAddrs {
			addrs = append(addrs, a.String())
		}
	}
	return addrs, !slices.Equal(addrs, key.Addrs)
}

// republish publishes this node's addresses in the background when the
// registry holds others, one attempt at a time.
func (r *Registry) republish(ctx context.Context, st *registry.State) {
	if _, changed := r.addrsToPublish(st); !changed || !r.publishing.CompareAndSwap(false, true) {
		return
	}
	r.wg.Go(func() {
		defer r.publishing.Store(false)
		pctx, cancel := context.WithTimeout(ctx, r.cfg.ApplyTimeout)
		defer cancel()
		if err := r.PublishAddrs(pctx); err != nil {
			r.log.Debug("registry: could not publish this node's addresses yet", "err", err)
		}
	})
}
