package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/model/templates"
)

func TestGenesisInviteJoin(t *testing.T) {
	f := newFed(t)
	builtin := templates.Builtin()
	gen := f.sign("inpud-1", Genesis, GenesisArgs{Network: profile("inpud", "global"), Templates: builtin})
	f.now += 1000
	r, err := f.s.Apply(gen, f.now)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Membership || r.Network != "inpud" || r.Kind != Genesis {
		t.Errorf("genesis result = %+v", r)
	}
	sum := sha256.Sum256(gen.Payload)
	if f.s.Genesis != hex.EncodeToString(sum[:]) || f.s.Genesis != gen.Hash() {
		t.Errorf("genesis hash = %s, want the payload's SHA-256", f.s.Genesis)
	}
	if got := f.s.TemplateList(); len(got) != len(builtin) {
		t.Errorf("%d templates published at genesis, want %d", len(got), len(builtin))
	}
	if tm, ok := f.s.Template("iduit-bg/3.2"); !ok || tm.Version != "2017" {
		t.Errorf("iduit-bg/3.2 = %v, %v", tm.Ref(), ok)
	}
	if got, want := f.s.Voters(), []string{f.node("inpud-1").id}; !slices.Equal(got, want) {
		t.Errorf("voters = %v, want %v", got, want)
	}

	// A second genesis is refused, whoever signs it.
	err = f.try("stranger", Genesis, GenesisArgs{Network: profile("other", "global")})
	wantErr(t, err, ErrConflict, "genesis is only valid on an empty registry")

	// A steward invites a regional steward and a national member.
	ehrnInv, ehrnSecret := f.invite("inpud-1", Profile{Slug: "ehrn", Name: "EHRN", Level: "regional", Region: "eeca", Parent: "inpud"}, RoleSteward)
	tanInv, tanSecret := f.invite("inpud-1", profile("tanpud", "national"), RoleMember)
	if inv, _ := f.s.Invite(tanInv); !inv.Open(f.now) || inv.CreatedBy != f.node("inpud-1").id {
		t.Errorf("invite = %+v, want open and created by inpud-1", inv)
	}
	r = f.must("ehrn-1", Join, JoinArgs{Invite: ehrnInv, Secret: ehrnSecret})
	if r.Network != "ehrn" || r.Peer != f.node("ehrn-1").id || !r.Membership {
		t.Errorf("join result = %+v", r)
	}
	joinedAt := f.now
	f.must("tanpud-1", Join, JoinArgs{Invite: tanInv, Secret: tanSecret})

	n, ok := f.s.Network("tanpud")
	if !ok || n.Role != RoleMember || n.Status != StatusActive || n.Joined != f.now {
		t.Errorf("tanpud = %+v", n)
	}
	if e, _ := f.s.Network("ehrn"); e.Role != RoleSteward || e.Joined != joinedAt || e.Parent != "inpud" {
		t.Errorf("ehrn = %+v", e)
	}
	if k, net, ok := f.s.Member(f.node("tanpud-1").id); !ok || net.Slug != "tanpud" || k.Added != f.now {
		t.Errorf("Member(tanpud-1) = %+v %+v %v", k, net, ok)
	}
	if _, _, ok := f.s.Member(f.node("stranger").id); ok {
		t.Error("a stranger is a member")
	}
	if inv, _ := f.s.Invite(tanInv); !inv.Consumed || inv.ConsumedBy != f.node("tanpud-1").id || inv.Open(f.now) {
		t.Errorf("used invite = %+v", inv)
	}
	voters := []string{f.node("inpud-1").id, f.node("ehrn-1").id}
	slices.Sort(voters)
	if got := f.s.Voters(); !slices.Equal(got, voters) {
		t.Errorf("voters = %v, want %v", got, voters)
	}
	if got := f.s.NonVoters(); !slices.Equal(got, []string{f.node("tanpud-1").id}) {
		t.Errorf("non-voters = %v", got)
	}
	var slugs []string
	for _, n := range f.s.NetworkList() {
		slugs = append(slugs, n.Slug)
	}
	if !slices.Equal(slugs, []string{"ehrn", "inpud", "tanpud"}) {
		t.Errorf("networks = %v", slugs)
	}
}

func TestCommandBeforeGenesis(t *testing.T) {
	f := newFed(t)
	err := f.try("inpud-1", Suspend, NetworkArgs{Network: "x"})
	wantErr(t, err, ErrConflict, "holds no federation yet; its first command must be genesis")
	err = f.try("inpud-1", Genesis, GenesisArgs{Network: Profile{Slug: "Bad Slug", Name: "x", Level: "global"}})
	wantErr(t, err, ErrInvalidCommand, `"Bad Slug" is not a network slug`)
	if !errors.Is(err, model.ErrInvalid) {
		t.Error("a profile error does not wrap model.ErrInvalid")
	}
	bad := smallTemplate("test", "1", "a")
	bad.Sections[0].Items = append(bad.Sections[0].Items, bad.Sections[0].Items[0])
	err = f.try("inpud-1", Genesis, GenesisArgs{Network: profile("inpud", "global"), Templates: []model.Template{bad}})
	wantErr(t, err, ErrInvalidCommand, `template "test" in genesis is not valid`)
}

