package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestShareAndSyncBetweenTwoNetworks: records a network shares with
// another arrive there, byte for byte; private ones and ones for a third
// network never do.
func TestShareAndSyncBetweenTwoNetworks(t *testing.T) {
	inpud := federationNode(t, "inpud", "global", true)
	tanpud := federationNode(t, "tanpud", "national", false)
	ok(t, tanpud, "join", strings.TrimSpace(ok(t, inpud, "invite", "--network", "tanpud", "--name", "TANPUD", "--level", "national")))

	private := strings.TrimSpace(ok(t, tanpud, "priority", "add", "--title", "Kept inside TANPUD", "--kind", "action", "--importance", "3", "--achievability", "3"))
	shared := strings.TrimSpace(ok(t, tanpud, "priority", "add", "--title", "Naloxone in pharmacies", "--kind", "change", "--importance", "5", "--achievability", "4"))
	other := strings.TrimSpace(ok(t, tanpud, "priority", "add", "--title", "For VNPUD only", "--kind", "change", "--importance", "2", "--achievability", "2"))
	if out := ok(t, tanpud, "share", shared, "--audience", "network:inpud"); !strings.Contains(out, "now shared with: network:inpud (version 2)") {
		t.Fatalf("share printed %q", out)
	}
	ok(t, tanpud, "share", other, "--audience", "network:vnpud")
	fails(t, tanpud, `"everyone" is not an audience`, "share", shared, "--audience", "everyone")
	fails(t, tanpud, "private cannot be combined", "share", shared, "--audience", "private,members")

	eventually(t, "the shared priority to reach inpud", func() bool {
		ok(t, inpud, "sync", "now")
		return len(jsonOf[[]rec](t, ok(t, inpud, "priority", "list", "--origin", "tanpud", "--json"))) > 0
	})
	got := jsonOf[[]rec](t, ok(t, inpud, "priority", "list", "--origin", "tanpud", "--json"))
	if len(got) != 1 || got[0].ID != shared || got[0].Origin != "tanpud" {
		t.Fatalf("inpud holds %+v; want only the shared priority %s", got, shared)
	}
	mine := jsonOf[rec](t, ok(t, tanpud, "priority", "show", shared, "--json"))
	if got[0].Hash != mine.Hash || got[0].Version != 2 {
		t.Fatalf("inpud holds version %d hash %s; tanpud wrote version %d hash %s", got[0].Version, got[0].Hash, mine.Version, mine.Hash)
	}
	for _, id := range []string{private, other} {
		fails(t, inpud, "no record with that id", "priority", "show", id)
	}
	// inpud cannot change tanpud's record.
	fails(t, inpud, "only its own network can change it", "priority", "update", shared, "--importance", "1")
	if out := ok(t, inpud, "sync", "now"); !strings.Contains(out, "tanpud") {
		t.Errorf("sync now:\n%s", out)
	}
	// peers and sync status say what came from whom.
	ps := jsonOf[[]struct {
		ID        string `json:"id"`
		Network   string `json:"network"`
		Connected bool   `json:"connected"`
		Address   string `json:"address"`
		Received  int    `json:"received"`
		Rejected  int    `json:"rejected"`
		Lag       uint64 `json:"lag"`
	}](t, ok(t, inpud, "peers", "--json"))
	if len(ps) != 1 || ps[0].Network != "tanpud" || !ps[0].Connected || !strings.HasPrefix(ps[0].Address, "/ip4/127.0.0.1/") || ps[0].Received < 1 || ps[0].Rejected != 0 || ps[0].Lag != 0 || ps[0].ID == "" {
		t.Fatalf("peers: %+v", ps)
	}
	if out := ok(t, inpud, "peers"); !strings.Contains(out, "tanpud") || !strings.Contains(out, "RECEIVED") {
		t.Errorf("peers:\n%s", out)
	}
	st := ok(t, tanpud, "sync", "status")
	if !strings.Contains(st, "Feed head:  5") || !strings.Contains(st, "pull requests answered") {
		t.Errorf("sync status on the origin:\n%s", st)
	}

	// A suspended member gets nothing new; reinstated, it catches up.
	news := strings.TrimSpace(ok(t, inpud, "priority", "add", "--title", "Global: decriminalise possession", "--kind", "change", "--importance", "5", "--achievability", "2"))
	ok(t, inpud, "member", "suspend", "tanpud")
	ok(t, inpud, "share", news, "--audience", "members")
	for range 3 {
		cairn(t, tanpud, "sync", "now")
	}
	fails(t, tanpud, "no record with that id", "priority", "show", news)
	ok(t, inpud, "member", "reinstate", "tanpud")
	eventually(t, "the reinstated member to catch up", func() bool {
		cairn(t, tanpud, "sync", "now")
		_, _, err := cairn(t, tanpud, "priority", "show", news)
		return err == nil
	})
}

