package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/inpud/cairn/node"
)

// testNode starts a real node (Badger in a temp dir, API on 127.0.0.1:0)
// and returns its data dir. It stops at the end of the test.
func testNode(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	cfg := node.DefaultConfig(dir)
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Network = node.Profile{Slug: "tanpud", Name: "Tanzania Network of People who Use Drugs", Level: "national", Country: "TZ", Region: "africa"}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	return dir
}

// cairn runs one command line against the node in dir.
func cairn(t *testing.T, dir string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"cairn", "--data-dir", dir}, args...)
	err = Run(context.Background(), full, &out, &errb)
	return out.String(), errb.String(), err
}

// ok runs a command that must succeed and returns its output.
func ok(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, errs, err := cairn(t, dir, args...)
	if err != nil {
		t.Fatalf("cairn %s: %v\n%s", strings.Join(args, " "), err, errs)
	}
	return out
}

// fails runs a command that must fail with a message containing want.
func fails(t *testing.T, dir, want string, args ...string) {
	t.Helper()
	_, _, err := cairn(t, dir, args...)
	if err == nil {
		t.Fatalf("cairn %s succeeded; want an error containing %q", strings.Join(args, " "), want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("cairn %s: error %q does not contain %q", strings.Join(args, " "), err, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error should be one sentence on one line: %q", err)
	}
}

func jsonOf[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}

type rec struct {
	ID       string          `json:"id"`
	Kind     string          `json:"kind"`
	Origin   string          `json:"origin"`
	Version  int             `json:"version"`
	Deleted  bool            `json:"deleted"`
	Audience string          `json:"audience"`
	Hash     string          `json:"hash"`
	Body     json.RawMessage `json:"body"`
	Scores   []struct {
		Section string  `json:"section"`
		Scored  int     `json:"scored"`
		Score   float64 `json:"score"`
	} `json:"scores"`
}

// countRecords is what `cairn status --json` says the node holds.
func countRecords(t *testing.T, dir string) map[string]int {
	t.Helper()
	st := jsonOf[struct {
		Records map[string]int `json:"records"`
	}](t, ok(t, dir, "status", "--json"))
	return st.Records
}

func TestStatusAndTemplates(t *testing.T) {
	dir := testNode(t)
	out := ok(t, dir, "status")
	for _, want := range []string{"tanpud", "Tanzania Network", "national", "TZ", "12D3KooW", "127.0.0.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not show %q:\n%s", want, out)
		}
	}
	st := jsonOf[map[string]any](t, ok(t, dir, "status", "--json"))
	if id, _ := st["id"].(string); !strings.HasPrefix(id, "12D3KooW") {
		t.Errorf("status --json id = %v, want the peer ID", st["id"])
	}

	list := jsonOf[[]struct {
		ID    string `json:"id"`
		Items int    `json:"items"`
	}](t, ok(t, dir, "template", "list", "--json"))
	if len(list) != 13 {
		t.Fatalf("template list has %d templates, want 12 checklists + the whole guide", len(list))
	}
	total := 0
	for _, tm := range list {
		if tm.ID != "iduit-bg" {
			total += tm.Items
		}
	}
	if total != 101 {
		t.Errorf("the 12 checklists have %d items, want 101", total)
	}
	out = ok(t, dir, "template", "show", "iduit-bg/3.5")
	if !strings.Contains(out, "3.5.1") || !strings.Contains(out, "Overdose") {
		t.Errorf("template show iduit-bg/3.5:\n%s", out)
	}
	fails(t, dir, `no template "iduit-bg/9"`, "template", "show", "iduit-bg/9")
}

