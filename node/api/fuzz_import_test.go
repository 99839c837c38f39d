package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node"
)

// fuzzNode starts a node of network slug that belongs to no federation,
// and returns it with a function that calls its API.
func fuzzNode(tb testing.TB, slug string) (*node.Node, func(method, path string, body []byte) (int, []byte)) {
	tb.Helper()
	cfg := node.DefaultConfig(filepath.Join(tb.TempDir(), slug))
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Network = node.Profile{Slug: slug, Name: strings.ToUpper(slug), Level: "national"}
	n, err := node.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		n.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close() })
	token, err := os.ReadFile(filepath.Join(cfg.DataDir, "api.token"))
	if err != nil {
		tb.Fatal(err)
	}
	return n, func(method, path string, body []byte) (int, []byte) {
		req, _ := http.NewRequest(method, "http://"+n.APIAddr()+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
}

func feedHead(tb testing.TB, n *node.Node) uint64 {
	tb.Helper()
	st, err := n.Status()
	if err != nil {
		tb.Fatal(err)
	}
	return st.(node.Status).FeedHead
}

// FuzzImport posts arbitrary NDJSON to a node's import (the parser and the
// verification `cairn import` goes through), seeded with a real export of
// another node. The node answers 200, 400 or 422, never an error of its
// own; an import it refuses stores nothing, and one it takes stores
// exactly the versions it reports as imported.
func FuzzImport(f *testing.F) {
	src, srcCall := fuzzNode(f, "tanpud")
	rec, err := src.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Naloxone in every pharmacy", Importance: 5, Achievability: 4}, false)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := src.Records().Share(rec.ID, model.Audience{model.AudienceMembers}); err != nil {
		f.Fatal(err)
	}
	if _, err := src.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Drug checking \u00e0 Dar", Importance: 3, Achievability: 2}, false); err != nil {
		f.Fatal(err)
	}
	code, export := srcCall("GET", "/v1/export", nil)
	if code != http.StatusOK || bytes.Count(export, []byte("\n")) != 3 {
		f.Fatalf("export: %d %s", code, export)
	}
	f.Add(export)
	lines := bytes.SplitAfter(export, []byte("\n"))
	f.Add(lines[0])
	f.Add(append(bytes.Clone(lines[0]), lines[0]...))
	f.Add(bytes.Replace(export, []byte(`"sig":"`), []byte(`"sig":"A`), 1))
	f.Add(append([]byte("{\"payload\":\"\xff\"}\n"), export...))
	f.Add([]byte("{}\n\n{\"colour\":1}\n"))
	f.Add([]byte(strings.Repeat("x", 70000)))

	dst, call := fuzzNode(f, "anpud")
	f.Fuzz(func(t *testing.T, data []byte) {
		before := feedHead(t, dst)
		code, body := call("POST", "/v1/import", data)
		after := feedHead(t, dst)
		var res struct {
			Imported int `json:"imported"`
			Skipped  int `json:"skipped"`
			Rejected []struct {
				Line int `json:"line"`
			} `json:"rejected"`
		}
		switch code {
		case http.StatusOK:
			if err := json.Unmarshal(body, &res); err != nil {
				t.Fatalf("the import answered %s: %v", body, err)
			}
			if after-before != uint64(res.Imported) {
				t.Fatalf("the import reports %d imported, and the feed grew by %d", res.Imported, after-before)
			}
		case http.StatusBadRequest, http.StatusUnprocessableEntity:
			if after != before {
				t.Fatalf("a refused import (%d %s) stored %d versions", code, body, after-before)
			}
			if code == http.StatusUnprocessableEntity && (json.Unmarshal(body, &res) != nil || len(res.Rejected) == 0) {
				t.Fatalf("a refused import names no rejected line: %s", body)
			}
		default:
			t.Fatalf("the import answered %d %s", code, body)
		}
	})
}
