package sync

import (
	"errors"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Reason names why this node refused something a peer sent. The names are
// stable: `cairn peers --json` shows them, per peer, under "rejections".
type Reason string

// The reasons. Which of them drop the peer at once is the node's rule
// (see the package doc).
const (
	// ReasonBadSignature: the signature does not match the payload and
	// the key of the author it names.
	ReasonBadSignature Reason = "bad-signature"
	// ReasonUnknownKey: the author is not a registered node, or not a node
	// of the record's origin network.
	ReasonUnknownKey Reason = "unknown-key"
	// ReasonRevokedKey: the version is dated at or after its key's
	// revocation cutoff, or after its network was suspended or retired.
	ReasonRevokedKey Reason = "revoked-key"
	// ReasonOutsideAudience: the record's audience does not include this
	// node's network.
	ReasonOutsideAudience Reason = "outside-audience"
	// ReasonMalformed: the payload, its schema or its body is invalid.
	ReasonMalformed Reason = "malformed"
	// ReasonFutureTimestamp: the version is dated further ahead of this
	// node's clock than it allows.
	ReasonFutureTimestamp Reason = "future-timestamp"
	// ReasonStale: a version older than the one this node holds of the
	// record, and not one it holds already: a replayed older version. It
	// could never become current, so it is not stored.
	ReasonStale Reason = "stale"
	// ReasonRolledBack: a version older than one the same peer served
	// this node before (since this node started): the peer went back on
	// what it said was the newest. It is refused and not stored, and the
	// record's history notes it. A node that holds the newer version from
	// elsewhere and never had it from this peer counts an older one as
	// stale instead: relays hold versions they received out of order.
	ReasonRolledBack Reason = "rolled-back"
	// ReasonOversizedFrame: a frame (or an envelope in it) larger than the
	// protocol allows.
	ReasonOversizedFrame Reason = "oversized-frame"
	// ReasonMalformedFrame: bytes that are not what the protocol allows.
	ReasonMalformedFrame Reason = "malformed-frame"
	// ReasonStalled: the peer opened a stream and never sent its request,
	// or never finished its answer, within the timeout.
	ReasonStalled Reason = "stalled"
)

// Limits (limit.go): how much a peer asks, not what it sent.
const (
	// ReasonRateLimited: the peer held more streams of one Cairn protocol
	// open at once, or opened them faster, than StreamLimits allow; the
	// stream was reset unread.
	ReasonRateLimited Reason = "rate-limited"
)

// Reasons lists every reason, in the order people are shown them.
var Reasons = []Reason{
	ReasonBadSignature, ReasonUnknownKey, ReasonRevokedKey, ReasonOutsideAudience, ReasonMalformed,
	ReasonFutureTimestamp, ReasonStale, ReasonRolledBack, ReasonOversizedFrame, ReasonMalformedFrame, ReasonStalled,
	ReasonRateLimited,
}

// FaultOf says whether err, from Pull or CatchUp, was the peer's fault and
// which: an oversized frame (ErrFrameTooLarge), anything else the protocol
// does not allow (ErrProtocol), or no answer in time (ErrStalled). Errors
// of this node's own (its store, its shutdown) and a peer's refusals are
// not faults.
func FaultOf(err error) (Reason, bool) {
	switch {
	case err == nil:
		return "", false
	case errors.Is(err, ErrFrameTooLarge):
		return ReasonOversizedFrame, true
	case errors.Is(err, ErrProtocol):
		return ReasonMalformedFrame, true
	case errors.Is(err, ErrStalled):
		return ReasonStalled, true
	}
	return "", false
}

// Faults hears of peers that broke a protocol while this node served them.
type Faults interface {
	// Fault reports that peer p did what r names. The pull handler calls
	// it from the stream's goroutine before it resets the stream; it must
	// not block on the network.
	Fault(p peer.ID, r Reason)
}
