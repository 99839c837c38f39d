package p2p

import (
	"context"
	"crypto/rand"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	tcpAddr  = "/ip4/127.0.0.1/tcp/0"
	quicAddr = "/ip4/127.0.0.1/udp/0/quic-v1"

	echoID   protocol.ID = "/cairn-test/echo/1"
	memberID protocol.ID = "/cairn-test/member/1"
	joinID   protocol.ID = "/cairn-test/join/1"
	holdID   protocol.ID = "/cairn-test/hold/1"
)

// members is a goroutine-safe set of peer IDs whose allow method feeds a
// Gater.
type members struct {
	mu sync.Mutex
	m  map[peer.ID]bool
}

func newMembers(ps ...peer.ID) *members {
	s := &members{m: make(map[peer.ID]bool)}
	for _, p := range ps {
		s.m[p] = true
	}
	return s
}

func (s *members) add(p peer.ID) {
	s.mu.Lock()
	s.m[p] = true
	s.mu.Unlock()
}

func (s *members) remove(p peer.ID) {
	s.mu.Lock()
	delete(s.m, p)
	s.mu.Unlock()
}

func (s *members) allow(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[p]
}

func allowAll(peer.ID) bool { return true }

// testHost is a real host on 127.0.0.1, closed when the test ends.
type testHost struct {
	host.Host
	gater *Gater
}

func newTestHost(t *testing.T, listen []string, allow func(peer.ID) bool) testHost {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Listen = listen
	g := NewGater(allow)
	h, err := New(key, cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return testHost{Host: h, gater: g}
}

func info(h host.Host) peer.AddrInfo {
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func echo(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := s.Read(buf)
	if err != nil {
		_ = s.Reset()
		return
	}
	_, _ = s.Write(buf[:n])
}

// roundTrip opens a stream to p on id, sends a message and waits for the
// echo.
func roundTrip(ctx context.Context, h host.Host, p peer.ID, id protocol.ID) error {
	s, err := h.NewStream(ctx, p, id)
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Write([]byte("hello")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(s, buf); err != nil {
		return err
	}
	if string(buf) != "hello" {
		return io.ErrUnexpectedEOF
	}
	return nil
}

var transports = []struct {
	name, listen, proto string
}{
	{"tcp", tcpAddr, "tcp"},
	{"quic", quicAddr, "quic-v1"},
}

func TestMembersConnectAndOpenStreams(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ms := newMembers()
			a := newTestHost(t, []string{tr.listen}, ms.allow)
			b := newTestHost(t, []string{tr.listen}, ms.allow)
			ms.add(a.ID())
			ms.add(b.ID())
			b.SetStreamHandler(echoID, b.gater.GuardStream(false, echo))

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.Connect(ctx, info(b)); err != nil {
				t.Fatalf("connect: %v", err)
			}
			if err := roundTrip(ctx, a, b.ID(), echoID); err != nil {
				t.Fatalf("stream: %v", err)
			}
			conns := a.Network().ConnsToPeer(b.ID())
			if len(conns) == 0 {
				t.Fatal("no connection from a to b")
			}
			addr := conns[0].RemoteMultiaddr().String()
			if !strings.Contains(addr, "/"+tr.proto) {
				t.Fatalf("connection runs over %s, want %s", addr, tr.proto)
			}
			if sec := conns[0].ConnState().Security; tr.proto == "tcp" && sec != "/noise" {
				t.Fatalf("security %q, want /noise", sec)
			}
		})
	}
}

func TestStrangerIsRefusedAtInterceptSecured(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			r := newTestHost(t, []string{tr.listen}, newMembers().allow)
			s := newTestHost(t, []string{tr.listen}, allowAll)

			var sawStranger, served atomic.Int32
			r.Network().Notify(&network.NotifyBundle{
				ConnectedF: func(_ network.Network, c network.Conn) {
					if c.RemotePeer() == s.ID() {
						sawStranger.Add(1)
					}
				},
			})
			r.SetStreamHandler(echoID, func(st network.Stream) {
				served.Add(1)
				echo(st)
			})

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// Connect may report success: the dialer can finish its side of
			// the handshake before the receiver refuses. Judge by the receiver.
			_ = s.Connect(ctx, info(r))
			eventually(t, 5*time.Second, "receiver counted no refusal at InterceptSecured", func() bool {
				return r.gater.Refused().Secured >= 1
			})
			if err := roundTrip(network.WithForceDirectDial(ctx, "test"), s.Host, r.ID(), echoID); err == nil {
				t.Fatal("stranger's stream succeeded")
			}
			if n := sawStranger.Load(); n != 0 {
				t.Fatalf("receiver saw %d connections from the stranger", n)
			}
			if n := len(r.Network().ConnsToPeer(s.ID())); n != 0 {
				t.Fatalf("receiver holds %d connections to the stranger", n)
			}
			if n := served.Load(); n != 0 {
				t.Fatalf("receiver served %d streams to the stranger", n)
			}

			// And the receiver does not dial non-members either.
			if err := r.Connect(ctx, info(s)); err == nil {
				t.Fatal("receiver dialled a non-member")
			}
			if r.gater.Refused().PeerDial == 0 {
				t.Fatal("refused dial not counted")
			}
		})
	}
}

