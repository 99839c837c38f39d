package sync

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/inpud/cairn/model"
)

// ReceiptProtocol is "my network holds these versions of your records":
// a delivery receipt, sent by a node that stored records of another
// network to a node of that (origin) network, so the origin can say who
// holds which version of each record it shared.
//
// The sender opens a stream, writes one frame (JSON
// {"receipts":[{"id":ID,"version":V,"hash":H},...]}, at most MaxReceipts
// receipts and MaxReceiptFrame bytes) and closes its write side. The
// server answers with one frame and closes the stream:
//
//	'a' ack: uvarint receipts accepted, uvarint receipts ignored
//	'x' error: uvarint code (as in PullProtocol), then a short UTF-8 message
//
// The server keeps receipts under the sender's network as the registry
// names it (a receipt never names its own network), and only for versions
// it holds of its own network's records; it counts and ignores the rest.
const ReceiptProtocol protocol.ID = "/cairn/sync/receipt/1"

// Receipt limits.
const (
	// MaxReceipts is the most receipts one frame carries.
	MaxReceipts = 256
	// MaxReceiptFrame bounds a receipt frame: MaxReceipts receipts of the
	// largest form (a 20-digit version) take about 36 KiB.
	MaxReceiptFrame = 48 << 10
	// maxAckFrame bounds the answer frame.
	maxAckFrame = 512
	// DefaultReceiptTimeout bounds one exchange when its context has no
	// deadline.
	DefaultReceiptTimeout = 30 * time.Second
)

// Errors sending receipts can end with. A server's refusal crosses the
// stream as a code, so errors.Is works on the sender's side.
var (
	// ErrReceiptsRefused: the server takes receipts from current members
	// only, and does not count the sender as one.
	ErrReceiptsRefused = errors.New("the peer refused this node's delivery receipts (it takes them from current members only)")
	// ErrReceiptsBad: the server could not read the receipts.
	ErrReceiptsBad = errors.New("the peer could not read the delivery receipts")
	// ErrReceiptsUnavailable: the server failed to keep them.
	ErrReceiptsUnavailable = errors.New("the peer could not keep the delivery receipts")
	// ErrReceiptProtocol: the peer answered with something the receipt
	// protocol does not allow.
	ErrReceiptProtocol = errors.New("the peer broke the receipt protocol")
)

func receiptErrForCode(c uint64) error {
	switch c {
	case codeRefused:
		return ErrReceiptsRefused
	case codeBadRequest:
		return ErrReceiptsBad
	case codeUnavailable:
		return ErrReceiptsUnavailable
	}
	return fmt.Errorf("%w: unknown error code %d", ErrReceiptProtocol, c)
}

const kindAck = 'a'

// Receipt says that the sender's network holds one version of a record.
type Receipt struct {
	ID      string `json:"id"`
	Version uint64 `json:"version"`
	Hash    string `json:"hash"` // model.Envelope.Hash of the version
}

