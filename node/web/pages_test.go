package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
)

func TestOverview(t *testing.T) {
	n := startNode(t, "inpud", true)
	s := loggedIn(t, n)
	if _, err := n.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Naloxone in pharmacies", Importance: 5, Achievability: 4}, false); err != nil {
		t.Fatal(err)
	}
	resp, body := s.get("/")
	wantStatus(t, resp, body, http.StatusOK)
	wantIn(t, body, "INPUD (inpud)", "national", "africa", // this network
		"Member networks</dt><dd>1", "Stewards</dt><dd>INPUD", // federation
		"Sync health", "connected of 0 known", "Last pull", "Versions refused", // sync
		"Naloxone in pharmacies", "Only INPUD (inpud)'s own nodes (private)") // recent records

	loner := loggedIn(t, startNode(t, "loner", false))
	_, body = loner.get("/")
	wantIn(t, body, "belongs to no federation yet", "No records yet")
}

func TestAuditFromTemplateAnsweredItemByItem(t *testing.T) {
	n := startNode(t, "tanpud", false)
	s := loggedIn(t, n)

	// The new-audit form offers every IDUIT template the node knows.
	resp, body := s.get("/audits/new")
	wantStatus(t, resp, body, http.StatusOK)
	for _, tpl := range n.Templates() {
		wantIn(t, body, `<option value="`+tpl.ID+`"`)
	}
	wantIn(t, body, `<label for="subject">`, `<label for="place">`, `<label for="period">`)

	// Bad input: the services' sentences next to the fields, input kept.
	bad := url.Values{"template": {"iduit-bg/3.2"}, "subject": {""}, "place": {"Dar es Salaam"}, "period": {"2026-Q1"}}
	resp, body = s.post("/audits", bad)
	wantStatus(t, resp, body, http.StatusBadRequest)
	wantIn(t, body, "subject: is required", `value="Dar es Salaam"`, `value="2026-Q1"`, `<option value="iduit-bg/3.2" selected>`)
	bad.Set("subject", "City OAT clinic")
	bad.Set("conducted_on", "31/03/2026")
	resp, body = s.post("/audits", bad)
	wantStatus(t, resp, body, http.StatusBadRequest)
	wantIn(t, body, `conducted_on: "31/03/2026" is not a date: use YYYY-MM-DD`, `value="City OAT clinic"`)
	bad.Set("conducted_on", "")
	bad.Set("template", "iduit-bg/99")
	resp, body = s.post("/audits", bad)
	wantStatus(t, resp, body, http.StatusBadRequest)
	wantIn(t, body, `"iduit-bg/99" is not a template this node knows`)
	if recs, _ := n.Records().List(records.Query{}); len(recs) != 0 {
		t.Fatalf("bad input wrote %d record(s)", len(recs))
	}

	bad.Set("template", "iduit-bg/3.2")
	resp, body = s.post("/audits", bad)
	wantStatus(t, resp, body, http.StatusSeeOther)
	path := resp.Header.Get("Location")
	id := strings.TrimPrefix(path, "/audits/")

	// The checklist, item by item, grouped by section, with the five answers.
	resp, body = s.get(path)
	wantStatus(t, resp, body, http.StatusOK)
	tpl, _ := n.Template("iduit-bg/3.2")
	wantIn(t, body, tpl.Sections[0].Title, tpl.Sections[0].Items[0].Text, tpl.Sections[0].Items[13].Text,
		`name="answer.3.2.1" value="yes"`, `name="answer.3.2.1" value="partly"`, `name="answer.3.2.1" value="no"`,
		`name="answer.3.2.1" value="unknown"`, `name="answer.3.2.1" value="na"`, "not applicable",
		`<label for="note-3.2.1">`, "No score yet (0 of 14 items answered)")

	// Without JavaScript: the whole form, all answers at once.
	resp, body = s.post("/audits/"+id+"/answers", url.Values{"answer.3.2.1": {"yes"}, "note.3.2.1": {"Doses are adequate"}, "answer.3.2.2": {"no"}, "note.3.2.2": {""}, "note.3.2.3": {""}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	rec, _ := n.Records().Get(id)
	a := rec.Body.(*model.Audit)
	if len(a.Answers) != 2 || a.Answers["3.2.1"].Answer != model.AnswerYes || a.Answers["3.2.1"].Note != "Doses are adequate" || a.Answers["3.2.2"].Answer != model.AnswerNo {
		t.Fatalf("answers after the form: %+v", a.Answers)
	}
	_, body = s.get(path)
	wantIn(t, body, `value="yes" checked`, "Doses are adequate", "50% (2 of 14 items scored)", `<svg class="bar"`, `width="100" height="14"`)

	// With JavaScript: one answer per request, answered with JSON and the
	// redrawn score bars.
	resp, body = s.fetch("/audits/"+id+"/answers", url.Values{"answer.3.2.3": {"partly"}, "note.3.2.3": {""}})
	wantStatus(t, resp, body, http.StatusOK)
	var got struct {
		ID      string `json:"id"`
		Version int    `json:"version"`
		Scores  string `json:"scores"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.ID != id || got.Version != 3 || !strings.Contains(got.Scores, "50% (3 of 14 items scored)") {
		t.Fatalf("fetch answer: %v %s", err, body)
	}

	// Bad answers: the CLI's sentences, next to the item; nothing written.
	resp, body = s.post("/audits/"+id+"/answers", url.Values{"answer.3.2.4": {"maybe"}, "note.3.2.4": {"kept"}})
	wantStatus(t, resp, body, http.StatusBadRequest)
	wantIn(t, body, `item 3.2.4: "maybe" is not an answer: use yes, partly, no, unknown or na (not applicable)`, ">kept</textarea>")
	resp, body = s.fetch("/audits/"+id+"/answers", url.Values{"answer.3.2.5": {"no"}, "note.3.2.5": {"call her on +255 754 123 456"}})
	wantStatus(t, resp, body, http.StatusBadRequest)
	wantIn(t, body, "Cairn keeps no personal identifiers", `"item":"3.2.5"`)
	if rec, _ := n.Records().Get(id); rec.Version != 3 {
		t.Fatalf("bad answers wrote version %d", rec.Version)
	}

	// The list, with its filters; a bad filter says what is allowed.
	resp, body = s.get("/audits?template=iduit-bg/3.2&origin=tanpud")
	wantStatus(t, resp, body, http.StatusOK)
	wantIn(t, body, "City OAT clinic", "3 / 14", "1 audit(s)")
	_, body = s.get("/audits?template=iduit-bg/3.1")
	wantIn(t, body, "No audits match")
	resp, body = s.get("/audits?origin=Not+A+Slug")
	wantStatus(t, resp, body, http.StatusBadRequest)
	wantIn(t, body, `origin: "Not A Slug" is not a network slug`, `value="Not A Slug"`)
}

func TestPriorityBoard(t *testing.T) {
	n := startNode(t, "tanpud", false)
	s := loggedIn(t, n)

	resp, body := s.get("/priorities")
	wantStatus(t, resp, body, http.StatusOK)
	wantIn(t, body, "Changes needed", "Positive achievements", "Community actions", "top-right quadrant")

	// Bad input, each with its sentence next to the field, input kept.
	for _, c := range []struct{ field, value, want string }{
		{"importance", "9", "importance: 9 is out of range: use a whole number from 1 (least important) to 5 (most important)"},
		{"achievability", "lots", `achievability: "lots" is not a whole number`},
		{"kind", "wish", `kind: "wish" is not a priority kind`},
		{"title", "", "title: is required"},
	} {
		form := url.Values{"title": {"Naloxone in pharmacies"}, "kind": {"change-needed"}, "importance": {"5"}, "achievability": {"4"}, "area": {"harm reduction"}}
		form.Set(c.field, c.value)
		resp, body = s.post("/priorities", form)
		wantStatus(t, resp, body, http.StatusBadRequest)
		wantIn(t, body, c.want, `value="harm reduction"`)
	}
	if recs, _ := n.Records().List(records.Query{}); len(recs) != 0 {
		t.Fatalf("bad input wrote %d record(s)", len(recs))
	}

	for _, p := range []url.Values{
		{"title": {"Naloxone in pharmacies"}, "kind": {"change-needed"}, "importance": {"5"}, "achievability": {"4"}},
		{"title": {"Peer-run drop-in opened"}, "kind": {"positive-achievement"}, "importance": {"3"}, "achievability": {"5"}},
		{"title": {"Monthly naloxone training"}, "kind": {"community-action"}, "importance": {"2"}, "achievability": {"2"}},
	} {
		resp, body = s.post("/priorities", p)
		wantStatus(t, resp, body, http.StatusSeeOther)
	}
	_, body = s.get("/priorities")
	// C1 sits in the highlighted top-right quadrant; the kinds stay apart.
	wantIn(t, body, `<td class="focus"><a href="/priorities/`, `class="marker" title="Naloxone in pharmacies">C1</a>`,
		`title="Peer-run drop-in opened">P1</a>`, `title="Monthly naloxone training">A1</a>`)
	if strings.Index(body, "Naloxone in pharmacies") > strings.Index(body, "Positive achievements") {
		t.Errorf("the change needed is not on its own board, before the positive achievements")
	}

	recs, _ := n.Records().List(records.Query{Kind: model.KindPriority})
	var change string
	for _, r := range recs {
		if r.Body.(*model.Priority).Kind == model.PriorityChange {
			change = r.ID
		}
	}
	// Moving: one step with a button, or to a place with the selects.
	resp, body = s.post("/priorities/"+change+"/move", url.Values{"importance": {"5"}, "achievability": {"4"}, "dir": {"right"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	resp, body = s.post("/priorities/"+change+"/move", url.Values{"importance": {"5"}, "achievability": {"5"}, "dir": {"up"}})
	wantStatus(t, resp, body, http.StatusBadRequest)
	wantIn(t, body, "importance: 6 is out of range")
	resp, body = s.post("/priorities/"+change+"/move", url.Values{"importance": {"2"}, "achievability": {"3"}, "dir": {"set"}, "from": {"detail"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	rec, _ := n.Records().Get(change)
	if p := rec.Body.(*model.Priority); p.Importance != 2 || p.Achievability != 3 || rec.Version != 3 {
		t.Fatalf("after the moves: importance %d, achievability %d, version %d", p.Importance, p.Achievability, rec.Version)
	}
	resp, body = s.get("/priorities/" + change)
	wantStatus(t, resp, body, http.StatusOK)
	wantIn(t, body, "importance 2, achievability 3", `aria-label="More important"`, "Who can see it")
}

func TestAudienceOfARecord(t *testing.T) {
	n := startNode(t, "tanpud", false)
	s := loggedIn(t, n)
	rec, err := n.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Naloxone in pharmacies", Importance: 5, Achievability: 4}, false)
	if err != nil {
		t.Fatal(err)
	}
	_, body := s.get("/priorities/" + rec.ID)
	wantIn(t, body, "Only TANPUD (tanpud)'s own nodes (private)", `value="private" checked`)

	// The same rules and sentences as cairn share.
	for _, c := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"mode": {"chosen"}, "other": {"everyone"}}, `"everyone" is not an audience: use private, members, network:SLUG or region:NAME`},
		{url.Values{"mode": {"chosen"}, "other": {""}}, "audience: is empty: use private, members, network:SLUG or region:NAME"},
		{url.Values{"mode": {"chosen"}, "other": {"private,members"}}, "private cannot be combined with other entries"},
		{url.Values{"mode": {"chosen"}, "other": {"network:Bad Slug"}}, `"network:Bad Slug" does not name a network`},
	} {
		resp, body := s.post("/records/"+rec.ID+"/audience", c.form)
		wantStatus(t, resp, body, http.StatusBadRequest)
		wantIn(t, body, c.want, `value="`+c.form.Get("other")+`"`)
	}
	resp, body := s.post("/records/"+rec.ID+"/audience", url.Values{"mode": {"chosen"}, "other": {"network:inpud, region:eeca"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	got, _ := n.Records().Get(rec.ID)
	if got.Audience != "network:inpud,region:eeca" {
		t.Fatalf("audience %q", got.Audience)
	}
	_, body = s.get("/priorities/" + rec.ID)
	wantIn(t, body, "The network inpud", "Member networks in the region eeca")
	resp, body = s.post("/records/"+rec.ID+"/audience", url.Values{"mode": {"members"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	if got, _ := n.Records().Get(rec.ID); got.Audience != "members" {
		t.Fatalf("audience %q", got.Audience)
	}

	// A committee report gets the same section on its record page.
	rep, err := n.Records().AddReport(model.Report{Committee: model.Committee{Name: "OAT clinic committee"}, MeetingDate: "2026-03-02", Service: "City OAT clinic"}, false)
	if err != nil {
		t.Fatal(err)
	}
	resp, body = s.get("/records/" + rep.ID)
	wantStatus(t, resp, body, http.StatusOK)
	wantIn(t, body, "OAT clinic committee", "Who can see it", "committee report")
	resp, body = s.get("/records/NOPE")
	wantStatus(t, resp, body, http.StatusBadRequest)
	wantIn(t, body, `"NOPE" is not a record id`)
	resp, body = s.get("/records/" + strings.Repeat("0", 26))
	wantStatus(t, resp, body, http.StatusNotFound)
	wantIn(t, body, "no record with that id")
}

func TestLanguages(t *testing.T) {
	n := startNode(t, "tanpud", false)
	s := loggedIn(t, n)
	_, body := s.get("/")
	wantIn(t, body, `<html lang="en">`, "Overview", `<label for="language">Language</label>`)
	resp, body := s.post("/language", url.Values{"language": {"fr"}, "back": {"/audits"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/audits" {
		t.Fatalf("after switching language: back to %q", loc)
	}
	_, body = s.get("/priorities")
	wantIn(t, body, `<html lang="fr">`, "Vue d'ensemble", "Priorités", "Changements nécessaires", "Importance") // untranslated keys fall back to English
	resp, body = s.post("/language", url.Values{"language": {"xx"}})
	wantStatus(t, resp, body, http.StatusBadRequest)
	wantIn(t, body, `"xx" is not a language this interface has: use one of en, es, fr, ru`)

	// The node's --language is the default.
	ru := newSite(t, n, "ru")
	code, _, _ := ru.ui.LoginCode()
	ru.get("/login?code=" + code)
	_, body = ru.get("/")
	wantIn(t, body, `<html lang="ru">`, "Обзор", "Аудиты")
}
