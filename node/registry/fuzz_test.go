package registry

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzApply feeds Apply commands that are well signed but arbitrary inside
// (who picks the signing node; 255 means data is a whole encoded
// SignedCommand instead), at arbitrary log times. Apply must never panic; a
// refused command must leave the state byte for byte as it was and wrap a
// sentinel; an accepted one must leave a consistent registry that still
// has a voter, survives a snapshot round trip, and refuses the same
// command a second time.
func FuzzApply(f *testing.F) {
	base := newTestFed(f)
	baseBytes := snap(f, base.s)
	signers := []string{"inpud-1", "tanpud-1", "vnpud-1", "susp-1", "tanpud-old", "stranger", "joiner"}
	invID, secret := "", ""
	{
		g := base.clone()
		invID, secret = g.invite("inpud-1", profile("newnet", "local"), RoleMember)
		// Put the open invite in the base, so Join can succeed.
		base = g
		baseBytes = snap(f, base.s)
	}
	seeds := []struct {
		who  int
		kind Kind
		args any
	}{
		{0, CreateInvite, CreateInviteArgs{ID: "aaaaaaaaaaaaaaaaaaaa", SecretHash: HashSecret("s"), Network: profile("other", "local"), Role: RoleSteward, Expires: base.now + 60_000}},
		{6, Join, JoinArgs{Invite: invID, Secret: secret}},
		{1, AddNodeKey, AddNodeKeyArgs{Network: "tanpud", PeerID: base.node("tanpud-9").id}},
		{1, RevokeNodeKey, RevokeNodeKeyArgs{PeerID: base.node("tanpud-2").id}},
		{1, UpdateNetwork, UpdateNetworkArgs{Network: base.s.Networks["tanpud"].Profile}},
		{0, Suspend, NetworkArgs{Network: "vnpud"}},
		{0, Reinstate, NetworkArgs{Network: "susp"}},
		{0, Retire, NetworkArgs{Network: "ehrn"}},
		{0, Promote, NetworkArgs{Network: "tanpud"}},
		{0, Demote, NetworkArgs{Network: "ehrn"}},
		{0, PutTemplate, PutTemplateArgs{Template: smallTemplate("test", "2", "a", "b", "c", "d")}},
		{2, SetCustodians, SetCustodiansArgs{Custodians: []string{"inpud", "tanpud"}}},
		{1, Handover, HandoverArgs{Network: "tanpud", Steward: "inpud", ArchiveKey: testWrappedKey}},
		{2, SetAddrs, SetAddrsArgs{Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}}},
		{5, Genesis, GenesisArgs{Network: profile("rival", "global")}},
	}
	for _, s := range seeds {
		sc := base.sign(signers[s.who], s.kind, s.args)
		if _, err := base.s.Clone().Apply(sc, base.now+1000); (err == nil) != (s.kind != Genesis) {
			f.Fatalf("seed %s: %v", s.kind, err)
		}
		f.Add(uint8(s.who), sc.Payload, int64(1000))
		f.Add(uint8(255), EncodeSigned(sc), int64(1000))
	}
	sentinels := []error{ErrUnauthorised, ErrBadSignature, ErrInvalidCommand, ErrNotFound, ErrConflict, ErrExpired}
	f.Fuzz(func(t *testing.T, who uint8, data []byte, offset int64) {
		var sc SignedCommand
		if who == 255 {
			var err error
			if sc, err = DecodeSigned(data); err != nil {
				return
			}
		} else {
			sc = signRaw(base.node(signers[int(who)%len(signers)]), data)
		}
		now := base.now + offset%(2*ReplayWindow.Milliseconds())
		s := base.s.Clone()
		checked, checkErr := s.Check(sc, now)
		if !bytes.Equal(snap(t, s), baseBytes) {
			t.Fatal("Check changed the state")
		}
		res, err := s.Apply(sc, now)
		if (err == nil) != (checkErr == nil) || res != checked {
			t.Fatalf("Check decided %+v, %v; Apply decided %+v, %v", checked, checkErr, res, err)
		}
		after := snap(t, s)
		if err != nil {
			if !bytes.Equal(after, baseBytes) {
				t.Fatalf("refused command changed the state: %v", err)
			}
			for _, w := range sentinels {
				if errors.Is(err, w) {
					return
				}
			}
			t.Fatalf("refusal wraps no sentinel: %v", err)
		}
		if err := s.check(); err != nil {
			t.Fatalf("accepted command left an inconsistent state: %v", err)
		}
		if len(s.Voters()) == 0 {
			t.Fatal("accepted command left no voter")
		}
		back, err := DecodeSnapshot(bytes.NewReader(after))
		if err != nil {
			t.Fatalf("snapshot of an accepted state does not decode: %v", err)
		}
		if !bytes.Equal(snap(t, back), after) {
			t.Fatal("snapshot round trip changed the state")
		}
		if _, err := s.Apply(sc, now); !errors.Is(err, ErrConflict) {
			t.Fatalf("the same command applied twice: %v", err)
		}
	})
}
