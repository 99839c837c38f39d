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
	"net"
	"os"
	stdsync "sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/inpud/cairn/model"
)

// PullProtocol is "send me your change feed after seq S" (DESIGN §5).
//
// The requester opens a stream, writes one request frame (JSON
// {"after":S,"limit":N}, at most MaxRequestFrame bytes) and closes its
// write side. A restoring node adds "own":true (PullOwn) to ask instead
// for the versions of its own network's records the server holds: those
// its network shared with the server's. Without "own" the frame is what
// it always was; a server from before "own" refuses it as a bad request,
// which a restore takes as "nothing from this peer". The server answers with frames of at most MaxBatchFrame
// bytes, each starting with a kind byte:
//
//	'b' batch: one or more envelopes, each a uvarint length and
//	    model.Envelope.MarshalBinary
//	'e' end: uvarint last seq scanned, then one byte, 1 if the server
//	    stopped before the end of its feed (ask again from last), then
//	    (optional, at most 64 bytes) the id of the server's feed
//	    (FeedIdentity, FeedCheckpoints)
//	'x' error: uvarint code (see Err*), then a short UTF-8 message
//
// and closes the stream after the end or error frame. Every response ends
// in exactly one end or error frame.
const PullProtocol protocol.ID = "/cairn/sync/pull/1"

// Pull limits.
const (
	// DefaultPullLimit is the number of feed entries a request asks the
	// server to scan when it names no limit.
	DefaultPullLimit = 500
	// MaxPullLimit is the most feed entries one request makes a server
	// scan; larger limits are lowered to it.
	MaxPullLimit = 1000
	// MaxPullBytes bounds the envelope bytes of one response. The server
	// stops adding envelopes before passing it (but always sends at least
	// one, which may be up to MaxEnvelopeSize), so a requester never holds
	// more than this, or one envelope, for one request.
	MaxPullBytes = 32 << 20
	// DefaultPullTimeout bounds one request when its context has no
	// deadline.
	DefaultPullTimeout = time.Minute
)

// Errors a pull can end with. A server's refusal crosses the stream as a
// code, so errors.Is works on the requester's side.
var (
	// ErrRefused: the server does not serve this node (it is not a current
	// member, or the server does not know it).
	ErrRefused = errors.New("the peer refused to serve this node its records")
	// ErrBadRequest: the server could not read the request.
	ErrBadRequest = errors.New("the peer could not read the pull request")
	// ErrUnavailable: the server failed to read its own change feed.
	ErrUnavailable = errors.New("the peer could not read its change feed")
	// ErrProtocol: the peer sent something the pull protocol does not
	// allow. The stream is reset.
	ErrProtocol = errors.New("the peer broke the pull protocol")
	// ErrStalled: the peer did not send its whole answer before the
	// request's deadline. The stream is reset.
	ErrStalled = errors.New("the peer stopped answering")
)

// Wire codes of error frames.
const (
	codeRefused     = 1
	codeBadRequest  = 2
	codeUnavailable = 3
)

func errForCode(c uint64) error {
	switch c {
	case codeRefused:
		return ErrRefused
	case codeBadRequest:
		return ErrBadRequest
	case codeUnavailable:
		return ErrUnavailable
	}
	return fmt.Errorf("%w: unknown error code %d", ErrProtocol, c)
}

// Frame kinds.
const (
	kindBatch = 'b'
	kindEnd   = 'e'
	kindError = 'x'
)

// Entry is one change-feed entry as the pull server reads it.
type Entry struct {
	Seq uint64         // the server's feed sequence number
	Env model.Envelope // the signed bytes, exactly as stored
	// Payload is Env.Open(), as the store decoded it; the server reads
	// only its Origin and Audience (a FilteredFeed may set only those).
	Payload model.Payload
}

// Feed is the server's local change feed (node/store satisfies it through
// a small adapter in node).
type Feed interface {
	// Feed returns the entries after seq after in increasing seq order,
	// at most limit of them, and the seq of the last one returned (after if none).
	// It may return fewer than limit before the end of the feed (to bound
	// what one call reads); only no entries at all means the end.
	// The pull handler calls it from one goroutine per request, so calls
	// run concurrently; it may block on disk, never on the network.
	Feed(after uint64, limit int) (entries []Entry, last uint64, err error)
}

