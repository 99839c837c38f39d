package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestLoginCodeWorksOnceAndSessionsExpire(t *testing.T) {
	n := startNode(t, "tanpud", false)
	s := newSite(t, n, "en")

	// No session: every page asks to log in, and says how.
	for _, p := range []string{"/", "/audits", "/priorities"} {
		resp, body := s.get(p)
		wantStatus(t, resp, body, http.StatusUnauthorized)
		wantIn(t, body, "You are not logged in", "cairn ui")
	}
	resp, body := s.get("/login?code=guessed")
	wantStatus(t, resp, body, http.StatusForbidden)
	wantIn(t, body, "has been used or has expired")

	code, exp, err := s.ui.LoginCode()
	if err != nil {
		t.Fatal(err)
	}
	if d := exp.Sub(s.clock.Now()); d != 2*time.Minute {
		t.Fatalf("code lasts %s, want 2m", d)
	}
	resp, _ = s.get("/login?code=" + code)
	wantStatus(t, resp, "", http.StatusSeeOther)
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "cairn_session" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || len(cookie.Value) < 43 {
		t.Fatalf("session cookie: %+v", cookie)
	}
	resp, body = s.get("/")
	wantStatus(t, resp, body, http.StatusOK)
	wantIn(t, body, "TANPUD")

	// The code works once only, even for another browser.
	other := newSite(t, n, "en")
	other.ui = s.ui
	req, _ := http.NewRequest("GET", s.srv.URL+"/login?code="+code, nil)
	resp, body = other.do(req)
	wantStatus(t, resp, body, http.StatusForbidden)

	// A code not used within 2 minutes no longer works.
	late, _, _ := s.ui.LoginCode()
	s.clock.Add(2*time.Minute + time.Second)
	req, _ = http.NewRequest("GET", s.srv.URL+"/login?code="+late, nil)
	resp, body = other.do(req)
	wantStatus(t, resp, body, http.StatusForbidden)

	// A form without the session's CSRF token is refused, and writes nothing.
	resp, body = s.post("/priorities", url.Values{"csrf": {"forged"}, "title": {"x"}, "kind": {"change"}, "importance": {"3"}, "achievability": {"3"}})
	wantStatus(t, resp, body, http.StatusForbidden)
	if recs, _ := n.Records().List(recordsQuery()); len(recs) != 0 {
		t.Fatalf("a forged form wrote %d record(s)", len(recs))
	}

	// Use keeps the session open; 12 hours without a request ends it.
	s.clock.Add(11 * time.Hour)
	resp, body = s.get("/")
	wantStatus(t, resp, body, http.StatusOK)
	s.clock.Add(12*time.Hour + time.Minute)
	resp, body = s.get("/")
	wantStatus(t, resp, body, http.StatusUnauthorized)
}

func TestLogoutEndsTheSession(t *testing.T) {
	s := loggedIn(t, startNode(t, "tanpud", false))
	resp, body := s.post("/logout", url.Values{})
	wantStatus(t, resp, body, http.StatusOK)
	wantIn(t, body, "You are logged out")
	resp, body = s.get("/")
	wantStatus(t, resp, body, http.StatusUnauthorized)
}

func TestOnlyLoopbackHostNames(t *testing.T) {
	s := loggedIn(t, startNode(t, "tanpud", false))
	req, _ := http.NewRequest("GET", s.srv.URL+"/", nil)
	req.Host = "attacker.example:7410"
	resp, body := s.do(req)
	wantStatus(t, resp, body, http.StatusMisdirectedRequest)
	req, _ = http.NewRequest("GET", s.srv.URL+"/", nil)
	req.Host = "localhost:7410"
	for _, c := range s.http.Jar.Cookies(req.URL) {
		req.AddCookie(c) // the jar files cookies by the Host a request names
	}
	resp, body = s.do(req)
	wantStatus(t, resp, body, http.StatusOK)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy: %q", csp)
	}
}
