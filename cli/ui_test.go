package cli

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"
)

// TestUILoginLink: cairn ui prints a link to the node's web interface that
// logs a browser in once; the interface then shows the network's pages,
// and the same link does not work a second time.
func TestUILoginLink(t *testing.T) {
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	dir := federationNode(t, "tanpud", "national", false)
	out := ok(t, dir, "ui")
	if !strings.Contains(out, "works once") || !strings.Contains(out, "http://127.0.0.1:") {
		t.Fatalf("cairn ui printed:\n%s", out)
	}
	res := jsonOf[struct {
		ID      string    `json:"id"`
		URL     string    `json:"url"`
		Expires time.Time `json:"expires"`
	}](t, ok(t, dir, "ui", "--json"))
	if res.ID == "" || !strings.Contains(res.URL, "/login?code=") || time.Until(res.Expires) > 2*time.Minute {
		t.Fatalf("cairn ui --json: %+v", res)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	get := func(u string) (int, string) {
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get(res.URL)
	if code != http.StatusOK || !strings.Contains(body, "TANPUD") || !strings.Contains(body, "Sync health") {
		t.Fatalf("following the link: %d\n%s", code, body)
	}
	base := strings.Split(res.URL, "/login")[0]
	if code, body := get(base + "/priorities"); code != http.StatusOK || !strings.Contains(body, "Changes needed") {
		t.Fatalf("priorities: %d\n%s", code, body)
	}
	// The JSON API is still there beside it, token-protected.
	if code, _ := get(base + "/v1/status"); code != http.StatusUnauthorized {
		t.Fatalf("/v1/status without a token: %d", code)
	}
	if code, _ := get(base + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	jar2, _ := cookiejar.New(nil)
	browser.Jar = jar2
	if code, body := get(res.URL); code != http.StatusForbidden || !strings.Contains(body, "has been used or has expired") {
		t.Fatalf("the link a second time: %d\n%s", code, body)
	}
	fails(t, t.TempDir(), "no node is running", "ui")
}