func TestPeerFlagIsChecked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "x")
	fails(t, dir, `peer: "/ip4/127.0.0.1/tcp/7411" is not a peer address: give a multiaddr ending in /p2p/PEERID`, "init", "--network", "x", "--name", "X", "--level", "local", "--peer", "/ip4/127.0.0.1/tcp/7411")
}

// TestRelayWhileOriginOffline: A's records reach C through B while A is
// offline, and C verifies them against A's key from the registry.
func TestRelayWhileOriginOffline(t *testing.T) {
	inpud := federationNode(t, "inpud", "global", true)
	anpud := federationNode(t, "anpud", "regional", false)
	ok(t, anpud, "join", strings.TrimSpace(ok(t, inpud, "invite", "--network", "anpud", "--name", "ANPUD", "--level", "regional", "--role", "steward")))
	// tanpud's node is started and stopped by hand: it is the origin that goes offline.
	tanpudNode, tanpud := startFederationNode(t, "tanpud", "national", false)
	ok(t, tanpud, "join", strings.TrimSpace(ok(t, inpud, "invite", "--network", "tanpud", "--name", "TANPUD", "--level", "national")))
	vnpud := federationNode(t, "vnpud", "national", false)
	ok(t, vnpud, "join", strings.TrimSpace(ok(t, anpud, "invite", "--network", "vnpud", "--name", "VNPUD", "--level", "national")))

	forAll := strings.TrimSpace(ok(t, tanpud, "priority", "add", "--title", "OAT take-home doses", "--kind", "change", "--importance", "5", "--achievability", "3"))
	ok(t, tanpud, "share", forAll, "--audience", "members")
	forVnpud := strings.TrimSpace(ok(t, tanpud, "priority", "add", "--title", "For VNPUD only", "--kind", "action", "--importance", "2", "--achievability", "4"))
	ok(t, tanpud, "share", forVnpud, "--audience", "network:vnpud")

	// anpud pulls from tanpud; then tanpud goes offline.
	eventually(t, "anpud to hold tanpud's shared priority", func() bool {
		ok(t, anpud, "sync", "now")
		_, _, err := cairn(t, anpud, "priority", "show", forAll)
		return err == nil
	})
	fails(t, anpud, "no record with that id", "priority", "show", forVnpud)
	if err := tanpudNode.Close(); err != nil {
		t.Fatal(err)
	}
	// vnpud gets the members-wide record through anpud, verified against
	// tanpud's key; the one for vnpud alone never reached anpud, so it
	// waits for tanpud to come back.
	eventually(t, "vnpud to receive tanpud's record through anpud", func() bool {
		ok(t, vnpud, "sync", "now")
		_, _, err := cairn(t, vnpud, "priority", "show", forAll)
		return err == nil
	})
	got := jsonOf[rec](t, ok(t, vnpud, "priority", "show", forAll, "--json"))
	if got.Origin != "tanpud" || got.Version != 2 {
		t.Fatalf("relayed record: %+v", got)
	}
	fails(t, vnpud, "no record with that id", "priority", "show", forVnpud)
}
