package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/api"
)

// TestHandoverCommands runs the procedures of docs/OPERATIONS.md,
// "Handing over an archive": bad input is refused with one sentence and
// leaves the registry unchanged; a network hands its own archive over
// (cairn handover --to STEWARD); and, for a network that is gone, a steward
// suspends it and a custodian hands it over with two of its three key
// shares. cairn members then shows each retired with its archive held by
// the steward.
func TestHandoverCommands(t *testing.T) {
	inpud := federationNode(t, "inpud", "global", true)
	anode, anpud := startFederationNode(t, "anpud", "national", false)
	bnpud := federationNode(t, "bnpud", "national", false)
	cnpud := federationNode(t, "cnpud", "national", false)
	dnpud := federationNode(t, "dnpud", "national", false)
	for _, dir := range []string{anpud, bnpud, cnpud, dnpud} {
		slug := filepath.Base(dir)
		code := strings.TrimSpace(ok(t, inpud, "invite", "--network", slug, "--name", strings.ToUpper(slug), "--level", "national"))
		ok(t, dir, "join", code)
	}
	eventually(t, "every node to hold five members", func() bool {
		for _, dir := range []string{anpud, bnpud, cnpud, dnpud} {
			out, _, err := cairn(t, dir, "members", "--json")
			if err != nil || len(jsonOf[[]api.MemberView](t, out)) != 5 {
				return false
			}
		}
		return true
	})
	ok(t, anpud, "custody", "set", "bnpud,cnpud")
	ok(t, anpud, "priority", "add", "--title", "Naloxone in every pharmacy", "--kind", "change", "--importance", "5", "--achievability", "4")

	// anpud's key shares, as its operator made them before it went away,
	// and bnpud's, to give as the wrong ones.
	sharesA := filepath.Join(t.TempDir(), "anpud-shares")
	ok(t, anpud, "key", "backup", "--shares", "3", "--threshold", "2", "--out", sharesA)
	shareA := func(i int) string { return filepath.Join(sharesA, "anpud-key-share-"+string(rune('0'+i))+"-of-3.txt") }
	sharesB := filepath.Join(t.TempDir(), "bnpud-shares")
	ok(t, bnpud, "key", "backup", "--shares", "2", "--threshold", "2", "--out", sharesB)
	backupA := filepath.Join(t.TempDir(), "anpud.backup")
	t.Setenv("CAIRN_PASSPHRASE", "correct horse battery staple")
	ok(t, anpud, "key", "backup", "--out", backupA)

	fails(t, anpud, "needs --to SLUG", "handover")
	fails(t, anpud, "takes no arguments", "handover", "inpud")
	fails(t, anpud, `--to "In Pud" is not a network slug`, "handover", "--to", "In Pud")
	fails(t, anpud, "bnpud is a member network, not a steward", "handover", "--to", "bnpud")
	fails(t, anpud, "anpud cannot hand its archive over to itself", "handover", "--to", "anpud")
	fails(t, anpud, "nowhere is not a network of this federation", "handover", "--to", "nowhere")
	fails(t, bnpud, "anpud is not this node's network: give its key shares", "handover", "--to", "inpud", "--network", "anpud")
	fails(t, bnpud, "name it with --network SLUG", "handover", "--to", "inpud", "--shares", shareA(1)+","+shareA(2))
	fails(t, bnpud, "not both", "handover", "--to", "inpud", "--network", "anpud", "--shares", shareA(1), "--backup", backupA)
	fails(t, bnpud, "the shares do not open the keys: too few shares", "handover", "--to", "inpud", "--network", "anpud", "--shares", shareA(1))
	fails(t, bnpud, "the keys given are network bnpud's, not anpud's", "handover", "--to", "inpud", "--network", "anpud",
		"--shares", filepath.Join(sharesB, "bnpud-key-share-1-of-2.txt")+","+filepath.Join(sharesB, "bnpud-key-share-2-of-2.txt"))
	t.Setenv("CAIRN_PASSPHRASE", "not the passphrase at all")
	fails(t, bnpud, "the passphrase does not open this backup", "handover", "--to", "inpud", "--network", "anpud", "--backup", backupA)
	// anpud is active: its custodian may not retire it.
	fails(t, bnpud, "a custodian can hand over only a network a steward has suspended", "handover", "--to", "inpud", "--network", "anpud",
		"--shares", shareA(1)+","+shareA(3))
	for _, m := range jsonOf[[]api.MemberView](t, ok(t, inpud, "members", "--json")) {
		if m.Status != "active" || m.Steward != "" {
			t.Fatalf("refused handovers changed the registry: %+v", m)
		}
	}

	// dnpud retires and hands its own archive over, once its custodians
	// hold all of it.
	fails(t, dnpud, "dnpud has no custodians, so the steward would get none of its records", "handover", "--to", "inpud")
	ok(t, dnpud, "custody", "set", "bnpud,cnpud")
	shared := strings.TrimSpace(ok(t, dnpud, "priority", "add", "--title", "Drop-in centre hours", "--kind", "action", "--importance", "3", "--achievability", "4"))
	ok(t, dnpud, "share", shared, "--audience", "network:cnpud")
	eventually(t, "dnpud's custodians to be caught up", func() bool {
		st := jsonOf[node.CustodyStatus](t, ok(t, dnpud, "custody", "status", "--json"))
		return len(st.Custodians) == 2 && st.Custodians[0].CaughtUp && st.Custodians[1].CaughtUp
	})
	out := ok(t, dnpud, "handover", "--to", "inpud")
	if !strings.Contains(out, "retired dnpud and handed its archive over to inpud") {
		t.Fatalf("handover printed %q", out)
	}

	// anpud is gone: its node stops for good (once its custodians hold
	// every version), a steward suspends it, and
	// its custodian bnpud hands it over with two of its three shares.
	eventually(t, "both custodians to hold anpud's versions", func() bool {
		st := jsonOf[node.CustodyStatus](t, ok(t, anpud, "custody", "status", "--json"))
		return len(st.Custodians) == 2 && st.Custodians[0].CaughtUp && st.Custodians[1].CaughtUp
	})
	if err := anode.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(anpud); err != nil {
		t.Fatal(err)
	}
	ok(t, inpud, "member", "suspend", "anpud")
	eventually(t, "bnpud to see anpud suspended", func() bool {
		for _, m := range jsonOf[[]api.MemberView](t, ok(t, bnpud, "members", "--json")) {
			if m.Slug == "anpud" {
				return m.Status == "suspended"
			}
		}
		return false
	})
	res := jsonOf[api.ResultView](t, ok(t, bnpud, "--json", "handover", "--to", "inpud", "--network", "anpud", "--shares", shareA(1)+","+shareA(3)))
	if res.ID != "anpud" || res.Kind != "handover" {
		t.Fatalf("handover --json: %+v", res)
	}
	eventually(t, "cairn members to show both archives held by inpud", func() bool {
		out := ok(t, inpud, "members")
		return strings.Contains(out, "retired (archive held by inpud)") && strings.Count(out, "archive held by inpud") == 2
	})
	// The steward imported both: anpud's one record is private, so it
	// stays sealed; dnpud's is shared with cnpud, so the steward serves it.
	eventually(t, "inpud to import both archives", func() bool {
		as := jsonOf[[]node.ArchiveStatus](t, ok(t, inpud, "handover", "archives", "--json"))
		return len(as) == 2 && as[0].ID == "anpud" && as[0].Imported && as[0].Private == 1 && as[0].Shared == 0 && as[0].Sealed == 1 &&
			as[1].ID == "dnpud" && as[1].Imported && as[1].Shared == 1 && as[1].Private == 0
	})
	if out := ok(t, inpud, "handover", "archives"); !strings.Contains(out, "anpud") || !strings.Contains(out, "imported") {
		t.Errorf("handover archives:\n%s", out)
	}
	if out := ok(t, bnpud, "handover", "archives"); !strings.Contains(out, "No archive has been handed over") {
		t.Errorf("handover archives on a member:\n%s", out)
	}
}
