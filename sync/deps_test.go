package sync

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSyncImportsOnlyCoreLibp2p keeps sync free of the concrete parts
// (STYLE "the imports are the architecture"): of ours only model, of
// libp2p only go-libp2p/core, and no raft or badger.
func TestSyncImportsOnlyCoreLibp2p(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(dep, "github.com/inpud/cairn/") && dep != "github.com/inpud/cairn/sync" && dep != "github.com/inpud/cairn/model":
			t.Errorf("sync imports %s; it declares the interfaces it needs instead", dep)
		case strings.HasPrefix(dep, "github.com/libp2p/go-libp2p/") && !strings.HasPrefix(dep, "github.com/libp2p/go-libp2p/core/"):
			t.Errorf("sync imports %s; only go-libp2p/core is allowed", dep)
		case strings.Contains(dep, "raft"), strings.Contains(dep, "badger"):
			t.Errorf("sync imports %s", dep)
		}
	}
}
