package node

import (
	"testing"
)

// TestMemberRestartsWithItsRegistryWhileAlone: a member node stopped and
// started again while no steward is reachable still holds the registry
// (it snapshots what it applied when it stops), so it can check keys and
// name its stewards offline.
func TestMemberRestartsWithItsRegistryWhileAlone(t *testing.T) {
	a := notifyNode(t, "anpud", true)
	b := joinNode(t, a, "bnpud")
	waitFor(t, "the member to hold the registry", func() bool {
		_, _, ok := b.fed.State().Member(b.ID())
		return ok
	})
	cfg := b.cfg
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil { // no steward is reachable from now on
		t.Fatal(err)
	}
	cfg.Network = Profile{}
	b = startNode(t, cfg)
	t.Cleanup(func() { b.Close() })
	st := b.fed.State()
	if _, _, ok := st.Member(b.ID()); !ok {
		t.Fatal("the restarted member holds no registry while alone")
	}
	if _, ok := st.Network("anpud"); !ok {
		t.Fatal("the restarted member does not know its steward network")
	}
}
