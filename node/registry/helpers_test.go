package registry

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
)

// t0 is the log time the test federations start at (unix ms).
const t0 = int64(1_800_000_000_000)

// testNode is a node key made from its name, so runs are reproducible.
type testNode struct {
	name string
	key  ed25519.PrivateKey
	id   string
}

func newTestNode(tb testing.TB, name string) testNode {
	tb.Helper()
	seed := sha256.Sum256([]byte("cairn test node " + name))
	key := ed25519.NewKeyFromSeed(seed[:])
	pub, err := crypto.UnmarshalEd25519PublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return testNode{name: name, key: key, id: id.String()}
}

// fed is a test federation: a State, a log clock and named nodes.
type fed struct {
	tb    testing.TB
	s     *State
	now   int64
	nodes map[string]testNode
}

func newFed(tb testing.TB) *fed {
	return &fed{tb: tb, s: &State{}, now: t0, nodes: map[string]testNode{}}
}

func (f *fed) node(name string) testNode {
	n, ok := f.nodes[name]
	if !ok {
		n = newTestNode(f.tb, name)
		f.nodes[name] = n
	}
	return n
}

func (f *fed) sign(name string, kind Kind, args any) SignedCommand {
	f.tb.Helper()
	n := f.node(name)
	sc, err := SignAt(n.key, n.id, kind, args, time.UnixMilli(f.now))
	if err != nil {
		f.tb.Fatalf("sign %s: %v", kind, err)
	}
	return sc
}

// must applies a command that has to succeed; the log clock advances 1 s.
func (f *fed) must(name string, kind Kind, args any) Result {
	f.tb.Helper()
	f.now += 1000
	r, err := f.s.Apply(f.sign(name, kind, args), f.now)
	if err != nil {
		f.tb.Fatalf("%s by %s: %v", kind, name, err)
	}
	return r
}

// try applies a command and, if it is refused, checks that the state did
// not change at all.
func (f *fed) try(name string, kind Kind, args any) error {
	f.tb.Helper()
	f.now += 1000
	return f.applyChecked(f.sign(name, kind, args), f.now)
}

func (f *fed) applyChecked(sc SignedCommand, now int64) error {
	f.tb.Helper()
	before := snap(f.tb, f.s)
	_, err := f.s.Apply(sc, now)
	if err != nil {
		if after := snap(f.tb, f.s); !bytes.Equal(before, after) {
			f.tb.Fatalf("refused command changed the state: %v", err)
		}
	}
	return err
}

func (f *fed) clone() *fed {
	c := *f
	c.s = f.s.Clone()
	return &c
}

func snap(tb testing.TB, s *State) []byte {
	tb.Helper()
	b, err := EncodeSnapshot(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// invite creates an invite for p (with its own secret) and returns its id
// and secret.
func (f *fed) invite(by string, p Profile, role Role) (id, secret string) {
	f.tb.Helper()
	id = strings.Repeat("0", 16) + hashHex(p.Slug)[:16]
	secret = "secret-of-" + p.Slug
	f.must(by, CreateInvite, CreateInviteArgs{ID: id, SecretHash: HashSecret(secret), Network: p, Role: role, Expires: f.now + 3600_000})
	return id, secret
}

// join invites network p and joins it with node name.
func (f *fed) join(by, name string, p Profile, role Role) {
	f.tb.Helper()
	id, secret := f.invite(by, p, role)
	f.must(name, Join, JoinArgs{Invite: id, Secret: secret})
}

func hashHex(s string) string { return HashSecret(s) }

func profile(slug, level string) Profile {
	return Profile{Slug: slug, Name: "Network " + slug, Level: level, Country: "TZ"}
}

// smallTemplate is a one-section template for tests that need no IDUIT text.
func smallTemplate(id, version string, items ...string) model.Template {
	t := model.Template{ID: id, Version: version, Title: "Test checklist", Language: "en", Source: "test",
		Sections: []model.Section{{ID: "1", Title: "Section one"}}}
	for _, it := range items {
		t.Sections[0].Items = append(t.Sections[0].Items, model.Item{ID: it, Text: "Item " + it, Scope: model.ScopeService})
	}
	return t
}

// newTestFed is the federation most tests start from:
//
//	inpud   global steward    node inpud-1
//	ehrn    regional steward  node ehrn-1
//	tanpud  national member   nodes tanpud-1, tanpud-2, tanpud-old (revoked)
//	vnpud   national member   node vnpud-1
//	susp    local member      node susp-1, suspended
//
// and "stranger", a node no network knows.
func newTestFed(tb testing.TB) *fed {
	tb.Helper()
	f := newFed(tb)
	f.must("inpud-1", Genesis, GenesisArgs{Network: profile("inpud", "global"), Templates: []model.Template{smallTemplate("test", "1", "a", "b", "c")}})
	f.join("inpud-1", "ehrn-1", Profile{Slug: "ehrn", Name: "Eurasian Harm Reduction Network", Level: "regional", Region: "eeca", Parent: "inpud"}, RoleSteward)
	f.join("inpud-1", "tanpud-1", Profile{Slug: "tanpud", Name: "Tanzania Network of People who Use Drugs", Level: "national", Country: "TZ", Parent: "inpud"}, RoleMember)
	f.join("ehrn-1", "vnpud-1", Profile{Slug: "vnpud", Name: "Vietnam Network of People who Use Drugs", Level: "national", Country: "VN"}, RoleMember)
	f.join("inpud-1", "susp-1", profile("susp", "local"), RoleMember)
	f.must("tanpud-1", AddNodeKey, AddNodeKeyArgs{Network: "tanpud", PeerID: f.node("tanpud-2").id})
	f.must("tanpud-1", AddNodeKey, AddNodeKeyArgs{Network: "tanpud", PeerID: f.node("tanpud-old").id})
	f.must("tanpud-1", RevokeNodeKey, RevokeNodeKeyArgs{PeerID: f.node("tanpud-old").id})
	f.must("inpud-1", Suspend, NetworkArgs{Network: "susp"})
	f.node("stranger")
	return f
}

// wantErr checks a refusal's sentinel and text.
func wantErr(tb testing.TB, err, sentinel error, text string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("accepted; want refusal %q", text)
	}
	if !errors.Is(err, sentinel) {
		tb.Errorf("error %q does not wrap %v", err, sentinel)
	}
	if !strings.Contains(err.Error(), text) {
		tb.Errorf("error %q\n  does not say %q", err, text)
	}
}