// valid reports whether r is well formed: a record id, a version from 1
// and a hash of 64 lower-case hex digits.
func (r Receipt) valid() bool {
	if model.ValidateID(r.ID) != nil || r.Version == 0 || len(r.Hash) != 64 {
		return false
	}
	for i := 0; i < len(r.Hash); i++ {
		if c := r.Hash[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

type receiptFrame struct {
	Receipts []Receipt `json:"receipts"`
}

// Ack is the server's answer to a frame of receipts.
type Ack struct {
	Accepted int // kept: versions the server holds of its own records
	Ignored  int // malformed, or for versions or records it cannot vouch for
}

// ReceiptStore keeps the receipts a ReceiptServer accepts.
type ReceiptStore interface {
	// Receive keeps the well-formed receipts rs that network (the
	// sender's, as the registry names it) sent, for versions this node
	// holds of its own network's records, and returns how many it kept
	// once they are on disk; the rest it ignores. The receipt handler
	// calls it once per frame, concurrently from one goroutine per
	// stream; it may block on disk, never on the network.
	Receive(network string, rs []Receipt) (accepted int, err error)
}

// ReceiptServerStats counts frames by outcome, and receipts, for metrics.
type ReceiptServerStats struct {
	Served    uint64 // frames answered with an ack
	Refused   uint64 // from peers that are not current members
	Malformed uint64 // unreadable, oversized or never sent frames
	Failed    uint64 // store errors and senders that went away
	Accepted  uint64 // receipts kept
	Ignored   uint64 // receipts counted and ignored
}

// ReceiptServer answers ReceiptProtocol. It has no goroutines of its own:
// libp2p runs Handle on one goroutine per stream.
type ReceiptServer struct {
	members Members
	store   ReceiptStore
	cfg     PullConfig

	served, refused, malformed, failed, accepted, ignored atomic.Uint64
}

// NewReceiptServer returns a server asking members who each sender is and
// keeping what it accepts in store, with cfg's timeouts (the read timeout
// bounds the whole frame); cfg.Faults, if set, hears of senders that sent
// an oversized or malformed frame, or none in time (faults.go). The node registers its Handle for
// ReceiptProtocol, wrapped in the gater's GuardStream.
func NewReceiptServer(members Members, store ReceiptStore, cfg PullConfig) (*ReceiptServer, error) {
	if members == nil || store == nil {
		return nil, errors.New("sync: a receipt server needs a members list and a receipt store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &ReceiptServer{members: members, store: store, cfg: cfg}, nil
}

// Stats returns the counts so far.
func (srv *ReceiptServer) Stats() ReceiptServerStats {
	return ReceiptServerStats{
		Served: srv.served.Load(), Refused: srv.refused.Load(), Malformed: srv.malformed.Load(),
		Failed: srv.failed.Load(), Accepted: srv.accepted.Load(), Ignored: srv.ignored.Load(),
	}
}

// Handle serves one frame of receipts on s; it resets the stream on
// failure.
func (srv *ReceiptServer) Handle(s network.Stream) {
	release, ok := admitStream(srv.members, s) // per-peer stream limits (limit.go)
	if !ok {
		_ = s.Reset()
		return
	}
	defer release()
	if err := srv.serve(s); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

func (srv *ReceiptServer) serve(s network.Stream) error {
	from := s.Conn().RemotePeer()
	if err := s.SetReadDeadline(time.Now().Add(srv.cfg.RequestTimeout)); err != nil {
		srv.failed.Add(1)
		return err
	}
	b, err := ReadFrame(bufio.NewReaderSize(s, 4096), MaxReceiptFrame)
	if err != nil {
		srv.malformed.Add(1)
		reportFault(srv.cfg.Faults, from, requestFault(err))
		return err
	}
	_ = s.CloseRead()
	w := &frameWriter{s: s, bw: bufio.NewWriterSize(s, maxAckFrame+binary.MaxVarintLen64), timeout: srv.cfg.WriteTimeout}
	rs, err := decodeReceipts(b)
	if err != nil {
		srv.malformed.Add(1)
		reportFault(srv.cfg.Faults, from, ReasonMalformedFrame)
		return w.fail(codeBadRequest, err.Error())
	}
	r, ok := srv.members.Reader(from)
	if !ok || !r.Member {
		srv.refused.Add(1)
		return w.fail(codeRefused, "this node takes delivery receipts from current federation members only")
	}
	good := make([]Receipt, 0, len(rs))
	for _, rc := range rs {
		if rc.valid() {
			good = append(good, rc)
		}
	}
	kept := 0
	if len(good) > 0 {
		if kept, err = srv.store.Receive(r.Network, good); err != nil {
			srv.failed.Add(1)
			if err := w.fail(codeUnavailable, "keeping the receipts failed"); err != nil {
				return err
			}
			return nil
		}
	}
	kept = min(max(kept, 0), len(good))
	ack := binary.AppendUvarint([]byte{kindAck}, uint64(kept))
	ack = binary.AppendUvarint(ack, uint64(len(rs)-kept))
	if err := w.frame(ack); err != nil {
		srv.failed.Add(1)
		return err
	}
	srv.served.Add(1)
	srv.accepted.Add(uint64(kept))
	srv.ignored.Add(uint64(len(rs) - kept))
	return nil
}

func decodeReceipts(b []byte) ([]Receipt, error) {
	if !utf8.Valid(b) { // encoding/json would read invalid bytes as U+FFFD
		return nil, errors.New("the frame is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f receiptFrame
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("the frame is not {\"receipts\":[{\"id\":ID,\"version\":N,\"hash\":HEX},...]}: %v", err)
	}
	if dec.More() {
		return nil, errors.New("the frame has data after its JSON value")
	}
	if len(f.Receipts) > MaxReceipts {
		return nil, fmt.Errorf("the frame has %d receipts; at most %d are allowed", len(f.Receipts), MaxReceipts)
	}
	return f.Receipts, nil
}

// SendReceipts sends rs (at most MaxReceipts) to peer p, a node of the
// records' origin network, and returns its ack. It honours ctx's
// cancellation and deadline (DefaultReceiptTimeout if ctx has none) and
// resets the stream on any error.
func SendReceipts(ctx context.Context, h host.Host, p peer.ID, rs []Receipt) (Ack, error) {
	if len(rs) > MaxReceipts {
		return Ack{}, fmt.Errorf("send %d receipts: at most %d go in one frame", len(rs), MaxReceipts)
	}
	b, err := json.Marshal(receiptFrame{Receipts: rs})
	if err != nil {
		return Ack{}, err
	}
	if len(b) > MaxReceiptFrame {
		return Ack{}, fmt.Errorf("send receipts: %w", ErrFrameTooLarge)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultReceiptTimeout)
		defer cancel()
	}
	s, err := h.NewStream(ctx, p, ReceiptProtocol)
	if err != nil {
		return Ack{}, fmt.Errorf("send receipts to %s: open stream: %w", p, err)
	}
	ack, err := exchangeReceipts(ctx, s, b)
	if err != nil {
		_ = s.Reset()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return Ack{}, fmt.Errorf("send %d receipts to %s: %w", len(rs), p, err)
	}
	_ = s.Close()
	return ack, nil
}

func exchangeReceipts(ctx context.Context, s network.Stream, frame []byte) (Ack, error) {
	deadline, _ := ctx.Deadline()
	if err := s.SetDeadline(deadline); err != nil {
		return Ack{}, err
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if err := WriteFrame(s, frame, MaxReceiptFrame); err != nil {
		return Ack{}, err
	}
	if err := s.CloseWrite(); err != nil {
		return Ack{}, err
	}
	br := bufio.NewReaderSize(s, maxAckFrame+binary.MaxVarintLen64)
	f, err := ReadFrame(br, maxAckFrame)
	if err == io.EOF {
		return Ack{}, fmt.Errorf("%w: the stream ended without an answer", ErrReceiptProtocol)
	}
	if err != nil {
		return Ack{}, fmt.Errorf("%w: %w", ErrReceiptProtocol, err)
	}
	if len(f) == 0 {
		return Ack{}, fmt.Errorf("%w: empty frame", ErrReceiptProtocol)
	}
	switch f[0] {
	case kindAck:
		acc, k := binary.Uvarint(f[1:])
		if k <= 0 {
			return Ack{}, fmt.Errorf("%w: malformed ack", ErrReceiptProtocol)
		}
		ign, k2 := binary.Uvarint(f[1+k:])
		if k2 <= 0 || 1+k+k2 != len(f) || acc > MaxReceipts || ign > MaxReceipts {
			return Ack{}, fmt.Errorf("%w: malformed ack", ErrReceiptProtocol)
		}
		if _, err := ReadFrame(br, 0); err != io.EOF {
			return Ack{}, fmt.Errorf("%w: data after the ack", ErrReceiptProtocol)
		}
		return Ack{Accepted: int(acc), Ignored: int(ign)}, nil
	case kindError:
		code, k := binary.Uvarint(f[1:])
		if k <= 0 {
			return Ack{}, fmt.Errorf("%w: malformed error frame", ErrReceiptProtocol)
		}
		return Ack{}, fmt.Errorf("%w: %q", receiptErrForCode(code), peerText(f[1+k:]))
	}
	return Ack{}, fmt.Errorf("%w: unknown frame kind %#x", ErrReceiptProtocol, f[0])
}