// actors of newTestFed and what each one's refusal says when it is not a
// current member.
var notMember = map[string]struct {
	sentinel error
	text     string
}{
	"susp-1":     {ErrUnauthorised, "network susp is suspended, so its nodes cannot propose registry changes"},
	"tanpud-old": {ErrUnauthorised, "of tanpud was revoked at"},
	"stranger":   {ErrUnauthorised, "is not a node of any network in this federation"},
}

func TestAuthorisationMatrix(t *testing.T) {
	base := newTestFed(t)
	newKey := base.node("tanpud-3").id
	cases := []struct {
		name string
		kind Kind
		args func(f *fed, by string) any
		// allowed proposers; every other one of steward inpud-1, member
		// tanpud-1, member vnpud-1 and the non-members is refused.
		allowed []string
		// refusal text for the members that are not allowed
		memberText string
	}{
		{"create invite", CreateInvite, func(f *fed, by string) any {
			return CreateInviteArgs{ID: "00112233445566778899", SecretHash: HashSecret("s"), Network: profile("newnet", "local"), Role: RoleMember, Expires: f.now + 3600_000}
		}, []string{"inpud-1", "ehrn-1"}, "only a steward network can create an invite; tanpud is a member"},
		{"add node key to tanpud", AddNodeKey, func(f *fed, by string) any {
			return AddNodeKeyArgs{Network: "tanpud", PeerID: newKey}
		}, []string{"inpud-1", "ehrn-1", "tanpud-1", "tanpud-2"}, "only nodes of tanpud or of a steward network can add node keys to tanpud; vnpud is a member"},
		{"revoke a tanpud key", RevokeNodeKey, func(f *fed, by string) any {
			return RevokeNodeKeyArgs{PeerID: f.node("tanpud-2").id}
		}, []string{"inpud-1", "ehrn-1", "tanpud-1", "tanpud-2"}, "only nodes of tanpud or of a steward network can revoke node keys of tanpud; vnpud is a member"},
		{"update tanpud's name", UpdateNetwork, func(f *fed, by string) any {
			p, _ := f.s.Network("tanpud")
			p.Name = "TaNPUD"
			return UpdateNetworkArgs{Network: p.Profile}
		}, []string{"inpud-1", "ehrn-1", "tanpud-1", "tanpud-2"}, "only nodes of tanpud or of a steward network can update the profile of tanpud; vnpud is a member"},
		{"suspend", Suspend, func(f *fed, by string) any { return NetworkArgs{Network: "vnpud"} },
			[]string{"inpud-1", "ehrn-1"}, "only a steward network can suspend a network; tanpud is a member"},
		{"reinstate", Reinstate, func(f *fed, by string) any { return NetworkArgs{Network: "susp"} },
			[]string{"inpud-1", "ehrn-1"}, "only a steward network can reinstate a network; tanpud is a member"},
		{"retire", Retire, func(f *fed, by string) any { return NetworkArgs{Network: "vnpud"} },
			[]string{"inpud-1", "ehrn-1"}, "only a steward network can retire a network; tanpud is a member"},
		{"promote", Promote, func(f *fed, by string) any { return NetworkArgs{Network: "vnpud"} },
			[]string{"inpud-1", "ehrn-1"}, "only a steward network can promote a network; tanpud is a member"},
		{"demote", Demote, func(f *fed, by string) any { return NetworkArgs{Network: "ehrn"} },
			[]string{"inpud-1", "ehrn-1"}, "only a steward network can demote a network; tanpud is a member"},
		{"put template", PutTemplate, func(f *fed, by string) any {
			return PutTemplateArgs{Template: smallTemplate("test", "2", "a", "b", "c", "d")}
		}, []string{"inpud-1", "ehrn-1"}, "only a steward network can publish a template; tanpud is a member"},
		{"set own custodians", SetCustodians, func(f *fed, by string) any {
			all := []string{"inpud", "ehrn", "tanpud", "vnpud"}
			own := ""
			if k, ok := f.s.Nodes[f.node(by).id]; ok {
				own = k.Network
			}
			return SetCustodiansArgs{Custodians: slices.DeleteFunc(all, func(s string) bool { return s == own })[:2]}
		}, []string{"inpud-1", "ehrn-1", "tanpud-1", "tanpud-2", "vnpud-1"}, ""},
		{"hand over tanpud", Handover, func(f *fed, by string) any {
			return HandoverArgs{Network: "tanpud", Steward: "ehrn", ArchiveKey: testWrappedKey}
		}, []string{"inpud-1", "ehrn-1", "tanpud-1", "tanpud-2"}, "only nodes of tanpud, of its custodians or of a steward network can hand over the archive of tanpud; vnpud is a member"},
		{"set own addresses", SetAddrs, func(f *fed, by string) any {
			return SetAddrsArgs{Addrs: []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"}}
		}, []string{"inpud-1", "ehrn-1", "tanpud-1", "tanpud-2", "vnpud-1"}, ""},
	}
	proposers := []string{"inpud-1", "ehrn-1", "tanpud-1", "tanpud-2", "vnpud-1", "susp-1", "tanpud-old", "stranger"}
	for _, c := range cases {
		for _, by := range proposers {
			t.Run(c.name+"/by "+by, func(t *testing.T) {
				f := base.clone()
				before := snap(t, f.s)
				err := f.try(by, c.kind, c.args(f, by))
				if slices.Contains(c.allowed, by) {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if bytes.Equal(before, snap(t, f.s)) {
						t.Fatal("accepted but nothing changed")
					}
					return
				}
				if nm, ok := notMember[by]; ok {
					wantErr(t, err, nm.sentinel, nm.text)
					return
				}
				text := c.memberText
				if by == "tanpud-1" || by == "tanpud-2" {
					text = strings.ReplaceAll(text, "vnpud is a member", "tanpud is a member")
				} else {
					text = strings.ReplaceAll(text, "tanpud is a member", "vnpud is a member")
				}
				wantErr(t, err, ErrUnauthorised, text)
			})
		}
	}
}

func TestGenesisOnlyOnEmpty(t *testing.T) {
	for _, by := range []string{"inpud-1", "tanpud-1", "stranger"} {
		t.Run(by, func(t *testing.T) {
			f := newTestFed(t)
			err := f.try(by, Genesis, GenesisArgs{Network: profile("rival", "global")})
			wantErr(t, err, ErrConflict, "genesis is only valid on an empty registry")
		})
	}
}

func TestJoinRefusals(t *testing.T) {
	base := newTestFed(t)
	invID, secret := base.invite("inpud-1", profile("newnet", "local"), RoleMember)
	expires := base.s.Invites[invID].Expires
	cases := []struct {
		name     string
		by       string
		args     JoinArgs
		setup    func(f *fed)
		now      func(f *fed) int64
		sentinel error
		text     string
	}{
		{name: "unknown invite", by: "joiner", args: JoinArgs{Invite: "ffffffffffffffff", Secret: secret},
			sentinel: ErrNotFound, text: "there is no invite ffffffffffffffff in this federation; check the invite code"},
		{name: "wrong secret", by: "joiner", args: JoinArgs{Invite: invID, Secret: "guess"},
			sentinel: ErrUnauthorised, text: "the secret does not match invite " + invID},
		{name: "expired", by: "joiner", args: JoinArgs{Invite: invID, Secret: secret},
			now:      func(f *fed) int64 { return expires },
			sentinel: ErrExpired, text: "invite " + invID + " expired at " + stamp(expires) + "; ask a steward for a new invite"},
		{name: "already used", by: "joiner-2", args: JoinArgs{Invite: invID, Secret: secret},
			setup:    func(f *fed) { f.must("joiner", Join, JoinArgs{Invite: invID, Secret: secret}) },
			sentinel: ErrConflict, text: "was already used by node"},
		{name: "slug taken", by: "joiner", args: JoinArgs{Invite: invID, Secret: secret},
			// Unreachable through commands (an open invite holds its slug),
			// so the network is put in place directly: a state restored
			// from elsewhere must still not give one slug to two networks.
			setup: func(f *fed) {
				f.s.Networks["newnet"] = &Network{Profile: profile("newnet", "local"), Role: RoleMember, Status: StatusActive}
			},
			sentinel: ErrConflict, text: "the slug newnet is taken by Network newnet (active); choose another"},
		{name: "joiner already a member", by: "tanpud-1", args: JoinArgs{Invite: invID, Secret: secret},
			sentinel: ErrConflict, text: "is already registered for tanpud; join with a node that has a new key"},
		{name: "revoked key joins again", by: "tanpud-old", args: JoinArgs{Invite: invID, Secret: secret},
			sentinel: ErrConflict, text: "is already registered for tanpud"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := base.clone()
			if c.setup != nil {
				c.setup(f)
			}
			now := f.now + 1000
			if c.now != nil {
				now = c.now(f)
			}
			f.now = now
			sc := f.sign(c.by, Join, c.args)
			err := f.applyChecked(sc, now)
			wantErr(t, err, c.sentinel, c.text)
		})
	}
	t.Run("just before expiry", func(t *testing.T) {
		f := base.clone()
		f.now = expires - 1
		if err := f.applyChecked(f.sign("joiner", Join, JoinArgs{Invite: invID, Secret: secret}), f.now); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCreateInviteRefusals(t *testing.T) {
	base := newTestFed(t)
	ok := func(f *fed) CreateInviteArgs {
		return CreateInviteArgs{ID: "abcdefabcdefabcdef", SecretHash: HashSecret("s"), Network: profile("newnet", "local"), Role: RoleMember, Expires: f.now + 3600_000}
	}
	cases := []struct {
		name     string
		edit     func(f *fed, a *CreateInviteArgs)
		sentinel error
		text     string
	}{
		{"slug of a network", func(f *fed, a *CreateInviteArgs) { a.Network.Slug = "tanpud" }, ErrConflict, "the slug tanpud is taken by Tanzania Network of People who Use Drugs (active); choose another"},
		{"slug of a retired network", func(f *fed, a *CreateInviteArgs) {
			f.must("inpud-1", Retire, NetworkArgs{Network: "vnpud"})
			a.Network.Slug = "vnpud"
			a.Expires = f.now + 3600_000
		}, ErrConflict, "the slug vnpud is taken by Vietnam Network of People who Use Drugs (retired)"},
		{"slug of an open invite", func(f *fed, a *CreateInviteArgs) {
			f.invite("inpud-1", profile("newnet", "local"), RoleMember)
			a.Expires = f.now + 3600_000
		}, ErrConflict, "for newnet is still open until"},
		{"same id", func(f *fed, a *CreateInviteArgs) {
			id, _ := f.invite("inpud-1", profile("other", "local"), RoleMember)
			a.ID = id
			a.Expires = f.now + 3600_000
		}, ErrConflict, "already exists; use a new random id"},
		{"expiry in the past", func(f *fed, a *CreateInviteArgs) { a.Expires = f.now }, ErrInvalidCommand, "which is not after the leader's time"},
		{"expiry too far", func(f *fed, a *CreateInviteArgs) { a.Expires = f.now + MaxInviteMillis + 10_000 }, ErrInvalidCommand, "an invite may last at most 30 days"},
		{"bad role", func(f *fed, a *CreateInviteArgs) { a.Role = "owner" }, ErrInvalidCommand, `"owner" is not a role: use member or steward`},
		{"bad id", func(f *fed, a *CreateInviteArgs) { a.ID = "XYZ" }, ErrInvalidCommand, "the invite id must be 16 to 64 lower-case hex digits"},
		{"bad secret hash", func(f *fed, a *CreateInviteArgs) { a.SecretHash = "s" }, ErrInvalidCommand, "secret hash must be 64 lower-case hex digits"},
		{"bad country", func(f *fed, a *CreateInviteArgs) { a.Network.Country = "tz" }, ErrInvalidCommand, `country: "tz" is not a country code`},
		{"bad level", func(f *fed, a *CreateInviteArgs) { a.Network.Level = "planet" }, ErrInvalidCommand, `level: "planet" is not a level`},
		{"no name", func(f *fed, a *CreateInviteArgs) { a.Network.Name = " " }, ErrInvalidCommand, "name: is required"},
		{"unknown parent", func(f *fed, a *CreateInviteArgs) { a.Network.Parent = "nowhere" }, ErrNotFound, "the parent network nowhere is not in this federation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := base.clone()
			a := ok(f)
			c.edit(f, &a)
			wantErr(t, f.try("inpud-1", CreateInvite, a), c.sentinel, c.text)
		})
	}
}

func TestVotersFollowRoles(t *testing.T) {
	f := newTestFed(t)
	id := func(n string) string { return f.node(n).id }
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	steps := []struct {
		name   string
		by     string
		kind   Kind
		target string
		voters []string
	}{
		{"promote vnpud", "inpud-1", Promote, "vnpud", sorted(id("inpud-1"), id("ehrn-1"), id("vnpud-1"))},
		{"suspend ehrn", "inpud-1", Suspend, "ehrn", sorted(id("inpud-1"), id("vnpud-1"))},
		{"reinstate ehrn", "vnpud-1", Reinstate, "ehrn", sorted(id("inpud-1"), id("ehrn-1"), id("vnpud-1"))},
		{"demote inpud", "ehrn-1", Demote, "inpud", sorted(id("ehrn-1"), id("vnpud-1"))},
		{"retire vnpud", "ehrn-1", Retire, "vnpud", sorted(id("ehrn-1"))},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := f.must(s.by, s.kind, NetworkArgs{Network: s.target})
			if !r.Membership || r.Network != s.target {
				t.Errorf("result = %+v", r)
			}
			if got := f.s.Voters(); !slices.Equal(got, s.voters) {
				t.Errorf("voters = %v, want %v", got, s.voters)
			}
		})
	}
	// ehrn is now the only steward network; none of these may remove it.
	last := []struct {
		name string
		kind Kind
		args any
		text string
	}{
		{"demote", Demote, NetworkArgs{Network: "ehrn"}, "ehrn is the last active steward network; promote another network to steward before you demote it"},
		{"suspend", Suspend, NetworkArgs{Network: "ehrn"}, "ehrn is the last active steward network; promote another network to steward before you suspend it"},
		{"retire", Retire, NetworkArgs{Network: "ehrn"}, "ehrn is the last active steward network; promote another network to steward before you retire it"},
		{"hand over", Handover, HandoverArgs{Network: "ehrn", Steward: "ehrn", ArchiveKey: testWrappedKey}, "ehrn cannot hand its archive over to itself"},
		{"revoke its last node", RevokeNodeKey, RevokeNodeKeyArgs{PeerID: id("ehrn-1")}, "is the last voting node of the federation; add another node to a steward network before you revoke it"},
	}
	for _, c := range last {
		t.Run("last steward/"+c.name, func(t *testing.T) {
			err := f.try("ehrn-1", c.kind, c.args)
			sentinel := ErrConflict
			if c.kind == Handover {
				sentinel = ErrInvalidCommand
			}
			wantErr(t, err, sentinel, c.text)
		})
	}
	t.Run("a second node keeps the federation voting", func(t *testing.T) {
		f.must("ehrn-1", AddNodeKey, AddNodeKeyArgs{Network: "ehrn", PeerID: id("ehrn-2")})
		f.must("ehrn-1", RevokeNodeKey, RevokeNodeKeyArgs{PeerID: id("ehrn-1")})
		if got := f.s.Voters(); !slices.Equal(got, []string{id("ehrn-2")}) {
			t.Errorf("voters = %v", got)
		}
	})
}

