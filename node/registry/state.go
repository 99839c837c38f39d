package registry

import (
	"slices"
	"sort"

	"github.com/inpud/cairn/model"
)

// Role is what a network does in the federation.
type Role string

// Roles. Stewards' nodes are the Raft voters; members' nodes hold read-only
// replicas.
const (
	RoleSteward Role = "steward"
	RoleMember  Role = "member"
)

// Status is where a network stands. Only an active network's nodes may
// connect, vote or propose anything.
type Status string

// Statuses. Suspended can be reinstated; retired is final.
const (
	StatusActive    Status = "active"
	StatusSuspended Status = "suspended"
	StatusRetired   Status = "retired"
)

// Levels a network can have in the federation.
var Levels = model.Levels

// Profile is what a network says about itself: the part an invite carries
// and UpdateNetwork changes (model.Profile, with its validation).
type Profile = model.Profile

// Network is one member organisation of the federation.
type Network struct {
	Profile
	Role   Role   `json:"role"`
	Status Status `json:"status"`
	// Since is when the network was last suspended, reinstated or retired
	// (unix ms, from the log; 0 if never). For a suspended or retired
	// network it is the cutoff: versions its nodes sign after it are not
	// accepted, whoever relays them.
	Since int64 `json:"since,omitempty"`
	// Steward is the steward network holding this network's archive after a
	// handover; empty until then.
	Steward string `json:"steward,omitempty"`
	// ArchiveKey is the network's archive key as the handover carried it,
	// wrapped (age) to the steward network's node keys; empty until then.
	ArchiveKey []byte `json:"archive_key,omitempty"`
	// Custodians are the networks that keep encrypted copies of this
	// network's records, private ones included.
	Custodians []string `json:"custodians,omitempty"`
	Joined     int64    `json:"joined"` // unix ms, from the log
}

// NodeKey is one node's Ed25519 key (its peer ID) and the network it speaks for.
type NodeKey struct {
	PeerID  string `json:"peer_id"`
	Network string `json:"network"`
	Added   int64  `json:"added"` // unix ms, from the log
	Revoked bool   `json:"revoked,omitempty"`
	// Cutoff is when the key was revoked (unix ms, from the log): versions
	// it signed after that are not accepted.
	Cutoff int64 `json:"cutoff,omitempty"`
	// Addrs are the multiaddrs the node says it listens on.
	Addrs []string `json:"addrs,omitempty"`
}

// Invite is a pending (or used) invitation for a new network to join.
type Invite struct {
	ID string `json:"id"`
	// SecretHash is HashSecret of the one-time secret in the invite code.
	SecretHash string  `json:"secret_hash"`
	Network    Profile `json:"network"` // the network the invite creates
	Role       Role    `json:"role"`
	Expires    int64   `json:"expires"` // unix ms
	CreatedBy  string  `json:"created_by"`
	Consumed   bool    `json:"consumed,omitempty"`
	ConsumedBy string  `json:"consumed_by,omitempty"`
}

// Open reports whether the invite can still be used at time now (unix ms).
func (i Invite) Open(now int64) bool { return !i.Consumed && now < i.Expires }

// State is the registry: everything the federation agrees on. The zero
// value is an empty registry, ready for Genesis.
//
// A State is not safe for concurrent use: the FSM guards its State with a
// lock and hands readers copies (see FSM.View and FSM.State). Queries never
// change the State; Apply is the only way to change it.
type State struct {
	Networks  map[string]*Network         `json:"networks"`
	Nodes     map[string]*NodeKey         `json:"nodes"` // by peer ID
	Templates map[string][]model.Template `json:"templates"`
	Invites   map[string]*Invite          `json:"invites"`
	// Genesis is the hex SHA-256 of the genesis command's signed payload:
	// the federation's name, checked by joiners.
	Genesis string `json:"genesis"`
	// Seen holds the payload hash of every command applied within the
	// replay window, with the time it was issued (see doc.go).
	Seen map[string]int64 `json:"seen"`
	// Applied is the last Raft index applied; set by the FSM.
	Applied uint64 `json:"applied"`
}

// Empty reports whether the registry has no federation yet.
func (s *State) Empty() bool {
	return s.Genesis == "" && len(s.Networks) == 0 && len(s.Nodes) == 0
}

// Member returns the node key and network of peerID if it is a current
// member: a key that is not revoked, of a network that is active. This is
// the question the connection gater asks.
func (s *State) Member(peerID string) (NodeKey, Network, bool) {
	k, ok := s.Nodes[peerID]
	if !ok || k.Revoked {
		return NodeKey{}, Network{}, false
	}
	n, ok := s.Networks[k.Network]
	if !ok || n.Status != StatusActive {
		return NodeKey{}, Network{}, false
	}
	return cloneNodeKey(k), cloneNetwork(n), true
}

// Node returns the node key registered under peerID, revoked or not.
func (s *State) Node(peerID string) (NodeKey, bool) {
	k, ok := s.Nodes[peerID]
	if !ok {
		return NodeKey{}, false
	}
	return cloneNodeKey(k), true
}

