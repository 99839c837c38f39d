package sync

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	stdsync "sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
)

// faultLog records what a pull server reported.
type faultLog struct {
	mu  stdsync.Mutex
	got []Reason
	by  []peer.ID
}

func (l *faultLog) Fault(p peer.ID, r Reason) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, r)
	l.by = append(l.by, p)
}

func (l *faultLog) wait(n int) ([]Reason, []peer.ID) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		if len(l.got) >= n {
			got, by := slices.Clone(l.got), slices.Clone(l.by)
			l.mu.Unlock()
			return got, by
		}
		l.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got), slices.Clone(l.by)
}

// TestPullServerReportsFaults: every request an honest node would never
// send is reported against the peer that sent it, under its reason; a
// good request is not.
func TestPullServerReportsFaults(t *testing.T) {
	reg := newRegistry()
	log := &faultLog{}
	cfg := fastPullConfig()
	cfg.Faults = log
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, cfg)
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	ehrn.connect(t, inpud)

	frame := func(b string) []byte { return append(binary.AppendUvarint(nil, uint64(len(b))), b...) }
	tests := []struct {
		name       string
		raw        []byte
		closeWrite bool
		want       Reason
	}{
		{"length over the maximum", binary.AppendUvarint(nil, MaxRequestFrame+1), true, ReasonOversizedFrame},
		{"varint overflow", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true, ReasonMalformedFrame},
		{"truncated frame", append(binary.AppendUvarint(nil, 40), `{"after":`...), true, ReasonMalformedFrame},
		{"closed without a request", nil, true, ReasonMalformedFrame},
		{"nothing, then silence", nil, false, ReasonStalled},
		{"not JSON", frame("\x00\x01garbage"), true, ReasonMalformedFrame},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _ = rawExchange(t, ehrn.h, inpud.h.ID(), tc.raw, tc.closeWrite)
			got, by := log.wait(i + 1)
			if len(got) != i+1 || got[i] != tc.want || by[i] != ehrn.h.ID() {
				t.Fatalf("reported %v by %v, want %s by %s last", got, by, tc.want, ehrn.h.ID())
			}
		})
	}
	// A good request is no fault.
	if _, err := ehrn.puller.CatchUp(context.Background(), inpud.h.ID()); err != nil {
		t.Fatal(err)
	}
	waitStats(inpud.srv, func(g PullServerStats) bool { return g.Served == 1 })
	if got, _ := log.wait(len(tests)); len(got) != len(tests) {
		t.Fatalf("faults after a good request: %v", got)
	}
}

// TestPullFaultsOfHostileServers: what a server sends wrong is named
// under its reason, a server that never answers has stalled once the
// Puller's timeout passes, and a server that resets the stream (it went
// away) is no fault.
func TestPullFaultsOfHostileServers(t *testing.T) {
	reg := newRegistry()
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	rogue := newTestNode(t, reg, model.Reader{Network: "rogue", Member: true}, fastPullConfig())
	ehrn.connect(t, rogue)
	serve := func(raw []byte) {
		rogue.h.SetStreamHandler(PullProtocol, func(s network.Stream) {
			defer s.Close()
			_, _ = ReadFrame(bufio.NewReader(s), MaxRequestFrame)
			_, _ = s.Write(raw)
		})
	}
	big := binary.AppendUvarint([]byte{kindBatch}, MaxEnvelopeSize+1)
	framedBig := append(binary.AppendUvarint(nil, uint64(len(big))), big...)
	for _, tc := range []struct {
		name string
		raw  []byte
		want Reason
	}{
		{"oversized frame", binary.AppendUvarint(nil, MaxBatchFrame+1), ReasonOversizedFrame},
		{"oversized envelope in a batch", framedBig, ReasonOversizedFrame},
		{"garbage", []byte("\x05hello, this is not a pull answer"), ReasonMalformedFrame},
		{"varint overflow", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ReasonMalformedFrame},
		{"nothing", nil, ReasonMalformedFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serve(tc.raw)
			_, err := ehrn.puller.CatchUp(context.Background(), rogue.h.ID())
			if r, ok := FaultOf(err); !ok || r != tc.want {
				t.Fatalf("FaultOf(%v) = %q, %v; want %s", err, r, ok, tc.want)
			}
		})
	}

	// A server that reads the request and never answers.
	done := make(chan struct{})
	defer close(done)
	rogue.h.SetStreamHandler(PullProtocol, func(s network.Stream) {
		_, _ = ReadFrame(bufio.NewReader(s), MaxRequestFrame)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
		}
		_ = s.Reset()
	})
	silent := &Puller{Host: ehrn.h, Sink: ehrn.puller.Sink, Checkpoints: ehrn.puller.Checkpoints, Timeout: 300 * time.Millisecond}
	_, err := silent.CatchUp(context.Background(), rogue.h.ID())
	if r, ok := FaultOf(err); !errors.Is(err, ErrStalled) || r != ReasonStalled || !ok {
		t.Fatalf("a silent server: %v (%q), want ErrStalled", err, r)
	}

	// A server that resets the stream went away; that is not a fault.
	rogue.h.SetStreamHandler(PullProtocol, func(s network.Stream) { _ = s.Reset() })
	_, err = ehrn.puller.CatchUp(context.Background(), rogue.h.ID())
	if err == nil {
		t.Fatal("a reset stream gave no error")
	}
	if r, ok := FaultOf(err); ok {
		t.Fatalf("a reset stream counted as %s: %v", r, err)
	}
	// Nor is this node's own shutdown.
	ctx, cancel := context.WithCancel(context.Background())
	rogue.h.SetStreamHandler(PullProtocol, func(s network.Stream) {
		_, _ = ReadFrame(bufio.NewReader(s), MaxRequestFrame)
		cancel()
		<-done
	})
	_, err = ehrn.puller.CatchUp(ctx, rogue.h.ID())
	if r, ok := FaultOf(err); err == nil || ok {
		t.Fatalf("a cancelled pull: %v, counted as %q", err, r)
	}
}

// gateFunc is a Gate from a function.
type gateFunc func(peer.ID) error

func (g gateFunc) MayPull(p peer.ID) error { return g(p) }

// TestPullerGate: a Gate that says no stops CatchUp before any request.
func TestPullerGate(t *testing.T) {
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	ehrn.connect(t, inpud)
	inpud.write(t, "members")
	no := errors.New("dropped for a while")
	pl := &Puller{Host: ehrn.h, Sink: ehrn.puller.Sink, Checkpoints: ehrn.puller.Checkpoints,
		Gate: gateFunc(func(peer.ID) error { return no })}
	st, err := pl.CatchUp(context.Background(), inpud.h.ID())
	if !errors.Is(err, no) || st.Requests != 0 {
		t.Fatalf("gated catch-up: %+v, %v", st, err)
	}
	if got := ehrn.ids(t, "inpud"); len(got) != 0 {
		t.Fatalf("a gated catch-up stored %v", got)
	}
}
