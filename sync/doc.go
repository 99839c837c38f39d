// Package sync replicates records between member nodes over libp2p streams
// (DESIGN §5). Importers alias it cairnsync; inside, the standard library's
// sync is imported as stdsync.
//
// # Pull
//
// PullProtocol is CouchDB-style pull replication: a node asks a peer for
// its change feed after the seq it last stored from that peer, and the peer
// answers with the envelopes the requester may see, then the last seq it
// scanned. The node wires three parts:
//
//   - A PullServer, built with NewPullServer over the node's Feed and
//     Members, whose Handle the node registers for PullProtocol (wrapped
//     in the gater's GuardStream). It sends a requester only records whose
//     audience admits the requester's network and whose origin is another
//     network; private records never leave. Peers that Members does not
//     know, or that are not current members, are refused with ErrRefused.
//   - A Puller over the host, a Sink (verify and store durably) and
//     Checkpoints. CatchUp(ctx, peer) pulls until the peer has nothing
//     more, storing each batch before it advances the checkpoint, so a
//     crash loses nothing and at worst pulls a batch twice.
//   - Pull, the single request the Puller repeats, for callers that want
//     one batch.
//
// Frames are a uvarint length and that many bytes (ReadFrame, WriteFrame);
// every read names its maximum (MaxRequestFrame, MaxBatchFrame), and
// every stream has deadlines, so a peer that sends too much, or nothing,
// costs a bounded amount of memory and time and has its stream reset.
//
// # Hostile peers
//
// Every refusal has a Reason with a stable name. The Sink counts the
// versions it refuses (Counts.Reject), and Counts reach the caller even
// when the Sink returns an error. FaultOf names the requester's faults
// in a pull error: an oversized frame (ErrFrameTooLarge), anything else
// the protocol does not allow (ErrProtocol, which includes
// ErrMalformedFrame), and an answer not complete within Puller.Timeout
// (ErrStalled). A stream reset, this node's own shutdown and a peer's
// refusal are not faults. The PullServer tells PullConfig.Faults about
// requesters that sent an oversized or malformed request, or none within
// RequestTimeout; the notify, receipt and custody servers do the same
// (faults.go). A Puller's Gate can forbid pulling from a peer.
//
// The node decides what follows (node/drop.go). Whatever an honest node
// never sends drops the peer at once: a bad signature, an envelope that
// does not decode, or a malformed or oversized frame. Relays verify
// before they store, so only a broken or hostile node sends these.
// Refusals an honest node can cause too are only counted: an unknown or
// revoked key while the registry replicates, outside the audience after a
// region change, a future timestamp from clock skew, a body this
// node's rules refuse, stalled. They drop the peer after a configured
// number in a row with nothing accepted in between. Dropping closes the
// peer's connections and stops pulling from it for a while.
//
// # Notify
//
// NotifyProtocol carries "my feed is now at seq S" and nothing else. A
// node sends it (Notify) to the member nodes it is connected to whenever
// its feed grows, its own writes and records it received alike, so
// relaying needs no extra step; a NotifyServer hands each notify from a
// current member to the node, which pulls from the sender if S is beyond
// its checkpoint. The node's periodic pull catches whatever a lost notify
// missed.
//
// # Receipts
//
// ReceiptProtocol carries delivery receipts: a node tells a node of a
// record's origin network which version (id, version number, hash) it now
// holds, so the origin can answer "who holds which version". The server
// files each receipt under the sender's network as the registry names it,
// and only for versions of its own records that it holds itself.
//
// # Custody
//
// CustodyProtocol carries custody copies (custody.go): a node pushes every
// version of its own network's records, private ones included, sealed
// under its archive key, to the nodes of the networks its network named as
// custodians; they keep the blobs without being able to open them, and give
// them back to the origin network on a fetch.
//
// # What is not here yet
//
// The pure engine of STYLE §4: the Puller drives the protocol directly.
// Its scheduling (when to pull from whom) is small and lives in the node
// (node/replication.go, node/notify.go); a seeded simulation of it
// (RELIABILITY T13) is the reason to move it here.
package sync
