package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/registry"
)

// TestMembersAndPeers: the federation's member networks and the member
// nodes this node pulls from, with what it received from each.
func TestMembersAndPeers(t *testing.T) {
	inpud := startNode(t, "inpud", true)
	tanpud := startNode(t, "tanpud", false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, err := inpud.Federation().Invite(ctx, registry.Profile{Slug: "tanpud", Name: "TANPUD", Level: "national", Region: "africa"}, registry.RoleMember, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tanpud.Join(ctx, code.String()); err != nil {
		t.Fatal(err)
	}
	rec, err := tanpud.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Naloxone in pharmacies", Importance: 5, Achievability: 4}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tanpud.Records().Share(rec.ID, model.Audience{model.AudienceMembers}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := inpud.Records().Get(rec.ID); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shared priority did not reach inpud")
		}
		inpud.SyncNow(ctx)
		time.Sleep(100 * time.Millisecond)
	}

	s := loggedIn(t, inpud)
	resp, body := s.get("/members")
	wantStatus(t, resp, body, http.StatusOK)
	wantIn(t, body, "2 member network(s)", "Stewards (they keep the federation's registry): INPUD",
		"<td><code>inpud</code> <span class=\"tag\">this network</span></td><td>INPUD</td>", "<td>steward</td><td>active</td>",
		"<td><code>tanpud</code></td><td>TANPUD</td>", "<td>member</td><td>active</td>",
		"Member nodes this node syncs with", "1 member node(s)", "<td>tanpud</td>", "<code>/ip4/127.0.0.1/tcp/")
	row := body[strings.Index(body, "<td>tanpud</td>"):]
	row = row[:strings.Index(row, "</tr>")]
	if strings.Contains(row, "never") || !strings.Contains(row, "<td>0</td>") || !strings.Contains(row, "<td>1 (1)</td>") {
		t.Fatalf("tanpud's row should show a pull, no lag, the shared version received and stored (the private one never left tanpud):\n%s", row)
	}
	if !strings.Contains(body, `href="/members" aria-current="page"`) {
		t.Errorf("the navigation does not mark Members and peers")
	}

	// A node in no federation says so.
	loner := loggedIn(t, startNode(t, "loner", false))
	_, body = loner.get("/members")
	wantIn(t, body, "belongs to no federation yet", "No member nodes pulled from yet.")
}
