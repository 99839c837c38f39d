package api_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inpud/cairn/node"
)

func TestRequestBodiesAreChecked(t *testing.T) {
	cfg := node.DefaultConfig(filepath.Join(t.TempDir(), "data"))
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Network = node.Profile{Slug: "anpud", Name: "Asian Network of People who Use Drugs", Level: "regional"}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	token, _ := os.ReadFile(filepath.Join(cfg.DataDir, "api.token"))
	send := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+n.APIAddr()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cases := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"unknown field", "POST", "/v1/priorities", `{"title":"x","kind":"change","importance":3,"achievability":3,"colour":"red"}`, 400, `unknown field \"colour\"`},
		{"invalid utf-8", "POST", "/v1/priorities", "{\"title\":\"\xff\",\"kind\":\"change\",\"importance\":3,\"achievability\":3}", 400, "not valid UTF-8"},
		{"two values", "POST", "/v1/priorities", `{"title":"x","kind":"change","importance":3,"achievability":3}{}`, 400, "more than one JSON value"},
		{"not json", "POST", "/v1/audits", `template=iduit-bg/1`, 400, "not valid JSON"},
		{"oversized", "POST", "/v1/reports", `{"service":"` + strings.Repeat("a", 5<<20) + `"}`, 400, "larger than"},
		{"wrong type", "POST", "/v1/priorities", `{"title":"x","kind":"change","importance":"high","achievability":3}`, 400, "not valid JSON"},
		{"unknown record", "GET", "/v1/records/01M84ER6Z6X9PRPPN237Q29V6G", ``, 404, "no record with that id"},
		{"bad kind filter", "GET", "/v1/records?kind=diary", ``, 400, "is not a record kind"},
		{"bad limit", "GET", "/v1/records?limit=-1", ``, 400, "limit"},
		{"bad audience", "POST", "/v1/records/01M84ER6Z6X9PRPPN237Q29V6G/audience", `{"audience":"everyone"}`, 400, "is not an audience"},
		{"bad export format", "GET", "/v1/export?format=xml", ``, 400, "is not an export format"},
		{"wrong method", "PUT", "/v1/priorities", `{}`, 405, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := send(tc.method, tc.path, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("%s %s: %d %s; want %d containing %q", tc.method, tc.path, code, body, tc.code, tc.want)
			}
		})
	}
	if _, body := send("GET", "/v1/records", ""); strings.TrimSpace(body) != "[]" {
		t.Fatalf("a refused request wrote something: %s", body)
	}
}
