package registry

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/inpud/cairn/model"
)

// seenRetention is how long past the replay window the registry remembers
// an applied command's hash. Pruning by the log's time is deterministic;
// the margin keeps a replay refused even if a new leader's clock is behind
// the old one's by up to this much.
const seenRetention = 24 * time.Hour

// Result says what an applied command changed.
type Result struct {
	Kind     Kind   `json:"kind"`
	Network  string `json:"network,omitempty"`  // the network it changed, if any
	Peer     string `json:"peer,omitempty"`     // the node key it changed, if any
	Invite   string `json:"invite,omitempty"`   // the invite it created or used
	Template string `json:"template,omitempty"` // the template version it published, id@version
	// Membership is set when who may connect, propose or vote may have
	// changed: the node re-checks its connections and the Raft voter set.
	Membership bool `json:"membership,omitempty"`
	// Summary is one sentence for the person who proposed the command.
	Summary string `json:"summary"`
}

// Apply decodes a signed command, verifies its signature, authorises the
// proposer, validates the arguments and, only if all of that passes,
// changes the state. now is the time the Raft log gives the entry (the
// leader's clock, unix ms): every replica passes the same now for the same
// entry and so decides the same. Apply never reads a clock.
//
// A refused command returns an error wrapping one of the Err* sentinels,
// whose text is one sentence for a person, and leaves s exactly as it was.
func (s *State) Apply(sc SignedCommand, now int64) (Result, error) {
	c, err := sc.Open()
	if err != nil {
		return Result{}, err
	}
	return s.applyOpened(c, sc.Hash(), now)
}

// Check decides a signed command exactly as Apply would at time now, and
// changes nothing. The node uses it to refuse a proposal early (a join
// presented on the join protocol, a forwarded proposal) with the sentence
// the FSM would give; the FSM's Apply still decides.
func (s *State) Check(sc SignedCommand, now int64) (Result, error) {
	c, err := sc.Open()
	if err != nil {
		return Result{}, err
	}
	res, _, err := s.decide(c, sc.Hash(), now)
	return res, err
}

// applyOpened applies a command whose signature Open has verified.
func (s *State) applyOpened(c Command, hash string, now int64) (Result, error) {
	res, change, err := s.decide(c, hash, now)
	if err != nil {
		return Result{}, err
	}
	s.ensureMaps()
	change()
	s.remember(hash, c.Issued, now)
	return res, nil
}

// decide runs every check of a command and returns the change it makes as
// a function, without calling it: nothing changes until every check has
// passed, so a refused command leaves the state as it was.
func (s *State) decide(c Command, hash string, now int64) (Result, func(), error) {
	if now <= 0 {
		return Result{}, nil, refuse(ErrInvalidCommand, "the log entry carries no time, so the registry cannot decide on it")
	}
	window := ReplayWindow.Milliseconds()
	if c.Issued < now-window || c.Issued > now+window {
		return Result{}, nil, refuse(ErrExpired, "the %s command was signed at %s, more than %v away from the leader's time %s; check both clocks and propose it again", c.Kind, stamp(c.Issued), ReplayWindow, stamp(now))
	}
	if _, dup := s.Seen[hash]; dup {
		return Result{}, nil, refuse(ErrAlreadyApplied, "this %s command was already applied; each signed command is applied once", c.Kind)
	}
	if c.Kind != Genesis && s.Genesis == "" {
		return Result{}, nil, refuse(ErrConflict, "this registry holds no federation yet; its first command must be genesis")
	}
	args, err := c.decodeArgs()
	if err != nil {
		return Result{}, nil, err
	}
	p := s.actor(c.Proposer)
	var (
		res    Result
		change func()
	)
	switch a := args.(type) {
	case GenesisArgs:
		res, change, err = s.planGenesis(p, a, hash, now)
	case CreateInviteArgs:
		res, change, err = s.planCreateInvite(p, a, now)
	case JoinArgs:
		res, change, err = s.planJoin(p, a, now)
	case AddNodeKeyArgs:
		res, change, err = s.planAddNodeKey(p, a, now)
	case RevokeNodeKeyArgs:
		res, change, err = s.planRevokeNodeKey(p, a, now)
	case UpdateNetworkArgs:
		res, change, err = s.planUpdateNetwork(p, a)
	case NetworkArgs:
		res, change, err = s.planStatus(p, c.Kind, a, now)
	case PutTemplateArgs:
		res, change, err = s.planPutTemplate(p, a)
	case SetCustodiansArgs:
		res, change, err = s.planSetCustodians(p, a)
	case HandoverArgs:
		res, change, err = s.planHandover(p, a, now)
	case SetAddrsArgs:
		res, change, err = s.planSetAddrs(p, a)
	default:
		err = refuse(ErrInvalidCommand, "%s is not a registry command", c.Kind)
	}
	if err != nil {
		return Result{}, nil, err
	}
	res.Kind = c.Kind
	return res, change, nil
}

