package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
)

// TestImportRefusesImplausibleTimestamps: an import of records signed by
// the node's own key refuses one dated ten years back (before Cairn
// existed) and one dated ten years ahead, each on its line, and stores
// nothing; with --skip-rejected the one dated now is imported.
func TestImportRefusesImplausibleTimestamps(t *testing.T) {
	dir := testNode(t)
	keys, signer := nodeSigner(t, dir)
	body, _ := json.Marshal(model.Priority{Kind: model.PriorityChange, Title: "Naloxone in every pharmacy", Importance: 5, Achievability: 4, HorizonYears: model.DefaultHorizon})
	now := time.Now()
	var lines []string
	for _, at := range []time.Time{now.AddDate(-10, 0, 0), now.AddDate(10, 0, 0), now} {
		p := model.Payload{ID: model.NewID(at, nil), Kind: model.KindPriority, Origin: keys.Network, Author: keys.ID.String(),
			Version: 1, HLC: model.MakeHLC(at.UnixMilli(), 0), Audience: model.Audience{model.AudiencePrivate}, Language: "en", Body: body}
		env, err := model.Seal(signer, p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(env.Wire(p.ID))
		lines = append(lines, string(b))
	}
	file := filepath.Join(t.TempDir(), "dated.ndjson")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := cairn(t, dir, "import", file)
	if err == nil || !strings.Contains(err.Error(), "2 line(s) rejected, so nothing was imported") {
		t.Fatalf("import of records dated ten years off: %v", err)
	}
	for _, want := range []string{"line 1", "before 2025-01-01", "line 2", "ahead"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the rejections do not say %q:\n%s", want, stderr)
		}
	}
	if n := countRecords(t, dir); n["priority"] != 0 {
		t.Fatalf("a refused import stored records: %v", n)
	}
	_, _, _ = cairn(t, dir, "import", file, "--skip-rejected") // exits non-zero: lines were rejected
	if n := countRecords(t, dir); n["priority"] != 1 {
		t.Fatalf("--skip-rejected stored %v, want the one priority dated now", n)
	}
}
