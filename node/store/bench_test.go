package store

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
)

// benchRecord seals record i of a benchmark store: ~1.5 KB, 60% audits
// against a few templates, the rest priorities and committee reports, from
// a few origins. Ids are reproducible from i (benchID).
func benchRecord(tb testing.TB, i int) model.Envelope {
	kind := model.KindAudit
	switch i % 20 {
	case 12, 13, 14, 15, 16:
		kind = model.KindPriority
	case 17, 18, 19:
		kind = model.KindReport
	}
	return sealRec(tb, rec{
		id:       benchID(i),
		kind:     kind,
		origin:   []string{"inpud", "ehrn", "vnpud", "anpud", "lanpud"}[i%5],
		template: []string{"iduit-bg/3.2@2017", "iduit-bg/3@2017", "iduit-bg/3.5@2017"}[i%3],
		hlc:      model.MakeHLC(t0.UnixMilli()+int64(i), 0),
		note:     strconv.Itoa(i),
	})
}

var benchBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func benchID(i int) string { return idAt(benchBase.Add(time.Duration(i)*time.Millisecond), uint64(i)) }

// sealRange seals records [from, to) on every core.
func sealRange(tb testing.TB, from, to int) []model.Envelope {
	out := make([]model.Envelope, to-from)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := from + w; i < to; i += workers {
				out[i-from] = benchRecord(tb, i)
			}
		})
	}
	wg.Wait()
	return out
}