// remember records an applied command's hash and forgets those that can
// no longer be replayed (their Issued is outside any window that could
// still accept them).
func (s *State) remember(hash string, issued, now int64) {
	s.Seen[hash] = issued
	oldest := now - ReplayWindow.Milliseconds() - seenRetention.Milliseconds()
	for h, t := range s.Seen {
		if t < oldest {
			delete(s.Seen, h)
		}
	}
}

// ensureMaps makes every map non-nil, so planners' changes can write.
func (s *State) ensureMaps() {
	if s.Networks == nil {
		s.Networks = map[string]*Network{}
	}
	if s.Nodes == nil {
		s.Nodes = map[string]*NodeKey{}
	}
	if s.Templates == nil {
		s.Templates = map[string][]model.Template{}
	}
	if s.Invites == nil {
		s.Invites = map[string]*Invite{}
	}
	if s.Seen == nil {
		s.Seen = map[string]int64{}
	}
}

// actor is the proposer as the registry knows it: key and network are nil
// for a stranger.
type actor struct {
	id  string
	key *NodeKey
	net *Network
}

func (s *State) actor(id string) actor {
	a := actor{id: id, key: s.Nodes[id]}
	if a.key != nil {
		a.net = s.Networks[a.key.Network]
	}
	return a
}

// member checks that the proposer may propose anything at all: a key that
// is not revoked, of an active network.
func (a actor) member(what string) error {
	switch {
	case a.key == nil || a.net == nil:
		return refuse(ErrUnauthorised, "node %s is not a node of any network in this federation, so it cannot %s", short(a.id), what)
	case a.key.Revoked:
		return refuse(ErrUnauthorised, "node %s of %s was revoked at %s, so it cannot propose registry changes", short(a.id), a.net.Slug, stamp(a.key.Cutoff))
	case a.net.Status != StatusActive:
		return refuse(ErrUnauthorised, "network %s is %s, so its nodes cannot propose registry changes", a.net.Slug, a.net.Status)
	}
	return nil
}

// steward checks that the proposer is a current member of a steward network.
func (a actor) steward(what string) error {
	if err := a.member(what); err != nil {
		return err
	}
	if a.net.Role != RoleSteward {
		return refuse(ErrUnauthorised, "only a steward network can %s; %s is a member", what, a.net.Slug)
	}
	return nil
}

// ownOrSteward checks that the proposer is a current member of network
// slug itself or of a steward network.
func (a actor) ownOrSteward(slug, what string) error {
	if err := a.member(what); err != nil {
		return err
	}
	if a.net.Slug != slug && a.net.Role != RoleSteward {
		return refuse(ErrUnauthorised, "only nodes of %s or of a steward network can %s; %s is a member", slug, what, a.net.Slug)
	}
	return nil
}

func (s *State) network(slug string) (*Network, error) {
	if n, ok := s.Networks[slug]; ok {
		return n, nil
	}
	if !model.ValidSlug(slug) {
		return nil, refuse(ErrInvalidCommand, "%q is not a network slug: use lower-case letters, digits and '-', e.g. tanpud", truncate(slug, 40))
	}
	return nil, refuse(ErrNotFound, "there is no network %s in this federation", slug)
}

