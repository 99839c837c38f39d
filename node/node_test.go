package node

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
)

func testConfig(t *testing.T) Config {
	cfg := DefaultConfig(filepath.Join(t.TempDir(), "data"))
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Network = Profile{Slug: "enpud", Name: "Eurasian Network of People who Use Drugs", Level: "regional", Region: "eeca"}
	return cfg
}

func startNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		n.Close()
		t.Fatal(err)
	}
	return n
}

func TestIdentityAndRecordsSurviveRestart(t *testing.T) {
	cfg := testConfig(t)
	n := startNode(t, cfg)
	id := n.ID()
	if !strings.HasPrefix(id, "12D3KooW") {
		t.Fatalf("peer ID %q is not an Ed25519 libp2p ID", id)
	}
	rec, err := n.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "OAT take-home doses", Importance: 5, Achievability: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "api.addr")); !os.IsNotExist(err) {
		t.Errorf("api.addr left behind after Close: %v", err)
	}

	cfg.Network = Profile{} // a started node needs no profile flags
	n2 := startNode(t, cfg)
	defer n2.Close()
	if n2.ID() != id {
		t.Fatalf("peer ID changed across restart: %s then %s", id, n2.ID())
	}
	got, err := n2.Records().Get(rec.ID)
	if err != nil || got.Hash != rec.Hash {
		t.Fatalf("record after restart: %+v, %v", got, err)
	}
	// The clock resumes after the stored versions.
	up, err := n2.Records().UpdatePriority(rec.ID, records.PriorityPatch{Achievability: ptr(4)})
	if err != nil {
		t.Fatal(err)
	}
	if up.Version != 2 || !up.Updated.After(rec.Updated.Add(-1)) || up.Prev != rec.Hash {
		t.Fatalf("update after restart: %+v", up)
	}
}

func ptr[T any](v T) *T { return &v }

func TestDataDirLock(t *testing.T) {
	cfg := testConfig(t)
	n := startNode(t, cfg)
	defer n.Close()
	if _, err := New(cfg); !errors.Is(err, ErrRunning) {
		t.Fatalf("second node on one data dir: %v, want ErrRunning", err)
	}
}

func TestNodeKeyMustBePrivate(t *testing.T) {
	cfg := testConfig(t)
	if _, err := Init(cfg); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(cfg.DataDir, identityFile)
	os.Chmod(key, 0o644)
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key was accepted: %v", err)
	}
}

func TestAPIAuthHealthMetrics(t *testing.T) {
	n := startNode(t, testConfig(t))
	defer n.Close()
	base := "http://" + n.APIAddr()
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/v1/status", ""); code != 401 || !strings.Contains(body, "api.token") {
		t.Errorf("no token: %d %s", code, body)
	}
	if code, _ := get("/v1/status", strings.Repeat("0", 64)); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	token, _ := os.ReadFile(filepath.Join(n.cfg.DataDir, tokenFile))
	if code, body := get("/v1/status", strings.TrimSpace(string(token))); code != 200 || !strings.Contains(body, n.ID()) {
		t.Errorf("with token: %d %s", code, body)
	}
	if code, body := get("/healthz", ""); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("healthz: %d %s", code, body)
	}
	n.Records().AddPriority(model.Priority{Kind: model.PriorityAction, Title: "Monthly meeting", Importance: 2, Achievability: 5}, false)
	code, body := get("/metrics", "")
	if code != 200 || !strings.Contains(body, `cairn_records{kind="priority"} 1`) || !strings.Contains(body, "cairn_feed_head 1") {
		t.Errorf("metrics: %d\n%s", code, body)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		change func(*Config)
		want   string
	}{
		"public api":  {func(c *Config) { c.API = "0.0.0.0:7410" }, "not a loopback address"},
		"lan api":     {func(c *Config) { c.API = "192.168.1.5:7410" }, "not a loopback address"},
		"no port":     {func(c *Config) { c.API = "127.0.0.1" }, "is not HOST:PORT"},
		"clock ahead": {func(c *Config) { c.MaxClockAhead = 0 }, "positive duration"},
	} {
		cfg := testConfig(t)
		tc.change(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	for name, p := range map[string]Profile{
		"no slug":     {Name: "x", Level: "local"},
		"bad country": {Slug: "x", Name: "x", Level: "local", Country: "Tanzania"},
		"bad region":  {Slug: "x", Name: "x", Level: "local", Region: "Eastern Europe"},
		"no name":     {Slug: "x", Level: "local"},
	} {
		if err := p.Validate(); err == nil || !errors.Is(err, model.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
