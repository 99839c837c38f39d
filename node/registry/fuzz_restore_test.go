package registry

import (
	"bytes"
	"io"
	"testing"
)

// FuzzRestore feeds FSM.Restore arbitrary snapshots over a replica that
// already holds a federation. A snapshot it refuses leaves the replica's
// state byte for byte as it was; one it takes replaces the state whole
// (nothing of the old one survives, raft's Restore contract), hangs
// together, and encodes back to a snapshot that restores to the same.
func FuzzRestore(f *testing.F) {
	base := newTestFed(f)
	baseBytes := snap(f, base.s)
	other := newFed(f)
	other.must("inpud-1", Genesis, GenesisArgs{Network: profile("inpud", "global")})
	f.Add(baseBytes)
	f.Add(snap(f, other.s))
	f.Add(snap(f, &State{}))
	f.Add([]byte(`{"format":1,"state":{"networks":{},"nodes":{"x":{"peer_id":"x","network":"gone"}}}}`))
	f.Add([]byte(`{"format":2,"state":{}}`))
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte(`{"format":1,"state":{},"extra":1}`))
	f.Add(append(bytes.Clone(baseBytes), '{'))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := NewFSM()
		if err := fsm.Restore(io.NopCloser(bytes.NewReader(baseBytes))); err != nil {
			t.Fatal(err)
		}
		err := fsm.Restore(io.NopCloser(bytes.NewReader(data)))
		got := snap(t, fsm.State())
		if err != nil {
			if !bytes.Equal(got, baseBytes) {
				t.Fatalf("a refused snapshot (%v) changed the state", err)
			}
			return
		}
		if err := fsm.State().check(); err != nil {
			t.Fatalf("restored a state that does not hang together: %v", err)
		}
		want, derr := DecodeSnapshot(bytes.NewReader(data))
		if derr != nil || !bytes.Equal(got, snap(t, want)) {
			t.Fatalf("the restored state is not the snapshot's alone (%v)", derr)
		}
		again := NewFSM()
		if err := again.Restore(io.NopCloser(bytes.NewReader(got))); err != nil || !bytes.Equal(snap(t, again.State()), got) {
			t.Fatalf("the restored state does not survive another snapshot round trip: %v", err)
		}
	})
}