// slugFree refuses a slug that a network or an open invite already holds.
func (s *State) slugFree(slug string, now int64, exceptInvite string) error {
	if n, ok := s.Networks[slug]; ok {
		return refuse(ErrConflict, "the slug %s is taken by %s (%s); choose another", slug, n.Name, n.Status)
	}
	for _, id := range sortedKeys(s.Invites) {
		if inv := s.Invites[id]; id != exceptInvite && inv.Network.Slug == slug && inv.Open(now) {
			return refuse(ErrConflict, "invite %s for %s is still open until %s; wait for it to expire or use it", id, slug, stamp(inv.Expires))
		}
	}
	return nil
}

// checkParent refuses a parent that is not in the registry or that would
// make slug its own ancestor.
func (s *State) checkParent(slug, parent string) error {
	if parent == "" {
		return nil
	}
	if _, ok := s.Networks[parent]; !ok {
		return refuse(ErrNotFound, "the parent network %s is not in this federation", parent)
	}
	for p, steps := parent, 0; p != "" && steps <= len(s.Networks); steps++ {
		if p == slug {
			return refuse(ErrConflict, "%s cannot have %s as its parent: %s already sits under %s", slug, parent, parent, slug)
		}
		n, ok := s.Networks[p]
		if !ok {
			break
		}
		p = n.Parent
	}
	return nil
}

// keepsAVoter refuses a change after which no node could vote: removing
// network slug from the voters (suspend, retire, demote, hand over) or
// revoking key peer. Raft with no voter can never commit again.
func (s *State) keepsAVoter(slug, peer, what string) error {
	for _, id := range s.Voters() {
		if k := s.Nodes[id]; id != peer && k.Network != slug {
			return nil
		}
	}
	if peer != "" {
		return refuse(ErrConflict, "node %s is the last voting node of the federation; add another node to a steward network before you %s", short(peer), what)
	}
	return refuse(ErrConflict, "%s is the last active steward network; promote another network to steward before you %s", slug, what)
}

func (s *State) planGenesis(p actor, a GenesisArgs, hash string, now int64) (Result, func(), error) {
	if !s.Empty() {
		return Result{}, nil, refuse(ErrConflict, "this registry already holds federation %s; genesis is only valid on an empty registry", shortHash(s.Genesis))
	}
	if err := a.Network.Validate(); err != nil {
		return Result{}, nil, refuseCause(ErrInvalidCommand, err, "the first network's profile is not valid: %v", err)
	}
	if a.Network.Parent != "" {
		return Result{}, nil, refuse(ErrInvalidCommand, "the first network cannot have a parent: no other network exists yet")
	}
	if len(a.Templates) > MaxTemplates {
		return Result{}, nil, refuse(ErrInvalidCommand, "genesis carries %d templates; at most %d are allowed", len(a.Templates), MaxTemplates)
	}
	ids := map[string]bool{}
	for _, t := range a.Templates {
		if err := t.Validate(); err != nil {
			return Result{}, nil, refuseCause(ErrInvalidCommand, err, "template %q in genesis is not valid: %v", truncate(t.ID, 64), err)
		}
		if ids[t.ID] {
			return Result{}, nil, refuse(ErrInvalidCommand, "template %s appears twice in genesis; publish later versions with put-template", t.ID)
		}
		ids[t.ID] = true
	}
	prof := a.Network
	tmpls := make([]model.Template, len(a.Templates))
	for i, t := range a.Templates {
		tmpls[i] = cloneTemplate(t)
	}
	return Result{Network: prof.Slug, Peer: p.id, Membership: true,
			Summary: fmt.Sprintf("created the federation with %s as its first steward network and %d templates", prof.Slug, len(tmpls))},
		func() {
			s.Networks = map[string]*Network{prof.Slug: {Profile: prof, Role: RoleSteward, Status: StatusActive, Joined: now}}
			s.Nodes = map[string]*NodeKey{p.id: {PeerID: p.id, Network: prof.Slug, Added: now}}
			s.Templates = map[string][]model.Template{}
			for _, t := range tmpls {
				s.Templates[t.ID] = []model.Template{t}
			}
			s.Invites = map[string]*Invite{}
			s.Genesis = hash
		}, nil
}

