package registry

import (
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// FSM is the shell that lets hashicorp/raft drive a State. It decodes log
// entries and calls State.Apply; it knows nothing of the rules.
//
// Locking: raft calls Apply, Snapshot and Restore from one goroutine; the
// node's readers (the connection gater, the Raft stream guard, sync, the
// API) call View and State from any goroutine at the same time. The FSM
// guards its State with a RWMutex: Apply and Restore hold it for writing,
// View and State for reading. Readers get a deep copy (State) or a
// read-only look inside the lock (View); they never keep a pointer into
// the live state.
type FSM struct {
	// OnChange, if set, is called after every applied command and every
	// restore, outside the lock, on raft's FSM goroutine: it must not block
	// (start work elsewhere, e.g. re-check connections). Set it before
	// handing the FSM to raft; it is not changed afterwards.
	OnChange func()

	mu    sync.RWMutex
	state *State
}

// NewFSM returns an FSM holding an empty registry.
func NewFSM() *FSM { return &FSM{state: &State{}} }

// ApplyResult is what FSM.Apply returns to raft, and so what the
// proposer's ApplyFuture.Response() holds. Err is a refusal from
// State.Apply (or an entry that is not a registry command): raft committed
// the entry, the registry did not change.
type ApplyResult struct {
	Result Result
	Err    error
}

var _ raft.FSM = (*FSM)(nil)

// Apply applies one committed log entry. It is deterministic: the time is
// the entry's AppendedAt, the leader's clock as replicated in the log.
func (f *FSM) Apply(l *raft.Log) any {
	var res ApplyResult
	sc, err := DecodeSigned(l.Data)
	var c Command
	if err == nil {
		c, err = sc.Open() // signature check outside the lock
	}
	var now int64
	if !l.AppendedAt.IsZero() {
		now = l.AppendedAt.UnixMilli()
	}
	f.mu.Lock()
	if err == nil {
		res.Result, err = f.stateLocked().applyOpened(c, sc.Hash(), now)
	}
	res.Err = err
	f.stateLocked().Applied = l.Index
	f.mu.Unlock()
	if err == nil && f.OnChange != nil {
		f.OnChange()
	}
	return res
}

// stateLocked returns the state, creating it for a zero FSM.
func (f *FSM) stateLocked() *State {
	if f.state == nil {
		f.state = &State{}
	}
	return f.state
}

// View calls fn with the live state under the read lock. fn must not
// change the state, keep a pointer into it, or block.
func (f *FSM) View(fn func(*State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.state == nil {
		fn(&State{})
		return
	}
	fn(f.state)
}

// State returns a deep copy of the current state.
func (f *FSM) State() *State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.state == nil {
		return &State{}
	}
	return f.state.Clone()
}

// Snapshot captures a deep copy of the state; Persist does the writing.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{state: f.State()}, nil
}

// Restore replaces the whole state with the snapshot's. Nothing of the
// earlier state survives: a network absent from the snapshot is gone.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, err := DecodeSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.state = s
	f.mu.Unlock()
	if f.OnChange != nil {
		f.OnChange()
	}
	return nil
}

type fsmSnapshot struct{ state *State }

// Persist writes the captured state to the sink, cancelling it on error.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	b, err := EncodeSnapshot(s.state)
	if err == nil {
		_, err = sink.Write(b)
	}
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("write registry snapshot: %w", err)
	}
	return sink.Close()
}

// Release does nothing: the snapshot holds its own copy.
func (s *fsmSnapshot) Release() {}
