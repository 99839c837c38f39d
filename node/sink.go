package node

import (
	"crypto/ed25519"
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
	// offline: the versions come in a bundle (bundle.go), not a pull.
	// Bundles may be imported in any order, so what a sender served
	// before is not remembered or held against it (no rolled-back).
	offline bool
}

// errAuthorUnknown makes the Puller offer a batch again later: its author's
// key may not have reached this node's registry yet.
var errAuthorUnknown = errors.New("a record's author is not (yet) in this node's registry")

// verdict is what the receiver's checks made of one envelope.
type verdict struct {
	reason cairnsync.Reason // "" when it passed
	atOnce bool             // the reason drops the peer at once
	held   bool             // this node holds the version already: neither stored nor refused
}

// Store checks every envelope of the batch and stores those that pass
// (Check, then its commit).
func (s recordSink) Store(from peer.ID, envs []model.Envelope) (cairnsync.Counts, error) {
	commit, c, err := s.Check(from, envs)
	if err != nil {
		return c, err
	}
	cc, err := commit()
	c.Add(cc)
	return c, err
}

// Check checks every envelope of the batch (on all cores), then counts
// the refusals against from in feed order, and returns commit, which
// stores the versions that passed. Nothing of the batch is stored if from
// is dropped while counting, or if an author is not in the registry yet
// (the batch is offered again later; that counts one unknown-key per
// offer, not one per envelope).
//
// The Puller checks the next batch while commit runs, so a version older
// than one of the batch being written is not seen as stale here; the
// store refuses it when commit runs (store.PutOpened), and commit counts
// it as stale then.
func (s recordSink) Check(from peer.ID, envs []model.Envelope) (func() (cairnsync.Counts, error), cairnsync.Counts, error) {
	var c cairnsync.Counts
	self := model.Reader{Network: s.n.profile.Slug, Region: s.n.profile.Region, Member: true}
	st := s.n.fed.State()
	checked := make([]checked, len(envs))
	parallelChunks(len(envs), func(lo, hi int) {
		s.checkChunk(st, self, envs[lo:hi], checked[lo:hi])
	})
	// An envelope that drops the peer at once ends the batch: an honest
	// node never sends one, and nothing after it counts.
	for i, ch := range checked {
		if ch.v.atOnce {
			checked = checked[:i+1]
			break
		}
	}
	unknown := ""
	for _, ch := range checked {
		if ch.v.reason == cairnsync.ReasonUnknownKey {
			unknown = ch.p.Author
			break
		}
	}
	if unknown != "" && !checked[len(checked)-1].v.atOnce {
		c.Reject(cairnsync.ReasonUnknownKey)
		if s.r.reject(from, cairnsync.ReasonUnknownKey, false) {
			return nil, c, fmt.Errorf("%w: %s", errDropped, cairnsync.ReasonUnknownKey)
		}
		return nil, c, fmt.Errorf("%w: %s", errAuthorUnknown, unknown)
	}
	good := make([]store.Opened, 0, len(checked))
	var rolled rollbacks
	defer func() { s.note(from, rolled) }()
	network := s.r.networkOf(from)
	for i, ch := range checked {
		reason := ch.v.reason
		if (ch.v.held || reason == "" || reason == cairnsync.ReasonStale) && !s.offline {
			// Only versions that passed the checks count as served (rollback.go).
			if newer := s.r.served(from, ch.p.ID, ch.p.Version); newer > 0 && !ch.v.held {
				reason = cairnsync.ReasonRolledBack
				rolled.add(ch.p, envs[i].Hash(), newer)
			}
		}
		switch {
		case ch.v.held:
			c.Duplicates++
		case reason == "":
			s.r.accept(from)
			good = append(good, store.Opened{Env: envs[i], Payload: ch.p, Body: ch.body, From: from.String(), FromNetwork: network})
		default:
			c.Reject(reason)
			if s.r.reject(from, reason, ch.v.atOnce) {
				return nil, c, fmt.Errorf("%w: %s", errDropped, reason)
			}
		}
	}
	commit := func() (cairnsync.Counts, error) {
		var c cairnsync.Counts
		for len(good) > 0 {
			k := min(len(good), store.MaxBatch)
			res, err := s.n.store.PutOpened(good[:k]...)
			if err != nil {
				return c, fmt.Errorf("store records from %s: %w", from, err)
			}
			c.Stored += len(res.Stored)
			if !s.offline {
				s.r.sources.add(from, res.Stored) // not to be notified back to from (notify.go)
			}
			c.Duplicates += res.Duplicates
			for range res.Older {
				c.Reject(cairnsync.ReasonStale)
				s.r.reject(from, cairnsync.ReasonStale, false) // never drops
			}
			s.r.forked(from, res.Forks)
			good = good[k:]
		}
		return c, nil
	}
	return commit, c, nil
}