func (s *State) planCreateInvite(p actor, a CreateInviteArgs, now int64) (Result, func(), error) {
	if err := p.steward("create an invite"); err != nil {
		return Result{}, nil, err
	}
	if err := checkHexID("invite id", a.ID, 16, 64); err != nil {
		return Result{}, nil, err
	}
	if len(a.SecretHash) != 64 || !isLowerHex(a.SecretHash) {
		return Result{}, nil, refuse(ErrInvalidCommand, "the invite's secret hash must be 64 lower-case hex digits (HashSecret of the secret)")
	}
	if err := a.Network.Validate(); err != nil {
		return Result{}, nil, refuseCause(ErrInvalidCommand, err, "the invited network's profile is not valid: %v", err)
	}
	if a.Role != RoleMember && a.Role != RoleSteward {
		return Result{}, nil, refuse(ErrInvalidCommand, "%q is not a role: use member or steward", truncate(string(a.Role), 40))
	}
	if a.Expires <= now {
		return Result{}, nil, refuse(ErrInvalidCommand, "the invite would expire at %s, which is not after the leader's time %s", stamp(a.Expires), stamp(now))
	}
	if a.Expires-now > MaxInviteMillis {
		return Result{}, nil, refuse(ErrInvalidCommand, "an invite may last at most 30 days; this one would last until %s", stamp(a.Expires))
	}
	if _, ok := s.Invites[a.ID]; ok {
		return Result{}, nil, refuse(ErrConflict, "an invite with id %s already exists; use a new random id", a.ID)
	}
	if err := s.slugFree(a.Network.Slug, now, ""); err != nil {
		return Result{}, nil, err
	}
	if err := s.checkParent(a.Network.Slug, a.Network.Parent); err != nil {
		return Result{}, nil, err
	}
	open := 0
	for _, inv := range s.Invites {
		if inv.Open(now) {
			open++
		}
	}
	if open >= MaxOpenInvites {
		return Result{}, nil, refuse(ErrConflict, "%d invites are already open; wait for some to be used or to expire", open)
	}
	inv := Invite{ID: a.ID, SecretHash: a.SecretHash, Network: a.Network, Role: a.Role, Expires: a.Expires, CreatedBy: p.id}
	return Result{Network: a.Network.Slug, Invite: a.ID,
			Summary: fmt.Sprintf("invited %s to join as a %s until %s", a.Network.Slug, a.Role, stamp(a.Expires))},
		func() {
			s.Invites[inv.ID] = &inv
		}, nil
}

func (s *State) planJoin(p actor, a JoinArgs, now int64) (Result, func(), error) {
	if p.key != nil {
		return Result{}, nil, refuse(ErrConflict, "node %s is already registered for %s; join with a node that has a new key", short(p.id), p.key.Network)
	}
	inv, ok := s.Invites[a.Invite]
	if !ok {
		return Result{}, nil, refuse(ErrNotFound, "there is no invite %s in this federation; check the invite code", truncate(a.Invite, 64))
	}
	if subtle.ConstantTimeCompare([]byte(HashSecret(a.Secret)), []byte(inv.SecretHash)) != 1 {
		return Result{}, nil, refuse(ErrUnauthorised, "the secret does not match invite %s; check the invite code", inv.ID)
	}
	if inv.Consumed {
		return Result{}, nil, refuse(ErrConflict, "invite %s was already used by node %s; ask a steward for a new invite", inv.ID, short(inv.ConsumedBy))
	}
	if now >= inv.Expires {
		return Result{}, nil, refuse(ErrExpired, "invite %s expired at %s; ask a steward for a new invite", inv.ID, stamp(inv.Expires))
	}
	prof := inv.Network
	if err := prof.Validate(); err != nil {
		return Result{}, nil, refuseCause(ErrInvalidCommand, err, "invite %s carries a profile that is not valid: %v", inv.ID, err)
	}
	if err := s.slugFree(prof.Slug, now, inv.ID); err != nil {
		return Result{}, nil, err
	}
	if err := s.checkParent(prof.Slug, prof.Parent); err != nil {
		return Result{}, nil, err
	}
	if err := checkAddrs(a.Addrs); err != nil {
		return Result{}, nil, err
	}
	addrs := slices.Clone(a.Addrs)
	return Result{Network: prof.Slug, Peer: p.id, Invite: inv.ID, Membership: true,
			Summary: fmt.Sprintf("%s joined the federation as a %s", prof.Slug, inv.Role)},
		func() {
			s.Networks[prof.Slug] = &Network{Profile: prof, Role: inv.Role, Status: StatusActive, Joined: now}
			s.Nodes[p.id] = &NodeKey{PeerID: p.id, Network: prof.Slug, Added: now, Addrs: addrs}
			inv.Consumed = true
			inv.ConsumedBy = p.id
		}, nil
}