func TestAuditLifecycle(t *testing.T) {
	dir := testNode(t)
	id := strings.TrimSpace(ok(t, dir, "audit", "new", "--template", "iduit-bg/3.1", "--subject", "City NSP drop-in", "--place", "Dar es Salaam", "--period", "2026-Q1"))
	if len(id) != 26 {
		t.Fatalf("audit new printed %q, want the new id", id)
	}
	ok(t, dir, "audit", "answer", id, "3.1.1", "yes", "--note", "kits were on the counter")
	ok(t, dir, "audit", "answer", id, "3.1.2", "partly")
	ok(t, dir, "audit", "answer", id, "3.1.3", "no")
	ok(t, dir, "audit", "answer", id, "3.1.4", "na")
	ok(t, dir, "audit", "answer", id, "3.1.5", "unknown")

	r := jsonOf[rec](t, ok(t, dir, "audit", "show", id, "--json"))
	if r.Version != 6 || r.Origin != "tanpud" || r.Audience != "private" {
		t.Errorf("after five answers: version %d origin %s audience %s; want 6, tanpud, private", r.Version, r.Origin, r.Audience)
	}
	if len(r.Scores) != 1 || r.Scores[0].Scored != 3 || r.Scores[0].Score != 0.5 {
		t.Errorf("score = %+v; want (1 + 0.5 + 0) / 3 = 0.5", r.Scores)
	}
	out := ok(t, dir, "audit", "show", id)
	for _, want := range []string{"City NSP drop-in", "3.1 Needle and syringe", "Score 50%", "[yes]", "note: kits were on the counter", "[not applicable]", "[—]"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit show does not show %q:\n%s", want, out)
		}
	}

	// Answers from a CSV file: all or nothing, errors name the line.
	good := filepath.Join(t.TempDir(), "answers.csv")
	os.WriteFile(good, []byte("item,answer,note\n3.1.6,yes,referrals to TB clinic\n3.1.7,no,\n"), 0o600)
	ok(t, dir, "audit", "answers", id, "--file", good)
	r = jsonOf[rec](t, ok(t, dir, "audit", "show", id, "--json"))
	if r.Version != 7 {
		t.Errorf("a whole file is one new version: got version %d, want 7", r.Version)
	}
	bad := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(bad, []byte("3.1.1,no\n3.1.2,sometimes\n"), 0o600)
	fails(t, dir, `line 2: answer: item 3.1.2: "sometimes" is not an answer`, "audit", "answers", id, "--file", bad)
	os.WriteFile(bad, []byte("3.1.1,no\n9.9.9,yes\n"), 0o600)
	fails(t, dir, `line 2: item: "9.9.9" is not an item of template iduit-bg/3.1@2017`, "audit", "answers", id, "--file", bad)
	os.WriteFile(bad, []byte("3.1.1,no\n\"3.1.2,yes\n"), 0o600)
	fails(t, dir, "line 2: not valid CSV", "audit", "answers", id, "--file", bad)
	os.WriteFile(bad, []byte("3.1.1,no\n3.1.1,yes\n"), 0o600)
	fails(t, dir, "line 2: item: item 3.1.1 is answered twice (first on line 1)", "audit", "answers", id, "--file", bad)
	jsonBad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(jsonBad, []byte("[\n  {\"item\": \"3.1.1\", \"answer\": \"no\"},\n  {\"item\": \"3.1.2\", \"answer\": yes}\n]\n"), 0o600)
	fails(t, dir, "line 3: not valid JSON", "audit", "answers", id, "--file", jsonBad)
	if v := jsonOf[rec](t, ok(t, dir, "audit", "show", id, "--json")).Version; v != 7 {
		t.Fatalf("failed answer files wrote something: version %d, want 7", v)
	}
	jsonGood := filepath.Join(t.TempDir(), "good.json")
	os.WriteFile(jsonGood, []byte(`{"3.1.1": "partly", "3.1.2": "yes"}`), 0o600)
	ok(t, dir, "audit", "answers", id, "--file", jsonGood)

	// Bad input on single answers: nothing written.
	fails(t, dir, `"9.9" is not an item of template iduit-bg/3.1@2017`, "audit", "answer", id, "9.9", "yes")
	fails(t, dir, `"maybe" is not an answer: use yes, partly, no, unknown or na`, "audit", "answer", id, "3.1.1", "maybe")
	fails(t, dir, "looks like an e-mail address", "audit", "answer", id, "3.1.1", "yes", "--note", "ask nurse.k@clinic.org")
	fails(t, dir, "is not valid UTF-8", "audit", "answer", id, "3.1.1", "yes", "--note", "bad \xff")
	fails(t, dir, "at most 2000 are allowed", "audit", "answer", id, "3.1.1", "yes", "--note", strings.Repeat("n", 2001))
	ok(t, dir, "audit", "answer", id, "3.1.1", "yes", "--note", "the service's public line is +255 22 211 0000", "--allow-identifiers")
	if v := jsonOf[rec](t, ok(t, dir, "audit", "show", id, "--json")).Version; v != 9 {
		t.Fatalf("version %d after the refused answers; want 9 (only the two good writes)", v)
	}

	// New audits: bad input.
	fails(t, dir, `template: "iduit-bg/9.9" is not a template`, "audit", "new", "--template", "iduit-bg/9.9", "--subject", "x", "--place", "y", "--period", "z")
	fails(t, dir, "subject: is required", "audit", "new", "--template", "iduit-bg/3.1", "--subject", " ", "--place", "y", "--period", "z")
	fails(t, dir, "phone number", "audit", "new", "--template", "iduit-bg/3.1", "--subject", "outreach by 0712 345 678", "--place", "y", "--period", "z")
	fails(t, dir, "conducted_on", "audit", "new", "--template", "iduit-bg/3.1", "--subject", "x", "--place", "y", "--period", "z", "--conducted-on", "31/12/2026")
	fails(t, dir, "needs ID ITEM ANSWER", "audit", "answer", id, "3.1.1")
	fails(t, dir, "no record with that id", "audit", "answer", "01M84ER6Z6X9PRPPN237Q29V6G", "3.1.1", "yes")
	fails(t, dir, "is not a record id", "audit", "show", "nonsense")

	// Listing and filters.
	id2 := strings.TrimSpace(ok(t, dir, "audit", "new", "--template", "iduit-bg/3.2", "--subject", "OAT clinic", "--place", "Mwanza", "--period", "2026"))
	all := jsonOf[[]rec](t, ok(t, dir, "audit", "list", "--json"))
	if len(all) != 2 || all[0].ID != id2 {
		t.Fatalf("audit list: %d audits, first %s; want 2, newest (%s) first", len(all), all[0].ID, id2)
	}
	nsp := jsonOf[[]rec](t, ok(t, dir, "audit", "list", "--template", "iduit-bg/3.1", "--json"))
	if len(nsp) != 1 || nsp[0].ID != id {
		t.Fatalf("audit list --template iduit-bg/3.1 = %v", nsp)
	}
	if out := ok(t, dir, "audit", "list"); !strings.Contains(out, "City NSP drop-in") || !strings.Contains(out, "OAT clinic") {
		t.Errorf("audit list:\n%s", out)
	}
	fails(t, dir, "is not a template", "audit", "list", "--template", "nope/1")
	if n := countRecords(t, dir)["audit"]; n != 2 {
		t.Errorf("status counts %d audits, want 2", n)
	}
}

