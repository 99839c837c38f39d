package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
	"github.com/inpud/cairn/node/registry"
	cairnsync "github.com/inpud/cairn/sync"
)

// ownVersions lists n's own versions in feed order: "id/version" and the
// envelope bytes.
func ownVersions(t *testing.T, n *Node) (keys []string, envs [][]byte) {
	t.Helper()
	entries, _, err := n.store.Feed(0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Payload.Origin == n.profile.Slug {
			keys = append(keys, fmt.Sprintf("%s/%d", e.Payload.ID, e.Payload.Version))
			raw, err := e.Envelope.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			envs = append(envs, raw)
		}
	}
	return keys, envs
}

// keptFor lists the "id/version" of every custody copy n keeps for origin.
func keptFor(t *testing.T, n *Node, origin string) []string {
	t.Helper()
	bs, _, more, err := n.store.CustodyBlobs(origin, 0, 10000, 1<<30)
	if err != nil || more {
		t.Fatalf("custody copies of %s: %v (more: %v)", origin, err, more)
	}
	var out []string
	for _, b := range bs {
		h, err := cairnsync.Blob(b).Header()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s/%d", h.ID, h.Version))
	}
	return out
}

func custodyStatus(t *testing.T, n *Node) CustodyStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := n.CustodyStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return v.(CustodyStatus)
}