func (s *State) planAddNodeKey(p actor, a AddNodeKeyArgs, now int64) (Result, func(), error) {
	if err := p.member("add node keys"); err != nil {
		return Result{}, nil, err
	}
	n, err := s.network(a.Network)
	if err != nil {
		return Result{}, nil, err
	}
	if err := p.ownOrSteward(n.Slug, "add node keys to "+n.Slug); err != nil {
		return Result{}, nil, err
	}
	if n.Status == StatusRetired {
		return Result{}, nil, refuse(ErrConflict, "%s is retired; a retired network cannot get new node keys", n.Slug)
	}
	if _, err := peerKey(a.PeerID); err != nil {
		return Result{}, nil, err
	}
	if k, ok := s.Nodes[a.PeerID]; ok {
		if k.Revoked {
			return Result{}, nil, refuse(ErrConflict, "node %s was revoked at %s and cannot be registered again; give the node a new key", short(a.PeerID), stamp(k.Cutoff))
		}
		return Result{}, nil, refuse(ErrConflict, "node %s is already registered for %s", short(a.PeerID), k.Network)
	}
	live := 0
	for _, k := range s.Nodes {
		if k.Network == n.Slug && !k.Revoked {
			live++
		}
	}
	if live >= MaxKeysPerNet {
		return Result{}, nil, refuse(ErrConflict, "%s already has %d node keys; revoke one before adding another", n.Slug, live)
	}
	key := NodeKey{PeerID: a.PeerID, Network: n.Slug, Added: now}
	return Result{Network: n.Slug, Peer: a.PeerID, Membership: true,
			Summary: fmt.Sprintf("added node %s to %s", short(a.PeerID), n.Slug)},
		func() { s.Nodes[key.PeerID] = &key }, nil
}

func (s *State) planRevokeNodeKey(p actor, a RevokeNodeKeyArgs, now int64) (Result, func(), error) {
	if err := p.member("revoke node keys"); err != nil {
		return Result{}, nil, err
	}
	k, ok := s.Nodes[a.PeerID]
	if !ok {
		if _, err := peerKey(a.PeerID); err != nil {
			return Result{}, nil, err
		}
		return Result{}, nil, refuse(ErrNotFound, "node %s is not registered in this federation", short(a.PeerID))
	}
	if err := p.ownOrSteward(k.Network, "revoke node keys of "+k.Network); err != nil {
		return Result{}, nil, err
	}
	if k.Revoked {
		return Result{}, nil, refuse(ErrConflict, "node %s of %s was already revoked at %s", short(a.PeerID), k.Network, stamp(k.Cutoff))
	}
	if err := s.keepsAVoter("", a.PeerID, "revoke it"); err != nil {
		return Result{}, nil, err
	}
	return Result{Network: k.Network, Peer: a.PeerID, Membership: true,
			Summary: fmt.Sprintf("revoked node %s of %s; versions it signs after %s are refused", short(a.PeerID), k.Network, stamp(now))},
		func() {
			k.Revoked = true
			k.Cutoff = now
		}, nil
}

