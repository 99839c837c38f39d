package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	stdsync "sync"
	"syscall"
	"time"
)

// Node is one `cairn start` child process with its local API.
type Node struct {
	Dir     string // data dir
	APIPort int
	*Client // its local API

	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	stderr *tail
}

// Client calls one node's local API with the node's token, as the CLI
// does.
type Client struct {
	API   string // base URL of the local API, http://127.0.0.1:PORT
	token string
	http  *http.Client
}

// NewClient reads the API token of the node in dir and calls its API at
// api (http://127.0.0.1:PORT), each request bounded by timeout.
func NewClient(dir, api string, timeout time.Duration) (*Client, error) {
	token, err := os.ReadFile(filepath.Join(dir, "api.token"))
	if err != nil {
		return nil, fmt.Errorf("read the node's API token: %w", err)
	}
	return &Client{API: api, token: strings.TrimSpace(string(token)), http: &http.Client{Timeout: timeout}}, nil
}

var readyLine = regexp.MustCompile(`ready: API http://(127\.0\.0\.1:(\d+))`)

// Start runs `bin --data-dir dir start args...` and returns once the node
// printed its ready line, or fails after a minute. The caller stops it
// with Stop.
func Start(bin, dir string, args ...string) (*Node, error) {
	cmd := exec.Command(bin, append([]string{"--data-dir", dir, "start"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	n := &Node{Dir: dir, cmd: cmd, done: make(chan struct{}), stderr: &tail{max: 8 << 10}}
	cmd.Stderr = n.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	ready := make(chan []string, 1)
	// The reader ends when the process closes its stdout, that is when it
	// exits; Stop waits for that.
	var readers stdsync.WaitGroup
	readers.Go(func() {
		sc := bufio.NewScanner(stdout)
		var m []string
		for m == nil && sc.Scan() {
			m = readyLine.FindStringSubmatch(sc.Text())
		}
		ready <- m
		io.Copy(io.Discard, stdout)
	})
	go func() {
		readers.Wait()
		cmd.Wait()
		close(n.done)
	}()
	select {
	case m := <-ready:
		if m == nil {
			n.Stop()
			return nil, fmt.Errorf("cairn start on %s exited before it was ready: %s", dir, n.stderr)
		}
		n.APIPort, _ = strconv.Atoi(m[2])
		if n.Client, err = NewClient(dir, "http://"+m[1], 10*time.Minute); err != nil {
			n.Stop()
			return nil, err
		}
	case <-time.After(time.Minute):
		n.Stop()
		return nil, fmt.Errorf("cairn start on %s was not ready within a minute: %s", dir, n.stderr)
	}
	return n, nil
}

// Pid is the node's process id.
func (n *Node) Pid() int { return n.cmd.Process.Pid }

// Call sends one request to the node's local API with its token; in, if
// not nil, is sent as JSON, and a 2xx answer is decoded into out, if not
// nil.
func (c *Client) Call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.API+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return &APIError{Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the JSON expected: %w", method, path, err)
	}
	return nil
}

// APIError is a non-2xx answer of the local API.
type APIError struct {
	Status int
	Body   string
}

func (e *APIError) Error() string { return fmt.Sprintf("the node answered %d: %s", e.Status, e.Body) }

// NotFound reports whether err is the API's 404.
func NotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// PeakRSSMB is the process's peak resident set size (VmHWM) in MiB.
func (n *Node) PeakRSSMB() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.Pid()))
	if err != nil {
		return 0, fmt.Errorf("read the node's peak RSS: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.Atoi(f[1])
			return float64(kb) / 1024, err
		}
	}
	return 0, errors.New("the node's /proc status has no VmHWM line")
}

// Stop interrupts the node (an orderly shutdown) and waits for it to
// exit, killing it after 30 s. It may be called more than once.
func (n *Node) Stop() {
	select {
	case <-n.done:
		return
	default:
	}
	n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.done
	}
}

// Stderr is the last 8 KiB the node wrote to stderr.
func (n *Node) Stderr() string { return n.stderr.String() }

// tail keeps the last max bytes written to it.
type tail struct {
	mu  stdsync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
