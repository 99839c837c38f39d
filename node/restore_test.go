package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/federation"
)

// heldVersions maps every record n holds to "version hash".
func heldVersions(t *testing.T, n *Node) map[string]string {
	t.Helper()
	out := map[string]string{}
	after := uint64(0)
	for range 1000 {
		entries, last, err := n.store.Feed(after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			cur, err := n.store.Get(e.Payload.ID)
			if err != nil {
				t.Fatal(err)
			}
			out[e.Payload.ID] = fmt.Sprintf("%d %s", cur.Payload.Version, cur.Envelope.Hash())
		}
		if len(entries) < 1000 {
			return out
		}
		after = last
	}
	t.Fatal("feed longer than 1,000,000 entries")
	return nil
}

// wipeAndRestore writes count records on a node with two custodians (a
// mix of private, members-only and network-scoped), receives one record
// shared by another network, deletes the node's data dir, restores it
// from its keys through the steward, and checks every record comes back
// at its version with its signed bytes; then that the restored node
// starts, writes and is heard by others as before.
// addByThirds adds priority i, titled "<title> <i>", on n, and shares it
// by i%3: 0 stays private, 1 goes to all members, 2 to network other. It
// returns the record's id and whether it stayed private.
func addByThirds(t *testing.T, n *Node, title string, i int, other string) (id string, private bool) {
	t.Helper()
	p, err := n.Records().AddPriority(model.Priority{Kind: model.PriorityAction, Title: fmt.Sprintf("%s %d", title, i), Importance: 1 + i%5, Achievability: 1 + i%4}, false)
	if err != nil {
		t.Fatal(err)
	}
	switch i % 3 {
	case 0:
		return p.ID, true
	case 1:
		_, err = n.Records().Share(p.ID, model.Audience{model.AudienceMembers})
	case 2:
		_, err = n.Records().Share(p.ID, model.Audience{"network:" + other})
	}
	if err != nil {
		t.Fatal(err)
	}
	return p.ID, false
}

