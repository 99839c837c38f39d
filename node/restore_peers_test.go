package node

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
	"github.com/inpud/cairn/node/registry"
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
		id, kept := addByThirds(t, b, "Peer outreach", i, "cnpud")
		if kept {
			private = append(private, id)
			continue
		}
		if i%4 == 1 { // a later version after sharing
			imp := 5
			if _, err := b.Records().UpdatePriority(id, records.PriorityPatch{Importance: &imp}); err != nil {
				t.Fatal(err)
			}
		}
		shared = append(shared, id)
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

	keys, dir := wipe(t, b)
	rep, cfg, lines := restoreInto(ctx, t, dir, keys, a)
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

// TestRestoreTakesFromCustodyAndPeers: the custodians hold only the
// records written before they went down (one of them is back for the
// restore); those written after reached a member only. Restore brings back the first ones from custody (private
// ones included) and the later shared ones from the member, every one at
// its version with its signed bytes; of the later ones, only the private
// ones, which nobody else held, stay lost.
func TestRestoreTakesFromCustodyAndPeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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
	write := func(from, to int) (private, shared []string) {
		for i := from; i < to; i++ {
			id, kept := addByThirds(t, b, "Drop-in hours", i, "anpud")
			if kept {
				private = append(private, id)
			} else {
				shared = append(shared, id)
			}
		}
		return private, shared
	}
	write(0, 12)
	deadline := time.Now().Add(2 * time.Minute)
	for st := custodyStatus(t, b); len(st.Custodians) != 2 || !st.Custodians[0].CaughtUp || !st.Custodians[1].CaughtUp; st = custodyStatus(t, b) {
		if time.Now().After(deadline) {
			t.Fatalf("the custodian did not catch up: %+v", st.Custodians)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Both custodians go down; one comes back for the restore.
	ccfg := c.cfg
	for _, n := range []*Node{c, d} {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	lostPrivate, lateShared := write(12, 24)
	for _, id := range lateShared {
		waitFor(t, "A to hold B's later record "+id, func() bool {
			a.SyncNow(ctx)
			return holds(a, id)
		})
	}
	want := heldVersions(t, b)
	for _, id := range lostPrivate {
		delete(want, id)
	}

	keys, dir := wipe(t, b)
	// The custodian comes back (on a new port, published in the registry).
	ccfg.Network = Profile{}
	c = startNode(t, ccfg)
	t.Cleanup(func() { c.Close() })
	waitFor(t, "the steward's registry to hold the custodian's new address", func() bool {
		var got []string
		a.fed.View(func(s *registry.State) {
			if k, ok := s.Node(c.ID()); ok {
				got = k.Addrs
			}
		})
		var now []string
		for _, ad := range c.host.Addrs() {
			now = append(now, ad.String())
		}
		return len(got) > 0 && slices.Equal(got, now)
	})

	rep, cfg, lines := restoreInto(ctx, t, dir, keys, a)
	t.Logf("restore: %d own versions from custody, %d from peers; progress:\n%v", rep.OwnFromCustody, rep.OwnFromPeers, strings.Join(lines, "\n"))
	r := startNode(t, cfg)
	t.Cleanup(func() { r.Close() })
	got := heldVersions(t, r)
	for id, v := range want {
		if got[id] != v {
			t.Errorf("record %s after restore: %q, want %q", id, got[id], v)
		}
	}
	for _, id := range lostPrivate {
		if _, ok := got[id]; ok {
			t.Errorf("private record %s written while the custodian was down came back", id)
		}
	}
	if len(got) != len(want) || rep.OwnFromCustody == 0 || rep.OwnFromPeers == 0 {
		t.Errorf("the restored node holds %d records, want %d; %d versions from custody and %d from peers, want some of each", len(got), len(want), rep.OwnFromCustody, rep.OwnFromPeers)
	}
	if head := r.store.Head(); rep.OwnFromCustody+rep.OwnFromPeers != int(head) {
		t.Errorf("the restore stored %d own versions from custody and %d from peers, but the feed holds %d: a version stored twice, or one from elsewhere", rep.OwnFromCustody, rep.OwnFromPeers, head)
	}
}
