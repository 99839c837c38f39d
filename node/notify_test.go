package node

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/federation"
	"github.com/inpud/cairn/node/registry"
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