func TestStatusRefusals(t *testing.T) {
	base := newTestFed(t)
	cases := []struct {
		kind     Kind
		target   string
		sentinel error
		text     string
	}{
		{Suspend, "susp", ErrConflict, "susp is suspended, not active, so it cannot be suspended"},
		{Reinstate, "tanpud", ErrConflict, "tanpud is active, not suspended, so it cannot be reinstated"},
		{Promote, "ehrn", ErrConflict, "ehrn is already a steward network"},
		{Promote, "susp", ErrConflict, "susp is suspended; only an active network can be promoted"},
		{Demote, "tanpud", ErrConflict, "tanpud is a member, not a steward network, so it cannot be demoted"},
		{Suspend, "nowhere", ErrNotFound, "there is no network nowhere in this federation"},
		{Suspend, "No Such", ErrInvalidCommand, `"No Such" is not a network slug`},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s %s", c.kind, c.target), func(t *testing.T) {
			f := base.clone()
			wantErr(t, f.try("inpud-1", c.kind, NetworkArgs{Network: c.target}), c.sentinel, c.text)
		})
	}
	t.Run("retired is final", func(t *testing.T) {
		f := base.clone()
		f.must("inpud-1", Retire, NetworkArgs{Network: "tanpud"})
		wantErr(t, f.try("inpud-1", Retire, NetworkArgs{Network: "tanpud"}), ErrConflict, "tanpud is already retired")
		wantErr(t, f.try("inpud-1", Reinstate, NetworkArgs{Network: "tanpud"}), ErrConflict, "tanpud is retired, not suspended")
		wantErr(t, f.try("tanpud-1", SetAddrs, SetAddrsArgs{}), ErrUnauthorised, "network tanpud is retired, so its nodes cannot propose registry changes")
		wantErr(t, f.try("inpud-1", AddNodeKey, AddNodeKeyArgs{Network: "tanpud", PeerID: f.node("x").id}), ErrConflict, "tanpud is retired; a retired network cannot get new node keys")
	})
}

