package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	stdsync "sync"
	"time"

	"filippo.io/age"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/api"
	"github.com/inpud/cairn/node/registry"
	"github.com/inpud/cairn/node/store"
	cairnsync "github.com/inpud/cairn/sync"
)

// Handing over a retired network's archive (issue 5).
//
// `cairn handover --to SLUG` retires a network and gives a steward network
// its archive key through the registry: the key is wrapped with age to
// every current node key of the steward network (ssh-ed25519 recipients
// derived from the node keys, as offline bundles are) and travels in the
// registry's handover command, which stores it with the retired network.
// Only the steward's nodes can unwrap it. Who may propose the handover is
// the registry's rule (registry.planHandover): a node of the retiring
// network with its own archive key; or, when the network is gone and a
// steward has suspended it, a node of one of its custodian networks, with
// the archive key rebuilt from the retired network's K-of-N key shares
// (or its passphrase backup) by the CLI.
//
// A steward node watches the registry (handovers below). For every network
// handed over to its network it unwraps the archive key with its node key,
// fetches the network's custody copies from every node of each custodian
// network (the custodians serve a fetch to a node of the steward network
// the registry names: custodyPolicy.MayFetch), and then:
//
//   - keeps every blob sealed in its own custody store, as a custodian
//     does, so the archive outlives the custodians too;
//   - opens the blobs its archive key sealed, verifies each envelope as a
//     receiver does (signature, body, author a node of the retired network
//     whose key was not revoked before the version's date, version dated
//     before the network stopped being active), takes each record's current
//     version, and stores those that are shared (any audience but private)
//     as records in its store. Its pull server then serves each of them to
//     exactly the networks its audience admits, as for any relayed record
//     (sync.sendable), and receivers check them against the retired
//     network's keys in the registry, which stay valid for versions dated
//     before its retirement.
//
// Two decisions:
//
//   - Private records stay sealed. The steward could open them, but it
//     does not put them into its store as readable records: they were
//     never meant for anyone outside the retired network. They stay in the
//     custodians' and the steward's sealed copies, which only the retired
//     network's archive key (its key backup or shares) opens. No command
//     opens them into a node of the retired network yet: restore needs a
//     network that is still a member (docs/OPERATIONS.md says so).
//   - The steward's store holds shared records whose audience does not
//     admit the steward itself (say network:M). That is the one exception
//     to the receiver's rule that a node stores only what is addressed to
//     it (recordSink.check refuses such records from peers, and still
//     does): the steward keeps the archive so that it can go on serving it,
//     and the pull server's audience filter is what keeps those records
//     from anyone outside their audience. The steward's operators can read
//     them through their own node; a handover trusts the steward with that.
//
// An archive is imported once per node start, and again when the registry
// carries a new wrapped key for it; a run that reached no custodian
// network fully is retried every handoverRetry. One custodian network that
// gave every copy back is enough: each was pushed every version (and the
// own network's handover is refused until every custodian is caught up). Importing is
// idempotent: the store and the custody store keep what they hold once.

// handoverPoll is how often the watcher looks at the registry.
const handoverPoll = time.Second

// handoverRetry is how long an import that did not reach every custodian
// network waits before it runs again.
const handoverRetry = 15 * time.Second

// maxArchiveRecords bounds the records one import holds in memory.
const maxArchiveRecords = 200_000