// FilteredFeed is a Feed that can leave out the envelopes of entries a
// requester may not see without reading them. The pull server uses it
// when its Feed has it.
type FilteredFeed interface {
	// FeedWhere is Feed, except that it sets Env only for entries for
	// which want(origin, audience) holds; the others come with an empty
	// Env. Every entry's Payload has at least its Origin and Audience.
	FeedWhere(after uint64, limit int, want func(origin string, aud model.Audience) bool) (entries []Entry, last uint64, err error)
}

// Members says who a requesting peer is.
type Members interface {
	// Reader returns the network, region and membership of the node with
	// peer ID p, and false if p is not a node the federation knows. The
	// pull handler calls it once per request, concurrently; it must be fast
	// and not block (read a registry snapshot).
	Reader(p peer.ID) (model.Reader, bool)
}

// Counts says what a Sink did with one batch.
type Counts struct {
	Stored     int // newly stored versions
	Duplicates int // versions already held
	Rejected   int // versions refused (bad signature, unknown or revoked key, outside the audience, malformed...)
	// Reasons counts the refused versions by reason; its values add up
	// to Rejected when every refusal went through Reject.
	Reasons map[Reason]int
}

// Reject counts one refused version.
func (c *Counts) Reject(r Reason) {
	c.Rejected++
	if c.Reasons == nil {
		c.Reasons = map[Reason]int{}
	}
	c.Reasons[r]++
}

// Add adds o's counts to c.
func (c *Counts) Add(o Counts) { c.add(o) }

func (c *Counts) add(o Counts) {
	c.Stored += o.Stored
	c.Duplicates += o.Duplicates
	c.Rejected += o.Rejected
	for r, n := range o.Reasons {
		if c.Reasons == nil {
			c.Reasons = map[Reason]int{}
		}
		c.Reasons[r] += n
	}
}

// Sink receives the envelopes pulled from a peer.
type Sink interface {
	// Store verifies every envelope (signature against the origin
	// network's registered, unrevoked key, whoever relayed it; timestamp;
	// schema; size; audience admits this node) and stores the ones that
	// pass in one durable write, returning once they are on disk. Rejected
	// envelopes are counted, not errors, and the Puller's checkpoint moves
	// past them; a Sink that wants a batch offered again (say, an author
	// key the registry has not replicated yet), or no more from this peer
	// now, returns an error instead. An error means nothing was stored;
	// the Counts returned with it still say what was refused.
	// The Puller calls it once per batch, from the goroutine that called
	// CatchUp; it may block on disk.
	Store(from peer.ID, envs []model.Envelope) (Counts, error)
}

// StagedSink is a Sink that can check a batch apart from storing it, so
// the Puller checks the next batch while the last one is written to disk.
type StagedSink interface {
	Sink
	// Check verifies and counts every envelope as Store does, and returns
	// commit, which stores those that passed and returns once they are on
	// disk, with what storing found (counts to add to Check's). An error
	// means nothing of the batch will be stored, as for Store; commit is
	// then nil. The Puller calls Check from the goroutine that called
	// CatchUp, and commit at most once, from another goroutine, only after
	// the previous batch's commit returned; Check of the next batch may
	// run meanwhile.
	Check(from peer.ID, envs []model.Envelope) (commit func() (Counts, error), c Counts, err error)
}

// Checkpoints keeps how far this node has pulled each peer's feed.
type Checkpoints interface {
	// Checkpoint returns the seq saved for p, or 0 if none was.
	Checkpoint(p peer.ID) (uint64, error)
	// SetCheckpoint saves seq for p and returns once it is on disk. The
	// Puller calls it only after the batch up to seq is stored.
	SetCheckpoint(p peer.ID, seq uint64) error
}

// FeedCheckpoints is Checkpoints that also keep the id of the peer's feed
// each checkpoint counts in. A server's answer names its feed's id (if its
// Feed has one, FeedIdentity); when it is not the one the checkpoint was
// saved in, the peer's feed was started anew (a node restored into a new
// data dir numbers from 1 again) and the Puller pulls it from 0.
type FeedCheckpoints interface {
	Checkpoints
	// CheckpointIn returns the seq saved for p and the feed id it counts
	// in ("" if none was saved with it).
	CheckpointIn(p peer.ID) (seq uint64, feed string, err error)
	// SetCheckpointIn saves both in one write, on disk when it returns.
	SetCheckpointIn(p peer.ID, seq uint64, feed string) error
}

// FeedIdentity is a Feed that names itself: a random id made with the
// feed, which the pull server sends in every end frame.
type FeedIdentity interface {
	FeedID() string
}

