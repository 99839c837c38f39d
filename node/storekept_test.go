package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inpud/cairn/model"
)

// TestNodeWithoutItsStoreRefusesToStart: a data dir that still holds the
// node's key but lost its record store must not start empty (it would
// write version numbers its peers hold already, a fork of its own
// history); it says to restore. A restore in progress may make the store.
func TestNodeWithoutItsStoreRefusesToStart(t *testing.T) {
	cfg := testConfig(t)
	n := startNode(t, cfg)
	if _, err := n.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Take-home OAT doses", Importance: 4, Achievability: 3}, false); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(cfg.DataDir, storeDir)); err != nil {
		t.Fatal(err)
	}
	cfg.Network = Profile{}
	_, err := New(cfg)
	if !errors.Is(err, ErrStoreMissing) || !strings.Contains(err.Error(), "cairn restore") {
		t.Fatalf("a node whose store is gone started, or said something else: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, storeDir)); !os.IsNotExist(err) {
		t.Fatalf("the refused start made a store: %v", err)
	}

	// With the restore marker, as restore writes it, the store is made.
	if err := os.WriteFile(filepath.Join(cfg.DataDir, restoreMarkerFile), []byte(n.ID()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("a node being restored could not open: %v", err)
	}
	defer r.Close()
	if _, err := r.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Written mid-restore", Importance: 4, Achievability: 3}, false); !errors.Is(err, ErrRestorePending) {
		t.Fatalf("a node whose restore has not finished wrote a record: %v", err)
	}
}
