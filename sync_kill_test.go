package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/model/templates"
	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/store"
)

// syncKillRecords is how many shared audits the origin holds.
const syncKillRecords = 30_000

// TestSyncSurvivesReceiverKills: an origin process holds 30,000 audits
// shared with all members; a new member's node joins and pulls them, and
// is SIGKILLed three times part-way, each time restarted. After every kill
// its checkpoint for the origin is above 0 and every record up to it is
// stored (store before checkpoint); after each restart it goes on from
// there, not from 0; in the end it holds exactly the origin's shared set,
// each version once in its change feed.
func TestSyncSurvivesReceiverKills(t *testing.T) {
	if dir := os.Getenv(fillEnv); dir != "" {
		fillOriginHelper(t, dir)
		return
	}
	if dir := os.Getenv(checkEnv); dir != "" {
		checkReceiverHelper(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("starts real node processes; run without -short")
	}
	t0 := time.Now()
	tmp := t.TempDir()
	bin, filler := filepath.Join(tmp, "cairn"), filepath.Join(tmp, "filler.test")
	var wg stdsync.WaitGroup
	var buildErr [2]error
	var buildOut [2][]byte
	wg.Go(func() { buildOut[0], buildErr[0] = exec.Command("go", "build", "-o", bin, ".").CombinedOutput() })
	// This test binary again, without -race, to sign the origin's records
	// and read the receiver's 30,000 at the end: ~15 times faster than a
	// race-instrumented one.
	wg.Go(func() {
		buildOut[1], buildErr[1] = exec.Command("go", "test", "-c", "-o", filler, ".").CombinedOutput()
	})
	wg.Wait()
	for i, err := range buildErr {
		if err != nil {
			t.Fatalf("build: %v\n%s", err, buildOut[i])
		}
	}
	root := t.TempDir()
	origin := &proc{slug: "inpud", level: "global", dir: filepath.Join(root, "inpud"), api: freePort(t), p2p: freePort(t)}
	recv := &proc{slug: "tanpud", level: "national", dir: filepath.Join(root, "tanpud"), api: freePort(t), p2p: freePort(t)}
	t.Cleanup(func() { recv.kill(); origin.kill() })

	fill := exec.Command(filler, "-test.run=^TestSyncSurvivesReceiverKills$", "-test.count=1")
	fill.Env = append(os.Environ(), fillEnv+"="+origin.dir)
	if out, err := fill.CombinedOutput(); err != nil {
		t.Fatalf("fill the origin's store: %v\n%s", err, out)
	}
	var filled struct {
		IDs    []string          `json:"ids"`
		Hashes map[string]string `json:"hashes"`
	}
	if b, err := os.ReadFile(origin.dir + ".json"); err != nil || json.Unmarshal(b, &filled) != nil || len(filled.IDs) != syncKillRecords {
		t.Fatalf("read what the filler stored: %v", err)
	}
	ids := filled.IDs
	t.Logf("%v: built, and the origin holds %d shared audits", time.Since(t0).Round(time.Millisecond), len(ids))
	origin.start(t, bin, "--bootstrap")
	must := func(dir string, args ...string) string {
		t.Helper()
		out, err := cairnAt(dir, args...)
		if err != nil {
			t.Fatalf("cairn %v: %v", args, err)
		}
		return out
	}
	var ost struct {
		ID       string `json:"id"`
		FeedHead uint64 `json:"feed_head"`
	}
	json.Unmarshal([]byte(must(origin.dir, "status", "--json")), &ost)
	if ost.FeedHead != syncKillRecords {
		t.Fatalf("the origin's feed head is %d, want %d", ost.FeedHead, syncKillRecords)
	}

	syncFlags := []string{"--sync-interval", "100ms"}
	recv.start(t, bin, syncFlags...)
	code := must(origin.dir, "invite", "--network", recv.slug, "--name", "TANPUD", "--level", recv.level)
	must(recv.dir, "join", code)
	t.Logf("%v: the receiver joined", time.Since(t0).Round(time.Millisecond))

	const kills = 3
	deadline := time.Now().Add(3 * time.Minute)
	var atRestart, checkpoint uint64
	for k := 1; k <= kills; k++ {
		// Let it store at least an eighth of the records in this life, then kill it.
		n := waitAudits(t, recv.dir, deadline, func(n int) bool { return n >= int(atRestart)+syncKillRecords/8 })
		time.Sleep(time.Duration(rand.IntN(100)) * time.Millisecond) // not always just after a batch
		recv.kill()
		if n >= syncKillRecords {
			t.Fatalf("kill %d: the receiver had stored all %d records before it could be killed part-way", k, n)
		}
		cp, stored := readReceiver(t, recv.dir, ost.ID, ids)
		t.Logf("%v: kill %d: at %d audits (status); on disk %d audits, checkpoint for the origin %d", time.Since(t0).Round(time.Millisecond), k, n, stored, cp)
		if cp == 0 || cp < checkpoint {
			t.Fatalf("kill %d: the checkpoint for the origin is %d after the receiver stored %d records (it was %d before)", k, cp, stored, checkpoint)
		}
		checkpoint, atRestart = cp, uint64(stored)
		recv.start(t, bin, syncFlags...)
	}
	waitAudits(t, recv.dir, deadline, func(n int) bool { return n == syncKillRecords })

	// Since its last restart it received only what was after its
	// checkpoint: it did not start again from 0.
	// (The pull that stored the last batch is recorded when it ends, a
	// moment after the store holds them all: wait for it, bounded.)
	var peers []node.PeerState
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		peers = nil
		json.Unmarshal([]byte(must(recv.dir, "peers", "--json")), &peers)
		if len(peers) == 1 && peers[0].Checkpoint == syncKillRecords && peers[0].Received > 0 {
			break
		}
	}
	if len(peers) != 1 || peers[0].ID != ost.ID {
		t.Fatalf("peers after the last restart: %+v", peers)
	}
	if want := syncKillRecords - int(checkpoint); peers[0].Received != want || peers[0].Checkpoint != syncKillRecords || peers[0].Lag != 0 {
		t.Fatalf("after its last restart at checkpoint %d the receiver reports %+v; want %d received and checkpoint %d", checkpoint, peers[0], want, syncKillRecords)
	}
	recv.kill()
	check := exec.Command(filler, "-test.run=^TestSyncSurvivesReceiverKills$", "-test.count=1", "-test.v")
	check.Env = append(os.Environ(), checkEnv+"="+recv.dir, wantEnv+"="+origin.dir+".json")
	out, err := check.CombinedOutput()
	if err != nil {
		t.Fatalf("the receiver's store after the kills:\n%s", out)
	}
	if !strings.Contains(string(out), "each version once in its feed") {
		t.Fatalf("the check of the receiver's store said:\n%s", out)
	}
	t.Logf("%v: done", time.Since(t0).Round(time.Millisecond))
}