func TestPriorities(t *testing.T) {
	dir := testNode(t)
	c1 := strings.TrimSpace(ok(t, dir, "priority", "add", "--title", "Naloxone in pharmacies without prescription", "--kind", "change", "--importance", "5", "--achievability", "4", "--area", "overdose", "--target", "Ministry of Health", "--ask", "List naloxone as an over-the-counter medicine"))
	p1 := strings.TrimSpace(ok(t, dir, "priority", "add", "--title", "Peer-run drop-in opened", "--kind", "achievement", "--importance", "3", "--achievability", "5"))
	a1 := strings.TrimSpace(ok(t, dir, "priority", "add", "--title", "Monthly community meetings", "--kind", "action", "--importance", "2", "--achievability", "2"))

	fails(t, dir, "importance: 7 is out of range: use a whole number from 1", "priority", "add", "--title", "x", "--kind", "change", "--importance", "7", "--achievability", "4")
	fails(t, dir, "achievability: 0 is out of range", "priority", "add", "--title", "x", "--kind", "change", "--importance", "3", "--achievability", "0")
	fails(t, dir, `"wish" is not a priority kind`, "priority", "add", "--title", "x", "--kind", "wish", "--importance", "3", "--achievability", "3")
	fails(t, dir, "nothing to change", "priority", "update", c1)
	if n := countRecords(t, dir)["priority"]; n != 3 {
		t.Fatalf("%d priorities after refused adds, want 3", n)
	}

	// Moving a priority on the board is an update.
	ok(t, dir, "priority", "update", a1, "--importance", "4", "--achievability", "5")
	r := jsonOf[rec](t, ok(t, dir, "priority", "show", a1, "--json"))
	var body struct {
		Importance, Achievability int
		Title                     string
	}
	json.Unmarshal(r.Body, &body)
	if r.Version != 2 || body.Importance != 4 || body.Achievability != 5 || body.Title != "Monthly community meetings" {
		t.Fatalf("after update: version %d, %+v", r.Version, body)
	}
	fails(t, dir, "importance: 9 is out of range", "priority", "update", a1, "--importance", "9")

	out := ok(t, dir, "priority", "show", c1)
	for _, want := range []string{"Naloxone in pharmacies", "change-needed", "5 of 5", "top-right quadrant", "Ministry of Health"} {
		if !strings.Contains(out, want) {
			t.Errorf("priority show missing %q:\n%s", want, out)
		}
	}
	list := ok(t, dir, "priority", "list")
	if strings.Index(list, c1) > strings.Index(list, p1) || strings.Index(list, p1) > strings.Index(list, a1) {
		t.Errorf("priority list should keep the kinds apart, changes first:\n%s", list)
	}

	board := ok(t, dir, "priority", "board")
	lines := strings.Split(board, "\n")
	row := func(imp string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, " "+imp+" │") {
				return l
			}
		}
		t.Fatalf("board has no row for importance %s:\n%s", imp, board)
		return ""
	}
	if r5 := row("5"); !strings.Contains(r5, "║ C1") {
		t.Errorf("C1 (importance 5, achievability 4) should sit just right of the quadrant line: %q", r5)
	}
	if r4 := row("4"); !strings.Contains(r4, "A1") || strings.Index(r4, "A1") < strings.Index(r4, "║") {
		t.Errorf("A1 (4, 5) should be inside the top-right quadrant: %q", r4)
	}
	if r3 := row("3"); !strings.Contains(r3, "P1") || strings.Contains(r3, "║") {
		t.Errorf("P1 (3, 5) is outside the quadrant: %q", r3)
	}
	for _, want := range []string{"Changes needed (C)", "Positive achievements (P)", "Community actions (A)", "achievability →"} {
		if !strings.Contains(board, want) {
			t.Errorf("board lacks %q:\n%s", want, board)
		}
	}
	entries := jsonOf[[]BoardEntry](t, ok(t, dir, "priority", "board", "--json"))
	top := 0
	for _, e := range entries {
		if e.ID == "" {
			t.Error("board entry without id")
		}
		if e.TopRight {
			top++
		}
	}
	if len(entries) != 3 || top != 2 {
		t.Errorf("board --json: %d entries, %d top-right; want 3 and 2", len(entries), top)
	}
}

