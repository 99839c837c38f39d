package registry

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRegistryImports keeps the registry a pure package with a raft shell:
// of ours only model; of libp2p only core (peer IDs and keys); no badger,
// no stores, no hosts (STYLE §5, "the imports are the architecture").
func TestRegistryImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(dep, "github.com/inpud/cairn/") &&
			dep != "github.com/inpud/cairn/model" && dep != "github.com/inpud/cairn/node/registry":
			t.Errorf("registry imports %s; of ours it may import only model", dep)
		case strings.Contains(dep, "badger"), strings.Contains(dep, "boltdb"):
			t.Errorf("registry imports %s; storage belongs to the node", dep)
		case strings.HasPrefix(dep, "github.com/libp2p/go-libp2p/") && !strings.HasPrefix(dep, "github.com/libp2p/go-libp2p/core/"):
			t.Errorf("registry imports %s; of libp2p it may use only core", dep)
		}
	}
}
