package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/api"
	"github.com/inpud/cairn/node/federation"
	"github.com/inpud/cairn/node/records"
)

// The browser tests drive Debian's chromium, headless, against a real
// node on 127.0.0.1: the pages, their forms and their JavaScript as a
// person uses them. CI installs chromium (.ci/run); without it they fail
// and say how to install it. Screenshots of every page go to
// $CAIRN_SCREENSHOTS when set, else to the test's temp dir; the log says
// where.

// chromiumPath is the browser the tests drive.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CAIRN_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the browser tests need Debian's chromium at %s (or its path in CAIRN_CHROMIUM): install it with `apt-get install chromium` (%v)", p, err)
	}
	return p
}

// browser is one headless chromium tab logged in to a node's web interface.
type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string // http://127.0.0.1:PORT
	out   string // where screenshots go
	width int    // of the window or the emulated screen, in CSS pixels
}

// bnode is a real node serving the web interface on its API address, as
// `cairn start` runs it, with its data dir (for the API token).
type bnode struct {
	*node.Node
	dir string
}

func startBrowserNode(t *testing.T, slug string) bnode {
	t.Helper()
	dir := filepath.Join(t.TempDir(), slug)
	cfg := node.DefaultConfig(dir)
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Registry = federation.FastConfig("")
	cfg.Network = node.Profile{Slug: slug, Name: strings.ToUpper(slug), Level: "national", Region: "africa"}
	cfg.Bootstrap = true
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return bnode{Node: n, dir: dir}
}

// apiGet calls the node's JSON API with its token, as the CLI does.
func (n bnode) apiGet(t *testing.T, method, path string, out any) {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(n.dir, "api.token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, "http://"+n.APIAddr()+path, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	cl := &http.Client{Timeout: 20 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s", method, path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
}

func newBrowser(t *testing.T, n bnode) *browser {
	t.Helper()
	exec := chromiumPath(t)
	out := os.Getenv("CAIRN_SCREENSHOTS")
	if out == "" {
		out = t.TempDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exec),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// Bound the whole session: a hung browser fails the test, not CI.
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx, base: "http://" + n.APIAddr(), out: out, width: 1280}
	t.Logf("screenshots of the pages go to %s", out)

	// Log in as `cairn ui` does: the API hands out a one-time link.
	var code api.LoginCodeResponse
	tok, err := os.ReadFile(filepath.Join(n.dir, "api.token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", b.base+"/v1/ui/login-code", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&code); err != nil || code.URL == "" {
		t.Fatalf("login code: %s %v", resp.Status, err)
	}
	b.do("open the login link", chromedp.Navigate(code.URL))
	b.waitPage("the overview after logging in", "/")
	return b
}

// do runs browser steps; what says what they were for.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func evalIn[T any](b *browser, expr string) (T, error) {
	return chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
}

