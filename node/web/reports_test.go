package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
)

func TestCommitteeReports(t *testing.T) {
	n := startNode(t, "tanpud", false)
	s := loggedIn(t, n)

	resp, body := s.get("/reports")
	wantStatus(t, resp, body, http.StatusOK)
	wantIn(t, body, "No committee reports yet", `href="/reports/new"`)

	// The form follows DOMAIN §4, every input with its label.
	resp, body = s.get("/reports/new")
	wantStatus(t, resp, body, http.StatusOK)
	for _, in := range []string{"committee", "committee.kind", "committee.services", "date", "service",
		"attendance[0].role", "attendance[0].count", "issues_raised[2].description", "issues_raised[0].suggested_fix",
		"clinical_review[0].finding", "clinical_review[0].charter_displayed", "commodities_review[1].item",
		"commodities_review[0].right_types", "commodities_review[0].enough", "barriers", "planned_changes", "data_shared",
		"feedback_to_management", "management_contacts[0].role_met", "management_contacts[0].commitments", "follow_ups"} {
		wantIn(t, body, `<label for="`+in+`">`, `name="`+in+`"`)
	}

	// Bad input: the sentences `cairn report add` prints, next to the
	// field, everything typed kept, nothing written.
	good := func() url.Values {
		return url.Values{"committee": {"OAT clinic community committee"}, "date": {"2026-02-03"}, "service": {"Mwananyamala OAT clinic"},
			"rows.issues_raised": {"3"}, "issues_raised[0].description": {"Doses are cut as punishment"}, "issues_raised[0].status": {"open"},
			"rows.attendance": {"2"}, "attendance[0].role": {"peer"}, "attendance[0].count": {"9"}}
	}
	for _, c := range []struct {
		field, value, want, near string
	}{
		{"date", "2026-02-30", `date: "2026-02-30" is not a date: use YYYY-MM-DD`, `name="date" value="2026-02-30"`},
		{"committee", "", "committee: is required", `name="committee" value=""`},
		{"service", "", "service: is required", `name="service" value=""`},
		{"issues_raised[0].description", "Call the nurse on 0712 345 678", "phone number", "Call the nurse on 0712 345 678</textarea>"},
		{"attendance[0].count", "nine", `attendance[0].count: "nine" is not a whole number`, `value="nine"`},
		{"issues_raised[0].status", "forgotten", `issues_raised[0].status: "forgotten"`, ""},
	} {
		form := good()
		form.Set(c.field, c.value)
		resp, body = s.post("/reports", form)
		wantStatus(t, resp, body, http.StatusBadRequest)
		wantIn(t, body, c.want, c.near, `value="peer"`, `value="2026-`)
		// The sentence sits in the field's own block, right after its input.
		at := strings.Index(body, `name="`+c.field+`"`)
		if at < 0 || !strings.Contains(body[at:at+min(len(body)-at, 1200)], c.want) {
			t.Errorf("%q is not next to the field %s", c.want, c.field)
		}
	}
	// A problem in the second issue typed, after a blank row, lands on
	// the row it was typed in.
	form := good()
	form.Set("issues_raised[2].description", "Write to Dr Juma at juma@example.org")
	resp, body = s.post("/reports", form)
	wantStatus(t, resp, body, http.StatusBadRequest)
	at := strings.Index(body, `name="issues_raised[2].description"`)
	if at < 0 || !strings.Contains(body[at:at+800], "e-mail address") || strings.Contains(body[strings.Index(body, `name="issues_raised[1].description"`):at], `class="error"`) {
		t.Errorf("the problem with the third row is not next to it:\n%s", body)
	}
	if recs, _ := n.Records().List(records.Query{Kind: model.KindReport}); len(recs) != 0 {
		t.Fatalf("bad input wrote %d report(s)", len(recs))
	}

	// One more row: the form comes back with what was typed and a fourth
	// issue; nothing is saved yet.
	form = good()
	form.Set("more", "issues_raised")
	resp, body = s.post("/reports", form)
	wantStatus(t, resp, body, http.StatusOK)
	wantIn(t, body, `name="issues_raised[3].description"`, "Doses are cut as punishment</textarea>", `name="rows.issues_raised" value="4"`)

	// A whole report.
	form = good()
	for k, v := range map[string]string{
		"committee.kind": "client committee", "committee.services": "OAT, NSP",
		"attendance[1].role": "staff", "attendance[1].count": "2",
		"issues_raised[2].description": "Clinic opens too late for people who work", "issues_raised[2].status": "raised", "issues_raised[2].suggested_fix": "Open at 7",
		"issues_raised[2].item": "3.2.4", "issues_raised[2].category": "access",
		"rows.clinical_review": "1", "clinical_review[0].finding": "Confidentiality notice missing", "clinical_review[0].charter_displayed": "no",
		"rows.commodities_review": "2", "commodities_review[0].item": "10 ml syringes", "commodities_review[0].right_types": "no", "commodities_review[0].enough": "yes",
		"commodities_review[0].note": "people who use salts need insulin syringes",
		"barriers":                   "Police outside the clinic\n\nNo clinic on weekends", "planned_changes": "Take-home doses from May",
		"data_shared": "Audit scores read out at the drop-in", "feedback_to_management": "Thanks for the new waiting room.",
		"rows.management_contacts": "1", "management_contacts[0].date": "2026-02-10", "management_contacts[0].form": "letter",
		"management_contacts[0].role_met": "chief medical officer", "management_contacts[0].commitments": "Review dosing policy",
		"follow_ups": "Write to the chief medical officer",
	} {
		form.Set(k, v)
	}
	resp, body = s.post("/reports", form)
	wantStatus(t, resp, body, http.StatusSeeOther)
	path := resp.Header.Get("Location")
	rec, err := n.Records().Get(strings.TrimPrefix(path, "/reports/"))
	if err != nil {
		t.Fatalf("after filing, %s: %v", path, err)
	}
	r := rec.Body.(*model.Report)
	if r.Committee.Name != "OAT clinic community committee" || r.Committee.Kind != "client committee" || strings.Join(r.Committee.Services, "|") != "OAT|NSP" ||
		r.MeetingDate != "2026-02-03" || len(r.Attendance) != 2 || r.Attendance[1].Count != 2 ||
		len(r.IssuesRaised) != 2 || r.IssuesRaised[1].Status != "raised" || r.IssuesRaised[1].Item != "3.2.4" ||
		len(r.ClinicalReview) != 1 || r.ClinicalReview[0].CharterDisplayed == nil || *r.ClinicalReview[0].CharterDisplayed ||
		len(r.CommoditiesReview) != 1 || *r.CommoditiesReview[0].RightTypes || !*r.CommoditiesReview[0].Enough ||
		strings.Join(r.Barriers, "|") != "Police outside the clinic|No clinic on weekends" || len(r.PlannedChanges) != 1 ||
		r.DataShared == "" || r.FeedbackManagement == "" || len(r.ManagementContacts) != 1 || r.ManagementContacts[0].Form != "letter" ||
		len(r.FollowUps) != 1 || rec.Audience != model.AudiencePrivate {
		t.Fatalf("the report as filed: %+v (audience %s)", r, rec.Audience)
	}

	resp, body = s.get(path)
	wantStatus(t, resp, body, http.StatusOK)
	wantIn(t, body, "OAT clinic community committee (client committee)", "OAT, NSP", "2026-02-03", "9 peer, 2 staff",
		"Doses are cut as punishment", "raised with management", "Suggested fix: Open at 7",
		"Confidentiality notice missing", "Rights charter displayed: no",
		"<td>10 ml syringes</td><td>no</td><td>yes</td>", "Police outside the clinic", "Take-home doses from May",
		"Audit scores read out", "Thanks for the new waiting room.", "chief medical officer", "Review dosing policy",
		"Write to the chief medical officer", "Who can see it", `value="private" checked`)
	// The record page of a report is the report's page.
	resp, body = s.get("/records/" + rec.ID)
	wantStatus(t, resp, body, http.StatusOK)
	wantIn(t, body, "Rights charter displayed: no")
	// A refused audience change comes back on the report's page.
	resp, body = s.post("/records/"+rec.ID+"/audience", url.Values{"mode": {"chosen"}, "other": {"everyone"}})
	wantStatus(t, resp, body, http.StatusBadRequest)
	wantIn(t, body, `"everyone" is not an audience`, "Rights charter displayed: no")

	resp, body = s.get("/reports")
	wantStatus(t, resp, body, http.StatusOK)
	wantIn(t, body, "1 committee report(s)", `<a href="/reports/`+rec.ID+`">2026-02-03</a>`, "Mwananyamala OAT clinic", "<td>2</td>")
	resp, body = s.get("/reports?origin=Not+A+Slug")
	wantStatus(t, resp, body, http.StatusBadRequest)
	wantIn(t, body, `origin: "Not A Slug" is not a network slug`)
	// A priority's id on the report page goes to the priority.
	p, _ := n.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Naloxone", Importance: 3, Achievability: 3}, false)
	resp, _ = s.get("/reports/" + p.ID)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/priorities/"+p.ID {
		t.Fatalf("a priority under /reports/: %s %s", resp.Status, resp.Header.Get("Location"))
	}
}