// When TestSyncSurvivesReceiverKills runs in a non-race build of this test
// binary, these name what it does instead: fill the origin's data dir, or
// check the receiver's against the origin's records listed in a file.
const (
	fillEnv  = "CAIRN_TEST_SYNC_KILL_FILL"
	checkEnv = "CAIRN_TEST_SYNC_KILL_CHECK"
	wantEnv  = "CAIRN_TEST_SYNC_KILL_WANT"
)

// fillOriginHelper fills the origin's data dir and writes the ids (in feed
// order) and hashes it stored to DIR.json.
func fillOriginHelper(t *testing.T, dir string) {
	ids, hashes := fillOrigin(t, dir)
	b, err := json.Marshal(map[string]any{"ids": ids, "hashes": hashes})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+".json", b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fillOrigin initialises the origin's data dir and stores syncKillRecords
// small audits shared with all members, signed with its key, as its own
// records; it returns their ids in feed order and each one's hash.
func fillOrigin(t *testing.T, dir string) ([]string, map[string]string) {
	t.Helper()
	cfg := node.DefaultConfig(dir)
	cfg.Network = node.Profile{Slug: "inpud", Name: "INPUD", Level: "global"}
	id, err := node.Init(cfg)
	if err != nil {
		t.Fatal(err)
	}
	key, err := id.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "store"), cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tmpl, _ := templates.Lookup("iduit-bg/3.2")
	items := tmpl.Sections[0].Items[:3]
	base := time.Now().Add(-time.Hour)
	ids := make([]string, syncKillRecords)
	hashes := make(map[string]string, syncKillRecords)
	const batch = 1000
	for from := 0; from < syncKillRecords; from += batch {
		envs := make([]model.Envelope, batch)
		var wg stdsync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Go(func() {
				for i := from + w; i < from+batch; i += workers {
					at := base.Add(time.Duration(i) * time.Millisecond)
					answers := map[string]model.ItemAnswer{}
					for j, it := range items {
						answers[it.ID] = model.ItemAnswer{Answer: []model.Answer{model.AnswerYes, model.AnswerPartly, model.AnswerNo}[(i+j)%3]}
					}
					body, _ := json.Marshal(model.Audit{Template: tmpl.Ref(), Subject: model.Subject{Name: fmt.Sprintf("NSP site %d", i%300)}, Place: "Region " + fmt.Sprint(i%30), Period: "2026", Answers: answers})
					rid := model.NewID(at, nil)
					env, err := model.Seal(key, model.Payload{ID: rid, Kind: model.KindAudit, Origin: "inpud", Author: id.ID.String(), Version: 1, HLC: model.MakeHLC(at.UnixMilli(), 0), Audience: model.Audience{model.AudienceMembers}, Language: "en", Body: body})
					if err != nil {
						panic(err)
					}
					ids[i], envs[i-from] = rid, env
				}
			})
		}
		wg.Wait()
		res, err := st.Put(envs...)
		if err != nil || len(res.Stored) != batch {
			t.Fatalf("fill the origin's store: %d stored, %v", len(res.Stored), err)
		}
		for _, s := range res.Stored {
			hashes[s.Payload.ID] = s.Hash
		}
	}
	return ids, hashes
}

