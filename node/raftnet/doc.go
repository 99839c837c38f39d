// Package raftnet carries hashicorp/raft's RPCs over libp2p streams, on
// protocol ProtocolID, and serves them only to peers the caller allows.
//
// go-libp2p-raft serves Raft RPCs to any connected peer and opens a stream
// per heartbeat (DESIGN §10); this package replaces it with a
// raft.StreamLayer over go-libp2p-gostream inside raft's own
// NetworkTransport, with a pool of idle streams per peer.
//
// # Who calls what
//
// The registry calls New with the node's host, an allow function and a
// Config, and passes the transport to raft.NewRaft. allow answers "may this
// peer send me Raft RPCs?": the current voters, plus, while this node is
// joining, the stewards named in its invite. Non-voters never originate
// Raft RPCs (the leader dials them), so they need not be allowed. A stream
// from anyone else is reset when accepted, and a stream already accepted is
// reset, and what it just read discarded, at its next read once allow stops
// accepting its peer; Config's OnRefused hears of each.
//
// Raft server IDs and addresses are both the peer ID string (ServerID,
// ServerAddress); AddressProvider maps one to the other, so the Raft
// configuration never holds an IP address that can go stale. Where a peer
// listens is the host's peerstore's business.
//
// The RPC header's ID is not checked against the authenticated peer: the
// stream layer does not decode RPCs. allow bounds the senders to voters.
//
// # Concurrency and blocking
//
// allow and OnRefused are called concurrently from the transport's accept
// and read paths: both must be fast, safe for concurrent use, and must not
// block. Raft RPCs block for at most Config.Timeout (snapshots longer, in
// proportion to their size).
//
// # Stopping
//
// raft's Shutdown closes the transport; Close on the transport stops
// accepting, removes the protocol handler and resets every stream it opened
// or accepted. Neither closes the host.
package raftnet