// until polls a JavaScript condition in the page, for up to 20 seconds (a
// navigation in between is waited out).
func (b *browser) until(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := evalIn[bool](b, "Boolean("+cond+")")
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := evalIn[string](b, "document.body ? document.body.innerText : ''")
			b.t.Fatalf("timed out waiting for %s (%s; last error %v); the page says:\n%s", what, cond, err, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitPage waits until the browser shows a loaded page whose path matches
// the regular expression path, and returns the path.
func (b *browser) waitPage(what, path string) string {
	b.t.Helper()
	re := regexp.MustCompile("^" + path + "$")
	deadline := time.Now().Add(20 * time.Second)
	for {
		loc, err := evalIn[string](b, `document.readyState === "complete" && !window.cairnOld ? location.pathname : ""`)
		if err == nil && re.MatchString(loc) {
			return loc
		}
		if time.Now().After(deadline) {
			body, _ := evalIn[string](b, "document.body ? document.body.innerText : ''")
			b.t.Fatalf("timed out waiting for %s (a page at %s; at %q, last error %v); the page says:\n%s", what, path, loc, err, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// submit clicks a button that sends a form and waits for the next page at
// path.
func (b *browser) submit(what, button, path string) string {
	b.t.Helper()
	b.do(what, chromedp.Evaluate[chromedp.Void](`window.cairnOld = true`), chromedp.Click(chromedp.CSS(button)))
	return b.waitPage(what, path)
}

// open goes to a page of the interface and waits for it.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path))
	b.waitPage(path, regexp.QuoteMeta(path))
}

// fill types into a text box, replacing what it held.
func (b *browser) fill(sel, text string) {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	b.do("fill "+sel, chromedp.Evaluate[chromedp.Void](`document.querySelector(`+string(q)+`).value = ""`), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// text is the visible text of the page.
func (b *browser) text() string {
	b.t.Helper()
	s, err := evalIn[string](b, "document.body.innerText")
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// shot saves a full-page screenshot as NAME.png and checks the page fits
// the viewport's width (nothing to scroll sideways).
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.out, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
	wide, err := evalIn[string](b, `(function () {
		var w = `+strconv.Itoa(b.width)+`, out = [];
		if (document.documentElement.scrollWidth > w) { out.push("the page, " + document.documentElement.scrollWidth + "px"); }
		document.querySelectorAll("body *").forEach(function (e) {
			var r = e.getBoundingClientRect();
			if (r.right > w + 1 && r.width > 0 && !e.closest(".skip, .offscreen")) { out.push(e.tagName + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : "") + " " + Math.round(r.right) + "px"); }
		});
		return out.slice(0, 5).join(", ");
	})()`)
	if err != nil {
		b.t.Fatal(err)
	}
	if wide != "" {
		b.t.Errorf("%s: the page is wider than the window; these stick out: %s", name, wide)
	}
}

// shotTop saves what the window shows (the top of the page) as NAME.png.
func (b *browser) shotTop(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.out, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

func (b *browser) wantText(where string, parts ...string) {
	b.t.Helper()
	txt := b.text()
	for _, p := range parts {
		if !strings.Contains(txt, p) {
			b.t.Errorf("%s: the page does not say %q", where, p)
		}
	}
	if b.t.Failed() {
		b.t.Fatalf("%s says:\n%s", where, txt)
	}
}

// eventually polls a condition on the node for up to 20 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBrowser: a member's day in the web interface, in a real browser.
func TestBrowser(t *testing.T) {
	n := startBrowserNode(t, "tanpud")
	b := newBrowser(t, n)
	b.wantText("the overview", "TANPUD (tanpud)", "Sync health", "No records yet")
	b.shot("overview")

	// A new audit from an IDUIT template.
	b.open("/audits/new")
	b.do("choose the template", chromedp.SetValue(chromedp.CSS("#template"), "iduit-bg/3.2"))
	b.fill("#subject", "City OAT clinic")
	b.fill("#place", "Dar es Salaam")
	b.fill("#period", "2026-Q1")
	b.do("choose the method", chromedp.SetValue(chromedp.CSS("#method"), "visit"))
	b.shot("audit-new")
	path := b.submit("start the audit", `form[action="/audits"] button[type=submit]`, `/audits/[0-9A-Z]{26}`)
	auditID := strings.TrimPrefix(path, "/audits/")
	rec, err := n.Records().Get(auditID)
	if err != nil {
		t.Fatal(err)
	}
	if a := rec.Body.(*model.Audit); !strings.HasPrefix(a.Template, "iduit-bg/3.2") || a.Subject.Name != "City OAT clinic" || a.Method != "visit" {
		t.Fatalf("the audit as created: %+v", a)
	}

	// Answering items: each click saves through fetch(), no page load.
	b.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.cairnSame = true`))
	for item, ans := range map[string]string{"3.2.1": "yes", "3.2.2": "partly", "3.2.3": "no"} {
		b.do("answer "+item, chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name="answer.%s"][value="%s"]`, item, ans))))
		b.until("item "+item+" saved", fmt.Sprintf(`document.querySelector('fieldset[data-item="%s"] .status').textContent === "Saved"`, item))
	}
	b.fill(`textarea[name="note.3.2.2"]`, "Take-home doses only for some")
	b.do("leave the note", chromedp.Click(chromedp.CSS(`input[name="answer.3.2.4"][value="unknown"]`)))
	eventually(t, "the answers and the note saved on the node", func() bool {
		rec, err := n.Records().Get(auditID)
		if err != nil {
			return false
		}
		a := rec.Body.(*model.Audit)
		return len(a.Answers) == 4 && a.Answers["3.2.1"].Answer == model.AnswerYes && a.Answers["3.2.3"].Answer == model.AnswerNo &&
			a.Answers["3.2.2"].Answer == model.AnswerPartly && a.Answers["3.2.2"].Note == "Take-home doses only for some" && a.Answers["3.2.4"].Answer == model.AnswerUnknown
	})
	b.until("the score bars redrawn", `document.getElementById("scores").innerText.indexOf("50% (3 of 14 items scored)") >= 0`)
	if same, err := evalIn[bool](b, "window.cairnSame === true"); err != nil || !same {
		t.Fatalf("answering reloaded the page (%v)", err)
	}
	b.do("top of the page", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	b.shot("audit")
	b.shotTop("audit-top")
	// A note typed before an answer waits for it; then a refused answer
	// shows the services' sentence next to the item.
	b.fill(`textarea[name="note.3.2.5"]`, "call her on +255 754 123 456")
	b.do("leave the note", chromedp.Click(chromedp.CSS(`textarea[name="note.3.2.6"]`)))
	b.until("the note waiting for an answer", `document.querySelector('fieldset[data-item="3.2.5"] .status').textContent === "Choose an answer: the note is saved with it."`)
	b.do("answer 3.2.5", chromedp.Click(chromedp.CSS(`input[name="answer.3.2.5"][value="no"]`)))
	b.until("the refusal next to 3.2.5", `document.querySelector('fieldset[data-item="3.2.5"] .status').textContent.indexOf("personal identifiers") >= 0`)
	b.shot("audit-refused")

	// The priority board: place a priority, then move it.
	b.open("/priorities")
	b.fill("#title", "Naloxone in pharmacies")
	b.do("choose the kind", chromedp.SetValue(chromedp.CSS("#kind"), "change-needed"))
	b.fill("#importance", "4")
	b.fill("#achievability", "3")
	b.fill("#target", "Ministry of Health")
	b.submit("add the priority", `#add button[type=submit]`, "/priorities")
	recs, err := n.Records().List(records.Query{Kind: model.KindPriority})
	if err != nil || len(recs) != 1 {
		t.Fatalf("priorities after adding one: %d, %v", len(recs), err)
	}
	pid := recs[0].ID
	if p := recs[0].Body.(*model.Priority); p.Importance != 4 || p.Achievability != 3 || p.Kind != model.PriorityChange {
		t.Fatalf("the priority as placed: %+v", p)
	}
	b.submit("move it right", fmt.Sprintf(`#p-%s button[value="right"]`, pid), "/priorities")
	b.submit("move it up", fmt.Sprintf(`#p-%s button[value="up"]`, pid), "/priorities")
	rec, _ = n.Records().Get(pid)
	if p := rec.Body.(*model.Priority); p.Importance != 5 || p.Achievability != 4 || rec.Version != 3 {
		t.Fatalf("after moving right and up: importance %d, achievability %d, version %d", p.Importance, p.Achievability, rec.Version)
	}
	b.until("C1 in the highlighted top-right quadrant", `Array.from(document.querySelectorAll("td.focus a.marker")).some(function (a) { return a.textContent === "C1"; })`)
	// Two more, so the board shows the three kinds kept apart.
	for _, p := range []model.Priority{
		{Kind: model.PriorityAchievement, Title: "Peer-run drop-in opened", Importance: 3, Achievability: 5},
		{Kind: model.PriorityAction, Title: "Monthly naloxone training", Importance: 4, Achievability: 4},
		{Kind: model.PriorityChange, Title: "Take-home OAT doses", Importance: 2, Achievability: 2},
	} {
		if _, err := n.Records().AddPriority(p, false); err != nil {
			t.Fatal(err)
		}
	}
	b.open("/priorities")
	b.shot("priorities")
	b.shotTop("priorities-top")

	// A committee report.
	b.open("/reports/new")
	b.fill(`[name="committee"]`, "OAT clinic community committee")
	b.fill(`[name="date"]`, "2026-02-03")
	b.fill(`[name="service"]`, "Mwananyamala OAT clinic")
	b.fill(`[name="attendance[0].role"]`, "peer")
	b.fill(`[name="attendance[0].count"]`, "9")
	b.fill(`[name="issues_raised[0].description"]`, "Doses are cut as punishment")
	b.fill(`[name="commodities_review[0].item"]`, "10 ml syringes")
	b.do("right types: no", chromedp.SetValue(chromedp.CSS(`[name="commodities_review[0].right_types"]`), "no"))
	b.fill(`[name="commodities_review[0].note"]`, "people who use salts need insulin syringes")
	b.fill(`[name="follow_ups"]`, "Write to the chief medical officer")
	// A bad date first: the sentence next to the field, the rest kept.
	b.fill(`[name="date"]`, "2026-02-30")
	b.submit("file with a bad date", "button.primary", "/reports")
	b.wantText("the refused report", `date: "2026-02-30" is not a date: use YYYY-MM-DD`)
	if v, _ := evalIn[string](b, `document.querySelector('[name="issues_raised[0].description"]').value`); v != "Doses are cut as punishment" {
		t.Fatalf("the refused form lost the issue typed: %q", v)
	}
	b.shot("report-refused")
	b.fill(`[name="date"]`, "2026-02-03")
	path = b.submit("file the report", "button.primary", `/reports/[0-9A-Z]{26}`)
	repID := strings.TrimPrefix(path, "/reports/")
	rec, err = n.Records().Get(repID)
	if err != nil {
		t.Fatal(err)
	}
	if r := rec.Body.(*model.Report); r.Committee.Name != "OAT clinic community committee" || r.MeetingDate != "2026-02-03" || len(r.Attendance) != 1 ||
		len(r.IssuesRaised) != 1 || len(r.CommoditiesReview) != 1 || r.CommoditiesReview[0].RightTypes == nil || *r.CommoditiesReview[0].RightTypes || len(r.FollowUps) != 1 {
		t.Fatalf("the report as filed: %+v", r)
	}
	b.wantText("the report", "Doses are cut as punishment", "10 ml syringes", "9 peer", "Who can see it")

	// Change who can see it; the API shows the new audience.
	b.do("share with members", chromedp.Click(chromedp.CSS(`#audience input[name="mode"][value="members"]`)))
	b.submit("save the audience", `#audience button[type=submit]`, "/reports/"+repID)
	var got struct {
		ID       string `json:"id"`
		Audience string `json:"audience"`
		Version  int    `json:"version"`
	}
	n.apiGet(t, "GET", "/v1/records/"+repID, &got)
	if got.ID != repID || got.Audience != model.AudienceMembers || got.Version != 2 {
		t.Fatalf("the report through the API after sharing: %+v", got)
	}
	b.wantText("the shared report", "Every member network of the federation")
	b.shot("report")

	b.open("/reports")
	b.shot("reports")
	b.open("/members")
	b.wantText("members and peers", "1 member network(s)", "steward", "No member nodes pulled from yet.")
	b.shot("members")

	// A phone-sized screen: the pages fit its width.
	b.do("a phone-sized viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	b.width = 390
	b.open("/priorities")
	b.shot("phone-priorities")
	b.open("/audits/" + auditID)
	b.shot("phone-audit")
	b.open("/reports/new")
	b.shot("phone-report-new")
}