func TestRevocationCutoff(t *testing.T) {
	f := newTestFed(t)
	victim := f.node("tanpud-2").id
	r := f.must("inpud-1", RevokeNodeKey, RevokeNodeKeyArgs{PeerID: victim})
	revokedAt := f.now
	if !r.Membership || r.Peer != victim {
		t.Errorf("result = %+v", r)
	}
	k, ok := f.s.Node(victim)
	if !ok || !k.Revoked || k.Cutoff != revokedAt {
		t.Errorf("node key = %+v, want revoked with cutoff %d (the log's time)", k, revokedAt)
	}
	if _, _, ok := f.s.Member(victim); ok {
		t.Error("a revoked key is still a member")
	}
	for _, p := range f.s.Peers() {
		if p.PeerID == victim {
			t.Error("a revoked key is still among the peers to admit")
		}
	}
	wantErr(t, f.try("tanpud-2", SetAddrs, SetAddrsArgs{}), ErrUnauthorised, "was revoked at "+stamp(revokedAt)+", so it cannot propose registry changes")
	wantErr(t, f.try("tanpud-1", RevokeNodeKey, RevokeNodeKeyArgs{PeerID: victim}), ErrConflict, "was already revoked at "+stamp(revokedAt))
	wantErr(t, f.try("tanpud-1", AddNodeKey, AddNodeKeyArgs{Network: "tanpud", PeerID: victim}), ErrConflict, "cannot be registered again; give the node a new key")
	wantErr(t, f.try("tanpud-1", AddNodeKey, AddNodeKeyArgs{Network: "tanpud", PeerID: f.node("vnpud-1").id}), ErrConflict, "is already registered for vnpud")
	wantErr(t, f.try("tanpud-1", RevokeNodeKey, RevokeNodeKeyArgs{PeerID: f.node("nobody").id}), ErrNotFound, "is not registered in this federation")
	// The CID spelling of a registered key is refused, so it cannot be
	// added again under a second name.
	wantErr(t, f.try("tanpud-1", AddNodeKey, AddNodeKeyArgs{Network: "tanpud", PeerID: cidForm(t, victim)}), ErrInvalidCommand, "is not written in the canonical form of its peer ID")
}

