package raftnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	gostream "github.com/libp2p/go-libp2p-gostream"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ProtocolID is the libp2p protocol Raft RPCs travel on.
const ProtocolID protocol.ID = "/cairn/raft/1"

// ErrRefused is returned by a read on a Raft stream from a peer that the
// allow function no longer accepts; the stream has been reset.
var ErrRefused = errors.New("raftnet: peer may not send raft messages to this node")

// Config tunes the transport. Start from DefaultConfig.
type Config struct {
	// MaxPool is how many idle streams to keep per peer for reuse. At 0
	// every heartbeat would open a new stream (DESIGN §10), so at least 1.
	MaxPool int

	// Timeout bounds opening a stream and each RPC's I/O (snapshots get
	// longer, in proportion to their size).
	Timeout time.Duration

	// Logger receives the transport's logs, all at debug level. Nil means
	// slog.Default().
	Logger *slog.Logger

	// OnRefused, when set, is called with the peer each time a Raft stream
	// from a peer that allow does not accept is reset: count it, log it.
	// It runs on the transport's accept or read path and must not block.
	OnRefused func(peer.ID)
}

// DefaultConfig pools 3 streams per peer and allows 10 s per RPC.
func DefaultConfig() Config {
	return Config{MaxPool: 3, Timeout: 10 * time.Second}
}

// Validate says, in one sentence, what is wrong with c, or returns nil.
func (c Config) Validate() error {
	if c.MaxPool < 1 {
		return fmt.Errorf("raftnet: MaxPool is %d; keep at least 1 idle stream per peer, or every heartbeat opens a new one", c.MaxPool)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("raftnet: Timeout is %v; it must be more than 0", c.Timeout)
	}
	return nil
}

// New returns a Raft transport over libp2p streams on h. Inbound streams
// are served only while allow accepts the authenticated peer that opened
// them: allow is asked when a stream is accepted and again after every
// read from it, so a peer that stops being allowed loses its open streams
// at its next message, which is discarded. allow is called concurrently on those paths; it must be
// fast, must not block, and must be safe for concurrent use.
//
// The transport's Raft addresses are peer ID strings (ServerAddress); pass
// the transport to raft.NewRaft, which closes it on Shutdown. Close resets
// every stream the transport opened or accepted; it does not close h.
func New(h host.Host, allow func(peer.ID) bool, cfg Config) (*raft.NetworkTransport, error) {
	if h == nil {
		return nil, errors.New("raftnet: no libp2p host given")
	}
	if allow == nil {
		return nil, errors.New("raftnet: no allow function given; pass one that accepts the current voters")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	ln, err := gostream.Listen(h, ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("raftnet: listen for raft streams on %s: %w", ProtocolID, err)
	}
	sl := &streamLayer{
		h:         h,
		ln:        ln,
		allow:     allow,
		onRefused: cfg.OnRefused,
		conns:     make(map[*trackedConn]struct{}),
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		ServerAddressProvider: AddressProvider{},
		Logger:                HCLog(logger.With("component", "raftnet"), slog.LevelDebug),
		Stream:                sl,
		MaxPool:               cfg.MaxPool,
		Timeout:               cfg.Timeout,
	}), nil
}

// ServerID is p as a Raft server ID.
func ServerID(p peer.ID) raft.ServerID { return raft.ServerID(p.String()) }

// ServerAddress is p as a Raft server address: the same string as its ID.
// Where to reach p is the host's peerstore's business.
func ServerAddress(p peer.ID) raft.ServerAddress { return raft.ServerAddress(p.String()) }

// AddressProvider maps a Raft server ID to its address, which is the same
// peer ID string, so an address in the Raft configuration never goes stale
// when a node changes its IP address. Raft asks on every RPC, so it does
// not decode the ID: Dial does, and says so when it is not a peer ID.
type AddressProvider struct{}

// ServerAddr implements raft.ServerAddressProvider.
func (AddressProvider) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	if id == "" {
		return "", errors.New("raftnet: empty raft server ID; it must be a peer ID")
	}
	return raft.ServerAddress(id), nil
}

// streamLayer is a raft.StreamLayer over gostream that drops streams from
// peers allow does not accept and tracks every stream it hands to raft, so
// Close can reset them.
type streamLayer struct {
	h         host.Host
	ln        net.Listener
	allow     func(peer.ID) bool
	onRefused func(peer.ID)

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

// stream is what gostream's net.Conn wraps: a libp2p stream.
type stream interface {
	net.Conn
	Conn() network.Conn
	Reset() error
}

func (l *streamLayer) refuse(s stream) {
	_ = s.Reset()
	if l.onRefused != nil {
		l.onRefused(s.Conn().RemotePeer())
	}
}

// Accept returns the next stream from an allowed peer, resetting the others.
func (l *streamLayer) Accept() (net.Conn, error) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, net.ErrClosed
			}
			return nil, err
		}
		s, ok := c.(stream)
		if !ok { // gostream changed under us; refuse rather than serve unchecked
			_ = c.Close()
			return nil, fmt.Errorf("raftnet: accepted a %T, not a libp2p stream", c)
		}
		if !l.allow(s.Conn().RemotePeer()) {
			l.refuse(s)
			continue
		}
		if tc := l.track(s, true); tc != nil {
			return tc, nil
		}
		return nil, net.ErrClosed
	}
}

// Dial opens a Raft stream to the peer whose ID is address.
func (l *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	p, err := peer.Decode(string(address))
	if err != nil {
		return nil, fmt.Errorf("raftnet: raft address %q is not a peer ID: %w", address, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := gostream.Dial(ctx, l.h, p, ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("raftnet: open a raft stream to %s: %w", p, err)
	}
	s, ok := c.(stream)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("raftnet: dialled a %T, not a libp2p stream", c)
	}
	if tc := l.track(s, false); tc != nil {
		return tc, nil
	}
	return nil, net.ErrClosed
}

// Close stops accepting and resets every stream still open. Safe to call
// more than once.
func (l *streamLayer) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	err := l.ln.Close()
	for c := range conns {
		_ = c.stream.Reset()
	}
	return err
}

// Addr is this host's peer ID, which raft reports as its local address.
func (l *streamLayer) Addr() net.Addr { return l.ln.Addr() }

// track wraps s for raft, or resets it and returns nil once l is closed.
func (l *streamLayer) track(s stream, inbound bool) *trackedConn {
	tc := &trackedConn{stream: s, l: l, inbound: inbound}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = s.Reset()
		return nil
	}
	l.conns[tc] = struct{}{}
	return tc
}

func (l *streamLayer) untrack(tc *trackedConn) {
	l.mu.Lock()
	delete(l.conns, tc)
	l.mu.Unlock()
}

// trackedConn is one Raft stream. What is read from an inbound one reaches
// raft only if its peer is still allowed when the read returns.
type trackedConn struct {
	stream
	l       *streamLayer
	inbound bool
	once    sync.Once
}

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.stream.Read(b)
	if c.inbound && !c.l.allow(c.Conn().RemotePeer()) {
		c.once.Do(func() { c.l.untrack(c) })
		c.l.refuse(c.stream)
		return 0, ErrRefused
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.l.untrack(c) })
	return c.stream.Close()
}