// Network returns the network with this slug, whatever its status.
func (s *State) Network(slug string) (Network, bool) {
	n, ok := s.Networks[slug]
	if !ok {
		return Network{}, false
	}
	return cloneNetwork(n), true
}

// NetworkList returns every network, sorted by slug.
func (s *State) NetworkList() []Network {
	out := make([]Network, 0, len(s.Networks))
	for _, slug := range sortedKeys(s.Networks) {
		out = append(out, cloneNetwork(s.Networks[slug]))
	}
	return out
}

// NodeKeys returns the node keys of a network (revoked ones included),
// sorted by peer ID.
func (s *State) NodeKeys(network string) []NodeKey {
	var out []NodeKey
	for _, id := range sortedKeys(s.Nodes) {
		if k := s.Nodes[id]; k.Network == network {
			out = append(out, cloneNodeKey(k))
		}
	}
	return out
}

// Peers returns the node keys of every current member (see Member), sorted
// by peer ID: whom to dial and whom to admit.
func (s *State) Peers() []NodeKey {
	var out []NodeKey
	for _, id := range sortedKeys(s.Nodes) {
		if k, _, ok := s.Member(id); ok {
			out = append(out, k)
		}
	}
	return out
}

// Voters returns the peer IDs of the non-revoked keys of active steward
// networks, sorted: the Raft voter set.
func (s *State) Voters() []string { return s.peersWithRole(RoleSteward) }

// NonVoters returns the peer IDs of the non-revoked keys of active member
// (non-steward) networks, sorted: the Raft non-voters.
func (s *State) NonVoters() []string { return s.peersWithRole(RoleMember) }

func (s *State) peersWithRole(r Role) []string {
	var out []string
	for _, id := range sortedKeys(s.Nodes) {
		if _, n, ok := s.Member(id); ok && n.Role == r {
			out = append(out, id)
		}
	}
	return out
}

// Template returns the latest published version of a template.
func (s *State) Template(id string) (model.Template, bool) {
	vs := s.Templates[id]
	if len(vs) == 0 {
		return model.Template{}, false
	}
	return cloneTemplate(vs[len(vs)-1]), true
}

// TemplateVersion returns one published version of a template.
func (s *State) TemplateVersion(id, version string) (model.Template, bool) {
	for _, t := range s.Templates[id] {
		if t.Version == version {
			return cloneTemplate(t), true
		}
	}
	return model.Template{}, false
}

// TemplateList returns the latest version of every template, sorted by id.
func (s *State) TemplateList() []model.Template {
	out := make([]model.Template, 0, len(s.Templates))
	for _, id := range sortedKeys(s.Templates) {
		if t, ok := s.Template(id); ok {
			out = append(out, t)
		}
	}
	return out
}

// Invite returns an invite by id.
func (s *State) Invite(id string) (Invite, bool) {
	i, ok := s.Invites[id]
	if !ok {
		return Invite{}, false
	}
	return *i, true
}

// InviteList returns every invite, used or not, sorted by id.
func (s *State) InviteList() []Invite {
	out := make([]Invite, 0, len(s.Invites))
	for _, id := range sortedKeys(s.Invites) {
		out = append(out, *s.Invites[id])
	}
	return out
}

// Clone returns a deep copy: nothing in it is shared with s.
func (s *State) Clone() *State {
	c := &State{Genesis: s.Genesis, Applied: s.Applied}
	if s.Networks != nil {
		c.Networks = make(map[string]*Network, len(s.Networks))
		for k, v := range s.Networks {
			n := cloneNetwork(v)
			c.Networks[k] = &n
		}
	}
	if s.Nodes != nil {
		c.Nodes = make(map[string]*NodeKey, len(s.Nodes))
		for k, v := range s.Nodes {
			n := cloneNodeKey(v)
			c.Nodes[k] = &n
		}
	}
	if s.Templates != nil {
		c.Templates = make(map[string][]model.Template, len(s.Templates))
		for k, vs := range s.Templates {
			cs := make([]model.Template, len(vs))
			for i, t := range vs {
				cs[i] = cloneTemplate(t)
			}
			c.Templates[k] = cs
		}
	}
	if s.Invites != nil {
		c.Invites = make(map[string]*Invite, len(s.Invites))
		for k, v := range s.Invites {
			i := *v
			c.Invites[k] = &i
		}
	}
	if s.Seen != nil {
		c.Seen = make(map[string]int64, len(s.Seen))
		for k, v := range s.Seen {
			c.Seen[k] = v
		}
	}
	return c
}

func cloneNetwork(n *Network) Network {
	c := *n
	c.Custodians = slices.Clone(n.Custodians)
	c.ArchiveKey = slices.Clone(n.ArchiveKey)
	return c
}

func cloneNodeKey(k *NodeKey) NodeKey {
	c := *k
	c.Addrs = slices.Clone(k.Addrs)
	return c
}

func cloneTemplate(t model.Template) model.Template {
	t.Sections = slices.Clone(t.Sections) // keeps nil as nil, so encodings match
	for i := range t.Sections {
		t.Sections[i].Items = slices.Clone(t.Sections[i].Items)
	}
	return t
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
