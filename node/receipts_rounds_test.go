package node

import (
	"context"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
	cairnsync "github.com/inpud/cairn/sync"
)

// TestReceiptsForMoreThanOneRound: after a member syncs more records than
// one receipt round sends (here one frame a round), every one of its
// receipts still reaches the origin, without a retry tick (the nodes'
// sync interval, and so the receipts' retry, is an hour) or another
// change to its feed: the sender goes on while a round stopped at its
// bound.
func TestReceiptsForMoreThanOneRound(t *testing.T) {
	a := notifyNode(t, "anpud", true)
	b := joinNode(t, a, "bnpud")
	waitFor(t, "B to be connected to A", func() bool { return len(a.repl.connectedMembers()) == 1 })

	// One pass of at most one frame a round: 600 records take three.
	b.rcpt.stop()
	b.rcpt.cfg.Passes = 1
	b.rcpt.cfg.Settle = 50 * time.Millisecond
	b.rcpt.start()

	const n = 2*cairnsync.MaxReceipts + 88
	signer := nodeSigner(t, a)
	envs := make([]model.Envelope, n)
	ids := make([]string, n)
	for i := range envs {
		envs[i], ids[i] = seal(t, signer, a.ID(), "anpud", nil)
	}
	if _, err := a.store.Put(envs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B to hold all the records", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = b.SyncNow(ctx)
		st, err := b.Status()
		return err == nil && st.(Status).Records[model.KindPriority] >= n
	})
	waitFor(t, "B's receipts for every record", func() bool {
		for _, id := range ids {
			if holderVersions(t, a, id)["bnpud"] == "" {
				return false
			}
		}
		return true
	})
}