func refuseHandover(kind error, format string, args ...any) error {
	return &custodyRefusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// Handover retires network (this node's own when empty) and hands its
// archive over to steward network to, wrapping the archive key to to's
// node keys. For this node's own network the key is its archive.key and
// archiveKey must be nil; for another network (a custodian handing over a
// network that is gone) archiveKey is that network's archive key, rebuilt
// from its key shares or backup. Bad input is refused with one sentence
// wrapping a registry error kind, and the registry is left unchanged.
func (n *Node) Handover(ctx context.Context, to, network string, archiveKey []byte) (registry.Result, error) {
	self := n.profile.Slug
	if network == "" {
		network = self
	}
	for _, s := range []string{to, network} {
		if !model.ValidSlug(s) {
			return registry.Result{}, refuseHandover(registry.ErrInvalidCommand, "%q is not a network slug (lower-case letters, digits and hyphens); cairn members lists the networks", s)
		}
	}
	if to == network {
		return registry.Result{}, refuseHandover(registry.ErrInvalidCommand, "%s cannot hand its archive over to itself: name a steward network with --to (cairn members shows each network's role)", network)
	}
	st := n.fed.State()
	net, ok := st.Network(network)
	if !ok {
		return registry.Result{}, refuseHandover(registry.ErrNotFound, "%s is not a network of this federation; cairn members lists them", network)
	}
	steward, ok := st.Network(to)
	switch {
	case !ok:
		return registry.Result{}, refuseHandover(registry.ErrNotFound, "%s is not a network of this federation; cairn members lists them", to)
	case steward.Role != registry.RoleSteward:
		return registry.Result{}, refuseHandover(registry.ErrConflict, "%s is a member network, not a steward: an archive goes to a steward network (cairn members shows each network's role)", to)
	case steward.Status != registry.StatusActive:
		return registry.Result{}, refuseHandover(registry.ErrConflict, "%s is %s: an archive goes to an active steward network", to, steward.Status)
	case net.Status == registry.StatusRetired && net.Steward == to:
		return registry.Result{}, refuseHandover(registry.ErrConflict, "%s's archive is already with %s", network, to)
	}
	var raw []byte
	if network == self {
		if archiveKey != nil {
			return registry.Result{}, refuseHandover(registry.ErrInvalidCommand, "%s is this node's own network: its archive key is this node's, give no shares or backup", network)
		}
		if err := n.custodiansCaughtUp(net); err != nil {
			return registry.Result{}, err
		}
		raw = n.archiveKey
	} else {
		if len(archiveKey) != ArchiveKeySize {
			return registry.Result{}, refuseHandover(registry.ErrInvalidCommand, "%s is not this node's network: give its archive key with its key shares (--shares) or its key backup (--backup)", network)
		}
		raw = archiveKey
		if err := n.checkArchiveKey(network, raw); err != nil {
			return registry.Result{}, err
		}
	}
	wrapped, err := wrapArchiveKey(st, to, raw)
	if err != nil {
		return registry.Result{}, err
	}
	res, err := n.submitHandover(ctx, registry.HandoverArgs{Network: network, Steward: to, ArchiveKey: wrapped})
	if err != nil {
		return res, err
	}
	if n.hand != nil {
		n.hand.poke()
	}
	return res, nil
}

// submitHandover proposes the handover and watches this node's replica
// while it waits for the leader's answer. A network handing over its own
// archive retires itself: the moment the leader applies the command, this
// node stops being a member and the leader closes its connection, often
// before the answer is written, and a retry is refused at the door. So the
// command counts as done as soon as this node's replica shows it applied
// (the same wrapped key, which no other command carries); if neither the
// answer nor the replica says so, the error says to check.
func (n *Node) submitHandover(ctx context.Context, args registry.HandoverArgs) (registry.Result, error) {
	key, err := n.id.SigningKey()
	if err != nil {
		return registry.Result{}, err
	}
	sc, err := registry.Sign(key, n.ID(), registry.Handover, args)
	if err != nil {
		return registry.Result{}, err
	}
	applied := func() bool {
		done := false
		n.fed.View(func(s *registry.State) {
			net, ok := s.Network(args.Network)
			done = ok && net.Status == registry.StatusRetired && net.Steward == args.Steward && bytes.Equal(net.ArchiveKey, args.ArchiveKey)
		})
		return done
	}
	seen := registry.Result{Kind: registry.Handover, Network: args.Network, Membership: true,
		Summary: fmt.Sprintf("retired %s and handed its archive over to %s", args.Network, args.Steward)}
	type answer struct {
		res registry.Result
		err error
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan answer, 1)
	go func() {
		res, err := n.fed.Submit(sctx, sc)
		answers <- answer{res, err}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case a := <-answers:
			if a.err != nil && applied() {
				return seen, nil
			}
			if a.err != nil && args.Network == n.profile.Slug && !errors.Is(a.err, registry.ErrInvalidCommand) &&
				!errors.Is(a.err, registry.ErrConflict) && !errors.Is(a.err, registry.ErrNotFound) && !errors.Is(a.err, registry.ErrUnauthorised) {
				return registry.Result{}, fmt.Errorf("the handover of %s was sent, but this node could not confirm it (it may have retired already and been disconnected): check with cairn members on a steward node: %w", args.Network, a.err)
			}
			return a.res, a.err
		case <-tick.C:
			if applied() {
				cancel()
				<-answers
				return seen, nil
			}
		}
	}
}