// maxFeedID bounds the feed id in an end frame.
const maxFeedID = 64

// pullRequest is the request frame.
type pullRequest struct {
	After uint64 `json:"after"`
	Limit int    `json:"limit"`
	// Own asks for the requester's own network's records instead of the
	// others' (PullOwn). Left out when false, so ordinary requests are
	// byte for byte what they were before it.
	Own bool `json:"own,omitempty"`
}

// PullConfig sets the server's timeouts.
type PullConfig struct {
	// RequestTimeout is how long a requester may take to send its request
	// after opening the stream.
	RequestTimeout time.Duration
	// WriteTimeout is how long writing one frame may take.
	WriteTimeout time.Duration
	// Faults, if set, hears of requesters that sent an oversized or
	// malformed request, or none in time.
	Faults Faults
}

// DefaultPullConfig returns the timeouts a node uses.
func DefaultPullConfig() PullConfig {
	return PullConfig{RequestTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
}

// Validate says what is wrong with c, if anything.
func (c PullConfig) Validate() error {
	if c.RequestTimeout <= 0 {
		return errors.New("sync: the pull request timeout must be positive")
	}
	if c.WriteTimeout <= 0 {
		return errors.New("sync: the pull write timeout must be positive")
	}
	return nil
}

// PullServer answers PullProtocol requests from its Feed, sending each
// requester only what it may see. It has no goroutines of its own: libp2p
// runs Handle on one goroutine per stream.
type PullServer struct {
	feed    Feed
	members Members
	cfg     PullConfig

	served, refused, malformed, failed atomic.Uint64
}

// PullServerStats counts requests by outcome, for metrics.
type PullServerStats struct {
	Served    uint64 // answered with records (possibly none)
	Refused   uint64 // from peers Members does not know or who are not members
	Malformed uint64 // unreadable, oversized or never sent requests
	Failed    uint64 // feed errors and requesters that went away mid-answer
}

// NewPullServer returns a server reading feed and asking members who each
// requester is. The node registers its Handle for PullProtocol, wrapped in
// the gater's GuardStream.
func NewPullServer(feed Feed, members Members, cfg PullConfig) (*PullServer, error) {
	if feed == nil || members == nil {
		return nil, errors.New("sync: a pull server needs a feed and a members list")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &PullServer{feed: feed, members: members, cfg: cfg}, nil
}

// Stats returns the request counts so far.
func (srv *PullServer) Stats() PullServerStats {
	return PullServerStats{
		Served:    srv.served.Load(),
		Refused:   srv.refused.Load(),
		Malformed: srv.malformed.Load(),
		Failed:    srv.failed.Load(),
	}
}

// Handle serves one pull request on s. It is a network.StreamHandler and
// returns when the answer is written or the stream failed; on failure it
// resets the stream.
func (srv *PullServer) Handle(s network.Stream) {
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

func (srv *PullServer) serve(s network.Stream) error {
	from := s.Conn().RemotePeer()
	if err := s.SetReadDeadline(time.Now().Add(srv.cfg.RequestTimeout)); err != nil {
		srv.failed.Add(1)
		return err
	}
	b, err := ReadFrame(bufio.NewReaderSize(s, MaxRequestFrame+binary.MaxVarintLen64), MaxRequestFrame)
	if err != nil {
		srv.malformed.Add(1)
		srv.fault(from, requestFault(err))
		return err
	}
	_ = s.CloseRead() // nothing more is expected from the requester
	w := &frameWriter{s: s, bw: bufio.NewWriterSize(s, 64<<10), timeout: srv.cfg.WriteTimeout}
	var req pullRequest
	if err := decodeRequest(b, &req); err != nil {
		srv.malformed.Add(1)
		srv.fault(from, ReasonMalformedFrame)
		return w.fail(codeBadRequest, err.Error())
	}
	r, ok := srv.members.Reader(from)
	if !ok || !r.Member {
		srv.refused.Add(1)
		return w.fail(codeRefused, "this node serves current federation members only")
	}
	limit := req.Limit
	if limit <= 0 {
		limit = DefaultPullLimit
	}
	limit = min(limit, MaxPullLimit)
	send := sendable
	if req.Own {
		send = sendableOwn
	}
	err = srv.answer(w, r, req.After, limit, send)
	if err != nil {
		srv.failed.Add(1)
		if errors.Is(err, errFeed) {
			return nil // the requester was told, in an error frame
		}
		return err
	}
	srv.served.Add(1)
	return nil
}

// requestFault names what a requester did wrong when its request could not
// be read: too large, not a frame, or not sent in time. A stream the
// requester reset itself (it gave up, or is shutting down) is no fault.
func requestFault(err error) Reason {
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		return ReasonOversizedFrame
	case errors.Is(err, ErrMalformedFrame), errors.Is(err, io.EOF):
		return ReasonMalformedFrame // closed without a (whole) request
	case isTimeout(err):
		return ReasonStalled
	}
	return ""
}

// isTimeout reports whether err is a stream's deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func (srv *PullServer) fault(p peer.ID, r Reason) {
	if r != "" && srv.cfg.Faults != nil {
		srv.cfg.Faults.Fault(p, r)
	}
}

// nextPage is how many entries to ask for after a page: feedPage, or fewer
// when this page's envelopes were large, so that the next one comes to
// about pageBytes (a store may also cut a page by bytes itself; asking for
// fewer spares it reading envelopes it then drops).
func nextPage(entries []Entry) int {
	n, bytes := 0, 0
	for _, e := range entries {
		if e.Env.Payload != nil {
			n++
			bytes += len(e.Env.Payload) + len(e.Env.Sig)
		}
	}
	if n == 0 || bytes/n == 0 {
		return feedPage
	}
	return max(1, min(feedPage, pageBytes/(bytes/n)))
}

// pageBytes is what nextPage aims a page's envelopes at.
const pageBytes = 4 << 20

// feedPage is how many feed entries the server reads at a time at most,
// which bounds what one request holds in memory besides the batch being
// built (512 envelopes of ~1.5 KB: under 1 MB; nextPage asks for fewer
// when envelopes are larger). The store reads a page's wanted
// versions in key order with one iterator (node/store historyCursor), so a
// larger page puts them closer together: 512 rather than 64 took the
// first sync of 100,000 records from ~81 to ~69 µs of CPU a record
// (docs/BENCHMARKS.md, seventh round).
const feedPage = 512

// batchBufs holds batch-frame buffers between answers. A batch grows to
// up to MaxBatchFrame; grown by append from nothing in every answer, it
// was the pull server's largest allocation (several times the bytes sent,
// as append grows a large slice by a quarter at a time). A buffer is
// reused only after its frames are written (frameWriter.frame writes
// and flushes before it returns), so no frame aliases another's bytes.
var batchBufs = stdsync.Pool{New: func() any { return new([]byte) }}

// errFeed means the feed failed before anything was sent, and the
// requester got an error frame.
var errFeed = errors.New("the change feed failed")

// answer scans up to limit feed entries after seq after, writes those r
// may see in batch frames, and then the end frame. It stops early, with
// "more" set in the end frame, once MaxPullBytes would be passed or if the
// feed fails part way.
func (srv *PullServer) answer(w *frameWriter, r model.Reader, after uint64, limit int, sendable func(model.Payload, model.Reader) bool) error {
	last, scanned, total := after, 0, 0
	more := false
	buf := batchBufs.Get().(*[]byte)
	defer batchBufs.Put(buf)
	batch := append((*buf)[:0], kindBatch)
	defer func() { *buf = batch[:0] }() // keep what it grew to for the next answer
	read := srv.feed.Feed
	if ff, ok := srv.feed.(FilteredFeed); ok {
		want := func(origin string, aud model.Audience) bool {
			return sendable(model.Payload{Origin: origin, Audience: aud}, r)
		}
		read = func(after uint64, limit int) ([]Entry, uint64, error) { return ff.FeedWhere(after, limit, want) }
	}
	page := feedPage
scan:
	for scanned < limit {
		ask := min(page, limit-scanned)
		entries, feedLast, err := read(last, ask)
		if err != nil {
			if scanned > 0 {
				more = true // send what was scanned; the next request meets the error
				break
			}
			if err := w.fail(codeUnavailable, "reading the change feed failed"); err != nil {
				return err
			}
			return errFeed
		}
		for _, e := range entries {
			if e.Seq <= last {
				break scan // a broken feed: it must go forwards
			}
			if e.Env.Payload == nil || !sendable(e.Payload, r) {
				// Not for r, or a version whose body its origin took
				// back from this node (no signed bytes left to send).
				scanned++
				last = e.Seq // scanned: the requester's checkpoint moves past it
				continue
			}
			size := envelopeSize(e.Env)
			if size > MaxEnvelopeSize {
				scanned++
				last = e.Seq // cannot be sent to anyone; never block the feed on it
				continue
			}
			if total > 0 && total+size > MaxPullBytes {
				more = true
				break scan
			}
			if len(batch)+binary.MaxVarintLen64+size > MaxBatchFrame {
				if err := w.frame(batch); err != nil {
					return err
				}
				batch = batch[:1]
			}
			// The envelope's MarshalBinary, appended in place.
			batch = binary.AppendUvarint(batch, uint64(size))
			batch = binary.AppendUvarint(batch, uint64(len(e.Env.Payload)))
			batch = append(batch, e.Env.Payload...)
			batch = append(batch, e.Env.Sig...)
			total += size
			scanned++
			last = e.Seq
		}
		if len(entries) == 0 {
			// The end of the feed. (A page shorter than asked is not:
			// a store may end a page early to bound what it reads,
			// node/store FeedPageBytes.)
			last = max(last, feedLast)
			break
		}
		page = nextPage(entries)
		more = scanned >= limit
	}
	if len(batch) > 1 {
		if err := w.frame(batch); err != nil {
			return err
		}
	}
	end := binary.AppendUvarint([]byte{kindEnd}, last)
	if more {
		end = append(end, 1)
	} else {
		end = append(end, 0)
	}
	if fi, ok := srv.feed.(FeedIdentity); ok {
		if id := fi.FeedID(); len(id) <= maxFeedID {
			end = append(end, id...)
		}
	}
	return w.frame(end)
}

// envelopeSize is the length of env.MarshalBinary().
func envelopeSize(env model.Envelope) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(len(env.Payload))) + len(env.Payload) + len(env.Sig)
}

