package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/api"
	"github.com/inpud/cairn/node/federation"
)

// federationNode starts a real node of network slug on loopback, with the
// registry's fast timings; bootstrap creates a new federation. It stops at
// the end of the test.
func federationNode(t *testing.T, slug, level string, bootstrap bool) string {
	t.Helper()
	_, dir := startFederationNode(t, slug, level, bootstrap)
	return dir
}

// startFederationNode is federationNode, also returning the node for tests
// that stop it themselves.
func startFederationNode(t *testing.T, slug, level string, bootstrap bool) (*node.Node, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), slug)
	cfg := node.DefaultConfig(dir)
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Registry = federation.FastConfig("")
	cfg.Network = node.Profile{Slug: slug, Name: strings.ToUpper(slug), Level: level}
	cfg.Bootstrap = bootstrap
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, dir
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestFederationCommands(t *testing.T) {
	inpud := federationNode(t, "inpud", "global", true)
	anpud := federationNode(t, "anpud", "regional", false)
	tanpud := federationNode(t, "tanpud", "national", false)
	loner := federationNode(t, "loner", "local", false)

	st := jsonOf[federation.RaftStatus](t, ok(t, inpud, "registry", "status", "--json"))
	if st.Role != "leader" || len(st.Genesis) != 64 || len(st.Voters) != 1 || !strings.HasPrefix(st.ID, "12D3KooW") {
		t.Fatalf("registry status after bootstrap: %+v", st)
	}
	if out := ok(t, inpud, "registry", "status"); !strings.Contains(out, "Genesis:") || !strings.Contains(out, "(leader)") {
		t.Errorf("registry status text:\n%s", out)
	}
	if out := ok(t, loner, "registry", "status"); !strings.Contains(out, "belongs to no federation yet") {
		t.Errorf("status of a node in no federation: %s", out)
	}
	fails(t, loner, "belongs to no federation yet", "invite", "--network", "x", "--name", "X", "--level", "local")

	// Invites: bad input first, nothing registered.
	fails(t, inpud, `level: "county" is not a level`, "invite", "--network", "anpud", "--name", "ANPUD", "--level", "county")
	fails(t, inpud, `role: "admin" is not a role`, "invite", "--network", "anpud", "--name", "ANPUD", "--level", "regional", "--role", "admin")
	fails(t, inpud, `expires: "forever" is not a duration`, "invite", "--network", "anpud", "--name", "ANPUD", "--level", "regional", "--expires", "forever")
	fails(t, inpud, "the slug inpud is taken", "invite", "--network", "inpud", "--name", "INPUD", "--level", "global")

	code := strings.TrimSpace(ok(t, inpud, "invite", "--network", "anpud", "--name", "Asian Network of People who Use Drugs", "--level", "regional", "--region", "asia", "--role", "steward"))
	if !strings.HasPrefix(code, "cairn-invite-1:") || strings.Contains(code, "\n") {
		t.Fatalf("invite printed %q, want one line with the code", code)
	}
	fails(t, tanpud, "this invite is for network anpud, but this node belongs to tanpud", "join", code)
	fails(t, anpud, "not a Cairn invite code", "join", "hello")
	fails(t, anpud, "damaged", "join", "cairn-invite-1:@@@")
	if out := ok(t, anpud, "join", code); !strings.Contains(out, "anpud joined the federation as a steward") {
		t.Fatalf("join printed %q", out)
	}
	fails(t, anpud, "already belongs to a federation", "join", code)

	// The steward anpud invites tanpud as a member, through the leader.
	code2 := strings.TrimSpace(ok(t, anpud, "invite", "--network", "tanpud", "--name", "TANPUD", "--level", "national", "--country", "tz", "--parent", "anpud"))
	ok(t, tanpud, "join", code2)
	fails(t, tanpud, "only a steward", "invite", "--network", "x", "--name", "X", "--level", "local")

	for _, dir := range []string{inpud, anpud, tanpud} {
		eventually(t, "every node to hold three members", func() bool {
			out, _, err := cairn(t, dir, "members", "--json")
			return err == nil && len(jsonOf[[]api.MemberView](t, out)) == 3
		})
	}
	ms := jsonOf[[]api.MemberView](t, ok(t, tanpud, "members", "--json"))
	for _, m := range ms {
		if m.ID != m.Slug || len(m.Nodes) != 1 || len(m.Nodes[0].Addrs) == 0 {
			t.Errorf("member %+v: want an id, one node with published addresses", m)
		}
	}
	out := ok(t, tanpud, "members")
	for _, want := range []string{"inpud", "anpud", "tanpud", "steward", "member", "active"} {
		if !strings.Contains(out, want) {
			t.Errorf("members missing %q:\n%s", want, out)
		}
	}
	if out := ok(t, inpud, "member", "show", "tanpud"); !strings.Contains(out, "TANPUD (tanpud)") || !strings.Contains(out, "Node 12D3KooW") {
		t.Errorf("member show:\n%s", out)
	}
	fails(t, inpud, `no member network "nobody"`, "member", "show", "nobody")
	eventually(t, "raft to follow the stewards", func() bool {
		st := jsonOf[federation.RaftStatus](t, ok(t, inpud, "registry", "status", "--json"))
		return len(st.Voters) == 2 && len(st.NonVoters) == 1
	})

	// Templates: a steward publishes a new version; everyone sees it.
	t1 := filepath.Join(t.TempDir(), "nsp-2027.yaml")
	os.WriteFile(t1, []byte(`id: community/nsp-quick
version: "2027"
title: Quick NSP check
language: en
source: written by the federation's stewards
sections:
  - id: q
    title: Quick check
    items:
      - {id: q.1, text: Syringes of the sizes people need should be available, scope: service}
      - {id: q.2, text: No one should be asked for ID to get equipment, scope: service}
`), 0o600)
	fails(t, tanpud, "only a steward", "template", "publish", t1)
	if out := ok(t, anpud, "template", "publish", t1); !strings.Contains(out, "community/nsp-quick@2027") {
		t.Errorf("publish printed %q", out)
	}
	eventually(t, "the template to reach tanpud", func() bool {
		out, _, _ := cairn(t, tanpud, "template", "list")
		return strings.Contains(out, "community/nsp-quick")
	})
	if out := ok(t, tanpud, "template", "list"); !strings.Contains(out, "iduit-bg/3.2") {
		t.Errorf("the IDUIT templates published at bootstrap are missing:\n%s", out)
	}
	t2 := filepath.Join(t.TempDir(), "nsp-2028.yaml")
	os.WriteFile(t2, []byte(`id: community/nsp-quick
version: "2028"
title: Quick NSP check
language: en
source: written by the federation's stewards
sections:
  - id: q
    title: Quick check
    items:
      - {id: q.2, text: No one should be asked for ID to get equipment, scope: service}
`), 0o600)
	fails(t, inpud, "q.1", "template", "publish", t2)
	os.WriteFile(t2, []byte("id: x\ncolour: red\n"), 0o600)
	fails(t, inpud, `unknown field "colour"`, "template", "publish", t2)
	// An audit can use the published template.
	id := strings.TrimSpace(ok(t, tanpud, "audit", "new", "--template", "community/nsp-quick", "--subject", "Mobile NSP", "--place", "Dodoma", "--period", "2027"))
	ok(t, tanpud, "audit", "answer", id, "q.1", "partly")

	// Stewards suspend; a member cannot; the suspended network is cut off.
	fails(t, tanpud, "only a steward", "member", "suspend", "anpud")
	fails(t, inpud, `"frobnicate" is not something cairn member can do: use show, suspend, reinstate, retire, promote, demote`, "member", "frobnicate", "tanpud")
	fails(t, inpud, "there is no network nobody", "member", "suspend", "nobody")
	if out := ok(t, anpud, "member", "suspend", "tanpud"); !strings.Contains(out, "suspend") {
		t.Errorf("suspend printed %q", out)
	}
	m := jsonOf[api.MemberView](t, ok(t, inpud, "member", "show", "tanpud", "--json"))
	if m.Status != "suspended" {
		t.Fatalf("tanpud after suspend: %s", m.Status)
	}
	ok(t, inpud, "member", "reinstate", "tanpud")
	ok(t, inpud, "member", "promote", "tanpud")
	eventually(t, "three voters", func() bool {
		st := jsonOf[federation.RaftStatus](t, ok(t, inpud, "registry", "status", "--json"))
		return len(st.Voters) == 3
	})
	ok(t, inpud, "member", "demote", "tanpud")
	fails(t, inpud, "in use by another cairn node", "registry", "recover", "--voters", st.ID)
}

