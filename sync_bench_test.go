package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/inpud/cairn/bench"
	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/model/templates"
	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/api"
	"github.com/inpud/cairn/node/store"
)

// The sync benchmarks run two member nodes of one federation as real
// `cairn start` processes on 127.0.0.1: origin (its network's steward,
// which bootstraps the federation) and receiver (a member, joined with an
// invite). The origin's records are ~1.5 KB audits shared with all members,
// signed with its node key and written straight into its store before it
// starts; the receiver verifies every signature against the registry as it
// stores them (node/sink.go). Periodic pulls are off: records move on
// `sync now`, or on a notify after a write to a running node's store, so
// nothing moves before the timed call.

// BenchmarkSyncInitial100k is the first sync of 100,000 records, from
// `sync now` on the receiver until its answer says all are stored, beside
// a plain loopback TCP copy of the same envelope bytes in the same run.
func BenchmarkSyncInitial100k(b *testing.B) {
	benchInitialSync(b, 100_000)
}

func benchInitialSync(b *testing.B, n int) {
	bin := buildCairn(b)
	var recS, mbS, copyMBS, ratio, rssO, rssR, cpuS, cpuA, vFloor, sFloor, allFloor float64
	for range b.N {
		r := initialSync(b, bin, n)
		copied := plainCopy(b, r.envs)
		verified, opened, stored, readBack, sealed := floors(b, r)
		vFloor += verified.Took.Seconds() / copied.Seconds()
		sFloor += stored.Took.Seconds() / copied.Seconds()
		// The CPU the five need, spread perfectly over every core: no
		// sync that does them all can be faster on this machine.
		all := (verified.CPU + opened.CPU + stored.CPU + readBack.CPU + sealed.CPU) / time.Duration(runtime.NumCPU())
		allFloor += all.Seconds() / copied.Seconds()
		b.Logf("%d records, parts of the sync's work alone: signatures checked on all %d cores %v (%.1f× the copy), %v of CPU; payloads decoded strictly %v of CPU; written into a bare badger, one key each, %d a durable transaction, %v (%.1f× the copy), %v of CPU, and read back %v of CPU; sealed and opened as Noise messages %v of CPU; the CPU of the five over %d cores: %v, %.1f× the copy",
			n, runtime.NumCPU(), verified.Took.Round(time.Millisecond), verified.Took.Seconds()/copied.Seconds(), verified.CPU.Round(time.Millisecond), opened.CPU.Round(time.Millisecond),
			store.MaxBatch, stored.Took.Round(time.Millisecond), stored.Took.Seconds()/copied.Seconds(), stored.CPU.Round(time.Millisecond), readBack.CPU.Round(time.Millisecond),
			sealed.CPU.Round(time.Millisecond), runtime.NumCPU(), all.Round(time.Millisecond), all.Seconds()/copied.Seconds())
		recS += float64(n) / r.took.Seconds()
		mbS += float64(r.bytes) / 1e6 / r.took.Seconds()
		copyMBS += float64(r.bytes) / 1e6 / copied.Seconds()
		ratio += r.took.Seconds() / copied.Seconds()
		rssO += r.rssOrigin
		rssR += r.rssReceiver
		cpuS += float64(r.cpuSync.Microseconds()) / float64(n)
		cpuA += float64(r.cpuAll.Microseconds()) / float64(n)
		b.Logf("%d records (%.0f bytes each): sync %v, plain TCP copy %v (best of 3)", n, float64(r.bytes)/float64(n), r.took.Round(time.Millisecond), copied.Round(time.Microsecond))
	}
	k := float64(b.N)
	b.ReportMetric(recS/k, "records/s")
	b.ReportMetric(mbS/k, "MB/s")
	b.ReportMetric(copyMBS/k, "copy-MB/s")
	b.ReportMetric(ratio/k, "x-copy-time")
	b.ReportMetric(rssO/k, "MB-rss-origin")
	b.ReportMetric(rssR/k, "MB-rss-receiver")
	b.ReportMetric(cpuS/k, "cpu-µs/record")
	b.ReportMetric(cpuA/k, "cpu-µs/record-with-receipts")
	b.ReportMetric(vFloor/k, "x-copy-verify-alone")
	b.ReportMetric(sFloor/k, "x-copy-badger-alone")
	b.ReportMetric(allFloor/k, "x-copy-floor")
}

