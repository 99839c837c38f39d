package node

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/registry"
)

// addShared writes a priority titled title and shares it with aud
// ("" keeps it private).
func addShared(t *testing.T, n *Node, title, aud string) string {
	t.Helper()
	rec, err := n.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: title, Importance: 4, Achievability: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	if aud != "" {
		a, err := model.ParseAudience(aud)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Records().Share(rec.ID, a); err != nil {
			t.Fatal(err)
		}
	}
	return rec.ID
}

func mustBundle(t *testing.T, n *Node, to string, since int64) ([]byte, BundleHeader) {
	t.Helper()
	var buf bytes.Buffer
	h, err := n.WriteBundle(&buf, to, since)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), h
}

// refused imports b on n, expects a bad-bundle error naming want, and
// checks that none of ids arrived.
func refused(t *testing.T, n *Node, b []byte, want string, ids ...string) {
	t.Helper()
	_, err := n.ImportBundle(b)
	if !errors.Is(err, ErrBundle) || !strings.Contains(err.Error(), want) {
		t.Fatalf("import: got %v, want a bad-bundle error saying %q", err, want)
	}
	for _, id := range ids {
		if holds(n, id) {
			t.Fatalf("record %s was stored from a refused bundle", id)
		}
	}
}

// isolatedPair starts A (the steward), B and C, and waits until each
// registry holds what the bundles need. The caller isolates B with
// isolate.
func isolatedPair(t *testing.T) (a, b, c *Node) {
	t.Helper()
	a = notifyNode(t, "anpud", true)
	b = joinNode(t, a, "bnpud")
	c = joinNode(t, a, "cnpud")
	waitFor(t, "the registries to hold A's, B's and C's keys", func() bool {
		sa, sb, sc := a.fed.State(), b.fed.State(), c.fed.State()
		_, bHasA := sb.Node(a.ID())
		_, bHasC := sb.Node(c.ID())
		return len(sa.NodeKeys("bnpud")) == 1 && len(sa.NodeKeys("cnpud")) == 1 && bHasA && bHasC && len(sc.NodeKeys("bnpud")) == 1
	})
	return a, b, c
}

// isolate cuts B off from every node, and A from B: from here on nothing
// reaches B but bundles.
func isolate(a, b *Node) {
	b.gater.SetAllow(func(peer.ID) bool { return false })
	b.gater.Enforce(b.host)
	a.gater.SetAllow(func(p peer.ID) bool { return p != b.id.ID && a.fed.Allowed(p) })
	a.gater.Enforce(a.host)
}

// TestBundlesOutOfOrder: sticks arrive in another order than they were
// written. An older version passed over does not refuse a bundle, and an
// acknowledgement that skips an unacknowledged range does not move the
// next bundle's start past it.
func TestBundlesOutOfOrder(t *testing.T) {
	a, b, _ := isolatedPair(t)
	isolate(a, b)
	id := addShared(t, a, "Peer-led naloxone training", "network:bnpud")
	first, h1 := mustBundle(t, a, "bnpud", -1)
	aud, _ := model.ParseAudience("members")
	if _, err := a.Records().Share(id, aud); err != nil {
		t.Fatal(err)
	}
	second, h2 := mustBundle(t, a, "bnpud", int64(h1.Upto))
	if h1.Count != 1 || h2.Count != 1 || h2.Since != h1.Upto {
		t.Fatalf("second bundle %+v: want the one new version after seq %d", h2, h1.Upto)
	}
	r2, err := b.ImportBundle(second)
	if err != nil || r2.Stored != 1 {
		t.Fatalf("second bundle first: stored %d, %v", r2.Stored, err)
	}
	r1, err := b.ImportBundle(first)
	if err != nil {
		t.Fatalf("the earlier bundle, imported later, was refused: %v", err)
	}
	if r1.Stored != 0 || r1.Older != 1 {
		t.Fatalf("earlier bundle: stored %d, older %d; want 0, 1", r1.Stored, r1.Older)
	}
	mine, err := a.store.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.store.Get(id); err != nil || got.Hash != mine.Hash {
		t.Fatalf("B holds version %d (%v), want A's current version %d", got.Payload.Version, err, mine.Payload.Version)
	}

	ack2, err := a.ImportBundle(r2.Ack)
	if err != nil || ack2.AckRecorded || !ack2.Gap {
		t.Fatalf("acknowledgement of the second bundle alone: %+v, %v; want a gap, not recorded", ack2, err)
	}
	if s, _ := a.AckedSeq("bnpud"); s != 0 {
		t.Fatalf("acknowledged seq %d after a gap; want 0", s)
	}
	for _, ack := range [][]byte{r1.Ack, r2.Ack} {
		if res, err := a.ImportBundle(ack); err != nil || !res.AckRecorded {
			t.Fatalf("acknowledgement in order: %+v, %v", res, err)
		}
	}
	if s, _ := a.AckedSeq("bnpud"); s != h2.Upto {
		t.Fatalf("acknowledged seq %d, want %d", s, h2.Upto)
	}
}