func TestBootstrapAndInviteRefusals(t *testing.T) {
	// init --bootstrap creates the federation without starting the node;
	// start --bootstrap on it afterwards is refused, and nothing changes.
	dir := filepath.Join(t.TempDir(), "ehrn")
	ok(t, dir, "init", "--network", "ehrn", "--name", "EHRN", "--level", "regional", "--bootstrap", "--listen", "/ip4/127.0.0.1/tcp/0")
	fails(t, dir, "already belongs to the federation with genesis", "start", "--bootstrap", "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0")
	fails(t, dir, "no node is running", "status")

	// registry recover on the stopped node: bad voters are refused, then
	// this node alone becomes the voter set and leads when started.
	fails(t, dir, `"not-a-peer" is not a peer ID`, "registry", "recover", "--voters", "not-a-peer")
	init := jsonOf[map[string]string](t, func() string {
		out, _, _ := cairn(t, filepath.Join(t.TempDir(), "x"), "init", "--network", "x", "--name", "X", "--level", "local", "--json", "--listen", "/ip4/127.0.0.1/tcp/0")
		return out
	}())
	fails(t, filepath.Join(filepath.Dir(dir), "nowhere"), "has no node yet", "registry", "recover", "--voters", init["id"])
	self, idErr := node.PeerID(dir)
	if idErr != nil {
		t.Fatal(idErr)
	}
	out := ok(t, dir, "registry", "recover", "--voters", self)
	if !strings.Contains(out, "registry recovered: 1 voter(s) ("+self+"); 1 member networks kept") {
		t.Fatalf("recover printed %q", out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sout, serr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"cairn", "--data-dir", dir, "start", "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--registry-heartbeat-timeout", "250ms", "--registry-election-timeout", "250ms"}, &sout, &serr)
	}()
	eventually(t, "the recovered node to lead", func() bool {
		o, _, err := cairn(t, dir, "registry", "status", "--json")
		return err == nil && jsonOf[federation.RaftStatus](t, o).Role == "leader"
	})
	ok(t, dir, "member", "show", "ehrn")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("recovered node stopped with %v", err)
	}

	steward := federationNode(t, "inpud", "global", true)
	joiner := federationNode(t, "vnpud", "national", false)
	// An expired invite.
	short := strings.TrimSpace(ok(t, steward, "invite", "--network", "vnpud", "--name", "VNPUD", "--level", "national", "--expires", "1s"))
	time.Sleep(1500 * time.Millisecond)
	fails(t, joiner, "expired", "join", short)
	code := strings.TrimSpace(ok(t, steward, "invite", "--network", "vnpud", "--name", "VNPUD", "--level", "national"))
	// A forged invite: the right id with another secret.
	c, err := federation.ParseInviteCode(code)
	if err != nil {
		t.Fatal(err)
	}
	forged := c
	forged.Secret = strings.Repeat("0", len(c.Secret))
	fails(t, joiner, "the secret does not match invite", "join", forged.String())
	if ms := jsonOf[[]api.MemberView](t, ok(t, steward, "members", "--json")); len(ms) != 1 {
		t.Fatalf("refused joins changed the registry: %d members", len(ms))
	}
	// The genuine code still works once.
	ok(t, joiner, "join", code)
	if ms := jsonOf[[]api.MemberView](t, ok(t, steward, "members", "--json")); len(ms) != 2 {
		t.Fatalf("after the genuine join: %d members", len(ms))
	}
}

