package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	stdsync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/inpud/cairn/node"
)

// ttyPassphrase is what the person types at the prompts of the tests below.
const ttyPassphrase = "lantern harbour quiet seven"

// TestFirstStartOnATerminalAsksToEncrypt runs the real binary's first
// `cairn start` on a pseudo-terminal, as a person at a keyboard would see
// it (issue 6): it asks whether to encrypt the records at rest, then for a
// new passphrase twice, and the data dir it makes is sealed. Answering no
// makes a node in clear; two different passphrases stop before anything
// is written.
func TestFirstStartOnATerminalAsksToEncrypt(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "cairn")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	t.Run("yes", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		term := startOnTTY(t, bin, dir)
		term.expect(t, "Encrypt this node's records at rest")
		term.send(t, "\n") // Enter takes the default, yes
		term.expect(t, "New passphrase")
		term.send(t, ttyPassphrase+"\n")
		term.expect(t, "The same passphrase again")
		term.send(t, ttyPassphrase+"\n")
		term.expect(t, " ready: API ")
		if strings.Contains(term.output(), ttyPassphrase) {
			t.Fatalf("the terminal echoed the passphrase:\n%s", term.output())
		}
		term.stop(t)
		if !node.Encrypted(dir) {
			t.Fatalf("the person answered yes, but %s is not encrypted", dir)
		}
		for _, f := range []string{"identity.key", "archive.key"} {
			if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the first start of an encrypted node wrote %s in clear (%v)", f, err)
			}
			if _, err := os.Stat(filepath.Join(dir, f+".sealed")); err != nil {
				t.Fatalf("the first start of an encrypted node did not seal %s: %v", f, err)
			}
		}

		// Started again without a terminal or a passphrase, it refuses
		// in one sentence; with the passphrase it starts.
		cmd := exec.Command(bin, "--data-dir", dir, "start", "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--log-level", "error")
		cmd.Env = withoutPassphrase(os.Environ())
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "no passphrase given") {
			t.Fatalf("an encrypted node started without its passphrase: err %v, output %s", err, out)
		}
		again := startOnTTY(t, bin, dir)
		again.expect(t, "Passphrase: ")
		again.send(t, ttyPassphrase+"\n")
		again.expect(t, " ready: API ")
		again.stop(t)
	})

	t.Run("no", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		term := startOnTTY(t, bin, dir)
		term.expect(t, "Encrypt this node's records at rest")
		term.send(t, "n\n")
		term.expect(t, " ready: API ")
		term.stop(t)
		if node.Encrypted(dir) || !node.Initialised(dir) {
			t.Fatalf("the person answered no: want a node in clear in %s (initialised %v, encrypted %v)", dir, node.Initialised(dir), node.Encrypted(dir))
		}
	})

	t.Run("passphrases differ", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		term := startOnTTY(t, bin, dir)
		term.expect(t, "Encrypt this node's records at rest")
		term.send(t, "yes\n")
		term.expect(t, "New passphrase")
		term.send(t, ttyPassphrase+"\n")
		term.expect(t, "The same passphrase again")
		term.send(t, ttyPassphrase+" typo\n")
		term.expect(t, "the two passphrases differ")
		if code := term.wait(t); code == 0 {
			t.Fatalf("start exited 0 after two different passphrases:\n%s", term.output())
		}
		if node.Initialised(dir) || node.Encrypted(dir) {
			t.Fatalf("two different passphrases, yet %s was initialised", dir)
		}
	})
}

// ttyNode is a `cairn start` process on a pseudo-terminal.
type ttyNode struct {
	cmd  *exec.Cmd
	ptmx *os.File
	done chan struct{} // the process has exited
	read chan struct{} // everything it wrote to the terminal has been read

	mu  stdsync.Mutex
	out bytes.Buffer
}

// startOnTTY starts a first node of network "tty" in dir on a new
// pseudo-terminal, without CAIRN_PASSPHRASE in its environment.
func startOnTTY(t *testing.T, bin, dir string) *ttyNode {
	t.Helper()
	cmd := exec.Command(bin, "--data-dir", dir, "start",
		"--api", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", freePort(t)),
		"--network", "tty", "--name", "TTY", "--level", "local", "--log-level", "error")
	cmd.Env = withoutPassphrase(os.Environ())
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatalf("start on a pseudo-terminal: %v", err)
	}
	n := &ttyNode{cmd: cmd, ptmx: ptmx, done: make(chan struct{}), read: make(chan struct{})}
	go func() {
		defer close(n.read)
		buf := make([]byte, 4096)
		for {
			k, err := ptmx.Read(buf)
			n.mu.Lock()
			n.out.Write(buf[:k])
			n.mu.Unlock()
			if err != nil {
				return // io.EOF or EIO once the process has gone
			}
		}
	}()
	go func() { cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGKILL)
			<-n.done
		}
		ptmx.Close()
	})
	return n
}

func (n *ttyNode) output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out.String()
}

// expect waits up to 60 s for s on the terminal.
func (n *ttyNode) expect(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(n.output(), s) {
		select {
		case <-n.done:
			select { // what it wrote last may still be in the terminal
			case <-n.read:
			case <-time.After(5 * time.Second):
			}
			if strings.Contains(n.output(), s) {
				return
			}
			t.Fatalf("the node exited before it showed %q:\n%s", s, n.output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the terminal did not show %q within 60 s:\n%s", s, n.output())
		}
	}
}

func (n *ttyNode) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(n.ptmx, s); err != nil {
		t.Fatalf("type on the terminal: %v", err)
	}
}

// wait waits up to 60 s for the process to exit and returns its code.
func (n *ttyNode) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-n.done:
		return n.cmd.ProcessState.ExitCode()
	case <-time.After(60 * time.Second):
		t.Fatalf("the node did not exit within 60 s:\n%s", n.output())
		return -1
	}
}

// stop asks the node to stop, as Ctrl-C does, and waits for it.
func (n *ttyNode) stop(t *testing.T) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGINT)
	if code := n.wait(t); code != 0 {
		t.Fatalf("the node exited with %d after Ctrl-C:\n%s", code, n.output())
	}
}

func withoutPassphrase(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, "CAIRN_PASSPHRASE=") && !strings.HasPrefix(e, "CAIRN_NEW_PASSPHRASE=") {
			out = append(out, e)
		}
	}
	return out
}
