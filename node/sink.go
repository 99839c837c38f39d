package node

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/store"
	cairnsync "github.com/inpud/cairn/sync"
)

// recordSink verifies what a peer sent, as a receiver must, and stores the
// versions that pass in durable batches.
type recordSink struct{ n *Node }

// errAuthorUnknown makes the Puller offer a batch again later: its author's
// key may not have reached this node's registry yet.
var errAuthorUnknown = errors.New("a record's author is not (yet) in this node's registry")

func (s recordSink) Store(from peer.ID, envs []model.Envelope) (cairnsync.Counts, error) {
	var c cairnsync.Counts
	self := model.Reader{Network: s.n.profile.Slug, Region: s.n.profile.Region, Member: true}
	good := make([]model.Envelope, 0, len(envs))
	st := s.n.fed.State()
	for _, env := range envs {
		p, err := s.n.records.Check(env)
		if err != nil {
			c.Rejected++
			continue
		}
		key, ok := st.Node(p.Author)
		if !ok {
			return cairnsync.Counts{}, fmt.Errorf("%w: %s", errAuthorUnknown, p.Author)
		}
		// Verified against the origin's registered key, whoever relayed it;
		// a revoked key's versions count only if dated before its cutoff.
		if key.Network != p.Origin || (key.Revoked && p.HLC.Millis() >= key.Cutoff) {
			c.Rejected++
			continue
		}
		if p.Origin != self.Network && !p.Audience.Admits(self) {
			c.Rejected++
			continue
		}
		good = append(good, env)
	}
	for len(good) > 0 {
		k := min(len(good), store.MaxBatch)
		res, err := s.n.store.Put(good[:k]...)
		if err != nil {
			return c, fmt.Errorf("store records from %s: %w", from, err)
		}
		c.Stored += len(res.Stored)
		c.Duplicates += res.Duplicates
		good = good[k:]
	}
	return c, nil
}