func (s *State) planUpdateNetwork(p actor, a UpdateNetworkArgs) (Result, func(), error) {
	if err := p.member("update a network's profile"); err != nil {
		return Result{}, nil, err
	}
	n, err := s.network(a.Network.Slug)
	if err != nil {
		return Result{}, nil, err
	}
	if err := p.ownOrSteward(n.Slug, "update the profile of "+n.Slug); err != nil {
		return Result{}, nil, err
	}
	if err := a.Network.Validate(); err != nil {
		return Result{}, nil, refuseCause(ErrInvalidCommand, err, "the new profile of %s is not valid: %v", n.Slug, err)
	}
	if p.net.Role != RoleSteward && (a.Network.Level != n.Level || a.Network.Parent != n.Parent) {
		return Result{}, nil, refuse(ErrUnauthorised, "only a steward network can change a network's level or parent; %s is a member", p.net.Slug)
	}
	if a.Network.Parent != n.Parent {
		if err := s.checkParent(n.Slug, a.Network.Parent); err != nil {
			return Result{}, nil, err
		}
	}
	prof := a.Network
	return Result{Network: n.Slug, Summary: fmt.Sprintf("updated the profile of %s", n.Slug)},
		func() { n.Profile = prof }, nil
}

// statusVerbs name what each status command does, for messages.
var statusVerbs = map[Kind]string{Suspend: "suspend", Reinstate: "reinstate", Retire: "retire", Promote: "promote", Demote: "demote"}

func (s *State) planStatus(p actor, kind Kind, a NetworkArgs, now int64) (Result, func(), error) {
	verb := statusVerbs[kind]
	if err := p.steward(verb + " a network"); err != nil {
		return Result{}, nil, err
	}
	n, err := s.network(a.Network)
	if err != nil {
		return Result{}, nil, err
	}
	res := Result{Network: n.Slug, Membership: true}
	var change func()
	switch kind {
	case Suspend:
		if n.Status != StatusActive {
			return Result{}, nil, refuse(ErrConflict, "%s is %s, not active, so it cannot be suspended", n.Slug, n.Status)
		}
		change = func() { n.Status, n.Since = StatusSuspended, now }
		res.Summary = fmt.Sprintf("suspended %s: its nodes are disconnected and refused until it is reinstated", n.Slug)
	case Reinstate:
		if n.Status != StatusSuspended {
			return Result{}, nil, refuse(ErrConflict, "%s is %s, not suspended, so it cannot be reinstated", n.Slug, n.Status)
		}
		change = func() { n.Status, n.Since = StatusActive, now }
		res.Summary = fmt.Sprintf("reinstated %s", n.Slug)
	case Retire:
		if n.Status == StatusRetired {
			return Result{}, nil, refuse(ErrConflict, "%s is already retired", n.Slug)
		}
		change = func() {
			if n.Status == StatusActive {
				n.Since = now // retiring a suspended network keeps the suspension's cutoff
			}
			n.Status = StatusRetired
		}
		res.Summary = fmt.Sprintf("retired %s", n.Slug)
	case Promote:
		if n.Status != StatusActive {
			return Result{}, nil, refuse(ErrConflict, "%s is %s; only an active network can be promoted", n.Slug, n.Status)
		}
		if n.Role == RoleSteward {
			return Result{}, nil, refuse(ErrConflict, "%s is already a steward network", n.Slug)
		}
		change = func() { n.Role = RoleSteward }
		res.Summary = fmt.Sprintf("promoted %s to steward: its nodes become voters", n.Slug)
	case Demote:
		if n.Role != RoleSteward {
			return Result{}, nil, refuse(ErrConflict, "%s is a member, not a steward network, so it cannot be demoted", n.Slug)
		}
		change = func() { n.Role = RoleMember }
		res.Summary = fmt.Sprintf("demoted %s to member: its nodes stop voting", n.Slug)
	}
	if kind != Reinstate && kind != Promote {
		if err := s.keepsAVoter(n.Slug, "", verb+" it"); err != nil {
			return Result{}, nil, err
		}
	}
	return res, change, nil
}