func TestPutTemplateVersions(t *testing.T) {
	f := newTestFed(t)
	r := f.must("ehrn-1", PutTemplate, PutTemplateArgs{Template: smallTemplate("test", "2", "a", "b", "c", "d")})
	if r.Template != "test@2" {
		t.Errorf("result = %+v", r)
	}
	if tm, _ := f.s.Template("test"); tm.Version != "2" || tm.ItemCount() != 4 {
		t.Errorf("latest = %s with %d items", tm.Ref(), tm.ItemCount())
	}
	if tm, ok := f.s.TemplateVersion("test", "1"); !ok || tm.ItemCount() != 3 {
		t.Errorf("version 1 = %v %v", tm.Ref(), ok)
	}
	cases := []struct {
		name     string
		tmpl     model.Template
		sentinel error
		text     string
	}{
		{"drops items", smallTemplate("test", "3", "a", "d"), ErrConflict, "template test version 3 drops item ids of version 2 (b, c): keep every earlier item id so recorded answers stay valid"},
		{"same version twice", smallTemplate("test", "2", "a", "b", "c", "d"), ErrConflict, "template test version 2 is already published"},
		{"an earlier version again", smallTemplate("test", "1", "a", "b", "c", "d"), ErrConflict, "template test version 1 is already published"},
		{"invalid", smallTemplate("Test!", "1", "a"), ErrInvalidCommand, `the template is not valid: template.id: "Test!" is not a template id`},
		{"no items", smallTemplate("new", "1"), ErrInvalidCommand, `section "1" has no items`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, f.try("inpud-1", PutTemplate, PutTemplateArgs{Template: c.tmpl}), c.sentinel, c.text)
		})
	}
	t.Run("a new template", func(t *testing.T) {
		f.must("inpud-1", PutTemplate, PutTemplateArgs{Template: smallTemplate("new", "2026", "x")})
		if got := len(f.s.TemplateList()); got != 2 {
			t.Errorf("%d templates", got)
		}
	})
}

