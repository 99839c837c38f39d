package p2p

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is what New needs besides the key and the gater. Start from
// DefaultConfig and change single fields.
type Config struct {
	// Listen holds the multiaddrs the host listens on, TCP and QUIC. Port 0
	// picks a free port.
	Listen []string

	// Limits are the resource manager's limits, fixed (never scaled to the
	// machine's memory) so every node enforces the same bounds.
	Limits Limits

	// Registerer receives libp2p's own Prometheus metrics; give each host
	// its own. Nil switches them off (the node exports what it needs).
	Registerer prometheus.Registerer
}

// DefaultConfig listens on every IPv4 interface, TCP and QUIC, on ports the
// system picks, with DefaultLimits.
func DefaultConfig() Config {
	return Config{
		Listen: []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"},
		Limits: DefaultLimits(),
	}
}

// Validate says, in one sentence, what is wrong with c, or returns nil.
func (c Config) Validate() error {
	if len(c.Listen) == 0 {
		return errors.New("p2p: no listen address is set; give at least one, such as /ip4/0.0.0.0/tcp/4001")
	}
	for _, s := range c.Listen {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return fmt.Errorf("p2p: listen address %q is not a multiaddr (write it like /ip4/0.0.0.0/tcp/4001): %w", s, err)
		}
	}
	return c.Limits.Validate()
}

// Limits bound what the network layer may use. Per-peer limits hold each
// remote node to a fair share (RELIABILITY: resource exhaustion); system
// limits hold the whole node; transient limits hold connections and streams
// that are not yet tied to a peer or protocol (handshakes, protocol
// negotiation), which is where a flood from unknown addresses lands.
// Memory is the buffer space the muxers may reserve, not process memory.
type Limits struct {
	PeerConns           int   // connections to or from one peer at once
	PeerStreamsInbound  int   // streams one peer may hold open to this node
	PeerStreamsOutbound int   // streams this node may hold open to one peer
	PeerMemory          int64 // bytes reserved for one peer's connections and streams

	SystemConns          int   // connections in all
	SystemConnsInbound   int   // of which inbound
	SystemStreams        int   // streams in all
	SystemStreamsInbound int   // of which inbound
	SystemMemory         int64 // bytes reserved in all
	SystemFD             int   // file descriptors for sockets

	TransientConns   int   // connections still in their handshake
	TransientStreams int   // streams still negotiating their protocol
	TransientMemory  int64 // bytes reserved for both
}

// DefaultLimits are RELIABILITY's per-peer limits (4 connections, 16
// inbound streams, 64 MiB) and system totals sized for a 2-core machine
// with a few hundred member nodes.
func DefaultLimits() Limits {
	return Limits{
		PeerConns:           4,
		PeerStreamsInbound:  16,
		PeerStreamsOutbound: 64,
		PeerMemory:          64 << 20,

		SystemConns:          256,
		SystemConnsInbound:   128,
		SystemStreams:        2048,
		SystemStreamsInbound: 1024,
		SystemMemory:         256 << 20,
		SystemFD:             512,

		TransientConns:   32,
		TransientStreams: 64,
		TransientMemory:  32 << 20,
	}
}

