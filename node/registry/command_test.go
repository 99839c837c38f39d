package registry

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// cidForm spells a peer ID as a CID, which peer.Decode also accepts.
func cidForm(tb testing.TB, id string) string {
	tb.Helper()
	pid, err := peer.Decode(id)
	if err != nil {
		tb.Fatal(err)
	}
	return peer.ToCid(pid).String()
}

// signRaw signs any payload with a node's key, bypassing Sign's checks, to
// build the commands a hostile node could send.
func signRaw(n testNode, payload []byte) SignedCommand {
	return SignedCommand{Payload: payload, Sig: signPayload(n.key, payload)}
}

func rawCommand(kind, proposer string, issued int64, args string) []byte {
	return []byte(`{"kind":"` + kind + `","proposer":"` + proposer + `","issued":` + itoa(issued) + `,"nonce":"00112233445566778899aabbccddeeff","args":` + args + `}`)
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestForgedCommands(t *testing.T) {
	base := newTestFed(t)
	steward, member := base.node("inpud-1"), base.node("tanpud-1")
	suspend := `{"network":"vnpud"}`
	cases := []struct {
		name     string
		sc       func(f *fed) SignedCommand
		sentinel error
		text     string
	}{
		{"signature altered", func(f *fed) SignedCommand {
			sc := f.sign("inpud-1", Suspend, NetworkArgs{Network: "vnpud"})
			sc.Sig[0] ^= 1
			return sc
		}, ErrBadSignature, "the suspend command's signature does not verify against the key of its proposer"},
		{"payload altered after signing", func(f *fed) SignedCommand {
			sc := f.sign("inpud-1", Suspend, NetworkArgs{Network: "vnpud"})
			sc.Payload = bytes.Replace(sc.Payload, []byte("vnpud"), []byte("ehrn"), 1)
			return sc
		}, ErrBadSignature, "signature does not verify"},
		{"member's key naming a steward as proposer", func(f *fed) SignedCommand {
			return signRaw(member, rawCommand("suspend", steward.id, f.now, suspend))
		}, ErrBadSignature, "signature does not verify against the key of its proposer"},
		{"signed as a record, not a command", func(f *fed) SignedCommand {
			p := rawCommand("suspend", steward.id, f.now, suspend)
			return SignedCommand{Payload: p, Sig: ed25519.Sign(steward.key, p)}
		}, ErrBadSignature, "signature does not verify"},
		{"short signature", func(f *fed) SignedCommand {
			sc := f.sign("inpud-1", Suspend, NetworkArgs{Network: "vnpud"})
			sc.Sig = sc.Sig[:10]
			return sc
		}, ErrBadSignature, "the command's signature is 10 bytes long, not 64"},
		{"proposer in CID form", func(f *fed) SignedCommand {
			return signRaw(steward, rawCommand("suspend", cidForm(t, steward.id), f.now, suspend))
		}, ErrBadSignature, "is not written in the canonical form of its peer ID"},
		{"proposer not a peer ID", func(f *fed) SignedCommand {
			return signRaw(steward, rawCommand("suspend", "inpud", f.now, suspend))
		}, ErrBadSignature, `"inpud" is not a peer ID`},
		{"unknown kind", func(f *fed) SignedCommand {
			return signRaw(steward, rawCommand("delete-everything", steward.id, f.now, suspend))
		}, ErrInvalidCommand, `"delete-everything" is not a registry command`},
		{"unknown field in the command", func(f *fed) SignedCommand {
			p := bytes.Replace(rawCommand("suspend", steward.id, f.now, suspend), []byte(`{"kind"`), []byte(`{"admin":true,"kind"`), 1)
			return signRaw(steward, p)
		}, ErrInvalidCommand, `unknown field "admin"`},
		{"unknown field in the arguments", func(f *fed) SignedCommand {
			return signRaw(steward, rawCommand("suspend", steward.id, f.now, `{"network":"vnpud","force":true}`))
		}, ErrInvalidCommand, `the suspend command's arguments are not valid: json: unknown field "force"`},
		{"duplicate key", func(f *fed) SignedCommand {
			return signRaw(steward, rawCommand("suspend", steward.id, f.now, `{"network":"tanpud","network":"vnpud"}`))
		}, ErrInvalidCommand, `field "network" appears twice`},
		{"duplicate key in another case", func(f *fed) SignedCommand {
			return signRaw(steward, rawCommand("suspend", steward.id, f.now, `{"network":"tanpud","NETWORK":"vnpud"}`))
		}, ErrInvalidCommand, `field "NETWORK" appears twice`},
		{"data after the command", func(f *fed) SignedCommand {
			return signRaw(steward, append(rawCommand("suspend", steward.id, f.now, suspend), []byte(` {}`)...))
		}, ErrInvalidCommand, "it has data after its end"},
		{"invalid UTF-8", func(f *fed) SignedCommand {
			return signRaw(steward, rawCommand("suspend", steward.id, f.now, "{\"network\":\"vn\xffpud\"}"))
		}, ErrInvalidCommand, "it is not valid UTF-8"},
		{"deep nesting", func(f *fed) SignedCommand {
			deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)
			return signRaw(steward, rawCommand("suspend", steward.id, f.now, `{"network":"vnpud","x":`+deep+`}`))
		}, ErrInvalidCommand, "nested more than 16 levels deep"},
		{"arguments not an object", func(f *fed) SignedCommand {
			return signRaw(steward, rawCommand("suspend", steward.id, f.now, `null`))
		}, ErrInvalidCommand, "arguments must be a JSON object"},
		{"bad nonce", func(f *fed) SignedCommand {
			p := bytes.Replace(rawCommand("suspend", steward.id, f.now, suspend), []byte(`00112233445566778899aabbccddeeff`), []byte(`x`), 1)
			return signRaw(steward, p)
		}, ErrInvalidCommand, "nonce must be 16 to 64 lower-case hex digits"},
		{"signed long ago", func(f *fed) SignedCommand {
			return signRaw(steward, rawCommand("suspend", steward.id, f.now-ReplayWindow.Milliseconds()-5000, suspend))
		}, ErrExpired, "more than 10m0s away from the leader's time"},
		{"signed in the future", func(f *fed) SignedCommand {
			return signRaw(steward, rawCommand("suspend", steward.id, f.now+ReplayWindow.Milliseconds()+5000, suspend))
		}, ErrExpired, "check both clocks and propose it again"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := base.clone()
			err := f.applyChecked(c.sc(f), f.now)
			wantErr(t, err, c.sentinel, c.text)
		})
	}
	t.Run("a hand-built command that is right is accepted", func(t *testing.T) {
		f := base.clone()
		if err := f.applyChecked(signRaw(steward, rawCommand("suspend", steward.id, f.now, suspend)), f.now); err != nil {
			t.Fatal(err)
		}
	})
}

