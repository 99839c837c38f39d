package node

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/p2p"
	"github.com/inpud/cairn/node/records"
	cairnsync "github.com/inpud/cairn/sync"
)

// holderVersions returns what n's Holders says of id: network → version@hash.
func holderVersions(t *testing.T, n *Node, id string) map[string]string {
	t.Helper()
	v, err := n.Holders(id)
	if err != nil {
		t.Fatal(err)
	}
	hs := v.([]RecordHolder)
	out := map[string]string{}
	for i, h := range hs {
		if h.ID != id || (i == 0) != (h.Network == n.profile.Slug) || h.At.IsZero() {
			t.Fatalf("holders of %s: %+v (want the origin first, every row with the record id and a time)", id, hs)
		}
		out[h.Network] = versionAt(h.Version, h.Hash)
	}
	return out
}

func versionAt(v uint64, hash string) string { return strings.Repeat("v", int(v)) + "@" + hash }

func current(t *testing.T, n *Node, id string) string {
	t.Helper()
	r, err := n.Records().Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return versionAt(r.Version, r.Hash)
}

func sameHolders(got map[string]string, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestReceiptsTellTheOriginWhoHoldsWhat: members that store a shared
// record tell its origin which version they hold, without `sync now`; a
// member that missed an update stays on the version it has; a member that
// got the update through a relay while cut off from the origin tells the
// origin once it reaches it again.
func TestReceiptsTellTheOriginWhoHoldsWhat(t *testing.T) {
	a := notifyNode(t, "anpud", true)
	b := joinNode(t, a, "bnpud")
	c := joinNode(t, a, "cnpud")
	waitFor(t, "the members to be connected to A", func() bool { return len(a.repl.connectedMembers()) == 2 })

	rec, err := a.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Naloxone in every pharmacy", Importance: 5, Achievability: 4}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Records().Share(rec.ID, model.Audience{model.AudienceMembers}); err != nil {
		t.Fatal(err)
	}
	v2 := current(t, a, rec.ID)
	waitFor(t, "B and C's receipts for version 2", func() bool {
		return sameHolders(holderVersions(t, a, rec.ID), map[string]string{"anpud": v2, "bnpud": v2, "cnpud": v2})
	})

	// C is cut off from everyone; A updates; only B gets version 3.
	c.gater.SetAllow(func(peer.ID) bool { return false })
	c.gater.Enforce(c.host)
	a.gater.SetAllow(func(p peer.ID) bool { return p != c.id.ID && a.fed.Allowed(p) })
	b.gater.SetAllow(func(p peer.ID) bool { return p != c.id.ID && b.fed.Allowed(p) })
	a.gater.Enforce(a.host)
	b.gater.Enforce(b.host)
	if _, err := a.Records().UpdatePriority(rec.ID, records.PriorityPatch{Achievability: ptr(5)}); err != nil {
		t.Fatal(err)
	}
	v3 := current(t, a, rec.ID)
	waitFor(t, "B's receipt for version 3", func() bool {
		return sameHolders(holderVersions(t, a, rec.ID), map[string]string{"anpud": v3, "bnpud": v3, "cnpud": v2})
	})

	// Relay: C reaches B but not A, and gets version 3 through B. Its
	// receipt cannot reach A, so A still has C on version 2.
	c.gater.SetAllow(func(p peer.ID) bool { return p != a.id.ID && c.fed.Allowed(p) })
	b.gater.SetAllow(b.fed.Allowed)
	if err := c.host.Connect(context.Background(), b.host.Peerstore().PeerInfo(b.id.ID)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "C to get version 3 through B", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.SyncNow(ctx)
		return current(t, c, rec.ID) == v3
	})
	waitFor(t, "C to have tried A and failed", func() bool {
		c.rcpt.mu.Lock()
		defer c.rcpt.mu.Unlock()
		_, failed := c.rcpt.failed["anpud"]
		return failed
	})
	if got := holderVersions(t, a, rec.ID)["cnpud"]; got != v2 {
		t.Fatalf("A has C on %s while C could not reach it, want version 2", got)
	}
	// The unreachable origin holds up no other: B's own record, shared
	// now, gets C's receipt.
	brec, err := b.Records().AddPriority(model.Priority{Kind: model.PriorityAction, Title: "Peer-run drop-in hours", Importance: 3, Achievability: 4}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Records().Share(brec.ID, model.Audience{model.AudienceMembers}); err != nil {
		t.Fatal(err)
	}
	bv2 := current(t, b, brec.ID)
	waitFor(t, "C's receipt for B's record while A is out of reach", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.SyncNow(ctx)
		return holderVersions(t, b, brec.ID)["cnpud"] == bv2
	})
	if got := holderVersions(t, a, rec.ID)["cnpud"]; got != v2 {
		t.Fatalf("A has C on %s while C could not reach it, want version 2", got)
	}

	// A is reachable again: C's receipt arrives without waiting for a retry.
	a.gater.SetAllow(a.fed.Allowed)
	c.gater.SetAllow(c.fed.Allowed)
	if err := c.host.Connect(context.Background(), a.host.Peerstore().PeerInfo(a.id.ID)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "C's receipt for version 3 after the relay", func() bool {
		return sameHolders(holderVersions(t, a, rec.ID), map[string]string{"anpud": v3, "bnpud": v3, "cnpud": v3})
	})

	// Only the origin answers; an unknown id is the usual error.
	if _, err := b.Holders(rec.ID); !errors.Is(err, records.ErrNotOwn) || !strings.Contains(err.Error(), "only the nodes of anpud collect its delivery receipts") {
		t.Fatalf("holders on a member that is not the origin: %v", err)
	}
	if _, err := a.Holders(model.NewID(time.Now(), rand.Reader)); !errors.Is(err, records.ErrNotFound) {
		t.Fatalf("holders of an unknown id: %v", err)
	}
}