func TestReports(t *testing.T) {
	dir := testNode(t)
	id := strings.TrimSpace(ok(t, dir, "report", "add", "--committee", "OAT clinic community committee", "--date", "2026-02-03", "--service", "Mwananyamala OAT clinic", "--issue", "Doses are cut as punishment", "--issue", "Clinic opens too late for people who work"))
	out := ok(t, dir, "report", "show", id)
	for _, want := range []string{"OAT clinic community committee", "2026-02-03", "Doses are cut as punishment", "opens too late"} {
		if !strings.Contains(out, want) {
			t.Errorf("report show missing %q:\n%s", want, out)
		}
	}
	file := filepath.Join(t.TempDir(), "report.json")
	os.WriteFile(file, []byte(`{
  "committee": {"name": "NSP committee", "services": ["NSP"]},
  "meeting_date": "2026-03-10",
  "service": "City NSP",
  "attendance": [{"role": "peer", "count": 9}, {"role": "staff", "count": 2}],
  "commodities_review": [{"item": "10 ml syringes", "right_types": false, "enough": true, "note": "people who use salts need insulin syringes"}],
  "follow_ups": ["Write to the chief medical officer"]
}`), 0o600)
	id2 := strings.TrimSpace(ok(t, dir, "report", "add", "--file", file, "--issue", "No insulin syringes"))
	out = ok(t, dir, "report", "show", id2)
	for _, want := range []string{"NSP committee", "9 peer", "10 ml syringes; right types and sizes: no; enough: yes", "No insulin syringes", "chief medical officer"} {
		if !strings.Contains(out, want) {
			t.Errorf("report show (from file) missing %q:\n%s", want, out)
		}
	}
	list := jsonOf[[]rec](t, ok(t, dir, "report", "list", "--json"))
	if len(list) != 2 || list[0].ID != id2 {
		t.Fatalf("report list: %v", list)
	}

	fails(t, dir, `date: "2026-02-30" is not a date: use YYYY-MM-DD`, "report", "add", "--committee", "c", "--date", "2026-02-30", "--service", "s")
	fails(t, dir, "--committee is required", "report", "add", "--date", "2026-02-03", "--service", "s")
	fails(t, dir, "phone number", "report", "add", "--committee", "c", "--date", "2026-02-03", "--service", "s", "--issue", "Call the nurse on 0712 345 678")
	os.WriteFile(file, []byte("{\n  \"committee\": {\"name\": \"x\"},\n  \"meeting_date\": 20260310\n}"), 0o600)
	fails(t, dir, "line 3: meeting_date should be string", "report", "add", "--file", file)
	os.WriteFile(file, []byte("{\n  \"committee\": {\"name\": \"x\"},\n  \"colour\": \"red\"\n}"), 0o600)
	fails(t, dir, `unknown field "colour"`, "report", "add", "--file", file)
	if n := countRecords(t, dir)["committee-report"]; n != 2 {
		t.Errorf("%d reports after refused adds, want 2", n)
	}
}