func TestReplay(t *testing.T) {
	f := newTestFed(t)
	promote := f.sign("inpud-1", Promote, NetworkArgs{Network: "tanpud"})
	if _, err := f.s.Apply(promote, f.now+1000); err != nil {
		t.Fatal(err)
	}
	f.must("inpud-1", Demote, NetworkArgs{Network: "tanpud"})
	// Within the window the same signed command is remembered...
	err := f.applyChecked(promote, f.now+1000)
	wantErr(t, err, ErrConflict, "this promote command was already applied; each signed command is applied once")
	// ...and after it, it is stale.
	err = f.applyChecked(promote, f.now+ReplayWindow.Milliseconds()+2000)
	wantErr(t, err, ErrExpired, "the promote command was signed at")
	// Remembered hashes are forgotten once no window could accept them.
	f.now += ReplayWindow.Milliseconds() + seenRetention.Milliseconds() + 10_000
	f.must("inpud-1", SetAddrs, SetAddrsArgs{})
	if len(f.s.Seen) != 1 {
		t.Errorf("%d command hashes remembered, want only the last one", len(f.s.Seen))
	}
}

func TestApplyNeedsLogTime(t *testing.T) {
	f := newTestFed(t)
	err := f.applyChecked(f.sign("inpud-1", SetAddrs, SetAddrsArgs{}), 0)
	wantErr(t, err, ErrInvalidCommand, "the log entry carries no time")
}

