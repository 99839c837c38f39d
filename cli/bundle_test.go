package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBundleOnAUSBStick follows docs/OPERATIONS.md "Sending records on a
// USB stick": the two nodes are never running at the same time once the
// sender holds records for the recipient, so every record travels in the
// bundle, and the acknowledgement comes back.
func TestBundleOnAUSBStick(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"## Sending records on a USB stick", "cairn bundle --to bnpud --out", "cairn import ", ".ack", "--since 0"} {
		if !bytes.Contains(doc, []byte(step)) {
			t.Fatalf("docs/OPERATIONS.md does not describe the step %q", step)
		}
	}

	// A steward network, so that a member restarted while the other is
	// away gets its registry back; it never holds the records below
	// (they are shared with bnpud alone).
	s := federationNode(t, "inpud", "global", true)
	an, a := startFederationNode(t, "anpud", "national", false)
	bn, b := startFederationNode(t, "bnpud", "national", false)
	ok(t, a, "join", strings.TrimSpace(ok(t, s, "invite", "--network", "anpud", "--name", "ANPUD", "--level", "national")))
	ok(t, b, "join", strings.TrimSpace(ok(t, s, "invite", "--network", "bnpud", "--name", "BNPUD", "--level", "national")))
	eventually(t, "anpud's registry to hold bnpud", func() bool {
		return strings.Contains(ok(t, a, "members"), "bnpud")
	})
	// B is away from here on, until A is: the two never run at once while
	// A holds records for B.
	if err := bn.Close(); err != nil {
		t.Fatal(err)
	}

	private := strings.TrimSpace(ok(t, a, "priority", "add", "--title", "Kept inside ANPUD", "--kind", "action", "--importance", "3", "--achievability", "3"))
	shared := strings.TrimSpace(ok(t, a, "priority", "add", "--title", "Naloxone in pharmacies", "--kind", "change", "--importance", "5", "--achievability", "4"))
	ok(t, a, "share", shared, "--audience", "network:bnpud")
	stick := t.TempDir()
	f := filepath.Join(stick, "anpud-to-bnpud-1.cairn")
	if out := ok(t, a, "bundle", "--to", "bnpud", "--out", f); !strings.Contains(out, "1 record(s) for bnpud") {
		t.Fatalf("bundle printed %q", out)
	}
	fails(t, a, "already exists", "bundle", "--to", "bnpud", "--out", f)
	fails(t, a, `network "nonesuch" is not in the registry`, "bundle", "--to", "nonesuch", "--out", filepath.Join(stick, "x"))
	fails(t, a, "--since", "bundle", "--to", "bnpud", "--since", "-3", "--out", filepath.Join(stick, "y"))
	raw, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("Naloxone")) {
		t.Fatal("the bundle holds a record's text in plaintext")
	}
	if err := an.Close(); err != nil {
		t.Fatal(err)
	}
	fails(t, s, "no record with that id", "priority", "show", shared)

	bn2 := restartNode(t, b)
	eventually(t, "bnpud's registry to be back (it names anpud)", func() bool {
		return strings.Contains(ok(t, b, "members"), "anpud")
	})
	// A damaged copy: refused in one sentence, nothing stored.
	bad := filepath.Join(stick, "damaged.cairn")
	if err := os.WriteFile(bad, raw[:len(raw)-7], 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, b, "signature does not match", "import", bad)
	fails(t, b, "no record with that id", "priority", "show", shared)
	if _, err := os.Stat(bad + ".ack"); err == nil {
		t.Fatal("a refused bundle left an acknowledgement")
	}

	out := ok(t, b, "import", f)
	if !strings.Contains(out, "stored 1, already held 0") {
		t.Fatalf("import printed %q", out)
	}
	got := jsonOf[rec](t, ok(t, b, "priority", "show", shared, "--json"))
	if got.Origin != "anpud" {
		t.Fatalf("bnpud holds %+v", got)
	}
	fails(t, b, "no record with that id", "priority", "show", private)
	if out := ok(t, b, "import", f); !strings.Contains(out, "stored 0, already held 1") || !strings.Contains(out, "nothing changed") {
		t.Fatalf("second import printed %q", out)
	}
	ack := f + ".ack"
	if _, err := os.Stat(ack); err != nil {
		t.Fatalf("no acknowledgement next to the bundle: %v", err)
	}
	fails(t, b, `addressed to network "anpud"`, "import", ack)

	if err := bn2.Close(); err != nil {
		t.Fatal(err)
	}
	restartNode(t, a)
	eventually(t, "anpud's registry to be back", func() bool {
		return strings.Contains(ok(t, a, "members"), "bnpud")
	})
	if out := ok(t, a, "import", ack); !strings.Contains(out, "acknowledgement from bnpud recorded") {
		t.Fatalf("importing the acknowledgement printed %q", out)
	}
	if out := ok(t, a, "import", ack); !strings.Contains(out, "changes nothing") {
		t.Fatalf("importing the acknowledgement again printed %q", out)
	}
	mine := jsonOf[rec](t, ok(t, a, "priority", "show", shared, "--json"))
	if mine.Hash != got.Hash {
		t.Fatalf("bnpud holds hash %s, anpud wrote %s", got.Hash, mine.Hash)
	}
	if out := ok(t, a, "bundle", "--to", "bnpud", "--out", filepath.Join(stick, "2.cairn")); !strings.Contains(out, "0 record(s) for bnpud") {
		t.Fatalf("after the acknowledgement, the next bundle printed %q", out)
	}
	if out := ok(t, a, "bundle", "--to", "bnpud", "--since", "0", "--out", filepath.Join(stick, "3.cairn")); !strings.Contains(out, "1 record(s) for bnpud") {
		t.Fatalf("--since 0 printed %q", out)
	}
}
