package sync

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestStreamLimiter: one peer may hold Streams streams of a protocol at
// once and open Burst at once, then Rate a second; other peers and other
// protocols have limits of their own; a refused stream uses no token.
func TestStreamLimiter(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	l, err := NewStreamLimiter(StreamLimits{Streams: 2, Rate: 10, Burst: 3}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	a, b := peer.ID("peer-a"), peer.ID("peer-b")
	r1, ok1 := l.Admit(a, PullProtocol)
	_, ok2 := l.Admit(a, PullProtocol)
	if !ok1 || !ok2 {
		t.Fatal("the first two streams are within the limits")
	}
	if _, ok := l.Admit(a, PullProtocol); ok {
		t.Fatal("a third stream open at once was admitted (limit 2)")
	}
	if _, ok := l.Admit(b, PullProtocol); !ok {
		t.Fatal("another peer was refused because of peer a")
	}
	if _, ok := l.Admit(a, NotifyProtocol); !ok {
		t.Fatal("another protocol was refused because of pull")
	}
	r1()
	r1() // a second release does nothing
	r3, ok := l.Admit(a, PullProtocol)
	if !ok {
		t.Fatal("a stream after one was released was refused")
	}
	r3()
	// Three tokens used (burst 3): the bucket is empty until time passes.
	if _, ok := l.Admit(a, PullProtocol); ok {
		t.Fatal("a fourth stream in the same instant was admitted (burst 3)")
	}
	now = now.Add(100 * time.Millisecond) // one token at 10 a second
	r4, ok := l.Admit(a, PullProtocol)
	if !ok {
		t.Fatal("a stream 100 ms later was refused (rate 10 a second)")
	}
	r4()
	if _, ok := l.Admit(a, PullProtocol); ok {
		t.Fatal("a second stream in the same 100 ms was admitted")
	}
	now = now.Add(time.Hour) // the bucket refills to the burst, no more
	for i := range 3 {
		rel, ok := l.Admit(a, PullProtocol)
		if !ok {
			t.Fatalf("pull stream %d of the burst refused", i)
		}
		rel()
	}
	if _, ok := l.Admit(a, PullProtocol); ok {
		t.Fatal("more than the burst admitted after an idle hour")
	}
}

func TestStreamLimitsValidate(t *testing.T) {
	if err := DefaultStreamLimits().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, l := range []StreamLimits{{Streams: 0, Rate: 1, Burst: 1}, {Streams: 1, Rate: 0, Burst: 1}, {Streams: 1, Rate: 1, Burst: 0}} {
		if _, err := NewStreamLimiter(l, nil); err == nil {
			t.Fatalf("%+v accepted", l)
		}
	}
}
