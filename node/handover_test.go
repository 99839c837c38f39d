package node

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/inpud/cairn/node/registry"
	"github.com/inpud/cairn/node/secrets"
)

// shutdownFed is a federation whose national network N goes offline for
// good: S is the steward, C and X keep N's custody copies, M is in the
// audience of some of N's records, X is outside it.
type shutdownFed struct {
	s, n, c, m, x *Node
	// Records N wrote, by what they are, and a text only each holds.
	private, members, forM string
}

const (
	markerPrivate = "HANDOVER-PRIVATE-only-nnpud-reads-7c2e1"
	markerForM    = "HANDOVER-FOR-M-only-mnpud-reads-93ab4"
	markerMembers = "HANDOVER-MEMBERS-every-member-reads-51d0f"
)

// waitLong polls cond for up to a minute (the machine is shared).
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func startShutdownFed(t *testing.T) *shutdownFed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := &shutdownFed{}
	f.s = notifyNode(t, "snpud", true)
	f.n = joinNode(t, f.s, "nnpud")
	f.c = joinNode(t, f.s, "cnpud")
	f.m = joinNode(t, f.s, "mnpud")
	f.x = joinNode(t, f.s, "xnpud")
	all := []*Node{f.s, f.n, f.c, f.m, f.x}
	waitLong(t, "every registry to hold all five networks' keys", func() bool {
		for _, a := range all {
			st := a.fed.State()
			for _, b := range all {
				if _, _, ok := st.Member(b.ID()); !ok {
					return false
				}
			}
		}
		return true
	})
	if _, err := f.n.SetCustodians(ctx, []string{"cnpud", "xnpud"}); err != nil {
		t.Fatal(err)
	}
	// M is offline while N writes: the records for M can only reach it
	// later, from the archive.
	if err := f.m.Close(); err != nil {
		t.Fatal(err)
	}
	f.private = addShared(t, f.n, markerPrivate, "")
	f.members = addShared(t, f.n, markerMembers, "members")
	f.forM = addShared(t, f.n, markerForM, "network:mnpud")
	want, _ := ownVersions(t, f.n)
	for _, c := range []*Node{f.c, f.x} {
		waitLong(t, c.profile.Slug+" to keep a copy of every version of N", func() bool {
			return len(keptFor(t, c, "nnpud")) == len(want)
		})
	}
	return f
}

// gone stops N for good: its node closes and its data dir is deleted.
func (f *shutdownFed) gone(t *testing.T) {
	t.Helper()
	if err := f.n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(f.n.cfg.DataDir); err != nil {
		t.Fatal(err)
	}
}

