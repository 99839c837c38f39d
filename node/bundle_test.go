package node

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
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

// TestBundleRoundTrip: A and B never connect; records go from A to B on a
// "USB stick" (a byte slice), and B's acknowledgement comes back.
func TestBundleRoundTrip(t *testing.T) {
	a := notifyNode(t, "anpud", true)
	b := joinNode(t, a, "bnpud")
	joinNode(t, a, "cnpud")
	waitFor(t, "A's registry to hold B's and C's keys", func() bool {
		st := a.fed.State()
		return len(st.NodeKeys("bnpud")) == 1 && len(st.NodeKeys("cnpud")) == 1
	})
	waitFor(t, "B's registry to hold A's key", func() bool {
		_, ok := b.fed.State().Node(a.ID())
		return ok
	})
	// B talks to nobody from here on, and A refuses B.
	b.gater.SetAllow(func(peer.ID) bool { return false })
	b.gater.Enforce(b.host)
	a.gater.SetAllow(func(p peer.ID) bool { return p != b.id.ID && a.fed.Allowed(p) })
	a.gater.Enforce(a.host)

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
	toC, _ := mustBundle(t, a, "cnpud", -1)
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
