package registry

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/inpud/cairn/model/templates"
)

// logEntry is one command of a test log and the time the log gives it.
type logEntry struct {
	sc  SignedCommand
	now int64
}

// buildLog records the commands of a small federation's life, refused ones
// included, as a leader would append them.
func buildLog(t *testing.T) []logEntry {
	f := newFed(t)
	var log []logEntry
	add := func(by string, kind Kind, args any) {
		f.now += 1500
		log = append(log, logEntry{f.sign(by, kind, args), f.now})
	}
	add("inpud-1", Genesis, GenesisArgs{Network: profile("inpud", "global"), Templates: templates.Builtin()})
	for _, n := range []struct {
		slug, node string
		role       Role
	}{{"ehrn", "ehrn-1", RoleSteward}, {"tanpud", "tanpud-1", RoleMember}, {"vnpud", "vnpud-1", RoleMember}} {
		id := hashHex(n.slug)[:20]
		add("inpud-1", CreateInvite, CreateInviteArgs{ID: id, SecretHash: HashSecret(n.slug), Network: profile(n.slug, "national"), Role: n.role, Expires: f.now + 60_000})
		add(n.node, Join, JoinArgs{Invite: id, Secret: n.slug})
	}
	add("tanpud-1", Suspend, NetworkArgs{Network: "vnpud"}) // refused: a member
	add("inpud-1", Suspend, NetworkArgs{Network: "vnpud"})
	add("tanpud-1", AddNodeKey, AddNodeKeyArgs{Network: "tanpud", PeerID: f.node("tanpud-2").id})
	add("tanpud-2", SetAddrs, SetAddrsArgs{Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}})
	add("tanpud-1", RevokeNodeKey, RevokeNodeKeyArgs{PeerID: f.node("tanpud-2").id})
	add("tanpud-2", SetAddrs, SetAddrsArgs{}) // refused: revoked
	add("tanpud-1", SetCustodians, SetCustodiansArgs{Custodians: []string{"inpud", "ehrn"}})
	add("ehrn-1", Promote, NetworkArgs{Network: "tanpud"})
	add("ehrn-1", PutTemplate, PutTemplateArgs{Template: smallTemplate("local", "1", "a")})
	add("ehrn-1", PutTemplate, PutTemplateArgs{Template: smallTemplate("local", "2", "b")}) // refused: drops a
	add("inpud-1", Handover, HandoverArgs{Network: "vnpud", Steward: "ehrn", ArchiveKey: testWrappedKey})
	return log
}

func TestDeterminism(t *testing.T) {
	log := buildLog(t)
	t.Run("states", func(t *testing.T) {
		a, b := &State{}, &State{}
		refused := 0
		for _, e := range log {
			_, errA := a.Apply(e.sc, e.now)
			_, errB := b.Apply(e.sc, e.now)
			if (errA == nil) != (errB == nil) {
				t.Fatalf("replicas decided differently: %v / %v", errA, errB)
			}
			if errA != nil {
				refused++
			}
		}
		if refused != 3 {
			t.Errorf("%d commands refused, want 3", refused)
		}
		if !bytes.Equal(snap(t, a), snap(t, b)) {
			t.Error("two replicas that applied the same log encode different snapshots")
		}
	})
	t.Run("FSMs through raft logs", func(t *testing.T) {
		fa, fb := NewFSM(), NewFSM()
		for i, e := range log {
			l := &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: EncodeSigned(e.sc), AppendedAt: time.UnixMilli(e.now)}
			ra := fa.Apply(l).(ApplyResult)
			rb := fb.Apply(l).(ApplyResult)
			if (ra.Err == nil) != (rb.Err == nil) || ra.Result != rb.Result {
				t.Fatalf("entry %d: %+v / %+v", i+1, ra, rb)
			}
		}
		sa, sb := snapFSM(t, fa), snapFSM(t, fb)
		if !bytes.Equal(sa, sb) {
			t.Error("two FSMs that applied the same log persist different snapshots")
		}
		if got := fa.State().Applied; got != uint64(len(log)) {
			t.Errorf("applied = %d, want %d", got, len(log))
		}
	})
}

