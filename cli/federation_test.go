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
// registry's fast timings; bootstrap creates a new federation.
func federationNode(t *testing.T, slug, level string, bootstrap bool) string {
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
	return dir
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
