package store

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
)

// Environment of the crash child (TestCrashChild).
const (
	envCrashDir  = "CAIRN_STORE_CRASH_DIR"  // the store directory; set only for the child
	envCrashGC   = "CAIRN_STORE_CRASH_GC"   // "1": tiny value-log files, GC every 100 ms
	envCrashSeed = "CAIRN_STORE_CRASH_SEED" // seeds the child's choices
	envCrashSeal = "CAIRN_STORE_CRASH_SEAL" // "1": history values sealed (seal.go); parent and child
)

// For chasing a failure of TestCrash: CAIRN_STORE_CRASH_KEEP=DIR runs it in
// DIR (emptied first) and leaves the store there; CAIRN_STORE_CRASH_REPLAY
// =SEED reuses the seed a failed run logged (kill delays and the children's
// choices; the timing of each kill still varies).
const (
	envCrashKeep   = "CAIRN_STORE_CRASH_KEEP"
	envCrashReplay = "CAIRN_STORE_CRASH_REPLAY"
)

// crashConfig is the store configuration of the crash child and of the
// parent's final open.
func crashConfig(gc bool) Config {
	c := DefaultConfig()
	c.GCInterval = 0
	if os.Getenv(envCrashSeal) == "1" {
		c.Sealer = newTestSealer()
	}
	if gc {
		c.ValueLogFileSize = 1 << 20
		c.GCInterval = 100 * time.Millisecond
		c.GCDiscardRatio = 0.01 // rewrite nearly every file GC samples: exercise the rewrite
	}
	return c
}

// TestCrash is the store's part of "every acknowledged write survives a
// crash": a child process writes as fast as it can and reports each Put
// after it returns; the parent SIGKILLs it at random moments, restarts it on
// the same directory, and finally checks that the store opens as is and
// holds every acknowledged version, with a gapless feed and consistent
// counters. The "gc" variant uses 1 MiB value-log files with GC every
// 100 ms, and the child pauses for 400 ms after every 300 ms of writing so
// GC runs (and is killed); its kill delays are 150–900 ms.
func TestCrash(t *testing.T) {
	for _, gc := range []bool{false, true} {
		name := "plain"
		if gc {
			name = "gc"
		}
		t.Run(name, func(t *testing.T) { crashRun(t, gc, 20) })
	}
	// Encryption at rest changes every history value written and read:
	// the same promise holds with it on.
	t.Run("sealed", func(t *testing.T) {
		t.Setenv(envCrashSeal, "1")
		crashRun(t, false, 20)
	})
}

// ack is a version the child reported stored.
type ack struct {
	id      string
	version uint64
	hash    string
}

