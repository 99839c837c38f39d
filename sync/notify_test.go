package sync

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
)

// TestNotify: a member's notify reaches the callback with its head; a
// stranger's, a former member's and a malformed one are refused and
// counted, and reach nobody.
func TestNotify(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, fastPullConfig())
	member := newTestNode(t, reg, model.Reader{Network: "tanpud", Member: true}, fastPullConfig())
	stranger := newTestNode(t, reg, model.Reader{Network: "stranger", Member: true}, fastPullConfig())
	former := newTestNode(t, reg, model.Reader{Network: "former", Member: true}, fastPullConfig())
	reg.mu.Lock()
	delete(reg.readers, stranger.h.ID())
	reg.readers[former.h.ID()] = model.Reader{Network: "former", Member: false}
	reg.mu.Unlock()

	type heard struct {
		from peer.ID
		head uint64
	}
	got := make(chan heard, 10)
	srv, err := NewNotifyServer(reg, func(from peer.ID, head uint64) { got <- heard{from, head} }, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	inpud.h.SetStreamHandler(NotifyProtocol, srv.Handle)

	member.connect(t, inpud)
	if err := Notify(ctx, member.h, inpud.h.ID(), 1234567); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-got:
		if h.from != member.h.ID() || h.head != 1234567 {
			t.Fatalf("heard %+v, want head 1234567 from the member", h)
		}
	case <-ctx.Done():
		t.Fatal("the member's notify never arrived")
	}

	for _, n := range []*testNode{stranger, former} {
		n.connect(t, inpud)
		_ = Notify(ctx, n.h, inpud.h.ID(), 99)
	}
	// Garbage: a frame longer than a uvarint, and a stream that starts a
	// frame and never finishes it.
	s, err := member.h.NewStream(ctx, inpud.h.ID(), NotifyProtocol)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.Write([]byte{0x20, 0xff, 0xff})
	_ = s.Close()
	idle, err := member.h.NewStream(ctx, inpud.h.ID(), NotifyProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Reset()
	if _, err := idle.Write([]byte{0x80}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().Refused < 2 || srv.Stats().Malformed < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want 2 refused and 2 malformed", srv.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case h := <-got:
		t.Fatalf("a refused or malformed notify reached the callback: %+v", h)
	default:
	}
	if st := srv.Stats(); st.Received != 1 {
		t.Fatalf("stats %+v, want 1 received", st)
	}
}