// filesContain reports the files under dir whose bytes contain marker.
func filesContain(t *testing.T, dir string, marker []byte) []string {
	t.Helper()
	var hits []string
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(b, marker) {
			hits = append(hits, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("only %d files under %s: not a node's data dir", files, dir)
	}
	return hits
}

// TestCustodyCopies: A names B and C its custodians; every version A
// writes, private ones included, reaches both as sealed copies; A's
// custody status shows both caught up; the custodian's data dir holds no
// plaintext of A's private record; a network that is not a custodian
// refuses pushes; A fetches its copies back and its archive key opens
// them to the exact signed envelopes; another network may not fetch them.
func TestCustodyCopies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := notifyNode(t, "anpud", true)
	b := joinNode(t, a, "bnpud")
	c := joinNode(t, a, "cnpud")
	d := joinNode(t, a, "dnpud")

	// Bad input changes nothing.
	for _, bad := range []struct {
		list []string
		want error
	}{
		{[]string{"bnpud"}, registry.ErrInvalidCommand},
		{[]string{"bnpud", "anpud"}, registry.ErrInvalidCommand},
		{[]string{"bnpud", "bnpud"}, registry.ErrInvalidCommand},
		{[]string{"bnpud", "Not A Slug"}, registry.ErrInvalidCommand},
		{[]string{"bnpud", "nowhere"}, registry.ErrNotFound},
	} {
		if _, err := a.SetCustodians(ctx, bad.list); !errors.Is(err, bad.want) {
			t.Errorf("custodians %v: %v, want %v", bad.list, err, bad.want)
		}
	}
	if st := custodyStatus(t, a); len(st.Custodians) != 0 {
		t.Fatalf("custodians after refusals: %+v", st.Custodians)
	}

	// Records written before the custodians are chosen are pushed too.
	const marker = "CUSTODY-MARKER-only-in-a-private-record-4f1c9"
	private, err := a.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: marker, Importance: 5, Achievability: 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetCustodians(ctx, []string{"bnpud", "cnpud"}); err != nil {
		t.Fatal(err)
	}
	members, err := a.Records().AddPriority(model.Priority{Kind: model.PriorityAction, Title: "Peer-run drop-in hours", Importance: 3, Achievability: 4}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Records().Share(members.ID, model.Audience{model.AudienceMembers}); err != nil {
		t.Fatal(err)
	}
	scoped, err := a.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Take-home doses", Importance: 4, Achievability: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Records().Share(scoped.ID, model.Audience{"network:dnpud"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Records().UpdatePriority(private.ID, records.PriorityPatch{Achievability: ptr(3)}); err != nil {
		t.Fatal(err)
	}
	want, wantEnvs := ownVersions(t, a)
	if len(want) != 6 {
		t.Fatalf("A wrote %d versions, want 6", len(want))
	}
	for _, n := range []*Node{b, c} {
		waitFor(t, n.profile.Slug+" to keep a copy of every version of A", func() bool {
			return slices.Equal(keptFor(t, n, "anpud"), want)
		})
	}
	waitFor(t, "A's custody status to show both custodians caught up", func() bool {
		st := custodyStatus(t, a)
		if st.ID != "anpud" || len(st.Custodians) != 2 {
			return false
		}
		for i, cs := range st.Custodians {
			if cs.ID != []string{"bnpud", "cnpud"}[i] || !cs.CaughtUp || cs.Behind != 0 || cs.Acknowledged != a.store.Head() ||
				len(cs.Nodes) != 1 || cs.Nodes[0].Held != 6 || cs.Nodes[0].Error != "" {
				return false
			}
		}
		return true
	})
	if st := custodyStatus(t, b); len(st.Keeping) != 1 || st.Keeping[0] != (KeptCopies{ID: "anpud", Held: 6}) {
		t.Errorf("B keeps %+v, want 6 copies for anpud", st.Keeping)
	}

	// D is nobody's custodian: it refuses A's push and keeps nothing. C is
	// A's custodian, not B's: it refuses B's push.
	blobs, _, err := a.cust.batch(0)
	if err != nil || len(blobs) != 6 {
		t.Fatalf("sealing A's versions: %d, %v", len(blobs), err)
	}
	if _, err := cairnsync.PushCustody(ctx, a.host, d.id.ID, 1, blobs); !errors.Is(err, cairnsync.ErrCustodyRefused) {
		t.Fatalf("push to a network that is not a custodian: %v", err)
	}
	if held, _, _ := d.store.CustodyHolding("anpud", a.ID()); held != 0 {
		t.Fatalf("D keeps %d copies of A", held)
	}
	brec, err := b.Records().AddPriority(model.Priority{Kind: model.PriorityAction, Title: "Outreach van", Importance: 2, Achievability: 5}, false)
	if err != nil {
		t.Fatal(err)
	}
	bst, err := b.store.Get(brec.ID)
	if err != nil {
		t.Fatal(err)
	}
	bblob, err := b.cust.key.Seal("bnpud", bst.Envelope, bst.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cairnsync.PushCustody(ctx, b.host, c.id.ID, 1, []cairnsync.Blob{bblob}); !errors.Is(err, cairnsync.ErrCustodyRefused) {
		t.Fatalf("push by a network that did not choose this custodian: %v", err)
	}

	// A fetches its copies back: exactly the signed envelopes.
	got, err := a.FetchCustodyCopies(ctx, b.id.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Envelopes) != len(wantEnvs) || got.OtherKeys != 0 {
		t.Fatalf("fetched %d envelopes (%d of other keys), want %d", len(got.Envelopes), got.OtherKeys, len(wantEnvs))
	}
	for i, env := range got.Envelopes {
		raw, _ := env.MarshalBinary()
		if !bytes.Equal(raw, wantEnvs[i]) {
			t.Fatalf("envelope %d fetched back differs from the one A signed", i)
		}
	}
	// D may not fetch A's copies.
	if _, err := cairnsync.FetchCustody(ctx, d.host, b.id.ID, "anpud", 0, 0); !errors.Is(err, cairnsync.ErrCustodyRefused) {
		t.Fatalf("fetch of A's copies by D: %v", err)
	}

	// No plaintext of the private record anywhere in B's or C's data dir
	// (every file: badger's value log, tables, raft log), closed so
	// everything is flushed; A's own data dir has it, so the search works.
	for _, n := range []*Node{b, c, a} {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*Node{b, c} {
		if hits := filesContain(t, n.cfg.DataDir, []byte(marker)); len(hits) > 0 {
			t.Errorf("%s's data dir holds the private record's text in %v", n.profile.Slug, hits)
		}
	}
	if hits := filesContain(t, a.cfg.DataDir, []byte(marker)); len(hits) == 0 {
		t.Fatal("A's own data dir does not hold its private record's text: the search finds nothing")
	}
}
