package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/api"
)

// everyObjectHasID checks that every JSON object in v that is a record
// (the status, each custodian, node and kept entry) carries a non-empty id.
func everyObjectHasID(t *testing.T, out string) {
	t.Helper()
	var v struct {
		ID         string `json:"id"`
		Custodians []struct {
			ID    string `json:"id"`
			Nodes []struct {
				ID string `json:"id"`
			} `json:"nodes"`
		} `json:"custodians"`
		Keeping []struct {
			ID string `json:"id"`
		} `json:"keeping"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	ok := v.ID != ""
	for _, c := range v.Custodians {
		ok = ok && c.ID != ""
		for _, n := range c.Nodes {
			ok = ok && n.ID != ""
		}
	}
	for _, k := range v.Keeping {
		ok = ok && k.ID != ""
	}
	if !ok {
		t.Errorf("custody status --json has a record without an id:\n%s", out)
	}
}

// TestCustodyCommands: custody set refuses bad input with one sentence
// each and changes nothing; a good set is a registry change; custody
// status then shows both custodians caught up with every version.
func TestCustodyCommands(t *testing.T) {
	inpud := federationNode(t, "inpud", "global", true)
	anpud := federationNode(t, "anpud", "national", false)
	bnpud := federationNode(t, "bnpud", "national", false)
	cnpud := federationNode(t, "cnpud", "national", false)
	for _, dir := range []string{anpud, bnpud, cnpud} {
		slug := dir[strings.LastIndex(dir, "/")+1:]
		code := strings.TrimSpace(ok(t, inpud, "invite", "--network", slug, "--name", strings.ToUpper(slug), "--level", "national"))
		ok(t, dir, "join", code)
	}
	eventually(t, "anpud to hold four members", func() bool {
		out, _, err := cairn(t, anpud, "members", "--json")
		return err == nil && len(jsonOf[[]api.MemberView](t, out)) == 4
	})

	fails(t, anpud, "needs the custodians", "custody", "set")
	fails(t, anpud, "needs at least 2 custodians", "custody", "set", "bnpud")
	fails(t, anpud, "anpud cannot be its own custodian", "custody", "set", "bnpud,anpud")
	fails(t, anpud, "custodian bnpud is named twice", "custody", "set", "bnpud, bnpud")
	fails(t, anpud, "nowhere is not a member network", "custody", "set", "bnpud,nowhere")
	fails(t, anpud, `"B NPUD" is not a network slug`, "custody", "set", "cnpud,B NPUD")
	fails(t, anpud, `"" is not a network slug`, "custody", "set", "bnpud,")
	ok(t, inpud, "member", "suspend", "cnpud")
	eventually(t, "anpud to see cnpud suspended", func() bool {
		_, _, err := cairn(t, anpud, "custody", "set", "bnpud,cnpud")
		return err != nil && strings.Contains(err.Error(), "cnpud is suspended and cannot be a custodian")
	})
	fails(t, anpud, "cnpud is suspended and cannot be a custodian: choose an active member network", "custody", "set", "bnpud,cnpud")
	ok(t, inpud, "member", "reinstate", "cnpud")
	if st := jsonOf[node.CustodyStatus](t, ok(t, anpud, "custody", "status", "--json")); len(st.Custodians) != 0 {
		t.Fatalf("custodians after refused changes: %+v", st.Custodians)
	}
	if out := ok(t, anpud, "custody", "status"); !strings.Contains(out, "none yet") {
		t.Errorf("status without custodians:\n%s", out)
	}

	ok(t, anpud, "priority", "add", "--title", "Naloxone in every pharmacy", "--kind", "change", "--importance", "5", "--achievability", "4")
	if out := ok(t, anpud, "custody", "set", "bnpud,inpud"); !strings.Contains(out, "anpud's custodians are now bnpud, inpud") {
		t.Fatalf("custody set printed %q", out)
	}
	id := strings.TrimSpace(ok(t, anpud, "priority", "add", "--title", "Peer-run drop-in hours", "--kind", "action", "--importance", "3", "--achievability", "4"))
	ok(t, anpud, "share", id, "--audience", "members")

	var st node.CustodyStatus
	eventually(t, "both custodians to hold anpud's 3 versions", func() bool {
		out := ok(t, anpud, "custody", "status", "--json")
		st = jsonOf[node.CustodyStatus](t, out)
		if len(st.Custodians) != 2 {
			return false
		}
		for _, cs := range st.Custodians {
			if !cs.CaughtUp || len(cs.Nodes) != 1 || cs.Nodes[0].Held != 3 {
				return false
			}
		}
		everyObjectHasID(t, out)
		return true
	})
	if st.Custodians[0].ID != "bnpud" || st.Custodians[1].ID != "inpud" {
		t.Errorf("custodians %s, %s; want bnpud, inpud", st.Custodians[0].ID, st.Custodians[1].ID)
	}
	out := ok(t, anpud, "custody", "status")
	for _, want := range []string{"CUSTODIAN", "bnpud", "inpud", "caught up"} {
		if !strings.Contains(out, want) {
			t.Errorf("custody status lacks %q:\n%s", want, out)
		}
	}
	kept := ok(t, bnpud, "custody", "status")
	if !strings.Contains(kept, "anpud: 3 sealed versions") {
		t.Errorf("bnpud's custody status does not show what it keeps:\n%s", kept)
	}
	everyObjectHasID(t, ok(t, bnpud, "custody", "status", "--json"))
}
