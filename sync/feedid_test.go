package sync

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/store"
)

// feedWithID serves a store's feed with its id (FeedIdentity).
type feedWithID struct{ storeFeed }

func (f feedWithID) FeedID() string { return f.s.FeedID() }

// checkpointsIn keeps checkpoints with the feed id (FeedCheckpoints).
type checkpointsIn struct{ storeCheckpoints }

func (c checkpointsIn) CheckpointIn(p peer.ID) (uint64, string, error) {
	return c.s.CheckpointIn(p.String())
}

func (c checkpointsIn) SetCheckpointIn(p peer.ID, seq uint64, feed string) error {
	return c.s.SetCheckpointIn(p.String(), seq, feed)
}

// serve makes n answer pulls from st's feed, with its id.
func (n *testNode) serve(t *testing.T, reg *registry, st *store.Store) {
	t.Helper()
	srv, err := NewPullServer(feedWithID{storeFeed{st}}, reg, fastPullConfig())
	if err != nil {
		t.Fatal(err)
	}
	n.srv, n.st = srv, st
	n.h.SetStreamHandler(PullProtocol, srv.Handle)
}

// TestPullerStartsAgainWhenTheFeedIsNew: a node restored into a new data
// dir numbers its feed from 1 again. A member whose checkpoint counts in
// the old feed notices the new feed's id and pulls it from 0, so records
// written since the restore are not skipped, and what it held already is
// not stored twice.
func TestPullerStartsAgainWhenTheFeedIsNew(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, fastPullConfig())
	tanpud := newTestNode(t, reg, model.Reader{Network: "tanpud", Member: true}, fastPullConfig())
	inpud.serve(t, reg, inpud.st)
	tanpud.puller.Checkpoints = checkpointsIn{storeCheckpoints{tanpud.st}}
	tanpud.connect(t, inpud)

	var before []string
	for range 5 {
		before = append(before, inpud.write(t, "members"))
	}
	if _, err := tanpud.puller.CatchUp(ctx, inpud.h.ID()); err != nil {
		t.Fatal(err)
	}
	if cp := tanpud.checkpoint(t, inpud.h.ID()); cp != 5 {
		t.Fatalf("checkpoint %d after the first pull, want 5", cp)
	}

	// inpud is restored into a new store: two of its old versions come
	// back (from custody, say), then it writes four new records. Its new
	// feed's head (6) is past tanpud's checkpoint (5).
	old, _, err := inpud.st.Feed(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	sc := store.DefaultConfig()
	sc.GCInterval = 0
	restored, err := store.Open(filepath.Join(t.TempDir(), "restored"), sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restored.Close() })
	if _, err := restored.Put(old[0].Envelope, old[1].Envelope); err != nil {
		t.Fatal(err)
	}
	inpud.serve(t, reg, restored)
	var after []string
	for range 4 {
		after = append(after, inpud.write(t, "members"))
	}
	if restored.Head() != 6 || restored.FeedID() == "" {
		t.Fatalf("restored feed: head %d, id %q", restored.Head(), restored.FeedID())
	}

	st, err := tanpud.puller.CatchUp(ctx, inpud.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Restarted || st.Stored != 4 || st.Duplicates != 2 {
		t.Fatalf("pull from the restored feed: %+v; want it restarted from 0, 4 stored and 2 already held", st)
	}
	if got, want := tanpud.ids(t, "inpud"), sorted(append(slices.Clone(before), after...)...); !slices.Equal(got, want) {
		t.Fatalf("tanpud holds %v, want %v", got, want)
	}
	if cp, feed, _ := tanpud.st.CheckpointIn(inpud.h.ID().String()); cp != 6 || feed != restored.FeedID() {
		t.Fatalf("checkpoint %d in feed %q, want 6 in %q", cp, feed, restored.FeedID())
	}
	// The same feed again: it goes on from the checkpoint.
	inpud.write(t, "members")
	if st, err := tanpud.puller.CatchUp(ctx, inpud.h.ID()); err != nil || st.Restarted || st.Stored != 1 {
		t.Fatalf("pull after a checkpoint with the same id: %+v, %v", st, err)
	}
}