func crashRun(t *testing.T, gc bool, kills int) {
	dir := t.TempDir()
	if keep := os.Getenv(envCrashKeep); keep != "" {
		dir = filepath.Join(keep, t.Name())
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(envCrashReplay); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	deadline := time.Now().Add(40 * time.Second)

	var acks []ack
	gcRewrites, killsInGC := 0, 0
	for run := 0; run < kills; run++ {
		if time.Now().After(deadline) {
			t.Fatalf("out of time after %d of %d kills", run, kills)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			envCrashDir+"="+dir,
			envCrashSeed+"="+strconv.FormatUint(rng.Uint64(), 10),
		)
		if gc {
			cmd.Env = append(cmd.Env, envCrashGC+"=1")
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			r := bufio.NewReader(out)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return // a line cut by the kill was never acknowledged
				}
				lines <- strings.TrimSuffix(line, "\n")
			}
		}()

		ready := time.NewTimer(30 * time.Second)
		readyC := ready.C
		var kill <-chan time.Time
		killed, inGC := false, false
	read:
		for {
			select {
			case <-readyC:
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("run %d: the child did not open the store in 30 s; stderr:\n%s", run, stderr.String())
			case <-kill:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killed, kill = true, nil
				if inGC {
					killsInGC++
				}
			case line, ok := <-lines:
				if !ok {
					break read
				}
				f := strings.Fields(line)
				switch {
				case len(f) == 2 && f[0] == "READY":
					ready.Stop()
					readyC = nil
					delay := 50 + rng.IntN(351) // ms
					if gc {
						// Long enough for the child to write several value-log
						// files' worth and to pause for GC, also under -race.
						delay = 150 + rng.IntN(751)
					}
					kill = time.After(time.Duration(delay) * time.Millisecond)
				case len(f) == 4 && f[0] == "A":
					v, _ := strconv.ParseUint(f[2], 10, 64)
					acks = append(acks, ack{id: f[1], version: v, hash: f[3]})
				case len(f) == 1 && f[0] == "g":
					inGC = true
				case len(f) == 2 && f[0] == "G":
					inGC = false
					if f[1] == "rewrote" {
						gcRewrites++
					}
				case len(f) >= 1 && f[0] == "ERR":
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
					t.Fatalf("run %d: child: %s", run, line)
				}
			}
		}
		// lines closes at EOF: the child died, or exited by itself.
		err = cmd.Wait()
		if !killed {
			t.Fatalf("run %d: the child stopped before it was killed (%v); stderr:\n%s", run, err, stderr.String())
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: the child ended with %v, not by SIGKILL; stderr:\n%s", run, err, stderr.String())
		}
	}
	if len(acks) == 0 {
		t.Fatal("the child acknowledged nothing")
	}

	t.Logf("%d kills took %s", kills, time.Since(deadline.Add(-40*time.Second)).Round(time.Millisecond))
	verifyStart := time.Now()
	defer func() { t.Logf("open and verify took %s", time.Since(verifyStart).Round(time.Millisecond)) }()

	// The store must open as it is: no repair step.
	s, err := Open(dir, crashConfig(gc))
	if err != nil {
		t.Fatalf("the store did not open after %d crashes: %v", kills, err)
	}
	defer s.Close()
	t.Logf("open took %s", time.Since(verifyStart).Round(time.Millisecond))

	// Walk the whole feed: no gaps, and work out from it which version of
	// each record must be current (model.Wins over all versions held).
	// Reads check every envelope against its hash.
	type win struct {
		p    model.Payload
		hash string
	}
	held := map[string]bool{} // version hashes
	winners := map[string]win{}
	after := uint64(0)
	for {
		e, _, err := s.Feed(after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(e) == 0 {
			break
		}
		for _, st := range e {
			if st.Seq != after+1 {
				t.Fatalf("feed gap: seq %d follows %d", st.Seq, after)
			}
			held[st.Hash] = true
			if w, ok := winners[st.Payload.ID]; !ok || model.Wins(st.Payload, w.p, st.Hash, w.hash) {
				winners[st.Payload.ID] = win{st.Payload, st.Hash}
			}
			after = st.Seq
		}
	}
	if after != s.Head() {
		t.Fatalf("feed ends at %d, head is %d", after, s.Head())
	}
	t.Logf("feed walked at %s", time.Since(verifyStart).Round(time.Millisecond))

	// Every acknowledged version is held, and Get of every acknowledged
	// record gives the winner, correctly signed.
	newest := map[string]uint64{}
	lost := 0
	for _, a := range acks {
		if !held[a.hash] {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged version lost: record %s version %d", a.id, a.version)
			}
		}
		newest[a.id] = max(newest[a.id], a.version)
	}
	idList := slices.Collect(maps.Keys(newest))
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < len(idList); i += 2 {
				id := idList[i]
				st, err := s.Get(id)
				if err == nil {
					err = checkStored(st)
				}
				switch {
				case err != nil:
				case st.Payload.Version < newest[id]:
					err = fmt.Errorf("record %s is at version %d; version %d was acknowledged", id, st.Payload.Version, newest[id])
				case st.Hash != winners[id].hash:
					err = fmt.Errorf("record %s: Get returns %s, but the winner of the versions in the feed is %s", id, st.Hash, winners[id].hash)
				}
				if err != nil {
					errs <- fmt.Errorf("acknowledged record %s: %w", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// The counters match the records.
	want := map[model.Kind]int{}
	for _, k := range model.Kinds {
		want[k] = 0
	}
	for _, w := range winners {
		if !w.p.Deleted {
			want[w.p.Kind]++
		}
	}
	if got := must(s.Counts()); !maps.Equal(got, want) {
		t.Fatalf("counts %v, but the records say %v", got, want)
	}
	t.Logf("%d kills (%d during value-log GC), %d acknowledged versions of %d records, %d held (head %d), %d lost; value-log files rewritten by GC: %d",
		kills, killsInGC, len(acks), len(newest), len(held), s.Head(), lost, gcRewrites)
	if lost > 0 {
		t.Fatalf("%d acknowledged versions lost", lost)
	}
	if gc && gcRewrites+killsInGC == 0 {
		t.Fatal("no GC run rewrote a file or was killed, so the gc variant tested nothing")
	}
}

// TestCrashChild is the writer TestCrash kills. It does nothing unless
// started by TestCrash (envCrashDir set).
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		t.Skip("runs only as the child of TestCrash")
	}
	os.Exit(crashChild(dir, os.Getenv(envCrashGC) == "1", os.Getenv(envCrashSeed)))
}