func TestUpdateNetwork(t *testing.T) {
	base := newTestFed(t)
	get := func(f *fed, slug string) Profile { n, _ := f.s.Network(slug); return n.Profile }
	cases := []struct {
		name     string
		by       string
		edit     func(p *Profile)
		slug     string
		sentinel error
		text     string
	}{
		{name: "own name, country and region", by: "tanpud-1", slug: "tanpud", edit: func(p *Profile) { p.Name = "TaNPUD"; p.Country = "KE"; p.Region = "east-africa" }},
		{name: "member changes own level", by: "tanpud-1", slug: "tanpud", edit: func(p *Profile) { p.Level = "regional" },
			sentinel: ErrUnauthorised, text: "only a steward network can change a network's level or parent; tanpud is a member"},
		{name: "member changes own parent", by: "tanpud-1", slug: "tanpud", edit: func(p *Profile) { p.Parent = "ehrn" },
			sentinel: ErrUnauthorised, text: "only a steward network can change a network's level or parent"},
		{name: "steward changes level and parent", by: "ehrn-1", slug: "tanpud", edit: func(p *Profile) { p.Level = "regional"; p.Parent = "ehrn" }},
		{name: "parent cycle", by: "inpud-1", slug: "inpud", edit: func(p *Profile) { p.Parent = "tanpud" },
			sentinel: ErrConflict, text: "inpud cannot have tanpud as its parent: tanpud already sits under inpud"},
		{name: "own parent", by: "inpud-1", slug: "inpud", edit: func(p *Profile) { p.Parent = "inpud" },
			sentinel: ErrInvalidCommand, text: "a network cannot be its own parent"},
		{name: "bad region", by: "tanpud-1", slug: "tanpud", edit: func(p *Profile) { p.Region = "East Africa" },
			sentinel: ErrInvalidCommand, text: `region: "East Africa" is not a region name`},
		{name: "name with a control character", by: "tanpud-1", slug: "tanpud", edit: func(p *Profile) { p.Name = "Ta\x00NPUD" },
			sentinel: ErrInvalidCommand, text: "name: contains the control character U+0000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := base.clone()
			p := get(f, c.slug)
			c.edit(&p)
			err := f.try(c.by, UpdateNetwork, UpdateNetworkArgs{Network: p})
			if c.sentinel == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got := get(f, c.slug); got != p {
					t.Errorf("profile = %+v, want %+v", got, p)
				}
				return
			}
			wantErr(t, err, c.sentinel, c.text)
		})
	}
}