// checked is one envelope after the receiver's checks: its payload (as
// far as it could be opened) and the verdict.
type checked struct {
	p    model.Payload
	body any // p's body, decoded, once it passed
	v    verdict
}

// checkChunk runs the receiver's checks on each envelope of envs and
// writes its result to the same index of out. A copy of a version this
// node holds is passed over before anything costly (in a mesh most
// envelopes are such copies, and verifying them was half the work); the
// signatures of the rest are verified together (model.VerifyBatch, whose
// verdict for each envelope is exactly Envelope.Verify's); then, for each,
// what records.CheckOpened checks after the signature (timestamp and body:
// records.CheckSigned), the author's key in the registry (of the origin
// network, and not revoked before the version's date), the audience, and
// last whether it is older than the version held. The checks run in
// CheckOpened's order of precedence, so each envelope's verdict is the
// one checking it alone would give. The payload is decoded once, here,
// and handed on to the store. It is safe to call from several goroutines
// at once on disjoint chunks.
//
// A replayed older version is refused (stale) and not stored: it could
// never become current (model.Wins), and a node need not hold the history
// of another network's record, only its current version. It only counts,
// never drops the peer: an honest relay that received versions in another
// order sends them too. A version with the number of the one held but
// another hash is a conflict, the store's to keep and report.
func (s recordSink) checkChunk(st *registry.State, self model.Reader, envs []model.Envelope, out []checked) {
	type pending struct {
		i   int
		cur uint64 // number of the version held, 0 if none
	}
	todo := make([]pending, 0, len(envs))
	pubs := make([]ed25519.PublicKey, 0, len(envs))
	sigd := make([]model.Envelope, 0, len(envs))
	var lastAuthor string // a chunk is nearly always one author's
	var lastPub ed25519.PublicKey
	for i, env := range envs {
		p, err := env.Open()
		out[i].p = p
		if err != nil {
			out[i].v = s.refusal(env, p, err)
			continue
		}
		held, cur, err := s.n.store.Known(p.ID, p.Version, env.Hash())
		if err == nil && held {
			out[i].v = verdict{held: true}
			continue
		}
		if err != nil {
			cur = 0 // the store will say what is wrong when the batch is put
		}
		pub := lastPub
		if p.Author != lastAuthor || pub == nil {
			// The key records.CheckOpened verifies against (its KeyOf).
			pub, err = AuthorKey(p.Author)
			if err != nil {
				out[i].v = s.refusal(env, p, fmt.Errorf("author %s: %w", p.Author, err))
				continue
			}
			lastAuthor, lastPub = p.Author, pub
		}
		todo = append(todo, pending{i: i, cur: cur})
		pubs = append(pubs, pub)
		sigd = append(sigd, env)
	}
	for j, err := range model.VerifyBatch(pubs, sigd) {
		i, p := todo[j].i, out[todo[j].i].p
		if err != nil {
			out[i].v = s.refusal(envs[i], p, err)
			continue
		}
		out[i] = s.checkSigned(st, self, envs[i], p, todo[j].cur)
	}
}

// checkSigned runs the checks that follow the signature on one envelope
// whose signature passed; cur is the number of the version held.
func (s recordSink) checkSigned(st *registry.State, self model.Reader, env model.Envelope, p model.Payload, cur uint64) checked {
	body, err := s.n.records.CheckSigned(p)
	if err != nil {
		return checked{p: p, v: s.refusal(env, p, err)}
	}
	key, ok := st.Node(p.Author)
	switch {
	case !ok || key.Network != p.Origin:
		return checked{p: p, v: verdict{reason: cairnsync.ReasonUnknownKey}}
	case key.Revoked && p.HLC.Millis() >= key.Cutoff:
		// Verified against the origin's registered key, whoever relayed
		// it; a revoked key's versions count only if dated before its cutoff.
		return checked{p: p, v: verdict{reason: cairnsync.ReasonRevokedKey}}
	case signedWhileInactive(st, p):
		// The same for every key of a suspended or retired network:
		// versions dated after it stopped being active are refused,
		// whoever relays them.
		return checked{p: p, v: verdict{reason: cairnsync.ReasonRevokedKey}}
	case p.Origin != self.Network && !p.Audience.Admits(self):
		return checked{p: p, v: verdict{reason: cairnsync.ReasonOutsideAudience}}
	case p.Version < cur:
		return checked{p: p, v: verdict{reason: cairnsync.ReasonStale}}
	}
	return checked{p: p, body: body}
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

// signedWhileInactive reports whether p is dated at or after its origin
// network was suspended or retired (registry.Network.Since).
func signedWhileInactive(st *registry.State, p model.Payload) bool {
	net, ok := st.Network(p.Origin)
	return ok && net.Status != registry.StatusActive && net.Since > 0 && p.HLC.Millis() >= net.Since
}
