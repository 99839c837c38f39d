package cli

import (
	"strings"
	"testing"
)

// history is what `record history --json` shows of one version.
type history struct {
	Version     int    `json:"version"`
	Hash        string `json:"hash"`
	Withdrawn   bool   `json:"withdrawn"`
	Keep        string `json:"keep"`
	TakenBack   bool   `json:"taken_back"`
	TakenBackBy string `json:"taken_back_by"`
	Body        any    `json:"body"`
}

// TestNarrowingTakesTheBodyBack: when the origin narrows a record's
// audience, the network it leaves out drops the body and keeps a signed
// stub, shown by `record history`; the network still in the audience keeps
// everything. A deletion takes the body back from everyone.
func TestNarrowingTakesTheBodyBack(t *testing.T) {
	inpud := federationNode(t, "inpud", "global", true)
	tanpud := federationNode(t, "tanpud", "national", false)
	vnpud := federationNode(t, "vnpud", "national", false)
	ok(t, tanpud, "join", strings.TrimSpace(ok(t, inpud, "invite", "--network", "tanpud", "--name", "TANPUD", "--level", "national")))
	ok(t, vnpud, "join", strings.TrimSpace(ok(t, inpud, "invite", "--network", "vnpud", "--name", "VNPUD", "--level", "national")))

	id := strings.TrimSpace(ok(t, inpud, "priority", "add", "--title", "Peer-led naloxone training", "--kind", "action", "--importance", "4", "--achievability", "4"))
	gone := strings.TrimSpace(ok(t, inpud, "priority", "add", "--title", "Drop-in hours", "--kind", "change", "--importance", "3", "--achievability", "3"))
	for _, r := range []string{id, gone} {
		ok(t, inpud, "share", r, "--audience", "members")
	}
	for _, dir := range []string{tanpud, vnpud} {
		eventually(t, "both members to hold both records", func() bool {
			ok(t, dir, "sync", "now")
			return len(jsonOf[[]rec](t, ok(t, dir, "priority", "list", "--origin", "inpud", "--json"))) == 2
		})
	}

	if out := ok(t, inpud, "share", id, "--audience", "network:tanpud"); !strings.Contains(out, "now shared with: network:tanpud (version 4)") {
		t.Fatalf("narrowing printed %q; want version 4 (3 is the withdrawal)", out)
	}
	ok(t, inpud, "record", "delete", gone)
	eventually(t, "vnpud to drop the bodies", func() bool {
		ok(t, vnpud, "sync", "now")
		return len(jsonOf[[]rec](t, ok(t, vnpud, "priority", "list", "--origin", "inpud", "--json"))) == 0
	})
	eventually(t, "tanpud to hold version 4", func() bool {
		ok(t, tanpud, "sync", "now")
		return jsonOf[rec](t, ok(t, tanpud, "priority", "show", id, "--json")).Version == 4
	})

	// vnpud: version 2 is a stub, version 3 the signed withdrawal; no body anywhere.
	hs := jsonOf[[]history](t, ok(t, vnpud, "record", "history", id, "--json"))
	if len(hs) != 2 || hs[0].Version != 2 || !hs[0].TakenBack || hs[0].Body != nil ||
		hs[1].Version != 3 || !hs[1].Withdrawn || hs[1].Keep != "network:tanpud" || hs[0].TakenBackBy != hs[1].Hash {
		t.Fatalf("vnpud's history of the narrowed record: %+v", hs)
	}
	if out := ok(t, vnpud, "record", "history", id); !strings.Contains(out, "body taken back by its origin") || !strings.Contains(out, "withdrawn; kept by network:tanpud") {
		t.Fatalf("record history on vnpud:\n%s", out)
	}
	if out := ok(t, vnpud, "record", "history", id, "--json"); strings.Contains(out, "Peer-led naloxone") {
		t.Fatalf("vnpud still shows the body:\n%s", out)
	}
	gh := jsonOf[[]history](t, ok(t, vnpud, "record", "history", gone, "--json"))
	if len(gh) != 2 || !gh[0].TakenBack || gh[0].Body != nil {
		t.Fatalf("vnpud's history of the deleted record: %+v", gh)
	}

	// tanpud, still in the audience, keeps every body it had, and the new version.
	th := jsonOf[[]history](t, ok(t, tanpud, "record", "history", id, "--json"))
	if len(th) != 3 || th[0].TakenBack || th[0].Body == nil || th[2].Version != 4 || th[2].Body == nil {
		t.Fatalf("tanpud's history of the narrowed record: %+v", th)
	}
	// The origin keeps its whole history.
	if oh := jsonOf[[]history](t, ok(t, inpud, "record", "history", id, "--json")); len(oh) != 4 || oh[1].TakenBack {
		t.Fatalf("the origin's history: %+v", oh)
	}
}