// snapFSM takes a snapshot through the raft.FSM interface into an
// in-memory snapshot store and reads it back.
func snapFSM(t *testing.T, f raft.FSM) []byte {
	t.Helper()
	_, rc := persist(t, f)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func persist(t *testing.T, f raft.FSM) (*raft.SnapshotMeta, io.ReadCloser) {
	t.Helper()
	store := raft.NewInmemSnapshotStore()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	sink, err := store.Create(raft.SnapshotVersionMax, 10, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Persist(sink); err != nil {
		t.Fatal(err)
	}
	meta, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	return meta, rc
}

func TestSnapshotRestore(t *testing.T) {
	log := buildLog(t)
	// a applied the whole log except the last four entries; b applied all
	// of it and then more, including a network a never heard of.
	a, b := NewFSM(), NewFSM()
	apply := func(f *FSM, i int, e logEntry) ApplyResult {
		return f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: EncodeSigned(e.sc), AppendedAt: time.UnixMilli(e.now)}).(ApplyResult)
	}
	for i, e := range log[:len(log)-4] {
		apply(a, i, e)
	}
	for i, e := range log {
		apply(b, i, e)
	}
	fb := newFed(t)
	fb.now = log[len(log)-1].now + 1000
	id := "0123456789abcdef0123"
	r := apply(b, len(log), logEntry{fb.sign("inpud-1", CreateInvite, CreateInviteArgs{ID: id, SecretHash: HashSecret("x"), Network: profile("gone", "local"), Role: RoleSteward, Expires: fb.now + 60_000}), fb.now})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	fb.now += 1000
	if r := apply(b, len(log)+1, logEntry{fb.sign("gone-1", Join, JoinArgs{Invite: id, Secret: "x"}), fb.now}); r.Err != nil {
		t.Fatal(r.Err)
	}
	goneKey := fb.node("gone-1").id
	if _, _, ok := b.State().Member(goneKey); !ok {
		t.Fatal("setup: gone-1 is not a member of b")
	}

	want := snapFSM(t, a)
	var changes atomic.Int32
	b.OnChange = func() { changes.Add(1) }
	_, rc := persist(t, a)
	if err := b.Restore(rc); err != nil {
		t.Fatal(err)
	}
	if changes.Load() != 1 {
		t.Errorf("OnChange called %d times on restore, want 1", changes.Load())
	}
	if got := snapFSM(t, b); !bytes.Equal(got, want) {
		t.Error("after Restore, b's state is not exactly the snapshot's")
	}
	b.View(func(s *State) {
		if _, ok := s.Networks["gone"]; ok {
			t.Error("a network absent from the snapshot survived the restore")
		}
		if _, _, ok := s.Member(goneKey); ok {
			t.Error("a node absent from the snapshot is still a member after the restore")
		}
		if _, ok := s.Invites[id]; ok {
			t.Error("an invite absent from the snapshot survived the restore")
		}
		if n := s.Networks["vnpud"]; n.Status != StatusSuspended || n.Steward != "" {
			t.Errorf("vnpud = %+v, want the snapshot's (suspended, no handover)", n)
		}
	})

	t.Run("damaged snapshots are refused and change nothing", func(t *testing.T) {
		for name, data := range map[string]string{
			"not JSON":      "{",
			"other format":  `{"format":2,"state":{}}`,
			"unknown field": `{"format":1,"state":{},"extra":1}`,
			"no state":      `{"format":1}`,
			"misfiled":      `{"format":1,"state":{"genesis":"g","networks":{"a":{"slug":"b","name":"B","level":"local","role":"member","status":"active","joined":1}}}}`,
			"orphan key":    `{"format":1,"state":{"genesis":"g","networks":{},"nodes":{"p":{"peer_id":"p","network":"x","added":1}}}}`,
			"trailing data": `{"format":1,"state":{}} {}`,
		} {
			t.Run(name, func(t *testing.T) {
				before := snapFSM(t, b)
				if err := b.Restore(io.NopCloser(bytes.NewReader([]byte(data)))); err == nil {
					t.Fatal("accepted")
				}
				if !bytes.Equal(before, snapFSM(t, b)) {
					t.Error("a refused restore changed the state")
				}
			})
		}
	})
}

