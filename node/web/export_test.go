package web_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/api"
)

// TestExportButtons: each list page offers CSV and NDJSON downloads of its
// kind, and a download holds what the API's /v1/export serves.
func TestExportButtons(t *testing.T) {
	n := startNode(t, "tanpud", false)
	s := loggedIn(t, n)
	if _, err := n.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "=Naloxone in pharmacies", Importance: 5, Achievability: 4}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Records().AddReport(model.Report{Committee: model.Committee{Name: "NSP committee"}, MeetingDate: "2026-01-15", Service: "City NSP", IssuesRaised: []model.Issue{{Description: "No 1 ml syringes"}}}, false); err != nil {
		t.Fatal(err)
	}
	for page, kind := range map[string]string{"/audits": "&kind=audit", "/priorities": "&kind=priority", "/reports": "&kind=committee-report", "/": ""} {
		_, body := s.get(page)
		wantIn(t, body, `href="/export?format=csv`+kind+`" download>CSV (spreadsheet)</a>`, `href="/export?format=ndjson`+kind+`" download>NDJSON`)
	}

	resp, body := s.get("/export?format=csv&kind=priority")
	wantStatus(t, resp, body, http.StatusOK)
	if ct, cd := resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"); ct != "text/csv; charset=utf-8" || !strings.HasPrefix(cd, `attachment; filename="cairn-tanpud-priority-`) || !strings.HasSuffix(cd, `.csv"`) {
		t.Fatalf("CSV download headers: %q, %q", ct, cd)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 2 || strings.Join(rows[0], ",") != strings.Join(api.CSVHeader, ",") || rows[1][1] != "priority" || !slices.Contains(rows[1], "'=Naloxone in pharmacies") {
		t.Fatalf("CSV of priorities (%v): %q", err, rows)
	}
	var want bytes.Buffer
	if err := api.WriteExport(&want, n, "", api.FormatNDJSON); err != nil {
		t.Fatal(err)
	}
	resp, body = s.get("/export?format=ndjson")
	wantStatus(t, resp, body, http.StatusOK)
	if body != want.String() || strings.Count(body, "\n") != 2 {
		t.Fatalf("NDJSON download differs from the API's export:\n%s\nwant\n%s", body, want.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		var env map[string]any
		if err := json.Unmarshal([]byte(line), &env); err != nil || env["id"] == "" {
			t.Fatalf("NDJSON line %q: %v", line, err)
		}
	}

	resp, body = s.get("/export?format=xml")
	wantStatus(t, resp, body, http.StatusBadRequest)
	wantIn(t, body, `"xml" is not an export format: use csv or ndjson`)
	resp, body = s.get("/export?format=csv&kind=minutes")
	wantStatus(t, resp, body, http.StatusBadRequest)
	wantIn(t, body, `"minutes" is not a record kind: use audit, priority or report`)
}