// Validate says, in one sentence, what is wrong with l, or returns nil.
func (l Limits) Validate() error {
	positive := []struct {
		name string
		v    int64
	}{
		{"PeerConns", int64(l.PeerConns)},
		{"PeerStreamsInbound", int64(l.PeerStreamsInbound)},
		{"PeerStreamsOutbound", int64(l.PeerStreamsOutbound)},
		{"PeerMemory", l.PeerMemory},
		{"SystemConns", int64(l.SystemConns)},
		{"SystemConnsInbound", int64(l.SystemConnsInbound)},
		{"SystemStreams", int64(l.SystemStreams)},
		{"SystemStreamsInbound", int64(l.SystemStreamsInbound)},
		{"SystemMemory", l.SystemMemory},
		{"SystemFD", int64(l.SystemFD)},
		{"TransientConns", int64(l.TransientConns)},
		{"TransientStreams", int64(l.TransientStreams)},
		{"TransientMemory", l.TransientMemory},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("p2p: limit %s is %d; it must be more than 0", p.name, p.v)
		}
	}
	switch {
	case l.SystemConnsInbound > l.SystemConns:
		return fmt.Errorf("p2p: SystemConnsInbound (%d) is more than SystemConns (%d)", l.SystemConnsInbound, l.SystemConns)
	case l.SystemStreamsInbound > l.SystemStreams:
		return fmt.Errorf("p2p: SystemStreamsInbound (%d) is more than SystemStreams (%d)", l.SystemStreamsInbound, l.SystemStreams)
	case l.PeerConns > l.SystemConns:
		return fmt.Errorf("p2p: PeerConns (%d) is more than SystemConns (%d)", l.PeerConns, l.SystemConns)
	case l.PeerStreamsInbound > l.SystemStreamsInbound:
		return fmt.Errorf("p2p: PeerStreamsInbound (%d) is more than SystemStreamsInbound (%d)", l.PeerStreamsInbound, l.SystemStreamsInbound)
	case l.PeerMemory > l.SystemMemory:
		return fmt.Errorf("p2p: PeerMemory (%d bytes) is more than SystemMemory (%d bytes)", l.PeerMemory, l.SystemMemory)
	case l.PeerConns > l.SystemFD:
		return fmt.Errorf("p2p: PeerConns (%d) is more than SystemFD (%d)", l.PeerConns, l.SystemFD)
	}
	return nil
}

// concrete turns l into the resource manager's configuration. Scopes l does
// not name (services, protocols, single connections and streams) keep
// go-libp2p's base defaults, unscaled, including its per-service limits for
// identify and ping; the tighter per-peer limit still caps them.
func (l Limits) concrete() rcmgr.ConcreteLimitConfig {
	scaling := rcmgr.DefaultLimits // a copy; its nil maps are filled on the copy
	libp2p.SetDefaultServiceLimits(&scaling)
	base := scaling.Scale(0, 0) // base amounts only: no autoscaling to this machine

	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:           rcmgr.LimitVal(l.SystemConns),
			ConnsInbound:    rcmgr.LimitVal(l.SystemConnsInbound),
			ConnsOutbound:   rcmgr.LimitVal(l.SystemConns),
			Streams:         rcmgr.LimitVal(l.SystemStreams),
			StreamsInbound:  rcmgr.LimitVal(l.SystemStreamsInbound),
			StreamsOutbound: rcmgr.LimitVal(l.SystemStreams),
			Memory:          rcmgr.LimitVal64(l.SystemMemory),
			FD:              rcmgr.LimitVal(l.SystemFD),
		},
		Transient: rcmgr.ResourceLimits{
			Conns:           rcmgr.LimitVal(l.TransientConns),
			ConnsInbound:    rcmgr.LimitVal(l.TransientConns),
			ConnsOutbound:   rcmgr.LimitVal(l.TransientConns),
			Streams:         rcmgr.LimitVal(l.TransientStreams),
			StreamsInbound:  rcmgr.LimitVal(l.TransientStreams),
			StreamsOutbound: rcmgr.LimitVal(l.TransientStreams),
			Memory:          rcmgr.LimitVal64(l.TransientMemory),
			FD:              rcmgr.LimitVal(l.TransientConns),
		},
		PeerDefault: rcmgr.ResourceLimits{
			Conns:           rcmgr.LimitVal(l.PeerConns),
			ConnsInbound:    rcmgr.LimitVal(l.PeerConns),
			ConnsOutbound:   rcmgr.LimitVal(l.PeerConns),
			Streams:         rcmgr.LimitVal(l.PeerStreamsInbound + l.PeerStreamsOutbound),
			StreamsInbound:  rcmgr.LimitVal(l.PeerStreamsInbound),
			StreamsOutbound: rcmgr.LimitVal(l.PeerStreamsOutbound),
			Memory:          rcmgr.LimitVal64(l.PeerMemory),
			FD:              rcmgr.LimitVal(l.PeerConns),
		},
	}
	return partial.Build(base)
}