func TestFSMApplyResults(t *testing.T) {
	f := newFed(t)
	fsm := NewFSM()
	var changes atomic.Int32
	fsm.OnChange = func() { changes.Add(1) }
	f.now += 1000
	r := fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: EncodeSigned(f.sign("inpud-1", Genesis, GenesisArgs{Network: profile("inpud", "global")})), AppendedAt: time.UnixMilli(f.now)}).(ApplyResult)
	if r.Err != nil || r.Result.Kind != Genesis {
		t.Fatalf("genesis: %+v", r)
	}
	r = fsm.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: []byte("not a command"), AppendedAt: time.UnixMilli(f.now)}).(ApplyResult)
	if !errors.Is(r.Err, ErrInvalidCommand) {
		t.Errorf("garbage entry: %v", r.Err)
	}
	r = fsm.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: EncodeSigned(f.sign("stranger", Suspend, NetworkArgs{Network: "inpud"})), AppendedAt: time.UnixMilli(f.now)}).(ApplyResult)
	if !errors.Is(r.Err, ErrUnauthorised) {
		t.Errorf("stranger: %v", r.Err)
	}
	if got := fsm.State().Applied; got != 3 {
		t.Errorf("applied = %d, want 3 (refused entries are applied too)", got)
	}
	if changes.Load() != 1 {
		t.Errorf("OnChange called %d times, want 1 (only for the accepted command)", changes.Load())
	}
}

// TestRaft runs the FSM under a real single-voter raft: results come back
// through ApplyFuture.Response, the time comes from the log, and a user
// snapshot restores through raft.
func TestRaft(t *testing.T) {
	conf := raft.DefaultConfig()
	conf.LocalID = "node-1"
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.LogOutput = io.Discard
	fsm := NewFSM()
	logs := raft.NewInmemStore()
	snaps := raft.NewInmemSnapshotStore()
	addr, trans := raft.NewInmemTransport("")
	r, err := raft.NewRaft(conf, fsm, logs, logs, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Shutdown().Error() })
	if err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: addr}}}).Error(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.State() != raft.Leader {
		if time.Now().After(deadline) {
			t.Fatal("no leader after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	node := newTestNode(t, "inpud-1")
	propose := func(kind Kind, args any) ApplyResult {
		t.Helper()
		sc, err := Sign(node.key, node.id, kind, args)
		if err != nil {
			t.Fatal(err)
		}
		fut := r.Apply(EncodeSigned(sc), 5*time.Second)
		if err := fut.Error(); err != nil {
			t.Fatal(err)
		}
		return fut.Response().(ApplyResult)
	}
	before := time.Now().UnixMilli()
	if res := propose(Genesis, GenesisArgs{Network: profile("inpud", "global"), Templates: templates.Builtin()}); res.Err != nil {
		t.Fatal(res.Err)
	}
	after := time.Now().UnixMilli()
	n, _ := fsm.State().Network("inpud")
	if n.Joined < before || n.Joined > after {
		t.Errorf("joined = %d, want the log's time, within [%d, %d]", n.Joined, before, after)
	}
	res := propose(Demote, NetworkArgs{Network: "inpud"})
	wantErr(t, res.Err, ErrConflict, "inpud is the last active steward network")
	if res := propose(PutTemplate, PutTemplateArgs{Template: smallTemplate("local", "1", "a")}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := fsm.State().Applied; got != r.AppliedIndex() {
		t.Errorf("FSM applied %d, raft says %d", got, r.AppliedIndex())
	}

	// Snapshot now, publish another template, then restore the snapshot:
	// the template published after it is gone.
	if err := r.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	list, _ := snaps.List()
	meta, rc, err := snaps.Open(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if res := propose(PutTemplate, PutTemplateArgs{Template: smallTemplate("later", "1", "a")}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if err := r.Restore(meta, rc, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	s := fsm.State()
	if _, ok := s.Template("later"); ok {
		t.Error("a template published after the snapshot survived its restore")
	}
	if _, ok := s.Template("local"); !ok {
		t.Error("a template in the snapshot is missing after its restore")
	}
}