func (s *State) planPutTemplate(p actor, a PutTemplateArgs) (Result, func(), error) {
	if err := p.steward("publish a template"); err != nil {
		return Result{}, nil, err
	}
	t := a.Template
	if err := t.Validate(); err != nil {
		return Result{}, nil, refuseCause(ErrInvalidCommand, err, "the template is not valid: %v", err)
	}
	versions := s.Templates[t.ID]
	for _, v := range versions {
		if v.Version == t.Version {
			return Result{}, nil, refuse(ErrConflict, "template %s version %s is already published; give the new version a new version name", t.ID, t.Version)
		}
	}
	if len(versions) > 0 {
		if err := t.CompatibleWith(versions[len(versions)-1]); err != nil {
			return Result{}, nil, refuseCause(ErrConflict, err, "%v", err)
		}
	}
	if len(versions) >= MaxTemplates {
		return Result{}, nil, refuse(ErrConflict, "template %s already has %d versions; no more can be published", t.ID, len(versions))
	}
	if len(versions) == 0 && len(s.Templates) >= MaxTemplates {
		return Result{}, nil, refuse(ErrConflict, "the registry already holds %d templates; no more can be published", len(s.Templates))
	}
	t = cloneTemplate(t)
	return Result{Template: t.Ref(), Summary: fmt.Sprintf("published template %s", t.Ref())},
		func() {
			s.Templates[t.ID] = append(s.Templates[t.ID], t)
		}, nil
}

func (s *State) planSetCustodians(p actor, a SetCustodiansArgs) (Result, func(), error) {
	if err := p.member("choose custodians"); err != nil {
		return Result{}, nil, err
	}
	own := p.net
	if len(a.Custodians) < MinCustodians || len(a.Custodians) > MaxCustodians {
		return Result{}, nil, refuse(ErrInvalidCommand, "a network needs %d to %d custodians, not %d", MinCustodians, MaxCustodians, len(a.Custodians))
	}
	seen := map[string]bool{}
	for _, c := range a.Custodians {
		if c == own.Slug {
			return Result{}, nil, refuse(ErrInvalidCommand, "%s cannot be its own custodian; choose other networks", own.Slug)
		}
		if seen[c] {
			return Result{}, nil, refuse(ErrInvalidCommand, "custodian %s appears twice", c)
		}
		seen[c] = true
		n, err := s.network(c)
		if err != nil {
			return Result{}, nil, err
		}
		if n.Status != StatusActive {
			return Result{}, nil, refuse(ErrConflict, "%s is %s and cannot be a custodian; choose an active network", c, n.Status)
		}
	}
	list := slices.Clone(a.Custodians)
	return Result{Network: own.Slug, Summary: fmt.Sprintf("%s's custodians are now %s", own.Slug, strings.Join(list, ", "))},
		func() { own.Custodians = list }, nil
}

// MaxWrappedKey bounds a handover's wrapped archive key: an age header with
// one ssh-ed25519 stanza (about 150 bytes) per node key of the steward
// network (at most MaxKeysPerNet), and the 32-byte key sealed.
const MaxWrappedKey = 8192

// wrappedKeyPrefix is how every age file starts. Apply checks the wrapped
// key's shape only: it cannot (and must not) open it, and parsing it with
// the age library would make the decision depend on that library's version.
const wrappedKeyPrefix = "age-encryption.org/v1\n"