// TestThreeStewardsFourMembers forms a federation only through the CLI
// (invite, join) and checks every node's registry status agrees.
func TestThreeStewardsFourMembers(t *testing.T) {
	type net struct{ slug, level, role string }
	nets := []net{
		{"anpud", "regional", "steward"}, {"enpud", "regional", "steward"},
		{"tanpud", "national", "member"}, {"vnpud", "national", "member"}, {"caso", "national", "member"}, {"usu", "national", "member"},
	}
	dirs := map[string]string{"inpud": federationNode(t, "inpud", "global", true)}
	order := []string{"inpud"}
	for i, n := range nets {
		dirs[n.slug] = federationNode(t, n.slug, n.level, false)
		// Invites come from different stewards, so most go through the leader.
		inviter := dirs["inpud"]
		if i >= 2 {
			inviter = dirs[nets[i%2].slug]
		}
		code := strings.TrimSpace(ok(t, inviter, "invite", "--network", n.slug, "--name", strings.ToUpper(n.slug), "--level", n.level, "--role", n.role))
		ok(t, dirs[n.slug], "join", code)
		order = append(order, n.slug)
	}
	var want federation.RaftStatus
	eventually(t, "all seven nodes to agree on the registry", func() bool {
		var first *federation.RaftStatus
		for _, slug := range order {
			out, _, err := cairn(t, dirs[slug], "registry", "status", "--json")
			if err != nil {
				return false
			}
			st := jsonOf[federation.RaftStatus](t, out)
			if len(st.Voters) != 3 || len(st.NonVoters) != 4 {
				return false
			}
			if first == nil {
				first = &st
				continue
			}
			if st.CommitIndex != first.CommitIndex || st.Genesis != first.Genesis || strings.Join(st.Voters, ",") != strings.Join(first.Voters, ",") || strings.Join(st.NonVoters, ",") != strings.Join(first.NonVoters, ",") {
				return false
			}
		}
		want = *first
		return true
	})
	for _, slug := range order {
		ms := jsonOf[[]api.MemberView](t, ok(t, dirs[slug], "members", "--json"))
		var ids []string
		stewards := 0
		for _, m := range ms {
			ids = append(ids, m.ID)
			if m.Role == "steward" {
				stewards++
			}
		}
		if strings.Join(ids, ",") != "anpud,caso,enpud,inpud,tanpud,usu,vnpud" || stewards != 3 {
			t.Errorf("%s sees members %v with %d stewards", slug, ids, stewards)
		}
		st := jsonOf[federation.RaftStatus](t, ok(t, dirs[slug], "registry", "status", "--json"))
		wantRole := map[bool]string{true: "voter", false: "non-voter"}[slug == "inpud" || slug == "anpud" || slug == "enpud"]
		if st.Role != wantRole && !(st.Role == "leader" && wantRole == "voter") {
			t.Errorf("%s is %s, want %s", slug, st.Role, wantRole)
		}
	}
	t.Logf("seven nodes agree: commit index %d, genesis %s", want.CommitIndex, want.Genesis[:12])
}
