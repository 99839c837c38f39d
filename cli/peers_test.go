package cli

import (
	"testing"

	"github.com/inpud/cairn/node"
	cairnsync "github.com/inpud/cairn/sync"
)

// TestRejectedCell: `cairn peers` shows the total refused and each
// reason's count, in the reasons' fixed order.
func TestRejectedCell(t *testing.T) {
	for _, tc := range []struct {
		p    node.PeerState
		want string
	}{
		{node.PeerState{}, "0"},
		{node.PeerState{Rejected: 3, Rejections: map[cairnsync.Reason]int{cairnsync.ReasonStale: 1, cairnsync.ReasonBadSignature: 2}}, "3 (bad-signature 2, stale 1)"},
		{node.PeerState{Rejected: 1, Rejections: map[cairnsync.Reason]int{cairnsync.ReasonStalled: 1, cairnsync.ReasonUnknownKey: 0}}, "1 (stalled 1)"},
	} {
		if got := rejected(tc.p); got != tc.want {
			t.Errorf("rejected(%v) = %q, want %q", tc.p.Rejections, got, tc.want)
		}
	}
}
