package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/federation"
)

type holderRow struct {
	ID      string `json:"id"`
	Network string `json:"network"`
	Version int    `json:"version"`
	Hash    string `json:"hash"`
	At      string `json:"at"`
}

// holdersOf returns `cairn record holders ID --json` on dir as network →
// version@hash, checking that every row names the record and a time.
func holdersOf(t *testing.T, dir, id string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, h := range jsonOf[[]holderRow](t, ok(t, dir, "record", "holders", id, "--json")) {
		if h.ID != id || h.At == "" || len(h.Hash) != 64 {
			t.Fatalf("holders row %+v: want the record id, a 64-digit hash and a time", h)
		}
		out[h.Network] = strings.Repeat("v", h.Version) + "@" + h.Hash
	}
	return out
}

// restartFederationNode starts the node in dir again, as
// startFederationNode configured it, on the listen address it had (the
// registry's leader reaches a non-voter at the address it published).
func restartFederationNode(t *testing.T, dir, listen string) {
	t.Helper()
	cfg := node.DefaultConfig(dir)
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{listen}
	cfg.Registry = federation.FastConfig("")
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
}

// TestRecordHolders: the origin lists which network holds which version
// of a record it shared, from receipts, including one from a network that
// got the record through a relay while the origin was offline.
func TestRecordHolders(t *testing.T) {
	inpud := federationNode(t, "inpud", "global", true)
	tanpudNode, tanpud := startFederationNode(t, "tanpud", "national", false)
	ok(t, tanpud, "join", strings.TrimSpace(ok(t, inpud, "invite", "--network", "tanpud", "--name", "TANPUD", "--level", "national")))

	id := strings.TrimSpace(ok(t, tanpud, "priority", "add", "--title", "Naloxone in pharmacies", "--kind", "change", "--importance", "5", "--achievability", "4"))
	if got := holdersOf(t, tanpud, id); len(got) != 1 {
		t.Fatalf("holders of a private record: %v, want only tanpud", got)
	}
	ok(t, tanpud, "share", id, "--audience", "members")
	mine := jsonOf[rec](t, ok(t, tanpud, "priority", "show", id, "--json"))
	v2 := "vv@" + mine.Hash
	eventually(t, "inpud's receipt to reach tanpud", func() bool {
		ok(t, inpud, "sync", "now")
		got := holdersOf(t, tanpud, id)
		return got["inpud"] == v2 && got["tanpud"] == v2
	})
	out := ok(t, tanpud, "record", "holders", id)
	for _, want := range []string{"NETWORK", "VERSION", "HASH", "SINCE", "tanpud (origin)", "inpud", mine.Hash[:16]} {
		if !strings.Contains(out, want) {
			t.Errorf("record holders is missing %q:\n%s", want, out)
		}
	}
	if first := strings.Split(out, "\n")[1]; !strings.HasPrefix(first, "tanpud (origin)") {
		t.Errorf("the origin is not listed first:\n%s", out)
	}
	fails(t, inpud, "only the nodes of tanpud collect its delivery receipts", "record", "holders", id)
	fails(t, tanpud, "no record with that id", "record", "holders", "01JAAAAAAAAAAAAAAAAAAAAAAA")
	fails(t, tanpud, "is not a record id", "record", "holders", "nope")
	fails(t, tanpud, "needs ID", "record", "holders")

	// The origin goes offline; vnpud joins and gets the record through inpud.
	listen, _, _ := strings.Cut(tanpudNode.Addrs()[0], "/p2p/")
	if err := tanpudNode.Close(); err != nil {
		t.Fatal(err)
	}
	vnpud := federationNode(t, "vnpud", "national", false)
	ok(t, vnpud, "join", strings.TrimSpace(ok(t, inpud, "invite", "--network", "vnpud", "--name", "VNPUD", "--level", "national")))
	eventually(t, "vnpud to receive tanpud's record through inpud", func() bool {
		ok(t, vnpud, "sync", "now")
		_, _, err := cairn(t, vnpud, "priority", "show", id)
		return err == nil
	})

	// Back online, tanpud hears from vnpud too, and still knows inpud's receipt.
	restartFederationNode(t, tanpud, listen)
	eventually(t, "vnpud's receipt to reach tanpud after it restarted", func() bool {
		cairn(t, tanpud, "sync", "now") // the origin back online pulls from every member, and connects to vnpud
		return holdersOf(t, tanpud, id)["vnpud"] == v2
	})
	if got := holdersOf(t, tanpud, id); len(got) != 3 || got["inpud"] != v2 || got["tanpud"] != v2 {
		t.Fatalf("holders after the restart: %v", got)
	}
}