// TestBundleRoundTrip: A and B never connect; records go from A to B on a
// "USB stick" (a byte slice), and B's acknowledgement comes back.
func TestBundleRoundTrip(t *testing.T) {
	a, b, c := isolatedPair(t)
	// A bundle from C, whose key the steward then revokes, and one from A
	// to C, written while C has a key.
	fromC, _ := mustBundle(t, c, "bnpud", -1)
	toC, _ := mustBundle(t, a, "cnpud", -1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Federation().Propose(ctx, registry.RevokeNodeKey, registry.RevokeNodeKeyArgs{PeerID: c.ID()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B's registry to hold C's key as revoked", func() bool {
		k, ok := b.fed.State().Node(c.ID())
		return ok && k.Revoked
	})
	isolate(a, b)

	private := addShared(t, a, "PRIVATE-MARKER outreach van rota", "")
	members := addShared(t, a, "MEMBERS-MARKER naloxone in every pharmacy", "members")
	forB := addShared(t, a, "BNPUD-MARKER drug checking at festivals", "network:bnpud")
	forC := addShared(t, a, "CNPUD-MARKER take-home OAT doses", "network:cnpud")
	all := []string{private, members, forB, forC}

	bundle, h := mustBundle(t, a, "bnpud", -1)
	if h.Count != 2 || h.Since != 0 || h.Upto == 0 {
		t.Fatalf("bundle header %+v: want 2 records from seq 0", h)
	}
	for _, m := range []string{"MARKER", "naloxone", "pharmacy"} {
		if bytes.Contains(bundle, []byte(m)) {
			t.Fatalf("the bundle file contains %q in plaintext", m)
		}
	}

	// Bad input, each refused with nothing stored.
	refused(t, b, toC, `addressed to network "cnpud"`, all...)
	refused(t, b, bundle[:len(bundle)-20], "signature does not match", all...)
	refused(t, b, bundle[:len(BundleMagic)+10], "truncated", all...)
	tampered := bytes.Clone(bundle)
	tampered[len(tampered)-30] ^= 1
	refused(t, b, tampered, "signature does not match", all...)
	header := bytes.Replace(bundle, []byte(`"count":2`), []byte(`"count":1`), 1)
	refused(t, b, header, "signature does not match", all...)
	stranger := notifyNode(t, "xnpud", true) // another federation: not in B's registry
	forged, err := stranger.signBundle(BundleHeader{Kind: BundleRecords, From: "anpud", To: "bnpud", Sender: stranger.ID(), Node: stranger.ID()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	refused(t, b, forged, "not a key of network", all...)
	refused(t, b, fromC, "revoked", all...)

	// The bundle itself.
	res, err := b.ImportBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored != 2 || res.Duplicates != 0 {
		t.Fatalf("import stored %d, duplicates %d: want 2, 0", res.Stored, res.Duplicates)
	}
	for id, want := range map[string]bool{private: false, members: true, forB: true, forC: false} {
		if holds(b, id) != want {
			t.Fatalf("B holds %s: %v, want %v", id, !want, want)
		}
		if !want {
			continue
		}
		got, err := b.store.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		sent, err := a.store.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Envelope.Payload, sent.Envelope.Payload) || !bytes.Equal(got.Envelope.Sig, sent.Envelope.Sig) {
			t.Fatalf("record %s differs from A's signed envelope", id)
		}
	}
	again, err := b.ImportBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if again.Stored != 0 || again.Duplicates != 2 {
		t.Fatalf("second import stored %d, duplicates %d: want 0, 2", again.Stored, again.Duplicates)
	}

	// The acknowledgement: refused by the wrong node, accepted by A.
	refused(t, b, res.Ack, `addressed to network "anpud"`)
	ack, err := a.ImportBundle(res.Ack)
	if err != nil {
		t.Fatal(err)
	}
	if !ack.AckRecorded {
		t.Fatal("A did not record B's acknowledgement")
	}
	if s, err := a.AckedSeq("bnpud"); err != nil || s != h.Upto {
		t.Fatalf("A's acknowledged seq for bnpud: %d, %v; want %d", s, err, h.Upto)
	}

	// The next bundle carries only what is new.
	newer := addShared(t, a, "MEMBERS-MARKER peer workers paid fairly", "members")
	next, nh := mustBundle(t, a, "bnpud", -1)
	if nh.Since != h.Upto || nh.Count != 1 {
		t.Fatalf("next bundle header %+v: want 1 record after seq %d", nh, h.Upto)
	}
	nres, err := b.ImportBundle(next)
	if err != nil {
		t.Fatal(err)
	}
	if nres.Stored != 1 || !holds(b, newer) {
		t.Fatalf("next bundle stored %d; B holds the new record: %v", nres.Stored, holds(b, newer))
	}
	if _, h0 := mustBundle(t, a, "bnpud", 0); h0.Count != 3 {
		t.Fatalf("--since 0 bundle holds %d records, want 3", h0.Count)
	}
	if len(b.host.Network().ConnsToPeer(a.id.ID)) != 0 {
		t.Fatal("B is connected to A: the records may not have come by bundle")
	}
}
