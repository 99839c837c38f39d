package cli

import (
	"strings"
	"testing"

	"github.com/inpud/cairn/node"
)

// TestRetiredMemberGetsNothingNew: once a steward retires a member
// network, a new members-wide record never reaches it, however often it
// syncs: its pulls are refused (the origin answers none of them), and what
// it received before stays with it (data already delivered cannot be
// recalled).
func TestRetiredMemberGetsNothingNew(t *testing.T) {
	inpud := federationNode(t, "inpud", "global", true)
	tanpud := federationNode(t, "tanpud", "national", false)
	ok(t, tanpud, "join", strings.TrimSpace(ok(t, inpud, "invite", "--network", "tanpud", "--name", "TANPUD", "--level", "national")))

	before := strings.TrimSpace(ok(t, inpud, "priority", "add", "--title", "Naloxone in every pharmacy", "--kind", "change", "--importance", "5", "--achievability", "3"))
	ok(t, inpud, "share", before, "--audience", "members")
	eventually(t, "the members-wide priority to reach tanpud", func() bool {
		ok(t, tanpud, "sync", "now")
		_, _, err := cairn(t, tanpud, "priority", "show", before)
		return err == nil
	})

	if out := ok(t, inpud, "member", "retire", "tanpud"); !strings.Contains(out, "retire") {
		t.Errorf("retire printed %q", out)
	}
	if m := jsonOf[struct{ Status string }](t, ok(t, inpud, "member", "show", "tanpud", "--json")); m.Status != "retired" {
		t.Fatalf("tanpud after retire: %q", m.Status)
	}
	served := jsonOf[node.SyncStatus](t, ok(t, inpud, "sync", "status", "--json")).Server.Served

	news := strings.TrimSpace(ok(t, inpud, "priority", "add", "--title", "Global: decriminalise possession", "--kind", "change", "--importance", "5", "--achievability", "2"))
	ok(t, inpud, "share", news, "--audience", "members")
	for i := range 3 {
		res := jsonOf[[]node.PeerSync](t, ok(t, tanpud, "sync", "now", "--json"))
		if len(res) != 1 || res[0].Network != "inpud" || res[0].Error == "" || res[0].Received != 0 {
			t.Fatalf("sync now %d on the retired member: %+v; want a refused pull from inpud, nothing received", i+1, res)
		}
	}
	fails(t, tanpud, "no record with that id", "priority", "show", news)
	if after := jsonOf[node.SyncStatus](t, ok(t, inpud, "sync", "status", "--json")).Server.Served; after != served {
		t.Errorf("inpud answered %d pull requests after tanpud was retired; want none", after-served)
	}
	if got := jsonOf[rec](t, ok(t, tanpud, "priority", "show", before, "--json")); got.ID != before {
		t.Errorf("tanpud lost the record it received before it was retired: %+v", got)
	}
	// inpud no longer pulls from the retired member either.
	for _, p := range jsonOf[[]node.PeerSync](t, ok(t, inpud, "sync", "now", "--json")) {
		if p.Network == "tanpud" {
			t.Errorf("inpud still pulls from the retired tanpud: %+v", p)
		}
	}
}
