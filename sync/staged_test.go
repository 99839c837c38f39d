package sync

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
)

// stagedSink is storeSink split into Check and commit. Each commit
// records the checkpoint it found on disk and, unless it is the last one
// (the feed holds last entries), waits until the next batch has been
// checked: the Puller must check it while this one is being written.
type stagedSink struct {
	storeSink
	t       *testing.T
	peer    peer.ID
	last    uint64 // seq of the feed's last entry
	checked chan uint64
	failAt  uint64 // commit of the batch ending at this seq fails (0: none)
	seqs    map[string]uint64
	seen    []commitSeen
}

type commitSeen struct {
	batchLast  uint64 // last seq of the batch being written
	checkpoint uint64 // the checkpoint on disk when its write began
}

func (k *stagedSink) Check(from peer.ID, envs []model.Envelope) (func() (Counts, error), Counts, error) {
	p, err := envs[len(envs)-1].Open()
	if err != nil {
		return nil, Counts{}, err
	}
	seq := k.seqOf(p.ID)
	k.checked <- seq // one batch is written at a time, so this never blocks
	return func() (Counts, error) {
		cp, err := k.s.Checkpoint(k.peer.String())
		if err != nil {
			return Counts{}, err
		}
		k.seen = append(k.seen, commitSeen{batchLast: seq, checkpoint: cp})
		if seq == k.failAt {
			return Counts{}, errors.New("disk full")
		}
		if seq < k.last {
			timeout := time.After(20 * time.Second)
		wait:
			for {
				select {
				case next := <-k.checked:
					if next > seq {
						break wait // the next batch was checked meanwhile
					}
				case <-timeout:
					k.t.Errorf("the batch after %d was not checked while it was being written", seq)
					break wait
				}
			}
		}
		return k.storeSink.Store(from, envs)
	}, Counts{}, nil
}

// seqOf finds the origin's feed seq of record id (the test's records are
// each one version, one entry).
func (k *stagedSink) seqOf(id string) uint64 { return k.seqs[id] }

func TestPullerChecksWhileWriting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	ehrn.connect(t, inpud)
	seqs := map[string]uint64{}
	for i := range 4 {
		seqs[inpud.write(t, "members")] = uint64(i + 1)
	}
	sink := &stagedSink{storeSink: ehrn.puller.Sink.(storeSink), t: t, peer: inpud.h.ID(), last: 4, checked: make(chan uint64, 1), seqs: seqs}
	pl := &Puller{Host: ehrn.h, Sink: sink, Checkpoints: storeCheckpoints{ehrn.st}, Limit: 1}
	st, err := pl.CatchUp(ctx, inpud.h.ID())
	if err != nil || st.Stored != 4 || st.To != 4 {
		t.Fatalf("catch-up: %+v, %v; want 4 stored, checkpoint 4", st, err)
	}
	if len(sink.seen) != 4 {
		t.Fatalf("%d batches written, want 4", len(sink.seen))
	}
	for _, c := range sink.seen {
		// Written only after the batch before is stored and checkpointed;
		// never a checkpoint past a batch not yet written.
		if c.checkpoint != c.batchLast-1 {
			t.Fatalf("the batch up to %d was written with the checkpoint at %d, want %d", c.batchLast, c.checkpoint, c.batchLast-1)
		}
	}
	if cp := ehrn.checkpoint(t, inpud.h.ID()); cp != 4 {
		t.Fatalf("checkpoint %d after catch-up, want 4", cp)
	}
}

func TestPullerKeepsCheckpointWhenWritingFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	ehrn.connect(t, inpud)
	seqs := map[string]uint64{}
	for i := range 4 {
		seqs[inpud.write(t, "members")] = uint64(i + 1)
	}
	sink := &stagedSink{storeSink: ehrn.puller.Sink.(storeSink), t: t, peer: inpud.h.ID(), last: 4, checked: make(chan uint64, 1), seqs: seqs, failAt: 3}
	pl := &Puller{Host: ehrn.h, Sink: sink, Checkpoints: storeCheckpoints{ehrn.st}, Limit: 1}
	st, err := pl.CatchUp(ctx, inpud.h.ID())
	if err == nil {
		t.Fatal("catch-up whose third write failed succeeded")
	}
	if cp := ehrn.checkpoint(t, inpud.h.ID()); cp != 2 || st.To != 2 || st.Stored != 2 {
		t.Fatalf("after the third write failed: checkpoint %d, stats %+v; want checkpoint 2, 2 stored", cp, st)
	}
	st, err = ehrn.puller.CatchUp(ctx, inpud.h.ID())
	if err != nil || st.Stored != 2 || st.To != 4 {
		t.Fatalf("catch-up after the failure: %+v, %v; want the last 2 stored, checkpoint 4", st, err)
	}
}