// checkServed: S imports N's shared records and keeps its private one
// sealed; M, back online, gets exactly the records whose audience admits
// it, from S; X gets none of those not for X; no data dir outside an
// audience holds the text of a record it must not read.
func (f *shutdownFed) checkServed(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitLong(t, "S to import N's archive", func() bool {
		for _, a := range f.s.archives() {
			if a.ID == "nnpud" && a.Imported {
				return true
			}
		}
		return false
	})
	arch := f.s.archives()
	if len(arch) != 1 || arch[0].Shared != 2 || arch[0].Private != 1 || arch[0].Problem != "" || arch[0].Sealed == 0 {
		t.Fatalf("S's archives: %+v, want nnpud with 2 shared records and 1 private kept sealed", arch)
	}
	if !holds(f.s, f.members) || !holds(f.s, f.forM) {
		t.Fatal("S does not hold N's shared records after the handover")
	}
	if holds(f.s, f.private) {
		t.Fatal("S opened N's private record into its store")
	}
	if st := f.s.fed.State(); func() bool {
		n, _ := st.Network("nnpud")
		return n.Status != registry.StatusRetired || n.Steward != "snpud"
	}() {
		t.Fatal("the registry does not show nnpud retired with its archive held by snpud")
	}

	// M comes back: it pulls the record for M from S, the only node
	// still holding it.
	cfg := f.m.cfg
	cfg.Network = Profile{}
	m := startNode(t, cfg)
	t.Cleanup(func() { m.Close() })
	waitLong(t, "M to get the records for M from S", func() bool {
		m.repl.Round(ctx)
		return holds(m, f.forM) && holds(m, f.members)
	})
	if holds(m, f.private) {
		t.Fatal("M holds N's private record")
	}
	rec, err := m.Records().Get(f.forM)
	if err != nil || rec.Origin != "nnpud" {
		t.Fatalf("the record for M on M: %+v, %v", rec, err)
	}
	// X, outside the audience, pulls from S too and gets nothing more.
	f.x.repl.Round(ctx)
	f.c.repl.Round(ctx)
	for _, n := range []*Node{f.x, f.c} {
		if holds(n, f.forM) || holds(n, f.private) {
			t.Fatalf("%s holds a record of N whose audience leaves it out", n.profile.Slug)
		}
		if !holds(n, f.members) {
			t.Fatalf("%s lacks N's record for all members", n.profile.Slug)
		}
	}

	// The seized-disk check: every file of every data dir, closed so
	// everything is flushed.
	for _, n := range []*Node{f.s, f.c, f.x, m} {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*Node{f.s, f.c, f.x, m} {
		if hits := filesContain(t, n.cfg.DataDir, []byte(markerPrivate)); len(hits) > 0 {
			t.Errorf("%s's data dir holds N's private record's text in %v", n.profile.Slug, hits)
		}
	}
	for _, n := range []*Node{f.c, f.x} {
		if hits := filesContain(t, n.cfg.DataDir, []byte(markerForM)); len(hits) > 0 {
			t.Errorf("%s's data dir holds the text of N's record for M in %v", n.profile.Slug, hits)
		}
	}
	if hits := filesContain(t, m.cfg.DataDir, []byte(markerForM)); len(hits) == 0 {
		t.Fatal("M's data dir does not hold the record for M's text: the search finds nothing")
	}
}

// TestShutdownHandover: N hands its archive over to S, then goes offline
// for good; S serves N's records to their audiences. Bad input first:
// each refused with one sentence, the registry unchanged.
func TestShutdownHandover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := startShutdownFed(t)

	for _, bad := range []struct {
		to, network string
		key         []byte
		want        error
		text        string
	}{
		{"xnpud", "", nil, registry.ErrConflict, "xnpud is a member network, not a steward"},
		{"nnpud", "", nil, registry.ErrInvalidCommand, "nnpud cannot hand its archive over to itself"},
		{"nowhere", "", nil, registry.ErrNotFound, "nowhere is not a network of this federation"},
		{"snpud", "gone", nil, registry.ErrNotFound, "gone is not a network of this federation"},
		{"snpud", "cnpud", nil, registry.ErrInvalidCommand, "give its archive key"},
		{"snpud", "", make([]byte, ArchiveKeySize), registry.ErrInvalidCommand, "its archive key is this node's"},
	} {
		_, err := f.n.Handover(ctx, bad.to, bad.network, bad.key)
		if !errors.Is(err, bad.want) || !contains(err, bad.text) {
			t.Errorf("handover to %s of %q: %v, want %v saying %q", bad.to, bad.network, err, bad.want, bad.text)
		}
	}
	if net, _ := f.s.fed.State().Network("nnpud"); net.Status != registry.StatusActive || net.Steward != "" {
		t.Fatalf("refused handovers changed nnpud: %+v", net)
	}

	res, err := f.n.Handover(ctx, "snpud", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Network != "nnpud" {
		t.Fatalf("handover result %+v", res)
	}
	f.gone(t)
	f.checkServed(t)
}

// TestShutdownHandoverByCustodian: N goes offline for good without
// handing over; a steward suspends it; custodian C rebuilds N's archive
// key from two of its three key shares and hands the archive over to S.
func TestShutdownHandoverByCustodian(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := startShutdownFed(t)
	keys, err := ReadNodeKeys(f.n.cfg.DataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := keys.Encode()
	if err != nil {
		t.Fatal(err)
	}
	files, err := secrets.Split(secret, secrets.Owner{Network: keys.Network, PeerID: keys.ID.String(), Created: time.Now().UTC()}, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	f.gone(t)

	// While N is active (as far as the registry knows), a custodian may
	// not hand it over.
	if _, err := f.c.Handover(ctx, "snpud", "nnpud", keys.Archive); !errors.Is(err, registry.ErrUnauthorised) || !contains(err, "a custodian can hand over only a network a steward has suspended") {
		t.Fatalf("custodian's handover of an active network: %v", err)
	}
	if _, err := f.s.fed.Propose(ctx, registry.Suspend, registry.NetworkArgs{Network: "nnpud"}); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "C to see N suspended", func() bool {
		net, _ := f.c.fed.State().Network("nnpud")
		return net.Status == registry.StatusSuspended
	})
	// A key that opens none of the copies C keeps: refused, nothing changed.
	wrong := make([]byte, ArchiveKeySize)
	rand.Read(wrong)
	if _, err := f.c.Handover(ctx, "snpud", "nnpud", wrong); !errors.Is(err, registry.ErrInvalidCommand) || !contains(err, "opens none of the") {
		t.Fatalf("handover with the wrong key: %v", err)
	}
	if net, _ := f.s.fed.State().Network("nnpud"); net.Status != registry.StatusSuspended || net.Steward != "" {
		t.Fatalf("a refused handover changed nnpud: %+v", net)
	}

	var shares []secrets.Share
	for _, i := range []int{0, 2} {
		s, err := secrets.ParseShare(files[i])
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, s)
	}
	_, combined, err := secrets.Combine(shares)
	if err != nil {
		t.Fatal(err)
	}
	rebuilt, err := DecodeNodeKeys(combined)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Handover(ctx, "snpud", "nnpud", rebuilt.Archive); err != nil {
		t.Fatal(err)
	}
	f.checkServed(t)
}

func contains(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}
