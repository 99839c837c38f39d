package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/model/templates"
	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/store"
)

// benchRecords is the size of the store BenchmarkNodeStart1M starts on.
const benchRecords = 1_000_000

// BenchmarkNodeStart1M measures what a member network sees: the real
// `cairn start` binary on a data dir holding 1,000,000 records (~1.5 KB
// audits, priorities and reports signed by the node's own key). It reports
// the time from exec to the ready line, and the process's peak RSS after
// 1,000 random record reads through the local API. The data dir is built
// once and cached under the system temp dir.
func BenchmarkNodeStart1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a 1,000,000-record data dir; run without -short")
	}
	root := filepath.Join(os.TempDir(), "cairn-bench-node-1m")
	dataDir := filepath.Join(root, "data")
	ids, err := buildBenchDataDir(b, dataDir)
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "cairn")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build cairn: %v\n%s", err, out)
	}
	var startMS, rssMB float64
	b.ResetTimer()
	for range b.N {
		s, r := startAndRead(b, bin, dataDir, ids)
		startMS += s
		rssMB += r
	}
	b.ReportMetric(startMS/float64(b.N), "ms/start")
	b.ReportMetric(rssMB/float64(b.N), "MB-peak-rss")
}

var readyLine = regexp.MustCompile(`ready: API (http://\S+)`)

func startAndRead(b *testing.B, bin, dataDir string, ids []string) (startMS, rssMB float64) {
	cmd := exec.Command(bin, "--data-dir", dataDir, "start", "--api", "127.0.0.1:0")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	lines := bufio.NewScanner(stdout)
	var base string
	for lines.Scan() {
		if m := readyLine.FindStringSubmatch(lines.Text()); m != nil {
			base = m[1]
			break
		}
	}
	if base == "" {
		b.Fatal("cairn start printed no ready line")
	}
	startMS = float64(time.Since(t0).Microseconds()) / 1000
	go io.Copy(io.Discard, stdout)
	token, _ := os.ReadFile(filepath.Join(dataDir, "api.token"))
	for i := range 1000 {
		id := ids[rand.IntN(len(ids))]
		req, _ := http.NewRequest("GET", base+"/v1/records/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var r struct{ ID string }
		json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if resp.StatusCode != 200 || r.ID != id {
			b.Fatalf("read %d (%s): status %d, got %q", i, id, resp.StatusCode, r.ID)
		}
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			rssMB = float64(kb) / 1024
		}
	}
	return startMS, rssMB
}

// buildBenchDataDir initialises a node's data dir and fills its store with
// benchRecords records signed by the node's key, unless a complete one is
// cached. It returns the record ids.
func buildBenchDataDir(b *testing.B, dataDir string) ([]string, error) {
	idsFile := filepath.Join(filepath.Dir(dataDir), "ids.txt")
	if raw, err := os.ReadFile(idsFile); err == nil {
		ids := strings.Fields(string(raw))
		if len(ids) == benchRecords {
			return ids, nil
		}
	}
	os.RemoveAll(filepath.Dir(dataDir))
	cfg := node.DefaultConfig(dataDir)
	cfg.Network = node.Profile{Slug: "bench", Name: "Benchmark network", Level: "national"}
	id, err := node.Init(cfg)
	if err != nil {
		return nil, err
	}
	key, err := id.SigningKey()
	if err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(dataDir, "store"), cfg.Store)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	tmpl, _ := templates.Lookup("iduit-bg/3.2")
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := make([]string, benchRecords)
	const batch = 1000
	for from := 0; from < benchRecords; from += batch {
		envs := make([]model.Envelope, batch)
		var wg stdsync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Go(func() {
				for i := from + w; i < from+batch; i += workers {
					at := base.Add(time.Duration(i) * time.Millisecond)
					rid := model.NewID(at, nil)
					ids[i] = rid
					envs[i-from] = benchEnvelope(key, id.ID.String(), rid, at, i, tmpl)
				}
			})
		}
		wg.Wait()
		if _, err := st.Put(envs...); err != nil {
			return nil, err
		}
	}
	return ids, os.WriteFile(idsFile, []byte(strings.Join(ids, "\n")), 0o600)
}

// benchEnvelope is one ~1.5 KB audit against template t.
func benchEnvelope(key []byte, author, id string, at time.Time, i int, t model.Template) model.Envelope {
	answers := map[string]model.ItemAnswer{}
	for j, it := range t.Sections[0].Items {
		answers[it.ID] = model.ItemAnswer{Answer: []model.Answer{model.AnswerYes, model.AnswerPartly, model.AnswerNo}[(i+j)%3], Note: "observed during the visit; staff were asked about it"}
	}
	body, _ := json.Marshal(model.Audit{Template: t.Ref(), Subject: model.Subject{Name: "OAT clinic " + strconv.Itoa(i%500)}, Place: "Region " + strconv.Itoa(i%30), Period: "2026", Answers: answers})
	env, err := model.Seal(key, model.Payload{ID: id, Kind: model.KindAudit, Origin: "bench", Author: author, Version: 1, HLC: model.MakeHLC(at.UnixMilli(), 0), Audience: model.Audience{model.AudiencePrivate}, Body: body})
	if err != nil {
		panic(err)
	}
	return env
}
