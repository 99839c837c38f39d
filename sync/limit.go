package sync

import (
	"fmt"
	stdsync "sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// StreamLimits bound what one member node may ask of this node on each
// Cairn protocol (pull, notify, receipt, custody), counted per peer and
// per protocol. libp2p's resource manager already caps one peer's inbound
// streams in all (node/p2p Limits.PeerStreamsInbound); these bound each
// protocol within that, and how fast streams may come, so a flood of
// cheap requests (each pull scans the feed) cannot keep the node busy.
//
// An honest node stays far below the defaults: it pulls from one peer one
// request at a time, sends one notify at a time and at most one per 10 ms
// gathering window, and pushes receipts and custody copies one stream at
// a time.
type StreamLimits struct {
	// Streams is how many streams of one protocol one peer may have open
	// to this node at once.
	Streams int
	// Rate is how many streams of one protocol one peer may open per
	// second, sustained (a token bucket refilled at this rate).
	Rate float64
	// Burst is how many it may open at once above Rate (the bucket's size).
	Burst int
}

// DefaultStreamLimits returns the per-peer limits a node uses: 8 streams
// at once per protocol, 100 new streams a second with bursts of 200.
func DefaultStreamLimits() StreamLimits {
	return StreamLimits{Streams: 8, Rate: 100, Burst: 200}
}

// Validate says, in one sentence, what is wrong with l, or returns nil.
func (l StreamLimits) Validate() error {
	switch {
	case l.Streams < 1:
		return fmt.Errorf("sync: %d streams per member node and protocol is not a limit: give at least 1 (default %d)", l.Streams, DefaultStreamLimits().Streams)
	case !(l.Rate > 0):
		return fmt.Errorf("sync: %v streams a second per member node and protocol is not a rate: give more than 0 (default %v)", l.Rate, DefaultStreamLimits().Rate)
	case l.Burst < 1:
		return fmt.Errorf("sync: a burst of %d streams per member node and protocol is not a limit: give at least 1 (default %d)", l.Burst, DefaultStreamLimits().Burst)
	}
	return nil
}

// StreamAdmitter is what a Members may also implement to limit streams.
// The pull, notify, receipt and custody handlers call AdmitStream first,
// before reading anything: if it says no they reset the stream at once;
// if yes they call release when done with the stream. A Members that does
// not implement it admits every stream (as in tests of single handlers).
type StreamAdmitter interface {
	AdmitStream(s network.Stream) (release func(), ok bool)
}

// admitStream asks m, if it limits streams, whether s may be served.
func admitStream(m Members, s network.Stream) (release func(), ok bool) {
	if a, ok := m.(StreamAdmitter); ok {
		return a.AdmitStream(s)
	}
	return func() {}, true
}

// StreamLimiter enforces StreamLimits for every (peer, protocol). It is
// safe for concurrent use and has no goroutines: idle entries are swept
// on the way, so its memory is bounded by the peers that used it lately.
type StreamLimiter struct {
	limits StreamLimits
	now    func() time.Time

	mu    stdsync.Mutex
	slots map[slotKey]*slot // guarded by mu
	sweep time.Time         // when idle slots were last swept; guarded by mu
}

type slotKey struct {
	p     peer.ID
	proto protocol.ID
}

// slot is one peer's use of one protocol: streams open now, and a token
// bucket of new streams.
type slot struct {
	open   int
	tokens float64
	at     time.Time // when tokens was last refilled
}

// limiterIdle is how long a slot with no open stream is kept; after that
// its bucket is full again anyway, so dropping it changes nothing.
const limiterIdle = time.Minute

// NewStreamLimiter returns a limiter enforcing l. now is its clock (nil:
// time.Now).
func NewStreamLimiter(l StreamLimits, now func() time.Time) (*StreamLimiter, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &StreamLimiter{limits: l, now: now, slots: map[slotKey]*slot{}}, nil
}

// Admit reports whether peer p may have one more stream of proto now. If
// it may, release must be called once when the stream is done (more calls
// do nothing). A refused stream uses no token, so a peer that floods is
// served again as soon as it slows down.
func (l *StreamLimiter) Admit(p peer.ID, proto protocol.ID) (release func(), ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.sweep) > limiterIdle {
		for k, s := range l.slots {
			if s.open == 0 && now.Sub(s.at) > limiterIdle {
				delete(l.slots, k)
			}
		}
		l.sweep = now
	}
	k := slotKey{p, proto}
	s := l.slots[k]
	if s == nil {
		s = &slot{tokens: float64(l.limits.Burst), at: now}
		l.slots[k] = s
	}
	if d := now.Sub(s.at); d > 0 {
		s.tokens = min(float64(l.limits.Burst), s.tokens+d.Seconds()*l.limits.Rate)
		s.at = now
	}
	if s.open >= l.limits.Streams || s.tokens < 1 {
		return nil, false
	}
	s.open++
	s.tokens--
	var once stdsync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			s.open--
			l.mu.Unlock()
		})
	}, true
}