// BenchmarkPutDurableSingle: one record per Put, each synced to disk
// before Put returns.
func BenchmarkPutDurableSingle(b *testing.B) {
	s := openStore(b, b.TempDir(), testConfig())
	envs := sealRange(b, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Put(envs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkPutBatch: groups of 1,000 ~1.5 KB audit-like records, one
// transaction each, synced before Put returns. b.N counts batches.
func BenchmarkPutBatch(b *testing.B) {
	const batch = 1000
	s := openStore(b, b.TempDir(), testConfig())
	envs := sealRange(b, 0, b.N*batch)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := s.Put(envs[i*batch : (i+1)*batch]...); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(ms(lat[len(lat)/2]), "ms-p50-batch")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "ms-p99-batch")
	b.ReportMetric(ms(lat[len(lat)-1]), "ms-worst-batch")
}

// BenchmarkGet: random reads of existing ids in a store of 20,000 records
// (envelope decoded, hash checked).
func BenchmarkGet(b *testing.B) {
	const n = 20_000
	s := openStore(b, b.TempDir(), testConfig())
	envs := sealRange(b, 0, n)
	for i := 0; i < n; i += MaxBatch {
		if _, err := s.Put(envs[i:min(i+MaxBatch, n)]...); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for range b.N {
		if _, err := s.Get(benchID(rng.IntN(n))); err != nil {
			b.Fatal(err)
		}
	}
}

// The 1M store is cached here between runs; benchCacheVersion changes
// whenever the records or the key layout change, forcing a rebuild.
const (
	bench1MRecords    = 1_000_000
	benchCacheVersion = "cairn-bench-1m v1 format " + formatVersion
	envOpenChild      = "CAIRN_STORE_BENCH_OPEN_DIR"
	envOpenAfterCrash = "CAIRN_STORE_BENCH_OPEN_AFTER_CRASH"
)

// BenchmarkOpen1M measures, in a fresh child process each time, how long
// opening a store of 1,000,000 records takes and the peak resident memory
// (VmHWM) after opening and 1,000 random Gets: with Go's default memory
// limit, with GOMEMLIMIT=100MiB, and (…-after-crash) when the last stop
// was a crash rather than Close, so Open replays the value log first. The store is
// built once and cached in os.TempDir()/cairn-bench-1m (~2.5 GB).
func BenchmarkOpen1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a store of 1,000,000 records; skipped with -short")
	}
	root := filepath.Join(os.TempDir(), "cairn-bench-1m")
	dir := filepath.Join(root, "store")
	if err := build1M(b, root, dir); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var openMS, rssMB, limitRSSMB, crashMS, crashRSSMB float64
	for range b.N {
		ms, kb := openChild(b, dir, nil)
		openMS += ms
		rssMB += float64(kb) / 1024
		_, kb = openChild(b, dir, []string{"GOMEMLIMIT=100MiB"})
		limitRSSMB += float64(kb) / 1024
		ms, kb = openChild(b, dir, []string{envOpenAfterCrash + "=1"})
		crashMS += ms
		crashRSSMB += float64(kb) / 1024
	}
	n := float64(b.N)
	b.ReportMetric(openMS/n, "ms/open")
	b.ReportMetric(rssMB/n, "MB-rss")
	b.ReportMetric(limitRSSMB/n, "MB-rss-gomemlimit100")
	b.ReportMetric(crashMS/n, "ms/open-after-crash")
	b.ReportMetric(crashRSSMB/n, "MB-rss-after-crash")
}

// build1M builds the cached store unless a complete one is there.
func build1M(b *testing.B, root, dir string) error {
	marker := filepath.Join(root, "complete")
	if got, err := os.ReadFile(marker); err == nil && string(got) == benchCacheVersion {
		return nil
	}
	b.Logf("building a store of %d records in %s (once; reused by later runs)", bench1MRecords, dir)
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	start := time.Now()
	s, err := Open(dir, DefaultConfig())
	if err != nil {
		return err
	}
	// Seal the next chunk while the previous one is stored.
	const chunk = 20 * MaxBatch
	next := make(chan []model.Envelope, 1)
	go func() {
		defer close(next)
		for i := 0; i < bench1MRecords; i += chunk {
			next <- sealRange(b, i, min(i+chunk, bench1MRecords))
		}
	}()
	stored := 0
	for envs := range next {
		for i := 0; i < len(envs); i += MaxBatch {
			res, err := s.Put(envs[i:min(i+MaxBatch, len(envs))]...)
			if err != nil {
				s.Close()
				return err
			}
			stored += len(res.Stored)
		}
	}
	if err := s.Close(); err != nil {
		return err
	}
	if stored != bench1MRecords {
		return fmt.Errorf("stored %d records, want %d", stored, bench1MRecords)
	}
	b.Logf("built in %s", time.Since(start).Round(time.Second))
	return os.WriteFile(marker, []byte(benchCacheVersion), 0o600)
}

// openChild runs TestOpen1MChild in a new process and returns the open
// time in ms and VmHWM in kB.
func openChild(b *testing.B, dir string, env []string) (float64, int) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpen1MChild$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), envOpenChild+"="+dir), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("open child: %v\n%s\n%s", err, out, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "OPEN1M" {
			ms, _ := strconv.ParseFloat(f[1], 64)
			kb, _ := strconv.Atoi(f[2])
			return ms, kb
		}
	}
	b.Fatalf("open child printed no result:\n%s\n%s", out, stderr.String())
	return 0, 0
}

// TestOpen1MChild is BenchmarkOpen1M's child: it opens the store, does
// 1,000 random Gets, and prints the open time and VmHWM. It does nothing
// unless started by the benchmark.
func TestOpen1MChild(t *testing.T) {
	dir := os.Getenv(envOpenChild)
	if dir == "" {
		t.Skip("runs only as the child of BenchmarkOpen1M")
	}
	if os.Getenv(envOpenAfterCrash) != "" {
		if err := os.Remove(filepath.Join(dir, closedMarker)); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	s, err := Open(dir, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	openTime := time.Since(start)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	for range 1000 {
		st, err := s.Get(benchID(rng.IntN(bench1MRecords)))
		if err != nil {
			t.Fatal(err)
		}
		if st.Payload.Version != 1 {
			t.Fatal("unexpected version")
		}
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	hwm := 0
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			hwm, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("OPEN1M %.1f %d\n", float64(openTime.Microseconds())/1000, hwm)
}
