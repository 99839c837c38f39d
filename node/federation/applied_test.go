package federation

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/node/registry"
)

// TestAlreadyAppliedCrossesTheWire: the leader's "already applied" answer
// reaches a proposer as registry.ErrAlreadyApplied (still a conflict), so
// Submit can tell a retry whose first answer was lost from a conflict, and
// reports such a command as applied.
func TestAlreadyAppliedCrossesTheWire(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
	}{
		{registry.ErrAlreadyApplied, codeApplied},
		{registry.ErrConflict, codeConflict},
	} {
		if got := codeOf(tc.err); got != tc.code {
			t.Fatalf("codeOf(%v) = %q, want %q", tc.err, got, tc.code)
		}
		var buf bytes.Buffer
		if err := writeFrame(&buf, []byte(`{"code":"`+tc.code+`","error":"refused"}`)); err != nil {
			t.Fatal(err)
		}
		_, got := readAnswer(bufio.NewReader(&buf))
		if !errors.Is(got, registry.ErrConflict) {
			t.Fatalf("%v came back as %v, not a conflict", tc.err, got)
		}
		if errors.Is(got, registry.ErrAlreadyApplied) != (tc.code == codeApplied) {
			t.Fatalf("%v came back as %v", tc.err, got)
		}
	}

	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := priv.Raw()
	id, _ := peer.IDFromPrivateKey(priv)
	sc, err := registry.Sign(ed25519.PrivateKey(raw), id.String(), registry.Suspend, registry.NetworkArgs{Network: "tanpud"})
	if err != nil {
		t.Fatal(err)
	}
	if res := appliedResult(sc); res.Kind != registry.Suspend || res.Summary == "" {
		t.Fatalf("a command whose answer was lost is reported as %+v", res)
	}
}
