package federation

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model/templates"
	"github.com/inpud/cairn/node/p2p"
	"github.com/inpud/cairn/node/registry"
)

// member is one node of a test federation: a real libp2p host on
// 127.0.0.1 and a registry replica with its raft log in a temp dir.
type member struct {
	h   host.Host
	g   *p2p.Gater
	reg *Registry
}

func newMember(t *testing.T) *member {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := priv.Raw()
	m := &member{}
	m.g = p2p.NewGater(func(peer.ID) bool { return false })
	m.g.AdmitGuests(4)
	cfg := p2p.DefaultConfig()
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	if m.h, err = p2p.New(priv, cfg, m.g); err != nil {
		t.Fatal(err)
	}
	rc := FastConfig(filepath.Join(t.TempDir(), "registry"))
	if m.reg, err = Open(rc, m.h, m.g, ed25519.PrivateKey(raw)); err != nil {
		t.Fatal(err)
	}
	m.g.SetAllow(m.reg.Allowed)
	t.Cleanup(func() {
		if err := m.reg.Close(); err != nil {
			t.Errorf("close registry: %v", err)
		}
		m.h.Close()
	})
	return m
}

// publish records the member's listen addresses in the registry.
func (m *member) publish(t *testing.T) {
	t.Helper()
	var addrs []string
	for _, a := range m.h.Addrs() {
		addrs = append(addrs, a.String())
	}
	if _, err := m.reg.Propose(context.Background(), registry.SetAddrs, registry.SetAddrsArgs{Addrs: addrs}); err != nil {
		t.Fatalf("publish addresses: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFederationBootstrapInviteJoin(t *testing.T) {
	ctx := context.Background()
	inpud, anpud, tanpud := newMember(t), newMember(t), newMember(t)

	// A new federation with INPUD as its first steward.
	if _, err := inpud.reg.Bootstrap(ctx, registry.GenesisArgs{Network: registry.Profile{Slug: "inpud", Name: "INPUD", Level: "global"}, Templates: templates.Builtin()}); err != nil {
		t.Fatal(err)
	}
	if _, err := inpud.reg.Bootstrap(ctx, registry.GenesisArgs{Network: registry.Profile{Slug: "inpud", Name: "INPUD", Level: "global"}}); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second bootstrap: %v, want ErrAlreadyExists", err)
	}
	inpud.publish(t)
	genesis := inpud.reg.State().Genesis
	if len(genesis) != 64 {
		t.Fatalf("genesis %q", genesis)
	}

	// ANPUD joins as a steward (a voter), TANPUD as a member (a non-voter).
	code, err := inpud.reg.Invite(ctx, registry.Profile{Slug: "anpud", Name: "ANPUD", Level: "regional", Region: "asia"}, registry.RoleSteward, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseInviteCode(code.String())
	if err != nil || parsed.Genesis != genesis || parsed.Invite != code.Invite {
		t.Fatalf("invite code round trip: %+v, %v", parsed, err)
	}
	if _, err := anpud.reg.Join(ctx, parsed); err != nil {
		t.Fatalf("anpud join: %v", err)
	}
	anpud.publish(t)
	// The code works once.
	if _, err := newMember(t).reg.Join(ctx, parsed); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("second use of an invite: %v, want registry.ErrConflict", err)
	}

	// A member can invite nothing; the steward anpud can, proposing through the leader.
	code2, err := anpud.reg.Invite(ctx, registry.Profile{Slug: "tanpud", Name: "TANPUD", Level: "national", Country: "TZ"}, registry.RoleMember, time.Hour)
	if err != nil {
		t.Fatalf("invite from a non-leader steward: %v", err)
	}
	if _, err := tanpud.reg.Join(ctx, code2); err != nil {
		t.Fatalf("tanpud join: %v", err)
	}
	tanpud.publish(t)
	if _, err := tanpud.reg.Invite(ctx, registry.Profile{Slug: "x", Name: "X", Level: "local"}, registry.RoleMember, time.Hour); !errors.Is(err, registry.ErrUnauthorised) {
		t.Fatalf("member made an invite: %v, want registry.ErrUnauthorised", err)
	}

	// Every replica holds the same registry; raft's voters follow the stewards.
	for _, m := range []*member{inpud, anpud, tanpud} {
		waitFor(t, "replication of the registry", func() bool {
			s := m.reg.State()
			n, _ := s.Node(tanpud.h.ID().String())
			return s.Genesis == genesis && len(s.NetworkList()) == 3 && len(n.Addrs) > 0
		})
	}
	waitFor(t, "raft voters to follow the stewards", func() bool {
		st, err := inpud.reg.Status()
		return err == nil && len(st.Voters) == 2 && slices.Equal(st.NonVoters, []string{tanpud.h.ID().String()})
	})
	st, _ := tanpud.reg.Status()
	if st.Role != "non-voter" || st.Genesis != genesis {
		t.Fatalf("tanpud status: %+v", st)
	}

	// A stranger is refused at the handshake, and cannot speak raft or propose.
	stranger := newMember(t)
	stranger.h.Peerstore().AddAddrs(inpud.h.ID(), inpud.h.Addrs(), time.Hour)
	stranger.h.Connect(ctx, peer.AddrInfo{ID: inpud.h.ID(), Addrs: inpud.h.Addrs()})
	if s, err := stranger.h.NewStream(ctx, inpud.h.ID(), ProposeProtocol); err == nil {
		// A guest connection may exist, but the guard resets the stream.
		sc, _ := registry.Sign(stranger.reg.key, stranger.h.ID().String(), registry.Promote, registry.NetworkArgs{Network: "tanpud"})
		writeFrame(s, registry.EncodeSigned(sc))
		s.CloseWrite()
		if _, err := readAnswer(bufioReader(s)); err == nil {
			t.Fatal("a stranger's proposal was answered")
		}
	}
	if inpud.reg.State().Genesis != genesis || len(inpud.reg.State().NetworkList()) != 3 {
		t.Fatal("a stranger changed the registry")
	}

	// Suspending a network closes its live connections within a second.
	tanpudID := tanpud.h.ID()
	waitFor(t, "tanpud connected to inpud", func() bool { return inpud.h.Network().Connectedness(tanpudID) == network.Connected })
	if _, err := anpud.reg.Propose(ctx, registry.Suspend, registry.NetworkArgs{Network: "tanpud"}); err != nil {
		t.Fatal(err)
	}
	suspendedAt := time.Now()
	waitFor(t, "inpud to drop tanpud's connections", func() bool {
		return inpud.h.Network().Connectedness(tanpudID) != network.Connected && anpud.h.Network().Connectedness(tanpudID) != network.Connected
	})
	if d := time.Since(suspendedAt); d > time.Second {
		t.Errorf("suspended member's connections closed after %v, want within 1 s", d)
	}
	if _, _, ok := inpud.reg.State().Member(tanpudID.String()); ok {
		t.Fatal("a suspended network's node is still a member")
	}
	// It is refused afterwards: a new connection is not kept, and it can
	// propose nothing.
	tanpud.h.Connect(ctx, peer.AddrInfo{ID: inpud.h.ID(), Addrs: inpud.h.Addrs()})
	time.Sleep(200 * time.Millisecond)
	if s, err := tanpud.h.NewStream(ctx, inpud.h.ID(), ProposeProtocol); err == nil {
		sc, _ := registry.Sign(tanpud.reg.key, tanpudID.String(), registry.Reinstate, registry.NetworkArgs{Network: "tanpud"})
		writeFrame(s, registry.EncodeSigned(sc))
		s.CloseWrite()
		if _, err := readAnswer(bufioReader(s)); err == nil {
			t.Fatal("a suspended member's proposal was answered")
		}
	}
	if _, err := tanpud.reg.Propose(ctx, registry.Promote, registry.NetworkArgs{Network: "tanpud"}); err == nil {
		t.Fatal("a suspended member's proposal was accepted")
	}
	waitFor(t, "tanpud removed from raft", func() bool {
		st, err := inpud.reg.Status()
		return err == nil && len(st.NonVoters) == 0
	})

	// registry.Promote and demote move raft's voter set.
	if _, err := inpud.reg.Propose(ctx, registry.Reinstate, registry.NetworkArgs{Network: "tanpud"}); err != nil {
		t.Fatal(err)
	}
	if _, err := inpud.reg.Propose(ctx, registry.Promote, registry.NetworkArgs{Network: "tanpud"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "tanpud to become a voter", func() bool {
		st, err := inpud.reg.Status()
		return err == nil && len(st.Voters) == 3
	})
	if _, err := inpud.reg.Propose(ctx, registry.Demote, registry.NetworkArgs{Network: "tanpud"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "tanpud to become a non-voter again", func() bool {
		st, err := inpud.reg.Status()
		return err == nil && len(st.Voters) == 2 && len(st.NonVoters) == 1
	})
}

func TestJoinRefusesForeignFederation(t *testing.T) {
	ctx := context.Background()
	a, b, joiner := newMember(t), newMember(t), newMember(t)
	for i, m := range []*member{a, b} {
		slug := []string{"fed-a", "fed-b"}[i]
		if _, err := m.reg.Bootstrap(ctx, registry.GenesisArgs{Network: registry.Profile{Slug: slug, Name: slug, Level: "global"}}); err != nil {
			t.Fatal(err)
		}
		m.publish(t)
	}
	code, err := a.reg.Invite(ctx, registry.Profile{Slug: "newnet", Name: "New", Level: "local"}, registry.RoleMember, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Point the code at federation b's steward: b must refuse it.
	code.Stewards = []StewardAddr{{ID: b.h.ID().String(), Addrs: []string{b.h.Addrs()[0].String()}}}
	_, err = joiner.reg.Join(ctx, code)
	if !errors.Is(err, registry.ErrConflict) || !strings.Contains(err.Error(), "another federation") {
		t.Fatalf("join of a foreign federation: %v", err)
	}
	if !joiner.reg.Empty() {
		t.Fatal("the joiner received a registry from a foreign federation")
	}
	if _, err := ParseInviteCode("cairn-invite-1:%%%"); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged code: %v", err)
	}
	if _, err := ParseInviteCode("hello"); err == nil || !strings.Contains(err.Error(), "not a Cairn invite code") {
		t.Fatalf("not a code: %v", err)
	}
}

func bufioReader(s network.Stream) *bufio.Reader { return bufio.NewReader(s) }

// TestRecoverAfterQuorumLoss: three steward voters; two are lost for good.
// The survivor cannot commit; after Recover with itself as the only voter
// it leads again and the registry it held is intact.
func TestRecoverAfterQuorumLoss(t *testing.T) {
	ctx := context.Background()
	a, b, c := newMember(t), newMember(t), newMember(t)
	if _, err := a.reg.Bootstrap(ctx, registry.GenesisArgs{Network: registry.Profile{Slug: "inpud", Name: "INPUD", Level: "global"}}); err != nil {
		t.Fatal(err)
	}
	a.publish(t)
	for i, m := range []*member{b, c} {
		slug := []string{"anpud", "enpud"}[i]
		code, err := a.reg.Invite(ctx, registry.Profile{Slug: slug, Name: slug, Level: "regional"}, registry.RoleSteward, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.reg.Join(ctx, code); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three voters", func() bool {
		st, err := a.reg.Status()
		return err == nil && len(st.Voters) == 3
	})
	genesis := a.reg.State().Genesis
	// Two stewards' nodes are gone for good.
	for _, m := range []*member{b, c} {
		m.reg.Close()
		m.h.Close()
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := a.reg.Propose(short, registry.UpdateNetwork, registry.UpdateNetworkArgs{Network: registry.Profile{Slug: "inpud", Name: "INPUD (after)", Level: "global"}})
	if err == nil {
		t.Fatal("a registry change committed without a quorum")
	}
	if !errors.Is(err, ErrNoLeader) || !strings.Contains(err.Error(), "tried the stewards' nodes") || !strings.Contains(err.Error(), "(anpud)") || !strings.Contains(err.Error(), "the registry is unchanged") {
		t.Fatalf("no-quorum error should say so and name the stewards tried: %v", err)
	}
	dir := a.reg.cfg.Dir
	self := a.h.ID()
	if err := a.reg.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Recover(FastConfig(dir), self, []string{"not-a-peer"}); err == nil || !strings.Contains(err.Error(), "is not a peer ID") {
		t.Fatalf("recover with a bad voter: %v", err)
	}
	var st *registry.State
	st, err = Recover(FastConfig(dir), self, []string{self.String()})
	if err != nil {
		t.Fatal(err)
	}
	if st.Genesis != genesis || len(st.NetworkList()) != 3 {
		t.Fatalf("recovered state: genesis %s, %d networks", st.Genesis, len(st.NetworkList()))
	}
	// Reopen on the same host: it is the only voter and leads.
	priv := a.h.Peerstore().PrivKey(self)
	raw, _ := priv.Raw()
	reg, err := Open(FastConfig(dir), a.h, a.g, ed25519.PrivateKey(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	waitFor(t, "the survivor to lead", func() bool { return reg.isLeader() })
	if _, err := reg.Propose(ctx, registry.UpdateNetwork, registry.UpdateNetworkArgs{Network: registry.Profile{Slug: "inpud", Name: "INPUD (recovered)", Level: "global"}}); err != nil {
		t.Fatalf("change after recovery: %v", err)
	}
	if n, _ := reg.State().Network("inpud"); n.Name != "INPUD (recovered)" || reg.State().Genesis != genesis {
		t.Fatalf("after recovery: %+v", n)
	}
	// The registry still lists the lost stewards; following it must not
	// make their unreachable nodes voters again and lose the quorum.
	time.Sleep(2 * time.Second) // two rounds of the follower's reconcile
	st2, err := reg.Status()
	if err != nil || len(st2.Voters) != 1 {
		t.Fatalf("voters after recovery and reconcile: %+v, %v", st2.Voters, err)
	}
	// The operator then retires the lost stewards' networks (OPERATIONS.md).
	for _, slug := range []string{"anpud", "enpud"} {
		if _, err := reg.Propose(ctx, registry.Retire, registry.NetworkArgs{Network: slug}); err != nil {
			t.Fatalf("retire %s after recovery: %v", slug, err)
		}
	}
	waitFor(t, "the retired stewards' nodes to leave raft", func() bool {
		st, err := reg.Status()
		return err == nil && len(st.Voters) == 1 && len(st.NonVoters) == 0
	})
	// A newly invited steward restores a two-voter registry holding all the
	// earlier state.
	fresh := newMember(t)
	code, err := reg.Invite(ctx, registry.Profile{Slug: "lanpud", Name: "LANPUD", Level: "regional"}, registry.RoleSteward, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.reg.Join(ctx, code); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two voters after the new steward joins", func() bool {
		st, err := reg.Status()
		return err == nil && len(st.Voters) == 2
	})
	got := fresh.reg.State()
	if got.Genesis != genesis || len(got.NetworkList()) != 4 {
		t.Fatalf("new steward's registry: genesis %s, %d networks; want the original genesis and 4 networks", got.Genesis, len(got.NetworkList()))
	}
	if n, _ := got.Network("inpud"); n.Name != "INPUD (recovered)" {
		t.Fatalf("new steward sees inpud as %+v", n)
	}
	if n, _ := got.Network("anpud"); n.Status != registry.StatusRetired {
		t.Fatalf("new steward sees the lost steward anpud as %s, want retired", n.Status)
	}
}