func TestSetCustodians(t *testing.T) {
	base := newTestFed(t)
	cases := []struct {
		name     string
		list     []string
		sentinel error
		text     string
	}{
		{"two others", []string{"vnpud", "ehrn"}, nil, ""},
		{"only one", []string{"vnpud"}, ErrInvalidCommand, "a network needs 2 to 16 custodians, not 1"},
		{"itself", []string{"vnpud", "tanpud"}, ErrInvalidCommand, "tanpud cannot be its own custodian"},
		{"twice", []string{"vnpud", "vnpud"}, ErrInvalidCommand, "custodian vnpud appears twice"},
		{"suspended", []string{"vnpud", "susp"}, ErrConflict, "susp is suspended and cannot be a custodian; choose an active network"},
		{"unknown", []string{"vnpud", "nowhere"}, ErrNotFound, "there is no network nowhere in this federation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := base.clone()
			err := f.try("tanpud-2", SetCustodians, SetCustodiansArgs{Custodians: c.list})
			if c.sentinel == nil {
				if err != nil {
					t.Fatal(err)
				}
				if n, _ := f.s.Network("tanpud"); !slices.Equal(n.Custodians, c.list) {
					t.Errorf("custodians = %v", n.Custodians)
				}
				return
			}
			wantErr(t, err, c.sentinel, c.text)
		})
	}
}

// testWrappedKey has the shape of an age file, which is all Apply checks.
var testWrappedKey = []byte("age-encryption.org/v1\n-> ssh-ed25519 AAAA test\nwrapped\n--- mac\nkey")

func TestHandover(t *testing.T) {
	base := newTestFed(t)
	// vnpud keeps tanpud's custody copies; susp is suspended and names
	// tanpud among its custodians.
	base.must("tanpud-1", SetCustodians, SetCustodiansArgs{Custodians: []string{"vnpud", "inpud"}})
	base.s.Networks["susp"].Custodians = []string{"tanpud", "vnpud"}
	key := testWrappedKey
	cases := []struct {
		name     string
		by       string
		args     HandoverArgs
		sentinel error
		text     string
	}{
		{"own network to a steward", "tanpud-1", HandoverArgs{Network: "tanpud", Steward: "ehrn", ArchiveKey: key}, nil, ""},
		{"steward retires a suspended network", "inpud-1", HandoverArgs{Network: "susp", Steward: "inpud", ArchiveKey: key}, nil, ""},
		{"custodian of a suspended network", "vnpud-1", HandoverArgs{Network: "susp", Steward: "ehrn", ArchiveKey: key}, nil, ""},
		{"custodian of an active network", "vnpud-1", HandoverArgs{Network: "tanpud", Steward: "ehrn", ArchiveKey: key}, ErrUnauthorised,
			"vnpud is a custodian of tanpud, but a custodian can hand over only a network a steward has suspended; tanpud is active"},
		{"not a custodian", "vnpud-1", HandoverArgs{Network: "inpud", Steward: "ehrn", ArchiveKey: key}, ErrUnauthorised,
			"only nodes of inpud, of its custodians or of a steward network can hand over the archive of inpud; vnpud is a member"},
		{"to a member network", "tanpud-1", HandoverArgs{Network: "tanpud", Steward: "vnpud", ArchiveKey: key}, ErrConflict, "vnpud is a member, not a steward network; an archive goes to a steward network"},
		{"to itself", "inpud-1", HandoverArgs{Network: "inpud", Steward: "inpud", ArchiveKey: key}, ErrInvalidCommand, "inpud cannot hand its archive over to itself"},
		{"to nowhere", "tanpud-1", HandoverArgs{Network: "tanpud", Steward: "nowhere", ArchiveKey: key}, ErrNotFound, "there is no network nowhere"},
		{"unknown network", "inpud-1", HandoverArgs{Network: "gone", Steward: "ehrn", ArchiveKey: key}, ErrNotFound, "there is no network gone"},
		{"no archive key", "tanpud-1", HandoverArgs{Network: "tanpud", Steward: "ehrn"}, ErrInvalidCommand,
			"the handover of tanpud carries no archive key, so ehrn could not open the archive"},
		{"key not wrapped", "tanpud-1", HandoverArgs{Network: "tanpud", Steward: "ehrn", ArchiveKey: make([]byte, 32)}, ErrInvalidCommand,
			"the archive key in the handover of tanpud is not wrapped to ehrn's nodes (it is not an age file)"},
		{"key too long", "tanpud-1", HandoverArgs{Network: "tanpud", Steward: "ehrn", ArchiveKey: append(slices.Clone(key), make([]byte, MaxWrappedKey)...)}, ErrInvalidCommand,
			"the wrapped archive key is"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := base.clone()
			before := snap(t, f.s)
			err := f.try(c.by, Handover, c.args)
			if c.sentinel == nil {
				if err != nil {
					t.Fatal(err)
				}
				n, _ := f.s.Network(c.args.Network)
				if n.Status != StatusRetired || n.Steward != c.args.Steward || !bytes.Equal(n.ArchiveKey, c.args.ArchiveKey) {
					t.Errorf("network = %+v", n)
				}
				for _, k := range f.s.NodeKeys(c.args.Network) {
					if _, _, ok := f.s.Member(k.PeerID); ok {
						t.Errorf("node %s of a retired network is still a member", k.PeerID)
					}
				}
				return
			}
			wantErr(t, err, c.sentinel, c.text)
			if !bytes.Equal(before, snap(t, f.s)) {
				t.Error("a refused handover changed the registry")
			}
		})
	}
	t.Run("a retired network's custodian cannot move its archive", func(t *testing.T) {
		f := base.clone()
		f.must("inpud-1", Handover, HandoverArgs{Network: "susp", Steward: "inpud", ArchiveKey: key})
		wantErr(t, f.try("vnpud-1", Handover, HandoverArgs{Network: "susp", Steward: "ehrn", ArchiveKey: key}), ErrUnauthorised,
			"a custodian can hand over only a network a steward has suspended; susp is retired")
	})
	t.Run("an old encoding without the key still decodes", func(t *testing.T) {
		var a HandoverArgs
		if err := strictUnmarshal([]byte(`{"network":"tanpud","steward":"ehrn"}`), &a); err != nil || a.Network != "tanpud" || a.ArchiveKey != nil {
			t.Fatalf("decoded %+v, %v", a, err)
		}
		b, _ := json.Marshal(HandoverArgs{Network: "tanpud", Steward: "ehrn"})
		if string(b) != `{"network":"tanpud","steward":"ehrn"}` {
			t.Fatalf("encoded without a key as %s", b)
		}
	})
}

