package sync

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// NotifyProtocol is "my feed is now at seq S" (DESIGN §5): a node sends it
// to the member nodes it is connected to whenever its change feed grows,
// so they pull within milliseconds instead of at their next periodic round.
//
// The sender opens a stream, writes one frame holding S as a uvarint (at
// most MaxNotifyFrame bytes) and closes the stream; there is no answer. A
// notify carries no record and says nothing about audiences: the receiver
// still pulls, and the pull server still decides what it may see. A lost
// notify costs only latency, as the periodic pull catches up.
const NotifyProtocol protocol.ID = "/cairn/sync/notify/1"

// MaxNotifyFrame is the largest notify frame: one uvarint.
const MaxNotifyFrame = binary.MaxVarintLen64

// DefaultNotifyTimeout bounds one notify, sending or receiving.
const DefaultNotifyTimeout = 5 * time.Second

// Notify tells p that this node's change feed is at head. It returns once
// the frame is written (or ctx ends, or DefaultNotifyTimeout passes,
// whichever is first).
func Notify(ctx context.Context, h host.Host, p peer.ID, head uint64) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultNotifyTimeout)
	defer cancel()
	s, err := h.NewStream(network.WithNoDial(ctx, "notify only connected peers"), p, NotifyProtocol)
	if err != nil {
		return fmt.Errorf("notify %s: %w", p, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetWriteDeadline(dl)
	}
	if err := WriteFrame(s, binary.AppendUvarint(nil, head), MaxNotifyFrame); err != nil {
		_ = s.Reset()
		return fmt.Errorf("notify %s: %w", p, err)
	}
	return s.Close()
}

// NotifyServer receives NotifyProtocol frames from member nodes and hands
// each to a callback. Like PullServer it has no goroutines of its own.
type NotifyServer struct {
	members Members
	on      func(from peer.ID, head uint64)
	timeout time.Duration
	faults  Faults // set by ReportFaults before Handle is registered

	received, refused, malformed atomic.Uint64
}

// NotifyServerStats counts notifies by outcome.
type NotifyServerStats struct {
	Received  uint64 // from members, passed on
	Refused   uint64 // from peers that are not current members
	Malformed uint64 // unreadable, oversized or never sent
}

// NewNotifyServer returns a server that calls on for every notify from a
// current member node. on runs on the stream's goroutine and must not
// block: start a pull elsewhere. timeout bounds how long a sender may take
// to write its frame (DefaultNotifyTimeout if 0 or less).
func NewNotifyServer(members Members, on func(from peer.ID, head uint64), timeout time.Duration) (*NotifyServer, error) {
	if members == nil || on == nil {
		return nil, errors.New("sync: a notify server needs a members list and a callback")
	}
	if timeout <= 0 {
		timeout = DefaultNotifyTimeout
	}
	return &NotifyServer{members: members, on: on, timeout: timeout}, nil
}

// ReportFaults makes the server tell f of peers that sent an oversized or
// malformed notify, or none in time (faults.go). Call it before the
// server's Handle is registered: it is not safe to call concurrently with
// Handle.
func (srv *NotifyServer) ReportFaults(f Faults) { srv.faults = f }

// Stats returns the notify counts so far.
func (srv *NotifyServer) Stats() NotifyServerStats {
	return NotifyServerStats{Received: srv.received.Load(), Refused: srv.refused.Load(), Malformed: srv.malformed.Load()}
}

// Handle reads one notify from s. It is a network.StreamHandler.
func (srv *NotifyServer) Handle(s network.Stream) {
	release, ok := admitStream(srv.members, s) // per-peer stream limits (limit.go)
	if !ok {
		_ = s.Reset()
		return
	}
	defer release()
	defer s.Close()
	from := s.Conn().RemotePeer()
	if r, ok := srv.members.Reader(from); !ok || !r.Member {
		srv.refused.Add(1)
		_ = s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Now().Add(srv.timeout))
	b, err := ReadFrame(bufio.NewReaderSize(s, 2*MaxNotifyFrame), MaxNotifyFrame)
	if err != nil {
		srv.malformed.Add(1)
		reportFault(srv.faults, from, requestFault(err))
		_ = s.Reset()
		return
	}
	head, n := binary.Uvarint(b)
	if n <= 0 || n != len(b) {
		srv.malformed.Add(1)
		reportFault(srv.faults, from, ReasonMalformedFrame)
		_ = s.Reset()
		return
	}
	srv.received.Add(1)
	srv.on(from, head)
}