func TestHistoryAndDelete(t *testing.T) {
	dir := testNode(t)
	id := strings.TrimSpace(ok(t, dir, "priority", "add", "--title", "OAT in prisons", "--kind", "change", "--importance", "5", "--achievability", "2"))
	ok(t, dir, "priority", "update", id, "--achievability", "3")
	ok(t, dir, "record", "delete", id)
	hist := jsonOf[[]rec](t, ok(t, dir, "record", "history", id, "--json"))
	if len(hist) != 3 || !hist[2].Deleted || hist[0].Deleted || hist[0].Version != 1 || hist[2].Version != 3 {
		t.Fatalf("history after add, update, delete: %+v", hist)
	}
	out := ok(t, dir, "record", "history", id)
	if !strings.Contains(out, "deleted") || !strings.Contains(out, "earlier") {
		t.Errorf("history text:\n%s", out)
	}
	if list := jsonOf[[]rec](t, ok(t, dir, "priority", "list", "--json")); len(list) != 0 {
		t.Errorf("a deleted priority still listed: %v", list)
	}
	fails(t, dir, "has been deleted", "record", "delete", id)
	fails(t, dir, "has been deleted", "priority", "update", id, "--importance", "1")
	fails(t, dir, "no record with that id", "record", "history", "01M84ER6Z6X9PRPPN237Q29V6G")
	if n := countRecords(t, dir)["priority"]; n != 0 {
		t.Errorf("status counts %d priorities after delete, want 0", n)
	}
}

