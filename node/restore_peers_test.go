package node

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/federation"
	"github.com/inpud/cairn/node/records"
)

// TestRestoreBringsOwnRecordsBackFromPeers: a network with no custodians
// shares some of its records with all members, some with one network
// only, changes some after sharing, and keeps some private; its data dir
// is deleted. Restore brings back, from the member nodes it shared them
// with, every shared record at its current version with its signed bytes
// (each version stored once, though two peers hold many of them), and
// nothing it kept private, which only custody could have kept.
func TestRestoreBringsOwnRecordsBackFromPeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := notifyNode(t, "anpud", true)
	b := joinNode(t, a, "bnpud")
	c := joinNode(t, a, "cnpud")
	waitFor(t, "B to see all three networks", func() bool {
		_, ok := b.fed.State().Network("cnpud")
		return ok
	})
	const count = 30
	var private, shared []string
	for i := range count {
		p, err := b.Records().AddPriority(model.Priority{Kind: model.PriorityAction, Title: fmt.Sprintf("Peer outreach %d", i), Importance: 1 + i%5, Achievability: 1 + i%4}, false)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			private = append(private, p.ID)
			continue
		case 1:
			_, err = b.Records().Share(p.ID, model.Audience{model.AudienceMembers})
		case 2:
			_, err = b.Records().Share(p.ID, model.Audience{"network:cnpud"})
		}
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 1 { // a later version after sharing
			imp := 5
			if _, err := b.Records().UpdatePriority(p.ID, records.PriorityPatch{Importance: &imp}); err != nil {
				t.Fatal(err)
			}
		}
		shared = append(shared, p.ID)
	}
	want := heldVersions(t, b)
	for _, id := range shared {
		waitFor(t, "the members to hold B's shared record "+id, func() bool {
			a.SyncNow(ctx)
			c.SyncNow(ctx)
			rec, err := b.Records().Get(id)
			if err != nil {
				t.Fatal(err)
			}
			in := func(n *Node) bool { r, err := n.Records().Get(id); return err == nil && r.Hash == rec.Hash }
			return in(c) && (rec.Audience != model.AudienceMembers || in(a))
		})
	}

	keys, err := ReadNodeKeys(b.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := b.cfg.DataDir
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig(dir)
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Registry = federation.FastConfig("")
	cfg.SyncInterval = time.Hour
	cfg.Peers = a.Addrs()
	var lines []string
	rep, err := Restore(ctx, RestoreConfig{Node: cfg, Keys: keys, Progress: func(s string) { lines = append(lines, s) }})
	if err != nil {
		t.Fatalf("restore: %v\nprogress:\n%v", err, lines)
	}
	t.Logf("restore: %d own versions from custody, %d from peers, %d others' versions; progress:\n%v", rep.OwnFromCustody, rep.OwnFromPeers, rep.Others, lines)
	if len(rep.Custodians) != 0 || rep.OwnFromCustody != 0 {
		t.Fatalf("the network has no custodians, yet the restore reports %v and %d versions from custody", rep.Custodians, rep.OwnFromCustody)
	}

	r := startNode(t, cfg)
	t.Cleanup(func() { r.Close() })
	got := heldVersions(t, r)
	for _, id := range shared {
		if got[id] != want[id] {
			t.Errorf("shared own record %s after restore: %q, want %q", id, got[id], want[id])
		}
	}
	for _, id := range private {
		if _, ok := got[id]; ok {
			t.Errorf("private record %s came back though no custodian held it and no peer may", id)
		}
	}
	if len(got) != len(shared) {
		t.Errorf("the restored node holds %d records, want the %d shared ones", len(got), len(shared))
	}
	// Each version once: as many stored as the feed holds.
	if head := r.store.Head(); rep.OwnFromPeers != int(head) {
		t.Errorf("the restore stored %d own versions from peers, but the feed holds %d", rep.OwnFromPeers, head)
	}
}