func wipeAndRestore(t *testing.T, count int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	a := notifyNode(t, "anpud", true)
	b := joinNode(t, a, "bnpud")
	c := joinNode(t, a, "cnpud")
	d := joinNode(t, a, "dnpud")
	waitFor(t, "B to see all four networks", func() bool {
		_, ok := b.fed.State().Network("dnpud")
		return ok
	})
	if _, err := b.SetCustodians(ctx, []string{"cnpud", "dnpud"}); err != nil {
		t.Fatal(err)
	}
	for i := range count {
		addByThirds(t, b, "Peer outreach", i, "dnpud")
	}
	shared, err := a.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Naloxone in every pharmacy", Importance: 5, Achievability: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Records().Share(shared.ID, model.Audience{model.AudienceMembers}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B to hold A's shared record", func() bool {
		b.SyncNow(ctx)
		return holds(b, shared.ID)
	})
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st := custodyStatus(t, b)
		if len(st.Custodians) == 2 && st.Custodians[0].CaughtUp && st.Custodians[1].CaughtUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("custodians not caught up: %+v", st.Custodians)
		}
		time.Sleep(100 * time.Millisecond)
	}
	want := heldVersions(t, b)
	if len(want) != count+1 {
		t.Fatalf("B holds %d records before the wipe, want %d", len(want), count+1)
	}
	keys, dir := wipe(t, b)

	start := time.Now()
	rep, cfg, _ := restoreInto(ctx, t, dir, keys, a)
	took := time.Since(start)
	t.Logf("restored %d records (%d own versions from custody, %d more from peers, %d others' versions from peers) in %s", len(want), rep.OwnFromCustody, rep.OwnFromPeers, rep.Others, took.Round(time.Millisecond))
	// The custodians had caught up: what peers hold of this network's
	// records custody brought already, and is not stored twice.
	if rep.OwnFromPeers != 0 {
		t.Fatalf("restore stored %d own versions from peers after custody brought them all", rep.OwnFromPeers)
	}
	if RestorePending(dir) {
		t.Fatal("the restore marker is still there after a restore that finished")
	}

	r := startNode(t, cfg)
	t.Cleanup(func() { r.Close() })
	if r.ID() != keys.ID.String() || r.Profile().Slug != "bnpud" || r.Profile().Name != "bnpud" {
		t.Fatalf("restored node is %s of %+v", r.ID(), r.Profile())
	}
	got := heldVersions(t, r)
	missing, differ := 0, 0
	for id, v := range want {
		switch g, ok := got[id]; {
		case !ok:
			missing++
		case g != v:
			differ++
		}
	}
	if missing > 0 || differ > 0 || len(got) != len(want) {
		t.Fatalf("after restore: %d of %d records missing, %d at another version or hash, %d held in all", missing, len(want), differ, len(got))
	}
	// It carries on: a new record reaches a member as before.
	after, err := r.Records().AddPriority(model.Priority{Kind: model.PriorityAction, Title: "Peer-led training", Importance: 2, Achievability: 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Records().Share(after.ID, model.Audience{model.AudienceMembers}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "D to hold the restored node's new record", func() bool {
		d.SyncNow(ctx)
		return holds(d, after.ID)
	})
	_ = c
}

func TestRestoreBringsBackEveryRecord(t *testing.T) {
	wipeAndRestore(t, 60)
}

// TestRestoreRefusals: restore into a data dir that holds anything, or
// with no member node to reach, is refused with one sentence and writes
// nothing; a data dir whose restore has not finished refuses record writes.
func TestRestoreRefusals(t *testing.T) {
	ctx := context.Background()
	src := testConfig(t)
	n := startNode(t, src)
	keys, err := ReadNodeKeys(src.DataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.Close()

	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "notes.txt"), []byte("x"), 0o600)
	cfg := DefaultConfig(full)
	cfg.Peers = []string{"/ip4/127.0.0.1/tcp/1/p2p/" + keys.ID.String()}
	if _, err := Restore(ctx, RestoreConfig{Node: cfg, Keys: keys}); !errors.Is(err, ErrDataDirNotEmpty) {
		t.Fatalf("restore into a non-empty dir: %v", err)
	}
	if ents, _ := os.ReadDir(full); len(ents) != 1 {
		t.Fatalf("restore wrote into a non-empty dir: %d entries", len(ents))
	}
	empty := filepath.Join(t.TempDir(), "new")
	cfg = DefaultConfig(empty)
	if _, err := Restore(ctx, RestoreConfig{Node: cfg, Keys: keys}); err == nil || !errorsContain(err, "give --peer") {
		t.Fatalf("restore with no peer: %v", err)
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Fatalf("restore with no peer created the data dir: %v", err)
	}

	// A restore that stopped half-way leaves the marker: no writes.
	os.WriteFile(filepath.Join(src.DataDir, restoreMarkerFile), []byte("x\n"), 0o600)
	n2 := startNode(t, src)
	defer n2.Close()
	if _, err := n2.Records().AddPriority(model.Priority{Kind: model.PriorityAction, Title: "Drop-in", Importance: 1, Achievability: 1}, false); !errors.Is(err, ErrRestorePending) {
		t.Fatalf("write during an unfinished restore: %v", err)
	}
}

func errorsContain(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}

// wipe closes n and deletes its data dir, as a lost machine would, and
// returns its keys (what its key backup holds) and the dir.
func wipe(t *testing.T, n *Node) (NodeKeys, string) {
	t.Helper()
	keys, err := ReadNodeKeys(n.cfg.DataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := n.cfg.DataDir
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	return keys, dir
}

// restoreInto restores keys into dir, reaching the registry through
// steward, and returns the report, the config to start the restored node
// with, and the progress lines. A failed restore fails the test.
func restoreInto(ctx context.Context, t *testing.T, dir string, keys NodeKeys, steward *Node) (RestoreReport, Config, []string) {
	t.Helper()
	cfg := DefaultConfig(dir)
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Registry = federation.FastConfig("")
	cfg.SyncInterval = time.Hour
	cfg.Peers = steward.Addrs()
	var lines []string
	rep, err := Restore(ctx, RestoreConfig{Node: cfg, Keys: keys, Progress: func(s string) { lines = append(lines, s) }})
	if err != nil {
		t.Fatalf("restore: %v\nprogress:\n%v", err, lines)
	}
	return rep, cfg, lines
}