// planHandover retires a network and names the steward network that holds
// its archive, carrying its archive key wrapped to the steward's nodes.
//
// Who may propose it: a node of the network itself (it retires and hands
// over in one step); a node of a steward network (as for retire); or a
// node of one of the network's custodian networks, but only once the
// network is suspended (or retired without a steward). The last case is
// the shutdown: the network is gone, its custodians' share holders rebuild
// the archive key from K-of-N shares, and a custodian hands it over. The
// registry cannot see whether a network is reachable, so "gone" is what
// the stewards decide by suspending it; a custodian can never retire an
// active network.
func (s *State) planHandover(p actor, a HandoverArgs, now int64) (Result, func(), error) {
	if err := p.member("hand over an archive"); err != nil {
		return Result{}, nil, err
	}
	n, err := s.network(a.Network)
	if err != nil {
		return Result{}, nil, err
	}
	custodian := slices.Contains(n.Custodians, p.net.Slug)
	switch {
	case p.net.Slug == n.Slug || p.net.Role == RoleSteward:
	case custodian && (n.Status == StatusSuspended || (n.Status == StatusRetired && n.Steward == "")):
	case custodian:
		return Result{}, nil, refuse(ErrUnauthorised, "%s is a custodian of %s, but a custodian can hand over only a network a steward has suspended; %s is %s", p.net.Slug, n.Slug, n.Slug, n.Status)
	default:
		return Result{}, nil, refuse(ErrUnauthorised, "only nodes of %s, of its custodians or of a steward network can hand over the archive of %s; %s is a member", n.Slug, n.Slug, p.net.Slug)
	}
	to, err := s.network(a.Steward)
	if err != nil {
		return Result{}, nil, err
	}
	switch {
	case to.Slug == n.Slug:
		return Result{}, nil, refuse(ErrInvalidCommand, "%s cannot hand its archive over to itself; name another steward network", n.Slug)
	case to.Role != RoleSteward:
		return Result{}, nil, refuse(ErrConflict, "%s is a member, not a steward network; an archive goes to a steward network", to.Slug)
	case to.Status != StatusActive:
		return Result{}, nil, refuse(ErrConflict, "%s is %s; an archive goes to an active steward network", to.Slug, to.Status)
	case n.Status == StatusRetired && n.Steward == to.Slug:
		return Result{}, nil, refuse(ErrConflict, "%s's archive is already with %s", n.Slug, to.Slug)
	case len(a.ArchiveKey) == 0:
		return Result{}, nil, refuse(ErrInvalidCommand, "the handover of %s carries no archive key, so %s could not open the archive; hand over with cairn handover, which wraps the key to %s's nodes", n.Slug, to.Slug, to.Slug)
	case len(a.ArchiveKey) > MaxWrappedKey:
		return Result{}, nil, refuse(ErrInvalidCommand, "the wrapped archive key is %d bytes long; at most %d are allowed", len(a.ArchiveKey), MaxWrappedKey)
	case !bytes.HasPrefix(a.ArchiveKey, []byte(wrappedKeyPrefix)):
		return Result{}, nil, refuse(ErrInvalidCommand, "the archive key in the handover of %s is not wrapped to %s's nodes (it is not an age file)", n.Slug, to.Slug)
	}
	if err := s.keepsAVoter(n.Slug, "", "retire it"); err != nil {
		return Result{}, nil, err
	}
	wrapped := slices.Clone(a.ArchiveKey)
	return Result{Network: n.Slug, Membership: true,
			Summary: fmt.Sprintf("retired %s and handed its archive over to %s", n.Slug, to.Slug)},
		func() {
			if n.Status == StatusActive {
				n.Since = now
			}
			n.Status = StatusRetired
			n.Steward = to.Slug
			n.ArchiveKey = wrapped
		}, nil
}

func (s *State) planSetAddrs(p actor, a SetAddrsArgs) (Result, func(), error) {
	if err := p.member("publish addresses"); err != nil {
		return Result{}, nil, err
	}
	if err := checkAddrs(a.Addrs); err != nil {
		return Result{}, nil, err
	}
	var addrs []string
	if len(a.Addrs) > 0 {
		addrs = slices.Clone(a.Addrs)
	}
	k := p.key
	return Result{Network: k.Network, Peer: k.PeerID, Summary: fmt.Sprintf("node %s of %s now listens on %d addresses", short(k.PeerID), k.Network, len(addrs))},
		func() { k.Addrs = addrs }, nil
}

// stamp formats a log time for messages (UTC, so every replica writes the
// same text).
func stamp(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05Z")
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
