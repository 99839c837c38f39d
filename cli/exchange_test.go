package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inpud/cairn/node/api"
)

// fill records a little of everything on the node in dir.
func fill(t *testing.T, dir string) {
	t.Helper()
	a := strings.TrimSpace(ok(t, dir, "audit", "new", "--template", "iduit-bg/3.5", "--subject", "Outreach overdose response", "--place", "Arusha", "--period", "2026-H1"))
	ok(t, dir, "audit", "answer", a, "3.5.1", "yes", "--note", "naloxone training monthly")
	ok(t, dir, "audit", "answer", a, "3.5.2", "no")
	p := strings.TrimSpace(ok(t, dir, "priority", "add", "--title", "=HYPERLINK(\"x\") naloxone", "--kind", "change", "--importance", "5", "--achievability", "4"))
	ok(t, dir, "priority", "update", p, "--achievability", "5")
	ok(t, dir, "report", "add", "--committee", "NSP committee", "--date", "2026-01-15", "--service", "City NSP", "--issue", "No 1 ml syringes", "--issue", "Closed on weekends")
	gone := strings.TrimSpace(ok(t, dir, "priority", "add", "--title", "Dropped idea", "--kind", "action", "--importance", "1", "--achievability", "1"))
	ok(t, dir, "record", "delete", gone)
}

func TestExportImportRoundTrip(t *testing.T) {
	src := testNode(t)
	fill(t, src)
	exp := filepath.Join(t.TempDir(), "export.ndjson")
	ok(t, src, "export", "--out", exp)
	fails(t, src, "already exists", "export", "--out", exp)
	orig, _ := os.ReadFile(exp)
	lines := strings.Split(strings.TrimSpace(string(orig)), "\n")
	for _, l := range lines {
		var w struct {
			ID string `json:"id"`
		}
		if json.Unmarshal([]byte(l), &w); len(w.ID) != 26 {
			t.Fatalf("export line without id: %s", l)
		}
	}

	dst := testNode(t)
	out := ok(t, dst, "import", exp)
	if !strings.Contains(out, "imported 8, skipped 0 (already held), rejected 0") {
		t.Fatalf("import printed %q", out)
	}
	if len(lines) != 8 {
		t.Fatalf("export has %d envelopes, want 8 (3 audit versions, 2 priority, 1 report, 2 for the deleted priority)", len(lines))
	}
	again := ok(t, dst, "import", exp)
	if !strings.Contains(again, "imported 0, skipped 8") {
		t.Fatalf("second import is not idempotent: %q", again)
	}
	back := filepath.Join(t.TempDir(), "back.ndjson")
	ok(t, dst, "export", "--out", back)
	got, _ := os.ReadFile(back)
	if !bytes.Equal(orig, got) {
		t.Fatalf("re-exported envelopes differ from the original export\nwant:\n%s\ngot:\n%s", orig, got)
	}
	// The imported records read back as the other network's, not ours.
	for _, r := range jsonOf[[]rec](t, ok(t, dst, "audit", "list", "--json")) {
		if r.Origin != "tanpud" {
			t.Errorf("imported audit origin %s", r.Origin)
		}
	}
	if hist := jsonOf[[]rec](t, ok(t, dst, "record", "history", jsonOf[[]rec](t, ok(t, dst, "audit", "list", "--json"))[0].ID, "--json")); len(hist) != 3 {
		t.Errorf("imported audit has %d versions, want 3", len(hist))
	}
}

func TestImportRejectsTampering(t *testing.T) {
	src := testNode(t)
	fill(t, src)
	exp := filepath.Join(t.TempDir(), "export.ndjson")
	ok(t, src, "export", "--out", exp)
	b, _ := os.ReadFile(exp)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")

	// Change one word inside the signed payload of line 2.
	var w struct {
		ID      string `json:"id"`
		Payload []byte `json:"payload"`
		Sig     []byte `json:"sig"`
	}
	json.Unmarshal([]byte(lines[1]), &w)
	w.Payload = bytes.Replace(w.Payload, []byte(`"version":`), []byte(`"version": `), 1)
	tampered, _ := json.Marshal(w)
	lines[1] = string(tampered)
	lines = append(lines, `{"id":"x","payload":"`+base64.StdEncoding.EncodeToString([]byte("not json"))+`","sig":""}`, `this is not json`)
	bad := filepath.Join(t.TempDir(), "tampered.ndjson")
	os.WriteFile(bad, []byte(strings.Join(lines, "\n")+"\n"), 0o600)

	dst := testNode(t)
	_, stderr, err := cairn(t, dst, "import", bad)
	if err == nil || !strings.Contains(err.Error(), "3 line(s) rejected, so nothing was imported") {
		t.Fatalf("import of a tampered file: %v", err)
	}
	for _, want := range []string{"line 2 (record " + w.ID + "): signature does not match", "line 9", "line 10: not a Cairn envelope"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("rejections do not name %q:\n%s", want, stderr)
		}
	}
	if n := countRecords(t, dst); n["audit"]+n["priority"]+n["committee-report"] != 0 {
		t.Fatalf("all-or-nothing import stored records: %v", n)
	}
	res := jsonOf[api.ImportResult](t, func() string {
		out, _, _ := cairn(t, dst, "import", bad, "--skip-rejected", "--json")
		return out
	}())
	if res.Imported != 7 || len(res.Rejected) != 3 || res.Rejected[0].Line != 2 || res.Rejected[0].ID != w.ID {
		t.Fatalf("--skip-rejected: %+v", res)
	}
	fails(t, dst, "no such file", "import", filepath.Join(t.TempDir(), "missing.ndjson"))
}

func TestExportCSV(t *testing.T) {
	dir := testNode(t)
	fill(t, dir)
	out := filepath.Join(t.TempDir(), "records.csv")
	ok(t, dir, "export", "--out", out, "--format", "csv")
	f, _ := os.Open(out)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("export is not valid CSV: %v", err)
	}
	if strings.Join(rows[0], ",") != strings.Join(api.CSVHeader, ",") {
		t.Fatalf("header = %v", rows[0])
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	kinds := map[string]int{}
	for _, r := range rows[1:] {
		kinds[r[col["kind"]]]++
		if r[col["kind"]] == "priority" && !strings.HasPrefix(r[col["title"]], "'=") {
			t.Errorf("a title starting with = must not become a spreadsheet formula: %q", r[col["title"]])
		}
		if r[col["kind"]] == "audit" && r[col["item"]] == "3.5.1" && (r[col["answer"]] != "yes" || r[col["note"]] != "naloxone training monthly" || r[col["item_text"]] == "") {
			t.Errorf("audit answer row: %v", r)
		}
	}
	// One row per audit answer (2), per priority (1; the deleted one is not
	// current), per report issue (2).
	if kinds["audit"] != 2 || kinds["priority"] != 1 || kinds["committee-report"] != 2 {
		t.Fatalf("rows by kind = %v; want audit 2, priority 1, committee-report 2", kinds)
	}
	only := filepath.Join(t.TempDir(), "audits.csv")
	ok(t, dir, "export", "--out", only, "--format", "csv", "--kind", "audit")
	b, _ := os.ReadFile(only)
	if strings.Count(string(b), "\n") != 3 {
		t.Errorf("--kind audit: %s", b)
	}
	fails(t, dir, `--format: "xml" is not an export format`, "export", "--out", filepath.Join(t.TempDir(), "x"), "--format", "xml")
	fails(t, dir, `"diary" is not a record kind`, "export", "--out", filepath.Join(t.TempDir(), "y"), "--kind", "diary")
}
