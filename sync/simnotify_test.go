package sync_test

import (
	"context"
	"errors"
	"fmt"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	cairnsync "github.com/inpud/cairn/sync"
)

// The notify-driven path of the simulation, as node/notify.go wires it:
// whenever a node's feed grows (its own write or a record it received) it
// notifies the member nodes it is connected to of its head; a node told of
// a head beyond its checkpoint for the teller pulls from it at once, and
// once more if told again while that pull ran. No rounds: records relay
// because every store makes the relay's feed grow.

// simNotify is the federation's notify machinery: it owns every goroutine
// of the path, and stopNotify ends them all.
type simNotify struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     stdsync.WaitGroup

	bytes  atomic.Int64 // bytes on notify streams
	busy   atomic.Int64 // notify batches being sent, notifies being read, pulls running
	pulls  atomic.Int64 // CatchUps run
	mu     stdsync.Mutex
	errs   []error // pull and notify failures while running
	closed bool    // no goroutine starts once set
}

// simNodeNotify is one node's share: its notify server and which peers it
// is pulling from.
type simNodeNotify struct {
	srv     *cairnsync.NotifyServer
	mu      stdsync.Mutex
	pulling map[peer.ID]bool // a pull after a notify runs
	again   map[peer.ID]bool // and must run once more
}

func (f *simFederation) fail(err error) {
	nf := &f.notify
	nf.mu.Lock()
	defer nf.mu.Unlock()
	if !nf.closed {
		nf.errs = append(nf.errs, err)
	}
}

// initNotify prepares the notify path before any node exists; the
// federation's cleanup stops it before the mocknet closes.
func (f *simFederation) initNotify(tb testing.TB) {
	nf := &f.notify
	nf.ctx, nf.cancel = context.WithCancel(context.Background())
	tb.Cleanup(f.stopNotify)
}

// addNotify gives n its notify server, registered before n connects to
// anyone (a handler set later makes every node push a new identify).
func (f *simFederation) addNotify(tb testing.TB, n *simNode) {
	tb.Helper()
	nf := &f.notify
	n.notify = &simNodeNotify{pulling: map[peer.ID]bool{}, again: map[peer.ID]bool{}}
	srv, err := cairnsync.NewNotifyServer(f.reg, func(from peer.ID, head uint64) { f.onNotify(n, from, head) }, 0)
	if err != nil {
		tb.Fatal(err)
	}
	n.notify.srv = srv
	n.h.SetStreamHandler(cairnsync.NotifyProtocol, func(s network.Stream) {
		nf.busy.Add(1)
		defer nf.busy.Add(-1)
		srv.Handle(countingStream{Stream: s, n: &nf.bytes})
	})
}

// startNotify starts every node's notify loop.
func (f *simFederation) startNotify() {
	for _, n := range f.nodes {
		f.notify.wg.Go(func() { f.notifyLoop(n) })
	}
}

// stopNotify ends every goroutine of the notify path and waits for them.
// It may be called more than once.
func (f *simFederation) stopNotify() {
	nf := &f.notify
	if nf.cancel == nil {
		return
	}
	nf.mu.Lock()
	nf.closed = true
	nf.mu.Unlock()
	for _, n := range f.nodes {
		n.h.RemoveStreamHandler(cairnsync.NotifyProtocol)
	}
	nf.cancel()
	nf.wg.Wait()
}

// notifyLoop sends n's head to the member nodes it is connected to after
// every change of its feed, until the federation stops notifying.
func (f *simFederation) notifyLoop(n *simNode) {
	nf := &f.notify
	for {
		select {
		case <-nf.ctx.Done():
			return
		case <-n.store.changed:
		}
		nf.busy.Add(1)
		head := n.store.head()
		var wg stdsync.WaitGroup
		for _, p := range n.h.Network().Peers() {
			if rd, ok := f.reg.Reader(p); !ok || !rd.Member {
				continue
			}
			wg.Go(func() {
				if err := cairnsync.Notify(nf.ctx, n.h, p, head); err != nil && nf.ctx.Err() == nil {
					f.fail(fmt.Errorf("node %d notifying %s: %w", n.idx, p, err))
				}
			})
		}
		wg.Wait()
		nf.busy.Add(-1)
	}
}

// onNotify is n's notify callback: pull from the teller if it is ahead.
func (f *simFederation) onNotify(n *simNode, from peer.ID, head uint64) {
	if cp, err := n.puller.Checkpoints.Checkpoint(from); err == nil && head <= cp {
		return
	}
	nn, nf := n.notify, &f.notify
	nn.mu.Lock()
	defer nn.mu.Unlock()
	if nn.pulling[from] {
		nn.again[from] = true
		return
	}
	// Checked and started under nf.mu, so no goroutine starts once
	// stopNotify has begun to wait.
	nf.mu.Lock()
	defer nf.mu.Unlock()
	if nf.closed {
		return
	}
	nn.pulling[from] = true
	nf.busy.Add(1)
	nf.wg.Go(func() {
		defer nf.busy.Add(-1)
		f.pullUntilQuiet(n, from)
	})
}

// pullUntilQuiet catches n up with p, again while notifies arrived meanwhile.
func (f *simFederation) pullUntilQuiet(n *simNode, p peer.ID) {
	nn, nf := n.notify, &f.notify
	for {
		ctx, cancel := context.WithTimeout(nf.ctx, time.Minute)
		_, err := n.puller.CatchUp(ctx, p)
		cancel()
		nf.pulls.Add(1)
		if err != nil && nf.ctx.Err() == nil {
			f.fail(fmt.Errorf("node %d pulling from %s after a notify: %w", n.idx, p, err))
		}
		nn.mu.Lock()
		if !nn.again[p] || nf.ctx.Err() != nil {
			delete(nn.pulling, p)
			delete(nn.again, p)
			nn.mu.Unlock()
			return
		}
		delete(nn.again, p)
		nn.mu.Unlock()
	}
}

// settled reports whether the notify path has nothing left to do: nothing
// being sent, read or pulled, no change signal pending, and every node's
// checkpoint for each of its links at that link's head.
func (f *simFederation) settled() bool {
	if f.notify.busy.Load() != 0 {
		return false
	}
	for _, n := range f.nodes {
		if len(n.store.changed) != 0 {
			return false
		}
		for _, l := range n.links {
			if cp, _ := n.puller.Checkpoints.Checkpoint(l.h.ID()); cp != l.store.head() {
				return false
			}
		}
	}
	return f.notify.busy.Load() == 0
}

// waitSettled polls until the notify path has settled on two polls in a
// row, or the deadline passes.
func (f *simFederation) waitSettled(deadline time.Time) error {
	quiet := 0
	for quiet < 2 {
		if time.Now().After(deadline) {
			return errors.New("the notify path was still busy at the deadline")
		}
		if f.settled() {
			quiet++
		} else {
			quiet = 0
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// notifyErrors returns the failures seen while notifying.
func (f *simFederation) notifyErrors() error {
	f.notify.mu.Lock()
	defer f.notify.mu.Unlock()
	return errors.Join(f.notify.errs...)
}