// TestForgedReceiptsChangeNothing: a member's receipt for a version the
// origin never wrote is ignored, and a node that is not a member cannot
// deliver receipts at all.
func TestForgedReceiptsChangeNothing(t *testing.T) {
	a := notifyNode(t, "anpud", true)
	b := joinNode(t, a, "bnpud")
	rec, err := a.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Drug checking at festivals", Importance: 4, Achievability: 4}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Records().Share(rec.ID, model.Audience{model.AudienceMembers}); err != nil {
		t.Fatal(err)
	}
	v2 := current(t, a, rec.ID)
	want := map[string]string{"anpud": v2, "bnpud": v2}
	waitFor(t, "B's receipt", func() bool { return sameHolders(holderVersions(t, a, rec.ID), want) })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	forged := []cairnsync.Receipt{
		{ID: rec.ID, Version: 3, Hash: strings.Repeat("ab", 32)},
		{ID: rec.ID, Version: 2, Hash: strings.Repeat("cd", 32)},
	}
	ack, err := cairnsync.SendReceipts(ctx, b.host, a.id.ID, forged)
	if err != nil || ack != (cairnsync.Ack{Ignored: 2}) {
		t.Fatalf("forged receipts from a member: %+v, %v", ack, err)
	}

	// A stranger with a key of its own: A's gater refuses it.
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pc := p2p.DefaultConfig()
	pc.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	h, err := p2p.New(priv, pc, p2p.NewGater(func(peer.ID) bool { return true }))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_ = h.Connect(ctx, a.host.Peerstore().PeerInfo(a.id.ID))
	if _, err := cairnsync.SendReceipts(ctx, h, a.id.ID, []cairnsync.Receipt{{ID: rec.ID, Version: 2, Hash: strings.TrimPrefix(v2, "vv@")}}); err == nil {
		t.Fatal("a node that is not a member delivered receipts")
	}
	if got := holderVersions(t, a, rec.ID); !sameHolders(got, want) {
		t.Fatalf("holders after forged receipts: %v, want %v", got, want)
	}
	if st := a.rcpt.server.Stats(); st.Ignored != 2 || st.Accepted < 1 {
		t.Fatalf("receipt server stats %+v: want B's one receipt accepted and the 2 forged ones ignored", st)
	}
}
