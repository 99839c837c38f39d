package node

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/registry"
	"github.com/inpud/cairn/node/store"
	cairnsync "github.com/inpud/cairn/sync"
)

// recordSink verifies what a peer sent, as a receiver must, and stores the
// versions that pass in durable batches. Every refusal is counted against
// the peer that sent it, by reason, and may drop the peer (replication's
// drop rule, in drop.go).
type recordSink struct {
	n *Node
	r *replication
}

// errAuthorUnknown makes the Puller offer a batch again later: its author's
// key may not have reached this node's registry yet.
var errAuthorUnknown = errors.New("a record's author is not (yet) in this node's registry")

// verdict is what the receiver's checks made of one envelope.
type verdict struct {
	reason cairnsync.Reason // "" when it passed
	atOnce bool             // the reason drops the peer at once
}

// Store checks every envelope of the batch, then counts the refusals
// against from in feed order. Nothing of the batch is stored if from is
// dropped while counting, or if an author is not in the registry yet (the
// batch is offered again later; that counts one unknown-key per offer,
// not one per envelope).
func (s recordSink) Store(from peer.ID, envs []model.Envelope) (cairnsync.Counts, error) {
	var c cairnsync.Counts
	self := model.Reader{Network: s.n.profile.Slug, Region: s.n.profile.Region, Member: true}
	st := s.n.fed.State()
	verdicts := make([]verdict, 0, len(envs))
	good := make([]model.Envelope, 0, len(envs))
	unknown := ""
	for _, env := range envs {
		p, v := s.check(st, self, env)
		verdicts = append(verdicts, v)
		if v.atOnce {
			break // an honest node never sends this: nothing after it counts
		}
		if v.reason == cairnsync.ReasonUnknownKey && unknown == "" {
			unknown = p.Author
		}
		if v.reason == "" {
			good = append(good, env)
		}
	}
	if unknown != "" && !verdicts[len(verdicts)-1].atOnce {
		c.Reject(cairnsync.ReasonUnknownKey)
		if s.r.reject(from, cairnsync.ReasonUnknownKey, false) {
			return c, fmt.Errorf("%w: %s", errDropped, cairnsync.ReasonUnknownKey)
		}
		return c, fmt.Errorf("%w: %s", errAuthorUnknown, unknown)
	}
	for _, v := range verdicts {
		switch {
		case v.reason == "":
			s.r.accept(from)
		default:
			c.Reject(v.reason)
			if s.r.reject(from, v.reason, v.atOnce) {
				return c, fmt.Errorf("%w: %s", errDropped, v.reason)
			}
		}
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

// check runs the receiver's checks on one envelope: signature, timestamp
// and body (records.Check), then the author's key in the registry (of the
// origin network, and not revoked before the version's date) and the
// audience.
//
// A version older than the one held passes: it is history (a relay can
// hold versions this node missed while cut off, and the partition test
// wants every one), and the store keeps only a stub of it when a newer
// version held took its body back from this node, so a withdrawn body
// never comes back. An exact copy of a held version is a duplicate, and
// another version with a held number a conflict, both the store's to
// count. So cairnsync.ReasonStale is not counted here.
func (s recordSink) check(st *registry.State, self model.Reader, env model.Envelope) (model.Payload, verdict) {
	p, err := s.n.records.Check(env)
	if err != nil {
		return p, s.refusal(env, p, err)
	}
	key, ok := st.Node(p.Author)
	switch {
	case !ok || key.Network != p.Origin:
		return p, verdict{reason: cairnsync.ReasonUnknownKey}
	case key.Revoked && p.HLC.Millis() >= key.Cutoff:
		// Verified against the origin's registered key, whoever relayed
		// it; a revoked key's versions count only if dated before its cutoff.
		return p, verdict{reason: cairnsync.ReasonRevokedKey}
	case p.Origin != self.Network && !p.Audience.Admits(self):
		return p, verdict{reason: cairnsync.ReasonOutsideAudience}
	}
	return p, verdict{}
}

// refusal names why records.Check refused env. A bad signature, or an
// envelope that does not even decode or names no valid author key, drops
// the peer at once: relays verify before they store, so an honest node
// never sends one. A future timestamp or a body this node's rules refuse
// (a template not replicated yet, a newer program's limits) can come
// from an honest node, and only count.
func (s recordSink) refusal(env model.Envelope, p model.Payload, err error) verdict {
	switch {
	case errors.Is(err, model.ErrBadSignature):
		return verdict{reason: cairnsync.ReasonBadSignature, atOnce: true}
	case errors.Is(err, model.ErrFuture):
		return verdict{reason: cairnsync.ReasonFutureTimestamp}
	}
	if _, err := env.Open(); err != nil {
		return verdict{reason: cairnsync.ReasonMalformed, atOnce: true}
	}
	if _, err := AuthorKey(p.Author); err != nil {
		return verdict{reason: cairnsync.ReasonMalformed, atOnce: true}
	}
	return verdict{reason: cairnsync.ReasonMalformed}
}
