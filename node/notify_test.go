package node

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/federation"
	"github.com/inpud/cairn/node/registry"
	"github.com/inpud/cairn/node/store"
)

// notifyNode starts a node of network slug whose periodic pull is an
// hour apart, so that only notify can bring records within a test.
func notifyNode(t *testing.T, slug string, bootstrap bool) *Node {
	t.Helper()
	cfg := DefaultConfig(filepath.Join(t.TempDir(), slug))
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Registry = federation.FastConfig("")
	cfg.Network = Profile{Slug: slug, Name: slug, Level: "national"}
	cfg.Bootstrap = bootstrap
	cfg.SyncInterval = time.Hour
	n := startNode(t, cfg)
	t.Cleanup(func() { n.Close() })
	return n
}

func joinNode(t *testing.T, steward *Node, slug string) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, err := steward.Federation().Invite(ctx, registry.Profile{Slug: slug, Name: slug, Level: "national"}, registry.RoleMember, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n := notifyNode(t, slug, false)
	if _, err := n.Join(ctx, code.String()); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func holds(n *Node, id string) bool {
	_, err := n.Records().Get(id)
	return err == nil
}

// TestNotifyBringsRecordsWithoutWaiting: with the periodic pull an hour
// apart and no `sync now`, a shared record reaches a connected member, and
// through it a member the origin is not connected to.
func TestNotifyBringsRecordsWithoutWaiting(t *testing.T) {
	a := notifyNode(t, "anpud", true)
	b := joinNode(t, a, "bnpud")
	c := joinNode(t, a, "cnpud")
	// Both members reach A; C is connected to B only after A goes away, so
	// the second record must travel A → B → C.
	waitFor(t, "the members to be connected to A", func() bool {
		return len(a.repl.connectedMembers()) == 2
	})

	rec, err := a.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Naloxone in every pharmacy", Importance: 5, Achievability: 4}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Records().Share(rec.ID, model.Audience{model.AudienceMembers}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shared priority to reach both members", func() bool { return holds(b, rec.ID) && holds(c, rec.ID) })
	if st := b.repl.notify.Stats(); st.Received == 0 {
		t.Fatalf("B received no notify: %+v", st)
	}

	// Relay: cut A and C apart (each gater refuses the other), connect C
	// to B; A's next record reaches C through B.
	a.gater.SetAllow(func(p peer.ID) bool { return p != c.id.ID && a.fed.Allowed(p) })
	c.gater.SetAllow(func(p peer.ID) bool { return p != a.id.ID && c.fed.Allowed(p) })
	a.gater.Enforce(a.host)
	c.gater.Enforce(c.host)
	if err := c.host.Connect(context.Background(), b.host.Peerstore().PeerInfo(b.id.ID)); err != nil {
		t.Fatal(err)
	}
	second, err := a.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Take-home OAT doses", Importance: 4, Achievability: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Records().Share(second.ID, model.Audience{model.AudienceMembers}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second priority to reach C through B", func() bool { return holds(c, second.ID) })
	if len(c.host.Network().ConnsToPeer(a.id.ID)) != 0 {
		t.Fatal("C is connected to A: the record may not have come through B")
	}
}

// TestNotifyNotBackToTheSender: a member that stores records it pulled
// from A does not tell A of them (A would pull and get back only what it
// holds), but it does tell A of a record of its own.
func TestNotifyNotBackToTheSender(t *testing.T) {
	a := notifyNode(t, "anpud", true)
	b := joinNode(t, a, "bnpud")
	waitFor(t, "B to be connected to A", func() bool { return len(a.repl.connectedMembers()) == 1 })
	share := func(n *Node, title string) string {
		t.Helper()
		rec, err := n.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: title, Importance: 5, Achievability: 4}, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Records().Share(rec.ID, model.Audience{model.AudienceMembers}); err != nil {
			t.Fatal(err)
		}
		return rec.ID
	}
	// Whatever the join itself made B tell A has been pulled before A's
	// records are written.
	time.Sleep(time.Second)
	before := b.repl.server.Stats().Served
	var ids []string
	for _, title := range []string{"Naloxone in every pharmacy", "Take-home OAT doses", "Drug checking at festivals"} {
		ids = append(ids, share(a, title))
	}
	waitFor(t, "A's priorities to reach B", func() bool {
		for _, id := range ids {
			if !holds(b, id) {
				return false
			}
		}
		return true
	})
	// Time for a notify back to A, and A's pull, had B sent one.
	time.Sleep(time.Second)
	if got := b.repl.server.Stats().Served; got != before {
		t.Fatalf("B answered %d pull requests after storing A's records; want none (B must not notify A of A's own records)", got-before)
	}
	own := share(b, "Peer-run overdose response")
	waitFor(t, "B's own priority to reach A through a notify", func() bool { return holds(a, own) })
}

// TestFeedSourcesCountsPerPeer: the notify loop learns, per peer, how many
// positions of the new part of the feed came from it; positions it has
// passed are forgotten and later ones kept.
func TestFeedSourcesCountsPerPeer(t *testing.T) {
	const pa, pb = peer.ID("a"), peer.ID("b")
	seqs := func(from, to uint64) []store.Stored {
		var out []store.Stored
		for s := from; s <= to; s++ {
			out = append(out, store.Stored{Seq: s})
		}
		return out
	}
	var f feedSources
	f.add(pa, seqs(1, 5))
	f.add(pb, seqs(6, 7))
	f.add(pa, seqs(8, 12))
	got := f.take(2, 10) // 3..10: a 3..5 and 8..10, b 6..7
	if got[pa] != 6 || got[pb] != 2 || len(got) != 2 {
		t.Fatalf("take(2, 10) = %v; want a 6, b 2", got)
	}
	got = f.take(10, 20) // only a's 11..12 is left
	if got[pa] != 2 || len(got) != 1 {
		t.Fatalf("take(10, 20) = %v; want a 2", got)
	}
	if got = f.take(20, 30); len(got) != 0 {
		t.Fatalf("take(20, 30) after all was taken = %v; want nothing", got)
	}
	// Positions noted after the loop passed them count for nothing.
	f.add(pb, seqs(15, 16))
	if got = f.take(30, 40); len(got) != 0 {
		t.Fatalf("take(30, 40) of positions 15..16 = %v; want nothing", got)
	}
	// The runs stay bounded when nobody takes them.
	for i := range uint64(2 * maxSourceRuns) {
		f.add(peer.ID(fmt.Sprint(i%2)), seqs(100+i, 100+i))
	}
	if len(f.runs) > maxSourceRuns {
		t.Fatalf("%d runs kept; want at most %d", len(f.runs), maxSourceRuns)
	}
}
