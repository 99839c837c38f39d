package sync

import "github.com/libp2p/go-libp2p/core/peer"

// Fault reporting by the servers other than pull (notify, receipt,
// custody). Each reports, through the same Faults the PullServer uses,
// what only a broken or hostile peer does: a request frame larger than
// its protocol allows (ReasonOversizedFrame), bytes that are not a frame
// or not a request of the protocol, or a stream closed before a whole
// request (ReasonMalformedFrame), and no request within the timeout
// (ReasonStalled). A stream the peer reset (it gave up or went away), a
// refusal (not a member, not a custodian) and this node's own failures
// (its store) are not faults. So the node counts them per peer in `cairn
// peers` and applies its drop rule to every protocol alike.

// reportFault tells f, if set, that p did what r names; an empty r (no
// fault) is not reported.
func reportFault(f Faults, p peer.ID, r Reason) {
	if f != nil && r != "" {
		f.Fault(p, r)
	}
}