// floors measures five parts of the sync's work alone, after the nodes
// have stopped (bench.VerifyFloor, bench.OpenFloor, bench.StoreFloor,
// bench.SealFloor): checking the n signatures and decoding the n payloads
// strictly, on every core; writing the n envelopes durably into a bare
// badger with the store's options and reading them back; and encrypting
// and decrypting their bytes as libp2p's Noise channel does. A sync does
// all five and more, so their CPU over the machine's cores is a lower
// bound on its time here.
func floors(b *testing.B, r syncRun) (verified, opened, stored, readBack, sealed bench.Floor) {
	envs := make([]model.Envelope, len(r.envs))
	pubs := make([]ed25519.PublicKey, len(r.envs))
	for i, raw := range r.envs {
		if err := envs[i].UnmarshalBinary(raw); err != nil {
			b.Fatal(err)
		}
		pubs[i] = r.pub
	}
	verified, err := bench.VerifyFloor(pubs, envs)
	if err != nil {
		b.Fatal(err)
	}
	if opened, err = bench.OpenFloor(envs); err != nil {
		b.Fatal(err)
	}
	stored, readBack, err = bench.StoreFloor(b.TempDir(), store.DefaultConfig().BadgerOptions(), r.envs, store.MaxBatch)
	if err != nil {
		b.Fatal(err)
	}
	sealed, err = bench.SealFloor(r.envs)
	if err != nil {
		b.Fatal(err)
	}
	return verified, opened, stored, readBack, sealed
}

// syncRun is what one initial sync measured.
type syncRun struct {
	took                   time.Duration
	bytes                  int64             // envelope bytes synced
	envs                   [][]byte          // the envelopes, as stored
	pub                    ed25519.PublicKey // the origin's key, which signed them
	rssOrigin, rssReceiver float64           // peak, MiB
	// CPU (user+system) of both processes together: from `sync now` to
	// its answer, and from `sync now` until the origin held the receiver's
	// delivery receipts for all.
	cpuSync, cpuAll time.Duration
}