func TestEnforceClosesRevokedPeer(t *testing.T) {
	ms := newMembers()
	a := newTestHost(t, []string{tcpAddr}, allowAll)
	b := newTestHost(t, []string{tcpAddr}, ms.allow)
	ms.add(a.ID())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, info(b)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b never saw a's connection", func() bool {
		return b.Network().Connectedness(a.ID()) == network.Connected
	})

	ms.remove(a.ID())
	start := time.Now()
	if n := b.gater.Enforce(b.Host); n != 1 {
		t.Fatalf("Enforce closed %d peers, want 1", n)
	}
	eventually(t, time.Second, "revoked peer still connected", func() bool {
		return a.Network().Connectedness(b.ID()) != network.Connected &&
			b.Network().Connectedness(a.ID()) != network.Connected
	})
	t.Logf("revoked peer disconnected on both sides in %v", time.Since(start))
	if got := b.gater.Refused().Enforced; got != 1 {
		t.Fatalf("Enforced count %d, want 1", got)
	}

	// It cannot come back.
	before := b.gater.Refused().Secured
	_ = a.Connect(network.WithForceDirectDial(ctx, "test"), info(b))
	eventually(t, 5*time.Second, "reconnection not refused", func() bool {
		return b.gater.Refused().Secured > before
	})
	if b.Network().Connectedness(a.ID()) == network.Connected {
		t.Fatal("revoked peer reconnected")
	}
}