// sendable reports whether a record may go to reader r: its audience admits
// r (never true for private records or non-members), and r's network is
// not its origin, which holds its own records already.
func sendable(p model.Payload, r model.Reader) bool {
	return p.Origin != r.Network && p.Audience.Admits(r)
}

// sendableOwn is sendable for an "own" request (PullOwn): every version
// of the requester's own network's records this node holds. They came
// from that network, shared with this one, so sending them back shows
// the requester nothing it did not write; a node never holds another
// network's private versions, and those whose body was taken back have
// no signed bytes to send.
func sendableOwn(p model.Payload, r model.Reader) bool {
	return p.Origin == r.Network
}

func decodeRequest(b []byte, req *pullRequest) error {
	if !utf8.Valid(b) { // encoding/json would read invalid bytes as U+FFFD
		return errors.New("the request is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		return fmt.Errorf("the request is not {\"after\":SEQ,\"limit\":N}: %v", err)
	}
	if dec.More() {
		return errors.New("the request has data after its JSON value")
	}
	if req.Limit < 0 {
		return fmt.Errorf("the request's limit %d is negative", req.Limit)
	}
	return nil
}

// frameWriter writes frames to a stream, each under its own write deadline.
type frameWriter struct {
	s       network.Stream
	bw      *bufio.Writer
	timeout time.Duration
}

func (w *frameWriter) frame(b []byte) error {
	if err := w.s.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return err
	}
	if err := WriteFrame(w.bw, b, MaxBatchFrame); err != nil {
		return err
	}
	return w.bw.Flush()
}