func TestSetAddrs(t *testing.T) {
	base := newTestFed(t)
	many := make([]string, MaxAddrs+1)
	for i := range many {
		many[i] = fmt.Sprintf("/ip4/10.0.0.%d/tcp/4001", i)
	}
	cases := []struct {
		name  string
		addrs []string
		text  string
	}{
		{"two", []string{"/ip4/203.0.113.5/tcp/4001", "/ip6/::1/udp/4001/quic-v1"}, ""},
		{"none", nil, ""},
		{"too many", many, "a node may publish at most 16 addresses, not 17"},
		{"too long", []string{"/dns4/" + strings.Repeat("a", MaxAddrLen) + "/tcp/1"}, "must be 1 to 256 bytes long"},
		{"not a multiaddr", []string{"203.0.113.5:4001"}, `"203.0.113.5:4001" is not a multiaddr`},
		{"space", []string{"/ip4/1.2.3.4/tcp/1 "}, "printable ASCII without spaces"},
		{"twice", []string{"/ip4/1.2.3.4/tcp/1", "/ip4/1.2.3.4/tcp/1"}, "address /ip4/1.2.3.4/tcp/1 appears twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := base.clone()
			err := f.try("vnpud-1", SetAddrs, SetAddrsArgs{Addrs: c.addrs})
			if c.text == "" {
				if err != nil {
					t.Fatal(err)
				}
				if k, _ := f.s.Node(f.node("vnpud-1").id); !slices.Equal(k.Addrs, c.addrs) {
					t.Errorf("addrs = %v", k.Addrs)
				}
				return
			}
			wantErr(t, err, ErrInvalidCommand, c.text)
		})
	}
}

func TestQueriesReturnCopies(t *testing.T) {
	f := newTestFed(t)
	f.must("tanpud-1", SetCustodians, SetCustodiansArgs{Custodians: []string{"inpud", "ehrn"}})
	before := snap(t, f.s)
	n, _ := f.s.Network("tanpud")
	n.Custodians[0] = "changed"
	tm, _ := f.s.Template("test")
	tm.Sections[0].Items[0].ID = "changed"
	c := f.s.Clone()
	c.Networks["tanpud"].Name = "changed"
	c.Templates["test"][0].Sections[0].Title = "changed"
	if !bytes.Equal(before, snap(t, f.s)) {
		t.Error("changing a query's result or a clone changed the state")
	}
	if !bytes.Equal(before, snap(t, f.s.Clone())) {
		t.Error("a clone does not encode like the original")
	}
}