// waitAudits polls the node's status until cond holds for its audit count,
// and returns that count.
func waitAudits(t *testing.T, dir string, deadline time.Time, cond func(int) bool) int {
	t.Helper()
	last := -1
	for time.Now().Before(deadline) {
		out, err := cairnAt(dir, "status", "--json")
		if err == nil {
			var st struct {
				Records map[string]int `json:"records"`
			}
			json.Unmarshal([]byte(out), &st)
			last = st.Records["audit"]
			if cond(last) {
				return last
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the receiver's audit count stayed at %d", last)
	return 0
}

// readReceiver opens the stopped receiver's store, as its next start
// will, and returns its checkpoint for the origin and how many audits it
// holds. Every record up to the checkpoint must be stored: the origin's
// seq i is ids[i-1].
func readReceiver(t *testing.T, dir, originID string, ids []string) (uint64, int) {
	t.Helper()
	st, err := store.Open(filepath.Join(dir, "store"), node.DefaultConfig(dir).Store)
	if err != nil {
		t.Fatalf("open the killed receiver's store: %v", err)
	}
	defer st.Close()
	cp, err := st.Checkpoint(originID)
	if err != nil {
		t.Fatal(err)
	}
	if cp > uint64(len(ids)) {
		t.Fatalf("checkpoint %d is past the origin's feed (%d)", cp, len(ids))
	}
	for _, id := range ids[:cp] {
		if _, err := st.Get(id); err != nil {
			t.Fatalf("the checkpoint for the origin is %d, but record %s below it is not stored: %v", cp, id, err)
		}
	}
	counts, err := st.Counts()
	if err != nil {
		t.Fatal(err)
	}
	return cp, counts[model.KindAudit]
}

// checkReceiverHelper checks the receiver's data dir against the origin's
// records written by fillOriginHelper.
func checkReceiverHelper(t *testing.T, dir string) {
	var filled struct {
		Hashes map[string]string `json:"hashes"`
	}
	b, err := os.ReadFile(os.Getenv(wantEnv))
	if err != nil || json.Unmarshal(b, &filled) != nil || len(filled.Hashes) != syncKillRecords {
		t.Fatalf("read the origin's records: %v", err)
	}
	checkReceiverHolds(t, dir, filled.Hashes)
}

// checkReceiverHolds: the stopped receiver holds exactly the origin's
// records at the origin's versions, and its feed names each version once.
func checkReceiverHolds(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	st, err := store.Open(filepath.Join(dir, "store"), node.DefaultConfig(dir).Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	held, err := st.List(store.Query{IncludeDeleted: true})
	if err != nil {
		t.Fatal(err)
	}
	wrong := 0
	for _, s := range held {
		if want[s.Payload.ID] != s.Hash {
			wrong++
		}
	}
	if len(held) != len(want) || wrong > 0 {
		t.Fatalf("the receiver holds %d records, %d not the origin's; want exactly the origin's %d", len(held), wrong, len(want))
	}
	seen := map[string]bool{}
	var after uint64
	for range 2 * syncKillRecords / store.MaxBatch {
		entries, last, err := st.Feed(after, store.MaxBatch)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			k := fmt.Sprintf("%s/%d/%s", e.Payload.ID, e.Payload.Version, e.Hash)
			if seen[k] {
				t.Fatalf("the receiver's feed holds %s twice", k)
			}
			seen[k] = true
		}
		after = last
	}
	if len(seen) != len(want) || after != st.Head() {
		t.Fatalf("the receiver's feed holds %d versions up to seq %d (head %d), want %d", len(seen), after, st.Head(), len(want))
	}
	t.Logf("the receiver holds the origin's %d records, each version once in its feed", len(want))
}
