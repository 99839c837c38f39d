package p2p

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// New starts a libp2p host with key as its identity, listening on
// cfg.Listen: TCP and QUIC, Noise only, the resource manager with
// cfg.Limits, gater as connection gater, identify and ping. It does no
// peer discovery (no mDNS, no DHT) and offers no relay: peers are dialled
// at the addresses the registry and the config give.
//
// The host listens when New returns. Close it (host.Close) to stop it; that
// closes its connections, listeners and resource manager.
func New(key crypto.PrivKey, cfg Config, gater *Gater) (host.Host, error) {
	if key == nil {
		return nil, errors.New("p2p: no node key given")
	}
	if gater == nil {
		return nil, errors.New("p2p: no connection gater given; make one with NewGater")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(cfg.Limits.concrete()))
	if err != nil {
		return nil, fmt.Errorf("p2p: set up resource limits: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(cfg.Listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionGater(gater),
		// No relay for now. Members behind NAT will need AutoNAT, hole
		// punching (libp2p.EnableHolePunching) and circuit-relay v2 through
		// stewards (libp2p.EnableRelay on members, EnableRelayService on
		// stewards) with the relay's resource limits: DESIGN §7. Add them
		// here, behind Config fields.
		libp2p.DisableRelay(),
	}
	if cfg.Registerer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Registerer))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("p2p: start the network host on %v: %w", cfg.Listen, err)
	}
	gater.bind(h.Network())
	return h, nil
}