// custodiansCaughtUp refuses the own network's handover while the steward
// would not find every own version with a custodian: once retired, this
// node can push nothing more.
func (n *Node) custodiansCaughtUp(net registry.Network) error {
	if len(net.Custodians) == 0 {
		return refuseHandover(registry.ErrConflict, "%s has no custodians, so the steward would get none of its records: name them first with cairn custody set SLUG,SLUG", net.Slug)
	}
	for _, name := range net.Custodians {
		cur, err := n.store.Checkpoint(custodyCursor(name))
		if err != nil {
			return err
		}
		behind, more, err := n.ownVersionsAfter(cur)
		if err != nil {
			return err
		}
		if behind > 0 || more {
			return refuseHandover(registry.ErrConflict, "custodian %s has not yet acknowledged %d versions of %s's records: wait until cairn custody status shows every custodian caught up", name, behind, net.Slug)
		}
	}
	return nil
}

// checkArchiveKey refuses an archive key that opens none of the custody
// copies of network this node keeps (when it keeps any): shares of
// another network's or another node's keys.
func (n *Node) checkArchiveKey(network string, raw []byte) error {
	key, err := cairnsync.NewArchiveKey(raw)
	if err != nil {
		return err
	}
	seen := 0
	after := uint64(0)
	for range maxFetchPages {
		bs, last, more, err := n.store.CustodyBlobs(network, after, store.MaxCustodyPush, cairnsync.MaxBatchFrame)
		if err != nil {
			return fmt.Errorf("read the custody copies of %s: %w", network, err)
		}
		for _, b := range bs {
			h, err := cairnsync.Blob(b).Header()
			if err != nil {
				continue
			}
			seen++
			if h.KeyID == key.ID() {
				return nil
			}
		}
		if !more {
			break
		}
		after = last
	}
	if seen == 0 {
		return nil // this node keeps no copies of network: nothing to check against
	}
	return refuseHandover(registry.ErrInvalidCommand, "the archive key from these shares opens none of the %d custody copies of %s this node keeps: they are the keys of another network or node", seen, network)
}

// wrapArchiveKey encrypts raw with age to every current node key of
// steward network to.
func wrapArchiveKey(st *registry.State, to string, raw []byte) ([]byte, error) {
	var recips []age.Recipient
	for _, k := range st.NodeKeys(to) {
		if k.Revoked {
			continue
		}
		r, err := ageRecipient(k.PeerID)
		if err != nil {
			return nil, fmt.Errorf("node key %s of %s: %w", k.PeerID, to, err)
		}
		recips = append(recips, r)
	}
	if len(recips) == 0 {
		return nil, refuseHandover(registry.ErrConflict, "%s has no current node key to give the archive key to", to)
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, recips...)
	if err != nil {
		return nil, fmt.Errorf("wrap the archive key: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		return nil, fmt.Errorf("wrap the archive key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("wrap the archive key: %w", err)
	}
	return out.Bytes(), nil
}

// ---- The steward's side ----

// ArchiveStatus is one archive handed over to this node's network, as this
// node holds it.
type ArchiveStatus struct {
	ID      string `json:"id"` // the retired network's slug
	Network string `json:"network"`
	// Imported says whether an import reached a node of every custodian
	// network since the node started.
	Imported bool `json:"imported"`
	// Shared counts the current versions of shared records stored.
	Shared int `json:"shared"`
	// Private counts the private records kept sealed.
	Private int `json:"private"`
	// Sealed counts the custody copies this node keeps sealed.
	Sealed uint64 `json:"sealed"`
	// OtherKeys counts copies sealed with another archive key than the one
	// handed over (another node of the retired network with its own key).
	OtherKeys int `json:"other_keys"`
	// Skipped counts versions the receiver's rules leave out: signed after
	// the network stopped being active or a key was revoked, or a body
	// this node's rules refuse.
	Skipped int       `json:"skipped"`
	At      time.Time `json:"at,omitzero"`
	Problem string    `json:"problem,omitempty"`
}

// handovers imports the archives handed over to this node's network. Its
// loop runs from start to stop.
type handovers struct {
	n    *Node
	kick chan struct{}

	cancel context.CancelFunc
	wg     stdsync.WaitGroup

	mu   stdsync.Mutex
	done map[string]archiveRun // origin → last run; guarded by mu
}

// archiveRun is the outcome of the last import of one archive.
type archiveRun struct {
	wrapped []byte // the wrapped key it ran with
	status  ArchiveStatus
}

func newHandovers(n *Node) *handovers {
	return &handovers{n: n, kick: make(chan struct{}, 1), done: map[string]archiveRun{}}
}

func (h *handovers) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.wg.Go(func() { h.loop(ctx) })
}