// procCPU is the user+system CPU process pid has used so far
// (/proc/<pid>/stat, in clock ticks of 10 ms).
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("read the CPU time of process %d: %v", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15.
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("process %d: unexpected /proc stat %q", pid, s)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func pairCPU(b *testing.B, p syncPair) time.Duration {
	return procCPU(b, p.origin.Pid()) + procCPU(b, p.receiver.Pid())
}

// pairCPUUntilReceipts waits (at most two minutes) until the origin
// lists the receiver among the holders of record id, the last one synced,
// and returns the pair's CPU then. The receiver sends its receipts in feed
// order, a frame at a time, so the last record's receipt is the last to
// arrive.
func pairCPUUntilReceipts(b *testing.B, p syncPair, id string) time.Duration {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var hs []node.RecordHolder
		if err := p.origin.Call(context.Background(), "GET", "/v1/records/"+id+"/holders", nil, &hs); err != nil {
			b.Fatalf("holders of %s on the origin: %v", id, err)
		}
		for _, h := range hs {
			if h.Network == "receiver" {
				return pairCPU(b, p)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("the receiver's delivery receipts did not all reach the origin within two minutes of the sync")
	return 0
}

// initialSync builds an origin holding n records, forms the federation,
// times `sync now` on the receiver and checks that it stored all n.
func initialSync(b *testing.B, bin string, n int) syncRun {
	root := b.TempDir()
	oDir, rDir := filepath.Join(root, "origin"), filepath.Join(root, "receiver")
	author, key := initSyncDir(b, oDir, "origin", "global")
	initSyncDir(b, rDir, "receiver", "national")
	st := openStore(b, oDir)
	var envs [][]byte
	size := fillStores(b, n, author, key, func(env []byte) { envs = append(envs, env) }, st)
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	p := startPair(b, bin, oDir, rDir)
	ctx := context.Background()
	cpu0 := pairCPU(b, p)
	t0 := time.Now()
	res := syncNow(b, p.receiver)
	took := time.Since(t0)
	cpuSync := pairCPU(b, p) - cpu0
	if len(res) != 1 || res[0].Stored != n || res[0].Rejected != 0 || res[0].Error != "" {
		b.Fatalf("sync now on the receiver: %+v; want %d stored from origin, none rejected", res, n)
	}
	var status node.Status
	if err := p.receiver.Call(ctx, "GET", "/v1/status", nil, &status); err != nil {
		b.Fatal(err)
	}
	if got := status.Records[model.KindAudit]; got != n {
		b.Fatalf("the receiver holds %d audits after the sync; want %d", got, n)
	}
	var ss node.SyncStatus
	if err := p.receiver.Call(ctx, "GET", "/v1/sync/status", nil, &ss); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d records: the receiver answered %d pull requests of the origin meanwhile (notified as its feed grew)", n, ss.Server.Served)
	// What the sync's aftermath costs too (the receiver's delivery
	// receipts, the origin keeping them): CPU until the origin has them all.
	var last model.Envelope
	if err := last.UnmarshalBinary(envs[len(envs)-1]); err != nil {
		b.Fatal(err)
	}
	lastP, err := last.Open()
	if err != nil {
		b.Fatal(err)
	}
	cpuAll := pairCPUUntilReceipts(b, p, lastP.ID) - cpu0
	b.Logf("%d records: CPU of both processes %v during the sync (%.0f µs/record), %v until the origin held all the receiver's receipts (%.0f µs/record)",
		n, cpuSync.Round(time.Millisecond), float64(cpuSync.Microseconds())/float64(n), cpuAll.Round(time.Millisecond), float64(cpuAll.Microseconds())/float64(n))
	r := syncRun{took: took, bytes: size, envs: envs, pub: key.Public().(ed25519.PublicKey), rssOrigin: peakRSS(b, p.origin), rssReceiver: peakRSS(b, p.receiver), cpuSync: cpuSync, cpuAll: cpuAll}
	p.stop() // nothing of Cairn runs during what comes next
	return r
}

// plainCopy is the best of three plain TCP copies of envs.
func plainCopy(b *testing.B, envs [][]byte) time.Duration {
	var best time.Duration
	for range 3 {
		d, err := bench.PlainCopy(envs)
		if err != nil {
			b.Fatal(err)
		}
		if best == 0 || d < best {
			best = d
		}
	}
	return best
}

// BenchmarkSyncVsSyncthing10k is the first sync of 10,000 records by Cairn
// and, in the same run, by Syncthing (Debian's package) between two local
// devices sharing a folder of one JSON file per record, with its defaults
// and with caseSensitiveFS=true, using ../shared/bench/syncthing_baseline.sh
// (CAIRN_SYNCTHING_BASELINE names another copy).
func BenchmarkSyncVsSyncthing10k(b *testing.B) {
	const n = 10_000
	script := os.Getenv("CAIRN_SYNCTHING_BASELINE")
	if script == "" {
		script = filepath.Join("..", "shared", "bench", "syncthing_baseline.sh")
	}
	if _, err := os.Stat(script); err != nil {
		b.Fatalf("the Syncthing baseline script is missing (%v); set CAIRN_SYNCTHING_BASELINE to its path", err)
	}
	if _, err := exec.LookPath("syncthing"); err != nil {
		b.Fatal("syncthing is not installed: apt-get install -y syncthing (make bench installs it)")
	}
	bin := buildCairn(b)
	var cairnRS, defRS, tunedRS, defRSS, tunedRSS float64
	for range b.N {
		r := initialSync(b, bin, n)
		cairnRS += float64(n) / r.took.Seconds()
		def := syncthingRun(b, script, n, false)
		tuned := syncthingRun(b, script, n, true)
		defRS += def.RecordsPerS
		tunedRS += tuned.RecordsPerS
		defRSS += max(def.PeakRSSA, def.PeakRSSB)
		tunedRSS += max(tuned.PeakRSSA, tuned.PeakRSSB)
		b.Logf("10,000 records: Cairn %.0f records/s (%.0f bytes each, RSS %.0f/%.0f MB); Syncthing %.0f records/s with its defaults, %.0f with caseSensitiveFS=true (%.0f bytes a file, RSS %.0f/%.0f MB)",
			float64(n)/r.took.Seconds(), float64(r.bytes)/n, r.rssOrigin, r.rssReceiver, def.RecordsPerS, tuned.RecordsPerS, def.MeanFileBytes, def.PeakRSSA, def.PeakRSSB)
	}
	k := float64(b.N)
	b.ReportMetric(cairnRS/k, "records/s")
	b.ReportMetric(defRS/k, "syncthing-records/s")
	b.ReportMetric(cairnRS/defRS, "x-syncthing")
	b.ReportMetric(tunedRS/k, "syncthing-tuned-records/s")
	b.ReportMetric(cairnRS/tunedRS, "x-syncthing-tuned")
	b.ReportMetric(max(defRSS, tunedRSS)/k, "MB-rss-syncthing")
}

// syncthingResult is the part of the baseline script's JSON line used here.
type syncthingResult struct {
	RecordsPerS   float64 `json:"records_per_s"`
	MeanFileBytes float64 `json:"mean_file_bytes"`
	PeakRSSA      float64 `json:"peak_rss_A_MB"`
	PeakRSSB      float64 `json:"peak_rss_B_MB"`
	Verified      bool    `json:"verified"`
	Error         string  `json:"error"`
}

// syncthingRun runs the baseline script once (one repetition, first sync
// and one incremental sample, no watcher or machine-limit probes, bounded
// by MAX_SECONDS) and returns its result.
func syncthingRun(b *testing.B, script string, n int, caseSensitive bool) syncthingResult {
	results := filepath.Join(b.TempDir(), "syncthing.jsonl")
	cs := "0"
	if caseSensitive {
		cs = "1"
	}
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "N="+strconv.Itoa(n), "REPS=1", "FSMODE=dir", "LIMITS=0", "WATCHER_CASE=0",
		"INCR_REPS=1", "MAX_SECONDS=420", "CASE_SENSITIVE_FS="+cs, "RESULTS="+results,
		"STBENCH_ROOT=/tmp/stbench-cairn-bench")
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("the Syncthing baseline failed: %v\n%s", err, tailOf(out, 4000))
	}
	raw, err := os.ReadFile(results)
	if err != nil {
		b.Fatalf("the Syncthing baseline wrote no results: %v\n%s", err, tailOf(out, 4000))
	}
	var r syncthingResult
	if err := json.Unmarshal(raw, &r); err != nil || r.Error != "" || !r.Verified || r.RecordsPerS <= 0 {
		b.Fatalf("the Syncthing baseline's result %s: %v; want a verified first sync\n%s", raw, err, tailOf(out, 4000))
	}
	return r
}

func tailOf(b []byte, n int) []byte { return b[max(0, len(b)-n):] }

// BenchmarkSync10After1M is the cost of syncing 10 new records when each
// node already holds 1,000,000: the receiver has stored all of the origin's
// million and its checkpoint is at the origin's feed head, as after an
// initial sync; the origin then holds 10 more. It reports the time of `sync
// now` and the bytes on the two nodes' connection meanwhile (TCP payload,
// both ways, with libp2p's framing and anything else the nodes said in
// that time), beside the envelope bytes of the 10 and of the million, and
// the bytes of one idle second before it (Raft heartbeats).
func BenchmarkSync10After1M(b *testing.B) {
	const held, news = 1_000_000, 10
	bin := buildCairn(b)
	cache := filepath.Join(os.TempDir(), "cairn-bench-sync-1m")
	heldBytes, newBytes := buildSyncPair1M(b, cache, held, news)
	var ms, wire, idle, rssO, rssR float64
	for range b.N {
		b.StopTimer()
		root := b.TempDir()
		for _, d := range []string{"origin", "receiver"} {
			if out, err := exec.Command("cp", "-a", filepath.Join(cache, d), filepath.Join(root, d)).CombinedOutput(); err != nil {
				b.Fatalf("copy the cached 1,000,000-record data dir: %v: %s", err, out)
			}
		}
		p := startPair(b, bin, filepath.Join(root, "origin"), filepath.Join(root, "receiver"))
		idle0 := wireBytes(b, p.origin)
		time.Sleep(time.Second)
		before := wireBytes(b, p.origin)
		idle += float64(before - idle0)
		b.StartTimer()
		t0 := time.Now()
		res := syncNow(b, p.receiver)
		took := time.Since(t0)
		b.StopTimer()
		after := wireBytes(b, p.origin)
		if len(res) != 1 || res[0].Stored != news || res[0].Received != news || res[0].Error != "" {
			b.Fatalf("sync now on the receiver: %+v; want exactly the %d new records received and stored", res, news)
		}
		ms += float64(took.Microseconds()) / 1000
		wire += float64(after - before)
		rssO += peakRSS(b, p.origin)
		rssR += peakRSS(b, p.receiver)
		p.stop()
		os.RemoveAll(root) // 4.6 GB; one copy at a time
		b.Logf("10 new records (%d envelope bytes) after %d held (%.0f MB of envelopes): sync now %v, %d bytes on the wire", newBytes, held, float64(heldBytes)/1e6, took.Round(time.Microsecond), after-before)
		b.StartTimer()
	}
	k := float64(b.N)
	b.ReportMetric(ms/k, "ms/sync")
	b.ReportMetric(wire/k, "wire-bytes/sync")
	b.ReportMetric(idle/k, "idle-wire-bytes/s")
	b.ReportMetric(float64(newBytes), "envelope-bytes-new")
	b.ReportMetric(float64(heldBytes)/1e6, "MB-envelopes-held")
	b.ReportMetric(rssO/k, "MB-rss-origin")
	b.ReportMetric(rssR/k, "MB-rss-receiver")
}

// syncCacheVersion names the records buildSyncPair1M writes; change it
// when they change, so a cached pair of another kind is rebuilt.
const syncCacheVersion = "audits-1.5k-v3"

// buildSyncPair1M makes, once, an origin and a receiver data dir under
// cache that both hold the same held records of the origin, each with its
// checkpoints at the other's feed head, as after a sync and the receipts
// that follow it; the origin then holds news more. It returns the envelope
// bytes of both sets. Later runs reuse the dirs, copied.
func buildSyncPair1M(b *testing.B, cache string, held, news int) (heldBytes, newBytes int64) {
	done := filepath.Join(cache, "complete")
	if raw, err := os.ReadFile(done); err == nil {
		var version string
		if _, err := fmt.Sscan(string(raw), &version, &heldBytes, &newBytes); err == nil && version == syncCacheVersion {
			return heldBytes, newBytes
		}
	}
	os.RemoveAll(cache)
	oDir, rDir := filepath.Join(cache, "origin"), filepath.Join(cache, "receiver")
	author, key := initSyncDir(b, oDir, "origin", "global")
	receiver, _ := initSyncDir(b, rDir, "receiver", "national")
	o, r := openStore(b, oDir), openStore(b, rDir)
	t0 := time.Now()
	heldBytes = fillStores(b, held, author, key, nil, o, r)
	if err := r.SetCheckpoint(author, o.Head()); err != nil {
		b.Fatal(err)
	}
	if err := o.SetCheckpoint(receiver, r.Head()); err != nil {
		b.Fatal(err)
	}
	// The receiver has sent its delivery receipts for the million too: its
	// cursor for the origin network's records is the checkpoint
	// "receipt:origin" (node/receipts.go).
	if err := r.SetCheckpoint("receipt:origin", r.Head()); err != nil {
		b.Fatal(err)
	}
	newBytes = fillStores(b, news, author, key, nil, o)
	if err := o.Close(); err != nil {
		b.Fatal(err)
	}
	if err := r.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("built two stores of %d records in %v (cached in %s)", held, time.Since(t0).Round(time.Second), cache)
	if err := os.WriteFile(done, fmt.Appendf(nil, "%s %d %d\n", syncCacheVersion, heldBytes, newBytes), 0o600); err != nil {
		b.Fatal(err)
	}
	return heldBytes, newBytes
}

// syncPair is a running origin and receiver in one federation.
type syncPair struct{ origin, receiver *bench.Node }

// startPair starts the origin, which creates the federation, and the
// receiver, which joins it with the origin's invite. Both stop at the end
// of the benchmark.
func startPair(b *testing.B, bin, oDir, rDir string) syncPair {
	args := []string{"--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--sync-interval", "1h",
		"--registry-heartbeat-timeout", "500ms", "--registry-election-timeout", "1s", "--log-level", "error"}
	o, err := bench.Start(bin, oDir, append(args, "--bootstrap")...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(o.Stop)
	r, err := bench.Start(bin, rDir, args...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Stop)
	ctx := context.Background()
	var inv api.InviteResponse
	if err := o.Call(ctx, "POST", "/v1/invites", api.InviteRequest{Network: "receiver", Name: "Receiving network", Level: "national"}, &inv); err != nil {
		b.Fatalf("invite the receiver: %v", err)
	}
	if err := r.Call(ctx, "POST", "/v1/join", api.JoinRequest{Code: inv.Code}, nil); err != nil {
		b.Fatalf("the receiver joins: %v", err)
	}
	return syncPair{origin: o, receiver: r}
}

// stop stops both nodes (again at Cleanup, which then does nothing).
func (p syncPair) stop() {
	p.receiver.Stop()
	p.origin.Stop()
}

// syncNow runs `sync now` on n and returns what it did.
func syncNow(b *testing.B, n *bench.Node) []node.PeerSync {
	var res []node.PeerSync
	if err := n.Call(context.Background(), "POST", "/v1/sync/now", nil, &res); err != nil {
		b.Fatalf("sync now: %v", err)
	}
	return res
}

func peakRSS(b *testing.B, n *bench.Node) float64 {
	mb, err := n.PeakRSSMB()
	if err != nil {
		b.Fatal(err)
	}
	return mb
}

// wireBytes is what n's process has sent and received on its connections
// to other nodes (every TCP socket but the local API's).
func wireBytes(b *testing.B, n *bench.Node) int64 {
	v, err := bench.TCPBytes(n.Pid(), n.APIPort)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// buildCairn builds the cairn binary into the benchmark's temp dir.
// CAIRN_BENCH_BIN names a cairn binary to run instead (to measure
// another version's code against the same stores, in the same minutes).
func buildCairn(b *testing.B) string {
	if bin := os.Getenv("CAIRN_BENCH_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(b.TempDir(), "cairn")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build cairn: %v\n%s", err, out)
	}
	return bin
}

// initSyncDir initialises a node's data dir for network slug and returns
// its node ID and signing key.
func initSyncDir(b *testing.B, dir, slug, level string) (string, ed25519.PrivateKey) {
	cfg := node.DefaultConfig(dir)
	cfg.Network = node.Profile{Slug: slug, Name: "Network " + slug, Level: level}
	id, err := node.Init(cfg)
	if err != nil {
		b.Fatal(err)
	}
	key, err := id.SigningKey()
	if err != nil {
		b.Fatal(err)
	}
	return id.ID.String(), key
}

func openStore(b *testing.B, dir string) *store.Store {
	st, err := store.Open(filepath.Join(dir, "store"), store.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// fillStores writes n new audits of network "origin", signed by key and
// shared with all members, into each store in batches of store.MaxBatch,
// giving each envelope's stored bytes to keep (if not nil). It returns the
// envelope bytes written to each store.
func fillStores(b *testing.B, n int, author string, key ed25519.PrivateKey, keep func([]byte), stores ...*store.Store) int64 {
	tmpl, ok := templates.Lookup("iduit-bg/3.2")
	if !ok {
		b.Fatal("the built-in template iduit-bg/3.2 is missing")
	}
	base := time.Now().Add(-time.Hour)
	var size int64
	workers := runtime.GOMAXPROCS(0)
	for from := 0; from < n; from += store.MaxBatch {
		envs := make([]model.Envelope, min(store.MaxBatch, n-from))
		var wg stdsync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(envs); i += workers {
					envs[i] = syncAudit(key, author, from+i, base.Add(time.Duration(from+i)*time.Microsecond), tmpl)
				}
			})
		}
		wg.Wait()
		errs := make([]error, len(stores))
		for i, st := range stores {
			wg.Go(func() { _, errs[i] = st.Put(envs...) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		for _, env := range envs {
			raw, err := env.MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			size += int64(len(raw))
			if keep != nil {
				keep(raw)
			}
		}
	}
	return size
}

// syncAudit is one ~1.5 KB audit of network "origin", shared with members.
func syncAudit(key ed25519.PrivateKey, author string, i int, at time.Time, t model.Template) model.Envelope {
	answers := map[string]model.ItemAnswer{}
	for j, it := range t.Sections[0].Items {
		answers[it.ID] = model.ItemAnswer{Answer: []model.Answer{model.AnswerYes, model.AnswerPartly, model.AnswerNo}[(i+j)%3], Note: "observed during the visit; staff asked"}
	}
	body, _ := json.Marshal(model.Audit{Template: t.Ref(), Subject: model.Subject{Name: "OAT clinic " + strconv.Itoa(i%500), Kind: "service"}, Place: "Region " + strconv.Itoa(i%30), Period: "2026", Status: "final", Answers: answers})
	env, err := model.Seal(key, model.Payload{ID: model.NewID(at, nil), Kind: model.KindAudit, Origin: "origin", Author: author, Version: 1,
		HLC: model.MakeHLC(at.UnixMilli(), 0), Audience: model.Audience{model.AudienceMembers}, Language: "en", Body: body})
	if err != nil {
		panic(err)
	}
	return env
}

// percentile is the p-th percentile (0..100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// BenchmarkSyncLatency is how soon a new record is on a connected member
// node: the origin writes 200 audits one at a time through its local API
// (start the audit, answer its first section, share it with members), and
// each is timed from the moment the share is acknowledged until the
// receiver's API returns it. Nothing but the notify protocol and the pull
// it triggers moves the record (no periodic pull runs).
func BenchmarkSyncLatency(b *testing.B) {
	const records = 200
	bin := buildCairn(b)
	var lat []time.Duration
	var rssO, rssR float64
	for range b.N {
		root := b.TempDir()
		oDir, rDir := filepath.Join(root, "origin"), filepath.Join(root, "receiver")
		initSyncDir(b, oDir, "origin", "global")
		initSyncDir(b, rDir, "receiver", "national")
		p := startPair(b, bin, oDir, rDir)
		tmpl, _ := templates.Lookup("iduit-bg/3.2")
		for i := range records {
			lat = append(lat, newRecordLatency(b, p, tmpl, i))
		}
		rssO += peakRSS(b, p.origin)
		rssR += peakRSS(b, p.receiver)
	}
	p50, p90, p99, worst := percentile(lat, 50), percentile(lat, 90), percentile(lat, 99), percentile(lat, 100)
	b.Logf("%d records: p50 %v, p90 %v, p99 %v, worst %v", len(lat), p50, p90, p99, worst)
	b.ReportMetric(float64(p50.Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(p90.Microseconds())/1000, "ms-p90")
	b.ReportMetric(float64(p99.Microseconds())/1000, "ms-p99")
	b.ReportMetric(float64(worst.Microseconds())/1000, "ms-max")
	b.ReportMetric(rssO/float64(b.N), "MB-rss-origin")
	b.ReportMetric(rssR/float64(b.N), "MB-rss-receiver")
}

// newRecordLatency writes one shared audit on the origin and returns the
// time from the share's acknowledgement until the receiver holds it,
// polling the receiver every 2 ms for at most 20 s.
func newRecordLatency(b *testing.B, p syncPair, t model.Template, i int) time.Duration {
	ctx := context.Background()
	var rec struct {
		ID      string `json:"id"`
		Version uint64 `json:"version"`
	}
	in := map[string]any{"template": t.Ref(), "subject": model.Subject{Name: "NSP drop-in " + strconv.Itoa(i), Kind: "service"}, "place": "Region " + strconv.Itoa(i%30), "period": "2026"}
	if err := p.origin.Call(ctx, "POST", "/v1/audits", in, &rec); err != nil {
		b.Fatalf("start audit %d on the origin: %v", i, err)
	}
	var answers []map[string]string
	for j, it := range t.Sections[0].Items {
		answers = append(answers, map[string]string{"item": it.ID, "answer": []string{"yes", "partly", "no"}[(i+j)%3], "note": "observed during the visit"})
	}
	if err := p.origin.Call(ctx, "POST", "/v1/audits/"+rec.ID+"/answers", map[string]any{"answers": answers}, nil); err != nil {
		b.Fatalf("answer audit %d on the origin: %v", i, err)
	}
	if err := p.origin.Call(ctx, "POST", "/v1/records/"+rec.ID+"/audience", api.AudienceRequest{Audience: model.AudienceMembers}, &rec); err != nil {
		b.Fatalf("share audit %d with members: %v", i, err)
	}
	acked := time.Now()
	deadline := acked.Add(20 * time.Second)
	for {
		var got struct {
			Version uint64 `json:"version"`
		}
		err := p.receiver.Call(ctx, "GET", "/v1/records/"+rec.ID, nil, &got)
		if err == nil && got.Version == rec.Version {
			return time.Since(acked)
		}
		if err != nil && !bench.NotFound(err) {
			b.Fatalf("read audit %d on the receiver: %v", i, err)
		}
		if time.Now().After(deadline) {
			b.Fatalf("audit %d (%s) shared by the origin was not on the receiver within 20 s", i, rec.ID)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
