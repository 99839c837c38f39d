// Package p2p builds the node's libp2p host and the connection gater that
// keeps everyone but federation members out.
//
// # Who calls what
//
// The node makes a Gater with NewGater, passing the registry's membership
// test (a peer is allowed if the registry lists its key and its network is
// active), then calls New with its identity key, a Config and the gater.
// New returns a listening host.Host: TCP and QUIC, Noise as the only
// security, yamux, the resource manager with the fixed limits in
// Config.Limits, identify and ping. There is no mDNS, DHT or relay; peers
// are dialled at addresses put in the host's peerstore by whoever knows
// them (the registry, static config). AutoNAT, hole punching and
// circuit-relay v2 through stewards come later (DESIGN §7; see host.go).
//
// The gater refuses a peer that Allow does not accept at the first hook
// that knows its authenticated ID (InterceptSecured for inbound
// connections; InterceptPeerDial before this node dials), so such a peer
// never gets a connection the rest of the node could see. A refused dialer
// may still see its own dial succeed for a moment (the receiver refuses
// after the handshake): judge admission on the receiving side.
//
// When the registry changes, the node calls SetAllow (if the function
// itself changed) and then Enforce(h): a gater only sees new connections,
// and Enforce closes the live ones of peers no longer allowed.
//
// During a join, the node calls AdmitGuests(n) so that up to n peers that
// are not members may connect; every stream handler the node registers is
// wrapped with GuardStream, and only the join protocol's with allowGuests
// set, so a guest can speak the join protocol and nothing else of ours
// (libp2p's own identify and ping stay open to it). A guest that becomes a
// member stops being a guest; AdmitGuests(0) followed by Enforce closes the
// remaining guests.
//
// Refused reports refusal counts by reason, for metrics.
//
// # Concurrency and blocking
//
// All Gater methods are safe for concurrent use. The gater's hooks and
// GuardStream call Allow on libp2p's connection and stream paths, so Allow
// must be fast and must not block (read a snapshot of the membership).
// Enforce blocks while it closes connections. One Gater serves one host.
//
// # Stopping
//
// Closing the host (host.Close) closes its listeners, connections and
// resource manager and stops its goroutines. The Gater has no goroutines.
package p2p
