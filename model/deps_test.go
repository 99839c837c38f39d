package model

import (
	"os/exec"
	"strings"
	"testing"
)

// TestModelImportsNothingHeavy keeps model pure: no package of ours, and no
// libp2p, raft or badger (STYLE: "the imports are the architecture").
func TestModelImportsNothingHeavy(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(dep, "github.com/inpud/cairn/") && dep != "github.com/inpud/cairn/model":
			t.Errorf("model imports %s; it must import nothing of ours", dep)
		case strings.Contains(dep, "libp2p"), strings.Contains(dep, "raft"), strings.Contains(dep, "badger"):
			t.Errorf("model imports %s", dep)
		}
	}
}