// fail writes an error frame; the stream is then closed, not reset, so
// the requester reads the reason.
func (w *frameWriter) fail(code uint64, msg string) error {
	return w.frame(append(binary.AppendUvarint([]byte{kindError}, code), msg...))
}

// Batch is one answer to a pull request.
type Batch struct {
	// Envelopes are the versions the server sent, in its feed order,
	// unverified: give them to a Sink.
	Envelopes []model.Envelope
	// Last is the server's feed seq this answer covers: ask from it next
	// time, once Envelopes are stored. It moves past records this node may
	// not see.
	Last uint64
	// More is true when the server stopped before the end of its feed.
	More bool
	// FeedID names the server's feed ("" if it sent none): Last counts
	// in it (FeedCheckpoints).
	FeedID string
}

// Pull asks peer p for its change feed after seq after, at most
// DefaultPullLimit entries scanned, and returns what p sent. It does not
// verify or store anything: Puller does, through a Sink. It honours ctx's
// cancellation and deadline, and gives up after DefaultPullTimeout in any
// case, and resets the stream on any error. An answer not complete by
// the deadline fails with ErrStalled.
func Pull(ctx context.Context, h host.Host, p peer.ID, after uint64) (Batch, error) {
	return pull(ctx, h, p, after, DefaultPullLimit, DefaultPullTimeout)
}