func crashChild(dir string, gc bool, seedText string) int {
	seed, _ := strconv.ParseUint(seedText, 10, 64)
	rng := rand.New(rand.NewPCG(seed, 1))
	out := os.Stdout
	fail := func(err error) int {
		fmt.Fprintf(out, "ERR %v\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return 2
	}
	if gc {
		// Report GC runs as they start and end, so the parent knows
		// which kills landed during one. One line is one write, so lines
		// from here and from the loop below do not mix.
		testHookGC = func(start bool, err error) {
			switch {
			case start:
				fmt.Fprintln(out, "g")
			case err == nil:
				fmt.Fprintln(out, "G rewrote")
			default:
				fmt.Fprintln(out, "G declined")
			}
		}
	}
	s, err := Open(dir, crashConfig(gc))
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(out, "READY %d\n", s.Head())

	var mine []string // ids created by this run, for updates
	var buf bytes.Buffer
	lastPause := time.Now().Add(-200 * time.Millisecond) // gc: pause after the first 100 ms of writing, then every 300 ms
	// Bounded in time and count, in case the parent never kills.
	end := time.Now().Add(20 * time.Second)
	for op := 0; op < 100_000 && time.Now().Before(end); op++ {
		var envs []model.Envelope
		switch r := rng.IntN(10); {
		case r < 4 || (r >= 8 && len(mine) == 0):
			envs = append(envs, crashRecord(rng, model.NewID(time.Now(), nil), 1, false))
		case r < 8:
			for range 50 {
				envs = append(envs, crashRecord(rng, model.NewID(time.Now(), nil), 1, false))
			}
		default:
			// New versions of records this run wrote, some of them
			// tombstones, several in one group.
			for range 1 + rng.IntN(10) {
				id := mine[rng.IntN(len(mine))]
				st, err := s.Get(id)
				if err != nil {
					return fail(err)
				}
				if slices.ContainsFunc(envs, func(e model.Envelope) bool { return bytes.Contains(e.Payload, []byte(id)) }) {
					continue
				}
				envs = append(envs, crashRecord(rng, id, st.Payload.Version+1, rng.IntN(5) == 0))
			}
		}
		res, err := s.Put(envs...)
		if err != nil {
			return fail(err)
		}
		buf.Reset()
		for _, st := range res.Stored {
			fmt.Fprintf(&buf, "A %s %d %s\n", st.Payload.ID, st.Payload.Version, st.Hash)
			if st.Payload.Version == 1 {
				mine = append(mine, st.Payload.ID)
			}
		}
		if _, err := out.Write(buf.Bytes()); err != nil {
			return 3
		}
		if gc && time.Since(lastPause) > 300*time.Millisecond {
			time.Sleep(400 * time.Millisecond) // idle for several GC intervals: GC runs
			lastPause = time.Now()
		}
	}
	_, _ = io.WriteString(out, "DONE\n")
	s.Close()
	return 0
}

// crashRecord seals an audit or priority of ~1.5 KB.
func crashRecord(rng *rand.Rand, id string, version uint64, deleted bool) model.Envelope {
	kind := model.KindAudit // the kind of a record never changes: derive it from the id
	if id[len(id)-1]%3 == 0 {
		kind = model.KindPriority
	}
	env, err := sealRecErr(rec{
		id:      id,
		kind:    kind,
		version: version,
		hlc:     model.MakeHLC(time.Now().UnixMilli(), uint16(version)),
		deleted: deleted,
		note:    strconv.Itoa(rng.IntN(1_000_000)),
	})
	if err != nil {
		panic(err)
	}
	return env
}
