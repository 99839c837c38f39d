// Package registry is the federation's shared state and the rules for
// changing it: which member networks exist, which node keys speak for
// them, who is a steward (a Raft voter), which checklist templates are
// current, which invites are pending and who keeps whose custody copies.
//
// The package is a pure state machine with a thin Raft shell (STYLE §5).
// State, Apply and the snapshot encoding know nothing of Raft, libp2p
// hosts or disks and are table-tested on their own; fsm.go adapts them to
// hashicorp/raft's FSM and does nothing else. Networking, the Raft
// transport and stores, forwarding proposals to the leader, invite codes
// on the wire and the CLI belong to the node.
//
// # State
//
// State holds Networks (by slug), Nodes (node keys, by peer ID), Templates
// (every published version of each template, in order), Invites, the
// federation's Genesis hash, Seen (hashes of recently applied commands)
// and Applied (the last Raft index, set by the FSM). Its zero value is an
// empty registry waiting for Genesis. Queries (Member, Voters, NonVoters,
// Peers, Network, NetworkList, NodeKeys, Template, TemplateList, Invite…)
// never change it and return copies. Member is the question the
// connection gater and the Raft stream guard ask: true only for a key that
// is not revoked, of a network that is active.
//
// # Commands
//
// A proposing node builds a Command (Kind, Proposer peer ID, Issued time,
// random Nonce, Args), encodes it to JSON once and signs those bytes with
// its node key (Sign). The SignedCommand keeps the exact bytes; nobody
// re-encodes them. EncodeSigned frames it for the Raft log; the FSM
// decodes it with DecodeSigned and calls State.Apply, which:
//
//  1. decodes the payload strictly (invalid UTF-8, duplicate keys, unknown
//     fields, deep nesting and trailing data are refused; the Kind is a
//     name, and unknown names are refused);
//  2. verifies the signature against the key inside the Proposer peer ID,
//     which must be in its canonical form (one key, one spelling);
//  3. refuses a command issued more than ReplayWindow from the log's time,
//     or one already applied (its payload hash is in Seen);
//  4. authorises the proposer and validates the arguments against the
//     current state;
//  5. only then changes the state.
//
// Each step that fails returns an error wrapping a sentinel (ErrUnauthorised,
// ErrBadSignature, ErrInvalidCommand, ErrNotFound, ErrConflict, ErrExpired)
// whose text is one sentence the person who proposed it can act on, and
// the state is left exactly as it was: every command's checks run first and
// return the change as a function, which runs only when all have passed.
// Check runs the same decision and changes nothing, so the node can refuse
// a proposal before it reaches the log.
//
// Who may propose what (a "member" below means a key that is not revoked,
// of an active network; nodes of suspended or retired networks, revoked
// keys and strangers may propose nothing, except as noted):
//
//	genesis          anyone, only on an empty registry: creates the first
//	                 steward network, its node key and the templates it carries
//	create-invite    a steward
//	join             the joiner's new key (not yet a member), with the
//	                 invite's id and secret, before it expires, once
//	add-node-key     a node of that network, or a steward
//	revoke-node-key  a node of the key's network, or a steward; the cutoff
//	                 is the log's time
//	update-network   a node of that network (name, country, region), or a
//	                 steward (also level and parent)
//	suspend, reinstate, retire, promote, demote   a steward
//	put-template     a steward; a later version must keep every item id
//	set-custodians   a node of the network, for its own network
//	handover         a node of that network, or a steward, or a node of one
//	                 of its custodians once a steward suspended it: retires
//	                 it, names the steward network that holds its archive
//	                 and carries the archive key wrapped to that network's
//	                 node keys (see planHandover)
//	set-addrs        any member node, for its own addresses
//
// No command may leave the federation without a voter: suspending,
// retiring, demoting or handing over the last steward network with a live
// node key, and revoking the last voting key, are refused.
//
// # Time comes from the log
//
// Apply never reads a clock. Its now is the Raft entry's AppendedAt: the
// leader's clock when it appended the entry, stored in the entry and
// replicated with it. Every replica, and a node replaying its log after a
// restart, therefore sees the same now for the same entry and decides
// invite expiry, revocation cutoffs, join times and the replay window
// identically. Reading each replica's own clock would let two replicas
// disagree on whether an invite had expired, and they would diverge for
// good. An entry without a time is refused (deterministically). The node
// must keep AppendedAt through its log store and transport (raft-boltdb
// and raft's network transport both do).
//
// # Determinism
//
// Everything Apply decides on is in the log or the state: no clock, no
// randomness, no map iteration order (messages and choices iterate sorted
// keys), and no library whose answer could change with its version. That
// is why the genesis templates travel inside the genesis command instead
// of being read from templates.Builtin() at apply time, and why listen
// addresses are checked by shape rather than parsed with go-multiaddr,
// whose protocol table differs between versions. Changing a validation
// rule (here or in model.Template.Validate) changes what replicas decide:
// all stewards must run the same rules.
//
// EncodeSnapshot writes the whole state as JSON with sorted keys, so two
// replicas that applied the same log write the same bytes.
//
// # Locking
//
// A State is not safe for concurrent use. FSM owns one behind a RWMutex:
// raft calls Apply, Snapshot and Restore from its FSM goroutine and holds
// the write lock for Apply and Restore; readers call FSM.View (a read-only
// look under the read lock; do not keep pointers or block) or FSM.State (a
// deep copy). Snapshot takes a deep copy under the read lock; Persist
// encodes and writes it without the lock, while Apply continues. Restore
// decodes into a new State and replaces the old one whole: nothing of the
// earlier state survives, so a member removed after a snapshot cannot come
// back through it. FSM.OnChange is called after each accepted command and
// each restore, outside the lock; the node uses it to re-check live
// connections and the voter set.
//
// # Decisions beyond the brief
//
//   - Commands carry Issued, and the registry keeps the hashes of commands
//     applied within the replay window (plus a day's margin for a leader
//     whose clock is behind). Every member replica holds the log, so
//     without this any member could resubmit an old signed "promote" or
//     "reinstate" it had seen; the nonce alone makes commands unique but
//     does not stop a replay.
//   - Signatures cover a context prefix ("cairn/registry/command/1"), so
//     a node's registry signature can never pass as a record signature by
//     the same key, or the reverse.
//   - Peer IDs must be in canonical form: peer.Decode also accepts the CID
//     spelling, and a revoked key could otherwise be registered again under
//     its other name.
//   - Network carries its Profile embedded (with Parent, checked to exist
//     and not to form a cycle); UpdateNetwork replaces the whole profile,
//     and a member changing its own level or parent is refused.
//   - Retired is final; only a suspended network can be reinstated.
//     Custodians may be any other active network, steward or member.
//   - A handover must carry the archive key wrapped to the steward's nodes
//     (HandoverArgs.ArchiveKey, at most MaxWrappedKey bytes, shaped as an
//     age file); the registry keeps it with the retired network. Older
//     encodings still decode, but a handover without the key is refused:
//     no release had a command that proposed one, so no log holds one.
//   - Limits: 16 live keys per network, 16 addresses of at most 256 bytes,
//     2 to 16 custodians, 256 open invites, invites of at most 30 days,
//     256 templates and 256 versions each, 1 MiB per command.
//
// Known limits: a Join carries the invite's secret in the log, where every
// replica can read it; it is useless once the invite is used or expired,
// but a join refused for another reason (say, its slug was taken) leaves
// it readable until the invite expires. RELIABILITY.md's k-of-n steward
// signatures for admitting a network are not implemented: one steward's
// invite suffices.
package registry