func TestNoNodeRunning(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "empty")
	want := fmt.Sprintf("no node is running for %s; start one with: cairn start --data-dir %s", dir, dir)
	fails(t, dir, want, "status")
	fails(t, dir, want, "audit", "list")
	// A node that ran and stopped leaves no address behind.
	d2 := filepath.Join(t.TempDir(), "d2")
	cfg := node.DefaultConfig(d2)
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Network = node.Profile{Slug: "x", Name: "X", Level: "local"}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.Close()
	fails(t, d2, "no node is running for "+d2, "status")
}

func TestStartInitAndConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	fails(t, dir, "has no node yet; start one with: cairn start --data-dir", "start", "--api", "127.0.0.1:0")
	fails(t, dir, `level: "county" is not a level: use global, regional, national or local`, "init", "--network", "tanpud", "--name", "TANPUD", "--level", "county")
	fails(t, dir, `network: "TANPUD" is not a network slug`, "init", "--network", "TANPUD", "--name", "TANPUD", "--level", "national")
	fails(t, dir, "is not a loopback address", "init", "--network", "tanpud", "--name", "TANPUD", "--level", "national", "--api", "0.0.0.0:7410")
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("refused init created the data dir")
	}
	out := ok(t, dir, "init", "--network", "tanpud", "--name", "TANPUD", "--level", "national", "--country", "tz")
	if !strings.Contains(out, "initialised node 12D3KooW") {
		t.Errorf("init printed %q", out)
	}
	for _, f := range []string{"identity.key", "api.token", "network.json"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want a private file (0600)", f, err, fi.Mode().Perm())
		}
	}
	fails(t, dir, "already holds the node of network tanpud", "init", "--network", "tanpud", "--name", "TANPUD", "--level", "national")

	// config.yaml in the data dir: unknown options are refused.
	os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("api: 127.0.0.1:0\napi-port: 9\n"), 0o600)
	fails(t, dir, `unknown option "api-port"`, "start")
	os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("api: 127.0.0.1:0\nlog-format: yaml\n"), 0o600)
	fails(t, dir, `log-format: "yaml" is not a log format`, "start")
	os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("api: 127.0.0.1:0\nlog-format: json\nlisten: [/ip4/127.0.0.1/tcp/0]\n"), 0o600)
	fails(t, dir, "belongs to network tanpud, not inpud", "start", "--network", "inpud")

	// start runs until its context ends, printing one ready line.
	ctx, cancel := context.WithCancel(context.Background())
	var out1, err1 syncBuffer
	done := make(chan error, 1)
	go func() { done <- Run(ctx, []string{"cairn", "--data-dir", dir, "start"}, &out1, &err1) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out1.String(), "ready") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out1.String(), "of network tanpud ready: API http://127.0.0.1:") {
		cancel()
		t.Fatalf("start printed %q, stderr %q", out1.String(), err1.String())
	}
	if strings.Count(out1.String(), "\n") != 1 {
		t.Errorf("start should print one ready line, printed %q", out1.String())
	}
	if !strings.Contains(err1.String(), `"msg":"node ready"`) {
		t.Errorf("log-format json from config.yaml not applied; logs: %q", err1.String())
	}
	// A second node on the same data dir is refused.
	fails(t, dir, "is in use by another cairn node", "start", "--api", "127.0.0.1:0")
	// Flags beat config.yaml: the running node answers.
	if st := ok(t, dir, "status"); !strings.Contains(st, "tanpud") {
		t.Errorf("status: %s", st)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("start returned %v after shutdown", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("start did not stop within 30 s of its context ending")
	}
	fails(t, dir, "no node is running", "status")
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  stdsync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
