package web_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/federation"
	"github.com/inpud/cairn/node/records"
	"github.com/inpud/cairn/node/web"
)

// clock is a settable clock for the web interface's codes and sessions.
type clock struct {
	mu stdsync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// site is a real node in a temp dir with its web interface served by
// httptest, and a browser-like client (cookie jar, no redirects followed).
type site struct {
	t     *testing.T
	node  *node.Node
	ui    *web.UI
	srv   *httptest.Server
	http  *http.Client
	clock *clock
}

func startNode(t *testing.T, slug string, bootstrap bool) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig(filepath.Join(t.TempDir(), slug))
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Registry = federation.FastConfig("")
	cfg.Network = node.Profile{Slug: slug, Name: strings.ToUpper(slug), Level: "national", Region: "africa"}
	cfg.Bootstrap = bootstrap
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func newSite(t *testing.T, n *node.Node, lang string) *site {
	t.Helper()
	c := &clock{t: time.Now()}
	ui, err := web.New(web.Config{Language: lang, Now: c.Now}, n)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ui)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &site{t: t, node: n, ui: ui, srv: srv, http: cl, clock: c}
}

// loggedIn is a site whose client has logged in with a fresh code.
func loggedIn(t *testing.T, n *node.Node) *site {
	s := newSite(t, n, "en")
	code, _, err := s.ui.LoginCode()
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := s.get("/login?code=" + code); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", resp.Status)
	}
	return s
}

// page is an answer, its body with HTML entities decoded.
func (s *site) do(req *http.Request) (*http.Response, string) {
	s.t.Helper()
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, html.UnescapeString(string(b))
}

func (s *site) get(path string) (*http.Response, string) {
	req, _ := http.NewRequest("GET", s.srv.URL+path, nil)
	return s.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from any page of the session.
func (s *site) csrf() string {
	s.t.Helper()
	_, body := s.get("/")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		s.t.Fatalf("no CSRF token on the overview:\n%s", body)
	}
	return m[1]
}

// post sends a form with the session's CSRF token.
func (s *site) post(path string, form url.Values) (*http.Response, string) {
	s.t.Helper()
	if form.Get("csrf") == "" {
		form.Set("csrf", s.csrf())
	}
	req, _ := http.NewRequest("POST", s.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return s.do(req)
}

// fetch posts a form as the page's JavaScript does, asking for JSON.
func (s *site) fetch(path string, form url.Values) (*http.Response, string) {
	s.t.Helper()
	form.Set("csrf", s.csrf())
	req, _ := http.NewRequest("POST", s.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	return s.do(req)
}

func wantStatus(t *testing.T, resp *http.Response, body string, code int) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("%s %s: got %s, want %d\n%s", resp.Request.Method, resp.Request.URL.Path, resp.Status, code, body)
	}
}

func wantIn(t *testing.T, body string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(body, p) {
			t.Errorf("page lacks %q", p)
		}
	}
	if t.Failed() {
		t.Fatalf("page:\n%s", body)
	}
}

func recordsQuery() records.Query { return records.Query{} }