func TestGuestAdmissionIsBounded(t *testing.T) {
	r := newTestHost(t, []string{tcpAddr}, newMembers().allow)
	r.gater.AdmitGuests(2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	connected := func(p peer.ID) func() bool {
		return func() bool { return r.Network().Connectedness(p) == network.Connected }
	}
	var guests []testHost
	for range 2 {
		g := newTestHost(t, []string{tcpAddr}, allowAll)
		if err := g.Connect(ctx, info(r)); err != nil {
			t.Fatalf("guest connect: %v", err)
		}
		eventually(t, 5*time.Second, "guest not admitted", connected(g.ID()))
		if !r.gater.IsGuest(g.ID()) {
			t.Fatal("admitted peer is not reported as a guest")
		}
		guests = append(guests, g)
	}

	third := newTestHost(t, []string{tcpAddr}, allowAll)
	_ = third.Connect(ctx, info(r))
	eventually(t, 5*time.Second, "third guest not refused", func() bool {
		return r.gater.Refused().GuestsFull >= 1
	})
	if connected(third.ID())() || r.gater.IsGuest(third.ID()) {
		t.Fatal("a third guest got in")
	}
	if n := r.gater.Enforce(r.Host); n != 0 {
		t.Fatalf("Enforce closed %d guests within the bound", n)
	}

	// A guest leaving frees its slot.
	if err := guests[0].Network().ClosePeer(r.ID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "departed guest still holds a slot", func() bool {
		return !r.gater.IsGuest(guests[0].ID())
	})
	fourth := newTestHost(t, []string{tcpAddr}, allowAll)
	if err := fourth.Connect(ctx, info(r)); err != nil {
		t.Fatalf("guest connect after a slot freed: %v", err)
	}
	eventually(t, 5*time.Second, "guest not admitted to the freed slot", connected(fourth.ID()))

	// Closing admission and enforcing removes the guests.
	r.gater.AdmitGuests(0)
	if n := r.gater.Enforce(r.Host); n != 2 {
		t.Fatalf("Enforce closed %d guests, want 2", n)
	}
	eventually(t, time.Second, "guests still connected", func() bool {
		return !connected(guests[1].ID())() && !connected(fourth.ID())()
	})
}

func TestGuardStream(t *testing.T) {
	ms := newMembers()
	r := newTestHost(t, []string{tcpAddr}, ms.allow)
	m := newTestHost(t, []string{tcpAddr}, allowAll)
	g := newTestHost(t, []string{tcpAddr}, allowAll)
	ms.add(m.ID())
	r.gater.AdmitGuests(1)
	r.SetStreamHandler(memberID, r.gater.GuardStream(false, echo))
	r.SetStreamHandler(joinID, r.gater.GuardStream(true, echo))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, h := range []testHost{m, g} {
		h.Peerstore().AddAddrs(r.ID(), r.Addrs(), peerstore.PermanentAddrTTL)
	}
	for _, id := range []protocol.ID{memberID, joinID} {
		if err := roundTrip(ctx, m, r.ID(), id); err != nil {
			t.Fatalf("member on %s: %v", id, err)
		}
	}
	if err := roundTrip(ctx, g, r.ID(), joinID); err != nil {
		t.Fatalf("guest on the join protocol: %v", err)
	}
	if !r.gater.IsGuest(g.ID()) {
		t.Fatal("guest not reported as one")
	}
	if err := roundTrip(ctx, g, r.ID(), memberID); err == nil {
		t.Fatal("guest was served on a members-only protocol")
	}
	if got := r.gater.Refused().Streams; got != 1 {
		t.Fatalf("refused streams %d, want 1", got)
	}

	// A guest that becomes a member is served everywhere and is no guest.
	ms.add(g.ID())
	if err := roundTrip(ctx, g, r.ID(), memberID); err != nil {
		t.Fatalf("new member on a members-only protocol: %v", err)
	}
	if r.gater.IsGuest(g.ID()) {
		t.Fatal("member still reported as a guest")
	}
}

func TestPeerInboundStreamLimit(t *testing.T) {
	ms := newMembers()
	a := newTestHost(t, []string{tcpAddr}, ms.allow)
	b := newTestHost(t, []string{tcpAddr}, ms.allow)
	ms.add(a.ID())
	ms.add(b.ID())
	limit := DefaultLimits().PeerStreamsInbound

	var cur, peak atomic.Int32
	release := make(chan struct{})
	b.SetStreamHandler(holdID, func(s network.Stream) {
		n := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		_, _ = s.Write([]byte{1})
		<-release
		_ = s.Close()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, info(b)); err != nil {
		t.Fatal(err)
	}

	const tries = 100
	var (
		wg     sync.WaitGroup
		served atomic.Int32
		mu     sync.Mutex
		open   []network.Stream
	)
	for range tries {
		wg.Go(func() {
			s, err := a.NewStream(ctx, b.ID(), holdID)
			if err != nil {
				return
			}
			_ = s.SetDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 1)
			if _, err := s.Write([]byte{1}); err != nil {
				_ = s.Reset()
				return
			}
			if _, err := io.ReadFull(s, buf); err != nil {
				_ = s.Reset()
				return
			}
			served.Add(1)
			mu.Lock()
			open = append(open, s)
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("%d of %d concurrent streams served (limit %d inbound streams per peer, identify included)", served.Load(), tries, limit)
	if got := int(peak.Load()); got > limit || got == 0 {
		t.Fatalf("%d streams served at once, want 1..%d", got, limit)
	}
	if got := int(served.Load()); got > limit || got == 0 {
		t.Fatalf("%d streams acknowledged, want 1..%d", got, limit)
	}

	// Once they are released the peer is served again.
	close(release)
	for _, s := range open {
		_ = s.Close()
	}
	eventually(t, 5*time.Second, "held streams not released", func() bool { return cur.Load() == 0 })
	b.SetStreamHandler(echoID, echo)
	eventually(t, 5*time.Second, "peer not served after its streams closed", func() bool {
		return roundTrip(ctx, a, b.ID(), echoID) == nil
	})
}

func TestLimitsReachTheResourceManager(t *testing.T) {
	l := DefaultLimits()
	c := l.concrete()
	pl := c.ToPartialLimitConfig().PeerDefault
	if int(pl.Conns) != 4 || int(pl.StreamsInbound) != 16 || int64(pl.Memory) != 64<<20 {
		t.Fatalf("peer limits %+v, want 4 connections, 16 inbound streams, 64 MiB", pl)
	}
	sys := c.ToPartialLimitConfig().System
	if int(sys.Conns) != l.SystemConns || int64(sys.Memory) != l.SystemMemory || int(sys.StreamsInbound) != l.SystemStreamsInbound {
		t.Fatalf("system limits %+v, not those of %+v", sys, l)
	}
}

func TestConfigValidate(t *testing.T) {
	zeroPeerConns := DefaultConfig()
	zeroPeerConns.Limits.PeerConns = 0
	inboundAboveTotal := DefaultConfig()
	inboundAboveTotal.Limits.SystemConnsInbound = inboundAboveTotal.Limits.SystemConns + 1
	peerAboveSystem := DefaultConfig()
	peerAboveSystem.Limits.PeerMemory = peerAboveSystem.Limits.SystemMemory * 2
	noListen := DefaultConfig()
	noListen.Listen = nil
	badListen := DefaultConfig()
	badListen.Listen = []string{"127.0.0.1:4001"}

	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"default", DefaultConfig(), ""},
		{"no listen address", noListen, "no listen address"},
		{"listen address not a multiaddr", badListen, "not a multiaddr"},
		{"zero peer connections", zeroPeerConns, "PeerConns is 0"},
		{"inbound above total", inboundAboveTotal, "SystemConnsInbound"},
		{"peer above system", peerAboveSystem, "PeerMemory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	for _, s := range DefaultConfig().Listen {
		if _, err := ma.NewMultiaddr(s); err != nil {
			t.Fatal(err)
		}
	}
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	if _, err := New(key, DefaultConfig(), nil); err == nil {
		t.Fatal("New accepted a nil gater")
	}
}