// PullOwn asks peer p for the versions of this node's own network's
// records it holds, scanning its feed after seq after (DefaultPullLimit
// entries at most), as Pull does otherwise. A restoring node uses it to
// get back what its network shared before it lost its store. A peer
// whose pull server predates it answers ErrBadRequest.
func PullOwn(ctx context.Context, h host.Host, p peer.ID, after uint64) (Batch, error) {
	return pullReq(ctx, h, p, pullRequest{After: after, Limit: DefaultPullLimit, Own: true}, DefaultPullTimeout)
}

func pull(ctx context.Context, h host.Host, p peer.ID, after uint64, limit int, timeout time.Duration) (Batch, error) {
	return pullReq(ctx, h, p, pullRequest{After: after, Limit: limit}, timeout)
}

func pullReq(ctx context.Context, h host.Host, p peer.ID, r pullRequest, timeout time.Duration) (Batch, error) {
	after, limit := r.After, r.Limit
	req, err := json.Marshal(r)
	if err != nil {
		return Batch{}, err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := h.NewStream(ctx, p, PullProtocol)
	if err != nil {
		return Batch{}, fmt.Errorf("pull from %s: open stream: %w", p, err)
	}
	b, err := readAnswer(ctx, s, req, after, limit)
	if err != nil {
		_ = s.Reset()
		switch {
		case (errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err)) && !errors.Is(parent.Err(), context.Canceled):
			// The peer took the whole time allowed: whatever the read
			// said (the stream's deadline, which may pass a moment
			// before ctx's, or the reset that ends it), it stalled.
			err = fmt.Errorf("%w: no complete answer within %s (%w)", ErrStalled, timeout, err)
		case ctx.Err() != nil:
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return Batch{}, fmt.Errorf("pull from %s after %d: %w", p, after, err)
	}
	_ = s.Close()
	return b, nil
}

// readAnswer sends req on s and reads the answer, bounded by the limits.
func readAnswer(ctx context.Context, s network.Stream, req []byte, after uint64, limit int) (Batch, error) {
	deadline, _ := ctx.Deadline()
	if err := s.SetDeadline(deadline); err != nil {
		return Batch{}, err
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if err := WriteFrame(s, req, MaxRequestFrame); err != nil {
		return Batch{}, fmt.Errorf("send request: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return Batch{}, fmt.Errorf("send request: %w", err)
	}
	br := bufio.NewReaderSize(s, 64<<10)
	var out Batch
	total := 0
	for {
		f, err := ReadFrame(br, MaxBatchFrame)
		if err == io.EOF {
			return Batch{}, fmt.Errorf("%w: the answer ended without an end frame", ErrProtocol)
		}
		if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrMalformedFrame) {
			return Batch{}, fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		if err != nil {
			return Batch{}, fmt.Errorf("read the answer: %w", err) // the stream's own: a reset, a deadline
		}
		if len(f) == 0 {
			return Batch{}, fmt.Errorf("%w: empty frame", ErrProtocol)
		}
		switch f[0] {
		case kindBatch:
			envs, n, err := decodeBatch(f[1:])
			if err != nil {
				return Batch{}, err
			}
			total += n
			out.Envelopes = append(out.Envelopes, envs...)
			if len(out.Envelopes) > limit || (total > MaxPullBytes && len(out.Envelopes) > 1) {
				return Batch{}, fmt.Errorf("%w: the answer is larger than asked for", ErrProtocol)
			}
		case kindEnd:
			last, k := binary.Uvarint(f[1:])
			if k <= 0 || len(f) < 1+k+1 || len(f) > 1+k+1+maxFeedID || f[1+k] > 1 {
				return Batch{}, fmt.Errorf("%w: malformed end frame", ErrProtocol)
			}
			more := f[1+k] == 1
			out.FeedID = string(f[1+k+1:])
			if !utf8.ValidString(out.FeedID) {
				return Batch{}, fmt.Errorf("%w: malformed end frame", ErrProtocol)
			}
			if last < after || (last == after && (len(out.Envelopes) > 0 || more)) {
				return Batch{}, fmt.Errorf("%w: the end frame names seq %d, asked after %d", ErrProtocol, last, after)
			}
			out.Last, out.More = last, more
			if _, err := ReadFrame(br, 0); err != io.EOF {
				return Batch{}, fmt.Errorf("%w: data after the end frame", ErrProtocol)
			}
			return out, nil
		case kindError:
			code, k := binary.Uvarint(f[1:])
			if k <= 0 {
				return Batch{}, fmt.Errorf("%w: malformed error frame", ErrProtocol)
			}
			return Batch{}, fmt.Errorf("%w: %q", errForCode(code), peerText(f[1+k:]))
		default:
			return Batch{}, fmt.Errorf("%w: unknown frame kind %#x", ErrProtocol, f[0])
		}
	}
}

// decodeBatch splits a batch frame's body into envelopes. They alias b.
func decodeBatch(b []byte) ([]model.Envelope, int, error) {
	if len(b) == 0 {
		return nil, 0, fmt.Errorf("%w: empty batch", ErrProtocol)
	}
	var envs []model.Envelope
	total := 0
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k > 0 && n > MaxEnvelopeSize {
			return nil, 0, fmt.Errorf("%w: an envelope of %d bytes in a batch (at most %d): %w", ErrProtocol, n, MaxEnvelopeSize, ErrFrameTooLarge)
		}
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, 0, fmt.Errorf("%w: bad envelope length in batch", ErrProtocol)
		}
		var env model.Envelope
		if err := env.UnmarshalBinary(b[k : k+int(n)]); err != nil {
			return nil, 0, fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		envs = append(envs, env)
		total += int(n)
		b = b[k+int(n):]
	}
	return envs, total, nil
}

// peerText makes a message from a peer safe to show: valid UTF-8, at most
// 200 bytes.
func peerText(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(bytes.ToValidUTF8(b, []byte(string(utf8.RuneError))))
}

// Puller catches up with peers' change feeds: it pulls, stores each batch
// through Sink, and only then advances the peer's checkpoint (CouchDB's
// rule), so a crash at any point loses nothing and at worst pulls a batch
// again (stores are idempotent). Set the fields, then call CatchUp; it is
// safe for concurrent use, and calls for one peer run one at a time.
type Puller struct {
	Host        host.Host
	Sink        Sink
	Checkpoints Checkpoints
	// Limit is the number of feed entries each request asks the peer to
	// scan; DefaultPullLimit if 0.
	Limit int
	// Timeout bounds each request, from opening the stream to the end
	// frame; DefaultPullTimeout if 0. A peer that takes longer has
	// stalled (ErrStalled).
	Timeout time.Duration
	// Gate, if set, may forbid pulling from a peer for now.
	Gate Gate

	mu   stdsync.Mutex
	busy map[peer.ID]chan struct{}
}

// Gate says whether this node pulls from a peer now.
type Gate interface {
	// MayPull returns nil if this node may pull from p now, or an error
	// saying why not (say, p was dropped for sending forged records).
	// CatchUp calls it once, first; it must be fast and not block.
	MayPull(p peer.ID) error
}

// PullStats says what one CatchUp did.
type PullStats struct {
	Requests int    // pull requests answered
	Received int    // envelopes received
	From, To uint64 // checkpoint before and after
	// Restarted: the peer's feed was not the one the checkpoint counted
	// in (FeedCheckpoints), so this pull started again from 0.
	Restarted bool
	Counts    // what Sink did with them
}

// CatchUp pulls from p until p's feed has nothing more after this node's
// checkpoint for it. On error, the checkpoint stays at the last batch
// stored, and stats say what was done.
func (pl *Puller) CatchUp(ctx context.Context, p peer.ID) (PullStats, error) {
	var st PullStats
	if pl.Host == nil || pl.Sink == nil || pl.Checkpoints == nil {
		return st, errors.New("sync: a Puller needs a host, a sink and checkpoints")
	}
	if pl.Gate != nil {
		if err := pl.Gate.MayPull(p); err != nil {
			return st, fmt.Errorf("pull from %s: %w", p, err)
		}
	}
	release, err := pl.acquire(ctx, p)
	if err != nil {
		return st, err
	}
	defer release()
	fc, _ := pl.Checkpoints.(FeedCheckpoints)
	var after uint64
	var feed string // the id of p's feed that after counts in
	if fc != nil {
		after, feed, err = fc.CheckpointIn(p)
	} else {
		after, err = pl.Checkpoints.Checkpoint(p)
	}
	if err != nil {
		return st, fmt.Errorf("pull from %s: %w", p, err)
	}
	st.From, st.To = after, after
	limit := pl.Limit
	if limit <= 0 {
		limit = DefaultPullLimit
	}
	timeout := pl.Timeout
	if timeout <= 0 {
		timeout = DefaultPullTimeout
	}
	// Three batches are in hand at once: while one is checked, the request
	// for the next is on its way (from the checked batch's last seq, which
	// becomes the checkpoint only once that batch is stored), and the one
	// before is being written with a StagedSink's commit, then its
	// checkpoint saved. A batch is written only after the one before it is
	// stored and its checkpoint saved; CatchUp returns only once nothing
	// is being written. If checking or storing fails, the answer asked for
	// meanwhile is dropped unread.
	staged, _ := pl.Sink.(StagedSink)
	pctx, cancel := context.WithCancel(ctx)
	var next chan pulled
	var writing chan written
	var writingSeq uint64
	wrote := func() error {
		if writing == nil {
			return nil
		}
		w := <-writing
		writing = nil
		st.add(w.c)
		if w.err != nil {
			return w.err
		}
		st.To = writingSeq
		return nil
	}
	fail := func(err error) (PullStats, error) {
		if e := wrote(); e != nil {
			err = errors.Join(err, e)
		}
		return st, err
	}
	defer func() {
		cancel()
		if next != nil {
			<-next // the request goroutine is done before CatchUp returns
		}
	}()
	fetch := func(after uint64) chan pulled {
		ch := make(chan pulled, 1)
		go func() {
			b, err := pull(pctx, pl.Host, p, after, limit, timeout)
			ch <- pulled{b, err}
		}()
		return ch
	}
	next = fetch(after)
	for {
		r := <-next
		next = nil
		if r.err != nil {
			return fail(r.err)
		}
		b := r.b
		st.Requests++
		if fc != nil && b.FeedID != "" && b.FeedID != feed {
			if feed != "" && after != 0 {
				// p's feed was started anew since the checkpoint: what
				// came counts in the new one from after, which is not
				// where this node stopped. Pull it all from 0.
				feed, after, st.From, st.To = b.FeedID, 0, 0, 0
				st.Restarted = true
				next = fetch(0)
				continue
			}
			feed = b.FeedID
		}
		st.Received += len(b.Envelopes)
		if b.More {
			next = fetch(b.Last)
		}
		var commit func() (Counts, error)
		if len(b.Envelopes) > 0 {
			var c Counts
			var err error
			if staged != nil {
				commit, c, err = staged.Check(p, b.Envelopes)
			} else {
				c, err = pl.Sink.Store(p, b.Envelopes)
			}
			st.add(c) // on error too: what it refused is still told
			if err != nil {
				return fail(fmt.Errorf("store records pulled from %s: %w", p, err))
			}
		}
		if err := wrote(); err != nil {
			return st, err
		}
		if commit != nil || b.Last != after {
			ch := make(chan written, 1)
			writing, writingSeq = ch, b.Last
			go func(from, seq uint64, feed string) { ch <- pl.write(p, commit, from, seq, feed) }(after, b.Last, feed)
			after = b.Last
		}
		if !b.More {
			return fail(nil)
		}
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
	}
}

// write stores a checked batch with commit (if any), then saves the
// checkpoint seq if it moved from from.
func (pl *Puller) write(p peer.ID, commit func() (Counts, error), from, seq uint64, feed string) written {
	var w written
	if commit != nil {
		w.c, w.err = commit()
		if w.err != nil {
			w.err = fmt.Errorf("store records pulled from %s: %w", p, w.err)
			return w
		}
	}
	if seq != from {
		var err error
		if fc, ok := pl.Checkpoints.(FeedCheckpoints); ok {
			err = fc.SetCheckpointIn(p, seq, feed)
		} else {
			err = pl.Checkpoints.SetCheckpoint(p, seq)
		}
		if err != nil {
			w.err = fmt.Errorf("pull from %s: %w", p, err)
		}
	}
	return w
}

// written is what writing one batch did.
type written struct {
	c   Counts
	err error
}

// pulled is the outcome of one pull request.
type pulled struct {
	b   Batch
	err error
}

// acquire waits until no other CatchUp for p runs, or ctx ends.
func (pl *Puller) acquire(ctx context.Context, p peer.ID) (func(), error) {
	pl.mu.Lock()
	if pl.busy == nil {
		pl.busy = make(map[peer.ID]chan struct{})
	}
	ch, ok := pl.busy[p]
	if !ok {
		ch = make(chan struct{}, 1)
		pl.busy[p] = ch
	}
	pl.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
