package cli

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node"
	cairnsync "github.com/inpud/cairn/sync"
)

// TestHistoryShowsFork: a second version 2 of a priority, following the
// same version 1 and signed by the node's own key (as another node of the
// network writing at the same time would), imported into the node: `cairn
// record history` names both versions and the one they follow, and its
// --json carries a fork field on both.
func TestHistoryShowsFork(t *testing.T) {
	dir := testNode(t)
	id := strings.TrimSpace(ok(t, dir, "priority", "add", "--title", "Naloxone in every pharmacy", "--kind", "change", "--importance", "5", "--achievability", "3"))
	ok(t, dir, "priority", "update", id, "--achievability", "4")

	// The node's key, and its version 2 as exported.
	_, signer := nodeSigner(t, dir)
	export := filepath.Join(t.TempDir(), "all.ndjson")
	ok(t, dir, "export", "--out", export)
	f, err := os.Open(export)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var v2 model.Payload
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var w model.WireEnvelope
		if err := json.Unmarshal(sc.Bytes(), &w); err != nil {
			t.Fatal(err)
		}
		if p, err := w.Envelope().Open(); err == nil && p.ID == id && p.Version == 2 {
			v2 = p
		}
	}
	if v2.Version != 2 || v2.Prev == "" {
		t.Fatalf("the export has no version 2 of %s following version 1", id)
	}

	// Another version 2 after the same version 1: another title.
	twin := v2
	twin.HLC += 1 << 16
	twin.Body = json.RawMessage(`{"kind":"change-needed","title":"Naloxone in every pharmacy and prison","importance":5,"achievability":4,"horizon_years":"` + model.DefaultHorizon + `"}`)
	env, err := model.Seal(signer, twin)
	if err != nil {
		t.Fatal(err)
	}
	line, err := json.Marshal(env.Wire(id))
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "twin.ndjson")
	if err := os.WriteFile(in, append(line, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := ok(t, dir, "import", in); !strings.Contains(out, "imported 1") {
		t.Fatalf("import printed %q", out)
	}

	out := ok(t, dir, "record", "history", id)
	first := ""
	for _, h := range jsonOf[[]history](t, ok(t, dir, "record", "history", id, "--json")) {
		if h.Version == 1 {
			first = h.Hash
		}
	}
	want := "fork: versions "
	if !strings.Contains(out, want) || !strings.Contains(out, "both follow "+first[:8]+"…") ||
		!strings.Contains(out, v2hash(t, dir, id, env.Hash())[:8]+"…") || !strings.Contains(out, env.Hash()[:8]+"…") {
		t.Fatalf("record history does not show the fork after version 1 (%s):\n%s", first[:8], out)
	}
	if !strings.Contains(out, "stored version 2 ("+env.Hash()[:8]+"…) from this node (its own write or an import): a fork of") {
		t.Fatalf("record history does not show the fork's event:\n%s", out)
	}

	type forked struct {
		Version int    `json:"version"`
		Hash    string `json:"hash"`
		Fork    *struct {
			Prev     string   `json:"prev"`
			Versions []string `json:"versions"`
		} `json:"fork"`
	}
	hs := jsonOf[[]forked](t, ok(t, dir, "record", "history", id, "--json"))
	if len(hs) != 3 || hs[0].Fork != nil {
		t.Fatalf("history --json: %+v", hs)
	}
	for _, h := range hs[1:] {
		if h.Version != 2 || h.Fork == nil || h.Fork.Prev != first || len(h.Fork.Versions) != 2 {
			t.Fatalf("history --json marks version %d (%s) with %+v; want a fork after %s", h.Version, h.Hash, h.Fork, first)
		}
	}
}

// v2hash is the hash of the version 2 of id that is not other.
func v2hash(t *testing.T, dir, id, other string) string {
	t.Helper()
	for _, h := range jsonOf[[]history](t, ok(t, dir, "record", "history", id, "--json")) {
		if h.Version == 2 && h.Hash != other {
			return h.Hash
		}
	}
	t.Fatalf("no other version 2 of %s", id)
	return ""
}

// TestRejectedCellRolledBack: `cairn peers` names rolled-back refusals,
// after stale ones.
func TestRejectedCellRolledBack(t *testing.T) {
	p := node.PeerState{Rejected: 3, Rejections: map[cairnsync.Reason]int{cairnsync.ReasonRolledBack: 2, cairnsync.ReasonStale: 1}}
	if got, want := rejected(p), "3 (stale 1, rolled-back 2)"; got != want {
		t.Errorf("rejected(%v) = %q, want %q", p.Rejections, got, want)
	}
}