func (h *handovers) stop() {
	if h.cancel != nil {
		h.cancel()
		h.wg.Wait()
	}
}

func (h *handovers) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *handovers) loop(ctx context.Context) {
	t := time.NewTicker(handoverPoll)
	defer t.Stop()
	for {
		h.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.kick:
		}
	}
}

// pending lists the networks handed over to this node's network whose
// archive is not imported with the key the registry holds now.
func (h *handovers) pending() []registry.Network {
	self := h.n.profile.Slug
	var out []registry.Network
	h.n.fed.View(func(s *registry.State) {
		for _, net := range s.NetworkList() {
			if net.Status == registry.StatusRetired && net.Steward == self && len(net.ArchiveKey) > 0 {
				out = append(out, net)
			}
		}
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.DeleteFunc(out, func(net registry.Network) bool {
		run, ok := h.done[net.Slug]
		if !ok || !bytes.Equal(run.wrapped, net.ArchiveKey) {
			return false
		}
		return run.status.Imported || time.Since(run.status.At) < handoverRetry
	})
}

func (h *handovers) round(ctx context.Context) {
	for _, net := range h.pending() {
		if ctx.Err() != nil {
			return
		}
		st, err := h.n.importArchive(ctx, net)
		st.ID, st.Network, st.At = net.Slug, net.Slug, time.Now().UTC()
		if err != nil {
			st.Imported = false
			st.Problem = err.Error()
			h.n.log.Warn("handover: could not import an archive handed over to this network; will retry", "network", net.Slug, "err", err)
		} else {
			h.n.log.Info("handover: imported an archive", "network", net.Slug, "shared", st.Shared, "private_sealed", st.Private)
		}
		h.mu.Lock()
		h.done[net.Slug] = archiveRun{wrapped: net.ArchiveKey, status: st}
		h.mu.Unlock()
	}
}

// Archives lists the archives handed over to this node's network, with
// what this node made of each ([]ArchiveStatus).
func (n *Node) Archives() any { return n.archives() }

func (n *Node) archives() []ArchiveStatus {
	self := n.profile.Slug
	out := []ArchiveStatus{}
	for _, net := range n.fed.State().NetworkList() {
		if net.Steward != self {
			continue
		}
		st := ArchiveStatus{ID: net.Slug, Network: net.Slug}
		if n.hand != nil {
			n.hand.mu.Lock()
			if run, ok := n.hand.done[net.Slug]; ok {
				st = run.status
			}
			n.hand.mu.Unlock()
		}
		out = append(out, st)
	}
	return out
}

// archiveRecord is the current version of one record of the archive.
type archiveRecord struct {
	env model.Envelope
	p   model.Payload
}

// importArchive brings one handed-over archive into this node: see the
// comment at the top of this file. It fails when the wrapped key does not
// open with this node's key, when a custodian hands back a blob that does
// not open or verify, or when no node of some custodian network answered
// (what the others gave is stored all the same).
func (n *Node) importArchive(ctx context.Context, net registry.Network) (ArchiveStatus, error) {
	var out ArchiveStatus
	ident, err := n.ageIdentity()
	if err != nil {
		return out, err
	}
	r, err := age.Decrypt(bytes.NewReader(net.ArchiveKey), ident)
	if err != nil {
		return out, fmt.Errorf("the archive key of %s was not wrapped to this node's key (it may have joined %s after the handover): %w", net.Slug, n.profile.Slug, err)
	}
	raw, err := io.ReadAll(io.LimitReader(r, ArchiveKeySize+1))
	if err != nil || len(raw) != ArchiveKeySize {
		return out, fmt.Errorf("the archive key of %s does not unwrap to %d bytes", net.Slug, ArchiveKeySize)
	}
	key, err := cairnsync.NewArchiveKey(raw)
	clear(raw)
	if err != nil {
		return out, err
	}
	st := n.fed.State()
	current := map[string]archiveRecord{}
	skipped := map[string]bool{} // "id/version" of versions the rules leave out
	var missing []string
	reachedAny := false
	for _, cust := range net.Custodians {
		var nodes []peer.ID
		for _, k := range st.Peers() {
			if k.Network == cust {
				if id, err := peer.Decode(k.PeerID); err == nil {
					nodes = append(nodes, id)
				}
			}
		}
		reached := false
		var errs []error
		if cust == n.profile.Slug {
			// This node's own network is a custodian: its store keeps
			// (some of) the copies already.
			other, err := n.archiveFrom(ctx, st, net, key, "", current, skipped)
			out.OtherKeys = max(out.OtherKeys, other)
			if err != nil {
				errs = append(errs, err)
			} else {
				reached = true
			}
		}
		for _, id := range connectedFirst(n, nodes) {
			if id == n.host.ID() {
				continue
			}
			other, err := n.archiveFrom(ctx, st, net, key, id, current, skipped)
			out.OtherKeys = max(out.OtherKeys, other)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			reached = true
		}
		if !reached {
			missing = append(missing, fmt.Sprintf("%s (%v)", cust, errors.Join(errs...)))
		}
		reachedAny = reachedAny || reached
	}
	out.Skipped = len(skipped)
	if err := n.storeArchive(current, &out); err != nil {
		return out, err
	}
	if held, _, err := n.store.CustodyHolding(net.Slug, n.ID()); err == nil {
		out.Sealed = held
	}
	if len(missing) > 0 {
		out.Problem = fmt.Sprintf("no node of custodian network %s gave the archive of %s back", strings.Join(missing, ", "), net.Slug)
	}
	switch {
	case len(net.Custodians) == 0:
		return out, fmt.Errorf("%s named no custodians, so there are no copies of its records to fetch", net.Slug)
	case !reachedAny:
		return out, errors.New(out.Problem)
	}
	// One custodian network that gave every copy back is the whole
	// archive: each was pushed every version.
	out.Imported = true
	return out, nil
}

// archiveFrom fetches every custody copy of net from custodian node id
// (this node's own custody store when id is empty), keeps them sealed, and
// adds the current versions its archive key opens and the receiver's
// checks pass to current.
func (n *Node) archiveFrom(ctx context.Context, st *registry.State, net registry.Network, key *cairnsync.ArchiveKey, id peer.ID, current map[string]archiveRecord, skipped map[string]bool) (otherKeys int, err error) {
	fetch := func(ctx context.Context, after uint64) (cairnsync.CustodyBatch, error) {
		return cairnsync.FetchCustody(ctx, n.host, id, net.Slug, after, 0)
	}
	if id == "" {
		fetch = func(_ context.Context, after uint64) (cairnsync.CustodyBatch, error) {
			return custodyStore{n.store}.Blobs(net.Slug, after, cairnsync.MaxCustodyBlobs, cairnsync.MaxBatchFrame)
		}
	} else if len(n.host.Network().ConnsToPeer(id)) == 0 {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.host.Connect(dctx, peer.AddrInfo{ID: id})
		cancel()
		if err != nil {
			return 0, fmt.Errorf("connect to custodian node %s: %w", id, err)
		}
	}
	after := uint64(0)
	for range maxFetchPages {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		b, err := fetch(fctx, after)
		cancel()
		if err != nil {
			return otherKeys, err
		}
		keep := make([]store.CustodyBlob, 0, len(b.Blobs))
		for _, bl := range b.Blobs {
			h, err := bl.Header()
			if err != nil || h.Origin != net.Slug {
				return otherKeys, fmt.Errorf("custodian node %s gave back a copy that is not of %s", id, net.Slug)
			}
			keep = append(keep, store.CustodyBlob{ID: h.ID, Version: h.Version, Tag: h.Tag, Data: bl})
			if h.KeyID != key.ID() {
				otherKeys++
				continue
			}
			env, _, err := key.Open(bl)
			if err != nil {
				return otherKeys, fmt.Errorf("custodian node %s: %w", id, err)
			}
			p, skip, err := n.archiveCheck(st, net, env)
			if err != nil {
				return otherKeys, fmt.Errorf("custodian node %s: %w", id, err)
			}
			if skip {
				skipped[h.ID+"/"+strconv.FormatUint(h.Version, 10)] = true
				continue
			}
			if cur, ok := current[p.ID]; ok && !newer(p, env, cur) {
				continue
			}
			if _, ok := current[p.ID]; !ok && len(current) >= maxArchiveRecords {
				return otherKeys, fmt.Errorf("the archive of %s holds more than %d records", net.Slug, maxArchiveRecords)
			}
			current[p.ID] = archiveRecord{env: env, p: p}
		}
		if len(keep) > 0 && id != "" {
			if _, err := n.store.KeepCustody(net.Slug, n.ID(), 0, keep); err != nil {
				return otherKeys, fmt.Errorf("keep the sealed copies of %s: %w", net.Slug, err)
			}
		}
		after = b.Last
		if !b.More {
			return otherKeys, nil
		}
	}
	return otherKeys, fmt.Errorf("fetch the archive of %s from %s: more than %d pages", net.Slug, id, maxFetchPages)
}

// newer reports whether version p (env) wins over the one held.
func newer(p model.Payload, env model.Envelope, cur archiveRecord) bool {
	if p.Version != cur.p.Version {
		return p.Version > cur.p.Version
	}
	return env.Hash() > cur.env.Hash()
}

// archiveCheck runs a receiver's checks on one version of the archive of
// net: signature and body, author a node of net whose key was not revoked
// before the version's date, and dated before net stopped being active.
// A version that does not verify against its author's key, or whose author
// is not a node of net, fails the fetch (err): the custodian, or whoever
// sealed it, changed it. A version the rules leave out (signed after a
// revocation or after the network stopped being active, a body this node's
// rules refuse) is skipped and counted: an honest node may have written it.
func (n *Node) archiveCheck(st *registry.State, net registry.Network, env model.Envelope) (p model.Payload, skip bool, err error) {
	p, err = n.records.Check(env)
	if err != nil {
		if errors.Is(err, model.ErrBadSignature) {
			return p, false, fmt.Errorf("a copy of a record of %s does not verify: %w", net.Slug, err)
		}
		return p, true, nil
	}
	k, ok := st.Node(p.Author)
	switch {
	case p.Origin != net.Slug || !ok || k.Network != net.Slug:
		return p, false, fmt.Errorf("a copy (record %s) was not written by a node of %s", p.ID, net.Slug)
	case k.Revoked && p.HLC.Millis() >= k.Cutoff, signedWhileInactive(st, p):
		return p, true, nil
	}
	return p, false, nil
}

// storeArchive stores the current version of every shared record and
// counts the private ones, which stay sealed.
func (n *Node) storeArchive(current map[string]archiveRecord, out *ArchiveStatus) error {
	ids := make([]string, 0, len(current))
	for id := range current {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	batch := make([]model.Envelope, 0, store.MaxBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := n.store.Put(batch...)
		if err != nil {
			return fmt.Errorf("store the archive's shared records: %w", err)
		}
		out.Shared += len(res.Stored) + res.Duplicates
		batch = batch[:0]
		return nil
	}
	for _, id := range ids {
		rec := current[id]
		if rec.p.Audience.IsPrivate() {
			out.Private++
			continue
		}
		batch = append(batch, rec.env)
		if len(batch) == store.MaxBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

var _ api.Handover = (*Node)(nil)
