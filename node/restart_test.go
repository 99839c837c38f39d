package node

import (
	"context"
	"slices"
	"testing"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/registry"
)

// TestMemberComesBackOnANewAddress: a member node restarted on another
// address (a laptop on a new network) finds the stewards from its own
// address book, gets its registry back, publishes its new address, and
// its shared records reach the others again.
func TestMemberComesBackOnANewAddress(t *testing.T) {
	a := notifyNode(t, "anpud", true)
	b := joinNode(t, a, "bnpud")
	cfg := b.cfg
	old := b.Addrs()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Network = Profile{}
	b = startNode(t, cfg) // tcp/0 again: a new port
	t.Cleanup(func() { b.Close() })
	if slices.Equal(b.Addrs(), old) {
		t.Fatalf("the restarted node kept its address %v; the test needs a new one", old)
	}
	waitFor(t, "the restarted member to get its registry back", func() bool {
		_, _, ok := b.fed.State().Member(b.ID())
		return ok
	})
	waitFor(t, "the steward's registry to hold the member's new address", func() bool {
		var got []string
		a.fed.View(func(s *registry.State) {
			if k, ok := s.Node(b.ID()); ok {
				got = k.Addrs
			}
		})
		var now []string
		for _, a := range b.host.Addrs() {
			now = append(now, a.String())
		}
		return len(got) > 0 && slices.Equal(got, now)
	})
	rec, err := b.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Safer supply pilot", Importance: 4, Achievability: 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Records().Share(rec.ID, model.Audience{model.AudienceMembers}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the member's new record to reach the steward", func() bool {
		a.SyncNow(context.Background())
		return holds(a, rec.ID)
	})
}