func TestSignedEncoding(t *testing.T) {
	f := newTestFed(t)
	sc := f.sign("tanpud-1", SetAddrs, SetAddrsArgs{Addrs: []string{"/ip4/127.0.0.1/tcp/1"}})
	b := EncodeSigned(sc)
	got, err := DecodeSigned(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Payload, sc.Payload) || !bytes.Equal(got.Sig, sc.Sig) {
		t.Fatal("round trip changed the command")
	}
	c, err := got.Open()
	if err != nil || c.Kind != SetAddrs || c.Proposer != f.node("tanpud-1").id || c.Issued != f.now {
		t.Fatalf("Open = %+v, %v", c, err)
	}
	bad := []struct {
		name string
		b    []byte
		text string
	}{
		{"empty", nil, "unknown format"},
		{"other format", append([]byte{2}, b[1:]...), "unknown format"},
		{"truncated", b[:len(b)-1], "bytes after the length"},
		{"trailing byte", append(bytes.Clone(b), 0), "bytes after the length"},
		{"huge length", []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}, "bad payload length"},
		{"zero length", []byte{1, 0}, "bad payload length"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeSigned(c.b)
			wantErr(t, err, ErrInvalidCommand, c.text)
		})
	}
}

func TestSign(t *testing.T) {
	a, b := newTestNode(t, "a"), newTestNode(t, "b")
	if _, err := Sign(a.key, a.id, Suspend, &NetworkArgs{Network: "x"}); err != nil {
		t.Errorf("a pointer to the arguments: %v", err)
	}
	sc, err := Sign(a.key, a.id, Suspend, NetworkArgs{Network: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	_ = json.Unmarshal(sc.Payload, &raw)
	if raw["kind"] != "suspend" {
		t.Errorf("kind travels as %v, want its name", raw["kind"])
	}
	if issued := int64(raw["issued"].(float64)); time.Since(time.UnixMilli(issued)) > time.Minute {
		t.Errorf("issued = %d, want now", issued)
	}
	other, _ := Sign(a.key, a.id, Suspend, NetworkArgs{Network: "x"})
	if bytes.Equal(other.Payload, sc.Payload) {
		t.Error("two commands with the same arguments have the same payload; the nonce should differ")
	}
	cases := []struct {
		name string
		err  func() error
		text string
	}{
		{"wrong argument type", func() error { _, err := Sign(a.key, a.id, Suspend, JoinArgs{}); return err }, "suspend takes NetworkArgs, not registry.JoinArgs"},
		{"someone else's peer ID", func() error { _, err := Sign(a.key, b.id, Suspend, NetworkArgs{}); return err }, "is not the ID of the signing key"},
		{"unknown kind", func() error { _, err := Sign(a.key, a.id, Kind(99), NetworkArgs{}); return err }, "kind(99) is not a registry command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantErr(t, c.err(), ErrInvalidCommand, c.text) })
	}
}

func TestKindNames(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds() {
		name := k.String()
		if seen[name] || strings.HasPrefix(name, "kind(") {
			t.Errorf("kind %d has name %q", k, name)
		}
		seen[name] = true
		back, err := ParseKind(name)
		if err != nil || back != k {
			t.Errorf("ParseKind(%q) = %v, %v", name, back, err)
		}
		if newArgs(k) == nil {
			t.Errorf("kind %s has no argument type", k)
		}
	}
	if len(seen) != 15 {
		t.Errorf("%d kinds", len(seen))
	}
	if _, err := ParseKind("Suspend"); !errors.Is(err, ErrInvalidCommand) {
		t.Error("kind names are matched exactly")
	}
}
