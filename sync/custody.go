package sync

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/inpud/cairn/model"
)

// CustodyProtocol carries custody copies (DESIGN §5): a network's nodes
// push every version of their own records, private ones included, to the
// nodes of the networks it chose as custodians, sealed under its archive
// key; the custodians keep the blobs and give them back, and cannot read
// them.
//
// The requester opens a stream, writes one request frame (at most
// MaxBatchFrame bytes) and closes its write side; the server answers with
// one frame and closes the stream. Request frames start with a kind byte:
//
//	'p' push: uvarint through (the requester's feed seq the batch reaches),
//	    uvarint n (at most MaxCustodyBlobs), then n blobs, each a uvarint
//	    length and the blob (see Blob)
//	'f' fetch: uvarint after, uvarint limit, then the origin network's slug
//	's' status: nothing more
//
// Answers:
//
//	'a' push ack: uvarint stored, uvarint duplicates, uvarint held, uvarint through
//	'b' fetch batch: uvarint last, byte more (1: ask again from last),
//	    uvarint n, then n blobs as in a push
//	's' status: uvarint held, uvarint through
//	'x' error: uvarint code (as in PullProtocol), then a short UTF-8 message
//
// A push is taken only from a current member node whose network names
// this node's network among its custodians in the registry, and every blob
// in it must be of that network; the server keeps the whole batch in one
// durable write before it acks. "held" counts the blobs the server keeps
// for the requester's network, "through" is the highest feed seq the
// requesting node has had acknowledged. A fetch is served to a node of the
// origin network (or, after a handover, of its steward network; the
// node's CustodyPolicy decides), with the blobs in the order the server
// first stored them, after the server's own position after.
const CustodyProtocol protocol.ID = "/cairn/custody/1"

// Custody limits.
const (
	// MaxCustodyBlobs is the most blobs one push or fetch answer carries.
	MaxCustodyBlobs = 500
	// MaxBlobSize is the largest blob: the largest envelope, sealed, with
	// its clear header.
	MaxBlobSize = MaxEnvelopeSize + 512
	// DefaultCustodyTimeout bounds one exchange when its context has no
	// deadline.
	DefaultCustodyTimeout = time.Minute
)

// Errors a custody exchange can end with. A server's refusal crosses the
// stream as a code, so errors.Is works on the requester's side.
var (
	// ErrCustodyRefused: the server does not keep (or give back) custody
	// copies for this node's network.
	ErrCustodyRefused = errors.New("the peer refused: its network is not a custodian of this node's network, or this node may not fetch those copies")
	// ErrCustodyBad: the server could not read the request.
	ErrCustodyBad = errors.New("the peer could not read the custody request")
	// ErrCustodyUnavailable: the server failed to keep or read blobs.
	ErrCustodyUnavailable = errors.New("the peer could not keep or read custody copies")
	// ErrCustodyProtocol: the peer answered with something the custody
	// protocol does not allow.
	ErrCustodyProtocol = errors.New("the peer broke the custody protocol")
)

func custodyErrForCode(c uint64) error {
	switch c {
	case codeRefused:
		return ErrCustodyRefused
	case codeBadRequest:
		return ErrCustodyBad
	case codeUnavailable:
		return ErrCustodyUnavailable
	}
	return fmt.Errorf("%w: unknown error code %d", ErrCustodyProtocol, c)
}

// Custody frame kinds (requests and answers; 'x' is kindError).
const (
	kindPush        = 'p'
	kindFetch       = 'f'
	kindStatus      = 's'
	kindPushAck     = 'a'
	kindFetchBatch  = 'b'
	kindStatusReply = 's'
)

// ---- Blobs ----

// Blob is one sealed version of a record: a clear header (format byte 1,
// uvarint length and origin slug, the 26-character record id, uvarint
// version, a 16-byte tag and an 8-byte key id), then a 24-byte nonce and
// the XChaCha20-Poly1305 ciphertext of the envelope
// (model.Envelope.MarshalBinary), with the header as additional data. The
// whole envelope, its body, audience, author and signature, is sealed; only
// what the header names travels in clear.
//
// The tag is a keyed digest of the envelope, so two versions with the same
// number (concurrent writes by two nodes) stay apart, and the custodian
// cannot test a guess of the contents against it. The nonce is derived
// from the envelope under the key too, so sealing one version twice gives
// the same blob, and a repeated push is recognised; equal blobs reveal only
// that a version was sent twice. The key id names the archive key (a
// one-way digest of it), so a node can tell the blobs its key opens.
type Blob []byte

// BlobHeader is the clear part of a blob.
type BlobHeader struct {
	Origin  string
	ID      string
	Version uint64
	Tag     string // 32 hex digits
	KeyID   string // 16 hex digits
}

const (
	blobFormat = 1
	tagSize    = 16
	keyIDSize  = 8
)

// ArchiveKey seals and opens blobs. Make it with NewArchiveKey.
type ArchiveKey struct {
	seal  []byte
	mac   []byte
	keyID [keyIDSize]byte
}

// NewArchiveKey derives the sealing, digest and id keys from a network's
// 32-byte archive key (HKDF-SHA256, one label each).
func NewArchiveKey(key []byte) (*ArchiveKey, error) {
	if len(key) != chacha20poly1305.KeySize {
		return nil, fmt.Errorf("an archive key has %d bytes, not %d", chacha20poly1305.KeySize, len(key))
	}
	derive := func(label string, n int) ([]byte, error) {
		return hkdf.Key(sha256.New, key, nil, "cairn custody/1 "+label, n)
	}
	seal, err := derive("seal", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	mac, err := derive("tag", 32)
	if err != nil {
		return nil, err
	}
	id, err := derive("key id", keyIDSize)
	if err != nil {
		return nil, err
	}
	k := &ArchiveKey{seal: seal, mac: mac}
	copy(k.keyID[:], id)
	return k, nil
}

// ID is the key id blobs sealed with k carry (16 hex digits).
func (k *ArchiveKey) ID() string { return hex.EncodeToString(k.keyID[:]) }

// Seal seals one version of a record of network origin. p must be env's
// payload (env.Open()).
func (k *ArchiveKey) Seal(origin string, env model.Envelope, p model.Payload) (Blob, error) {
	if p.Origin != origin || !model.ValidSlug(origin) || model.ValidateID(p.ID) != nil || p.Version == 0 {
		return nil, fmt.Errorf("seal a custody copy: version %d of %q from %q is not a version of a record of %s", p.Version, p.ID, p.Origin, origin)
	}
	plain, err := env.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("seal a custody copy of %s: %w", p.ID, err)
	}
	m := hmac.New(sha512.New, k.mac)
	m.Write(plain)
	sum := m.Sum(nil)
	b := []byte{blobFormat}
	b = binary.AppendUvarint(b, uint64(len(origin)))
	b = append(b, origin...)
	b = append(b, p.ID...)
	b = binary.AppendUvarint(b, p.Version)
	b = append(b, sum[:tagSize]...)
	b = append(b, k.keyID[:]...)
	hdr := len(b)
	nonce := sum[tagSize : tagSize+chacha20poly1305.NonceSizeX]
	b = append(b, nonce...)
	aead, err := chacha20poly1305.NewX(k.seal)
	if err != nil {
		return nil, err
	}
	b = aead.Seal(b, nonce, plain, b[:hdr])
	if len(b) > MaxBlobSize {
		return nil, fmt.Errorf("seal a custody copy of %s: %d bytes, more than %d", p.ID, len(b), MaxBlobSize)
	}
	return Blob(b), nil
}

// Open opens a blob sealed with k and returns the envelope, exactly the
// bytes that were sealed. It fails for a blob sealed with another key, or
// changed in any byte, and checks that the envelope is the version the
// header names.
func (k *ArchiveKey) Open(b Blob) (model.Envelope, BlobHeader, error) {
	h, hdr, err := parseBlob(b)
	if err != nil {
		return model.Envelope{}, h, err
	}
	if h.KeyID != k.ID() {
		return model.Envelope{}, h, fmt.Errorf("open custody copy of %s version %d: it was sealed with archive key %s, not this node's %s", h.ID, h.Version, h.KeyID, k.ID())
	}
	aead, err := chacha20poly1305.NewX(k.seal)
	if err != nil {
		return model.Envelope{}, h, err
	}
	nonce := b[hdr : hdr+chacha20poly1305.NonceSizeX]
	plain, err := aead.Open(nil, nonce, b[hdr+chacha20poly1305.NonceSizeX:], b[:hdr])
	if err != nil {
		return model.Envelope{}, h, fmt.Errorf("open custody copy of %s version %d: it does not open with this archive key (changed or damaged)", h.ID, h.Version)
	}
	var env model.Envelope
	if err := env.UnmarshalBinary(plain); err != nil {
		return model.Envelope{}, h, fmt.Errorf("open custody copy of %s version %d: %w", h.ID, h.Version, err)
	}
	p, err := env.Open()
	if err != nil {
		return model.Envelope{}, h, fmt.Errorf("open custody copy of %s version %d: %w", h.ID, h.Version, err)
	}
	if p.ID != h.ID || p.Version != h.Version || p.Origin != h.Origin {
		return model.Envelope{}, h, fmt.Errorf("open custody copy of %s version %d: it holds version %d of %s from %s", h.ID, h.Version, p.Version, p.ID, p.Origin)
	}
	return env, h, nil
}

// ErrBadBlob means bytes are not a blob.
var ErrBadBlob = errors.New("not a custody blob")

// Header reads the clear header of a blob and checks its form; it does
// not (cannot) check the ciphertext.
func (b Blob) Header() (BlobHeader, error) {
	h, _, err := parseBlob(b)
	return h, err
}

func parseBlob(b []byte) (BlobHeader, int, error) {
	var h BlobHeader
	if len(b) > MaxBlobSize {
		return h, 0, fmt.Errorf("%w: %d bytes, more than %d", ErrBadBlob, len(b), MaxBlobSize)
	}
	if len(b) < 1 || b[0] != blobFormat {
		return h, 0, fmt.Errorf("%w: unknown format", ErrBadBlob)
	}
	i := 1
	l, n := binary.Uvarint(b[i:])
	if n <= 0 || l == 0 || l > 64 || uint64(len(b)-i-n) < l {
		return h, 0, fmt.Errorf("%w: bad origin", ErrBadBlob)
	}
	i += n
	h.Origin = string(b[i : i+int(l)])
	i += int(l)
	if !model.ValidSlug(h.Origin) || len(b)-i < 26 {
		return h, 0, fmt.Errorf("%w: bad origin", ErrBadBlob)
	}
	h.ID = string(b[i : i+26])
	i += 26
	if model.ValidateID(h.ID) != nil {
		return h, 0, fmt.Errorf("%w: bad record id", ErrBadBlob)
	}
	v, n := binary.Uvarint(b[i:])
	if n <= 0 || v == 0 {
		return h, 0, fmt.Errorf("%w: bad version", ErrBadBlob)
	}
	i += n
	h.Version = v
	if len(b)-i < tagSize+keyIDSize+chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return h, 0, fmt.Errorf("%w: too short", ErrBadBlob)
	}
	h.Tag = hex.EncodeToString(b[i : i+tagSize])
	i += tagSize
	h.KeyID = hex.EncodeToString(b[i : i+keyIDSize])
	i += keyIDSize
	return h, i, nil
}

// ---- Server ----

// CustodyAck is the server's answer to a push.
type CustodyAck struct {
	Stored     int    // blobs newly kept
	Duplicates int    // blobs it held already
	Held       uint64 // blobs it keeps for the pushing node's network, in all
	Through    uint64 // the highest feed seq the pushing node has had acknowledged
}

// CustodyHolding is what a server keeps for one network, as seen by one
// of its nodes.
type CustodyHolding struct {
	Held    uint64 // blobs of the network
	Through uint64 // the highest feed seq acknowledged to the asking node
}

// CustodyBatch is one answer to a fetch.
type CustodyBatch struct {
	Blobs []Blob
	Last  uint64 // the server's position after these blobs: fetch again after it
	More  bool   // the server stopped before its last blob
}

// CustodyStore keeps the blobs a CustodyServer accepts. The handler calls
// its methods from one goroutine per stream, concurrently; they may block
// on disk, never on the network.
type CustodyStore interface {
	// Keep stores blobs (each checked to be of origin) in one durable
	// write, idempotently, and records that node from had its feed
	// acknowledged through seq through.
	Keep(origin string, from peer.ID, through uint64, blobs []Blob) (CustodyAck, error)
	// Blobs returns origin's blobs after position after, in the order
	// first stored, at most limit and about maxBytes of them (always one
	// if there is one), the position of the last one returned (after if
	// none) and whether more follow.
	Blobs(origin string, after uint64, limit, maxBytes int) (CustodyBatch, error)
	// Holding says what the store keeps for origin, and how far node
	// from's pushes reach.
	Holding(origin string, from peer.ID) (CustodyHolding, error)
}

// CustodyPolicy says whom a custodian serves. Its methods are called once
// per request, concurrently, and must not block (read a registry
// snapshot).
type CustodyPolicy interface {
	// Keeps reports whether this node's network is one of network's
	// custodians.
	Keeps(network string) bool
	// MayFetch reports whether a node of network requester may fetch the
	// custody copies of network origin.
	MayFetch(requester, origin string) bool
}

// CustodyServerStats counts requests by outcome, for metrics.
type CustodyServerStats struct {
	Pushes    uint64 // pushes acknowledged
	Fetches   uint64 // fetches answered
	Statuses  uint64 // status requests answered
	Refused   uint64 // from nodes the policy or membership refuses
	Malformed uint64 // unreadable, oversized or never sent requests
	Failed    uint64 // store errors and requesters that went away
	Stored    uint64 // blobs newly kept
}

// CustodyServer answers CustodyProtocol. It has no goroutines of its own:
// libp2p runs Handle on one goroutine per stream.
type CustodyServer struct {
	members Members
	policy  CustodyPolicy
	store   CustodyStore
	cfg     PullConfig

	pushes, fetches, statuses, refused, malformed, failed, stored atomic.Uint64
}

// NewCustodyServer returns a server asking members who each requester is
// and policy whom to serve, keeping blobs in store, with cfg's timeouts
// (the read timeout bounds the whole request); cfg.Faults, if set, hears
// of requesters that sent an oversized or malformed request, or none in
// time (faults.go). The node registers its
// Handle for CustodyProtocol, wrapped in the gater's GuardStream.
func NewCustodyServer(members Members, policy CustodyPolicy, store CustodyStore, cfg PullConfig) (*CustodyServer, error) {
	if members == nil || policy == nil || store == nil {
		return nil, errors.New("sync: a custody server needs a members list, a policy and a store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &CustodyServer{members: members, policy: policy, store: store, cfg: cfg}, nil
}

// Stats returns the counts so far.
func (srv *CustodyServer) Stats() CustodyServerStats {
	return CustodyServerStats{
		Pushes: srv.pushes.Load(), Fetches: srv.fetches.Load(), Statuses: srv.statuses.Load(),
		Refused: srv.refused.Load(), Malformed: srv.malformed.Load(), Failed: srv.failed.Load(), Stored: srv.stored.Load(),
	}
}

// Handle serves one request on s; it resets the stream on failure.
func (srv *CustodyServer) Handle(s network.Stream) {
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

func (srv *CustodyServer) serve(s network.Stream) error {
	from := s.Conn().RemotePeer()
	if err := s.SetReadDeadline(time.Now().Add(srv.cfg.RequestTimeout)); err != nil {
		srv.failed.Add(1)
		return err
	}
	b, err := ReadFrame(bufio.NewReaderSize(s, 64<<10), MaxBatchFrame)
	if err != nil {
		srv.malformed.Add(1)
		srv.fault(from, requestFault(err))
		return err
	}
	_ = s.CloseRead()
	w := &frameWriter{s: s, bw: bufio.NewWriterSize(s, 64<<10), timeout: srv.cfg.WriteTimeout}
	if len(b) == 0 {
		srv.bad(from)
		return w.fail(codeBadRequest, "the request is empty")
	}
	r, ok := srv.members.Reader(from)
	if !ok || !r.Member {
		srv.refused.Add(1)
		return w.fail(codeRefused, "this node serves custody requests from current federation members only")
	}
	switch b[0] {
	case kindPush:
		return srv.push(w, r.Network, from, b[1:])
	case kindFetch:
		return srv.fetch(w, r.Network, from, b[1:])
	case kindStatus:
		if len(b) != 1 {
			srv.bad(from)
			return w.fail(codeBadRequest, "a status request carries nothing more")
		}
		hold, err := srv.store.Holding(r.Network, from)
		if err != nil {
			srv.failed.Add(1)
			return w.fail(codeUnavailable, "reading the custody copies failed")
		}
		srv.statuses.Add(1)
		f := binary.AppendUvarint([]byte{kindStatusReply}, hold.Held)
		return w.frame(binary.AppendUvarint(f, hold.Through))
	}
	srv.bad(from)
	return w.fail(codeBadRequest, fmt.Sprintf("unknown request kind %#x", b[0]))
}

// bad counts a request that is not one of the custody protocol's, and
// reports it against from as a malformed frame (faults.go).
func (srv *CustodyServer) bad(from peer.ID) {
	srv.malformed.Add(1)
	srv.fault(from, ReasonMalformedFrame)
}

func (srv *CustodyServer) fault(from peer.ID, r Reason) { reportFault(srv.cfg.Faults, from, r) }

func (srv *CustodyServer) push(w *frameWriter, origin string, from peer.ID, b []byte) error {
	through, blobs, err := decodePush(b)
	if err != nil {
		srv.bad(from)
		return w.fail(codeBadRequest, err.Error())
	}
	if !srv.policy.Keeps(origin) {
		srv.refused.Add(1)
		return w.fail(codeRefused, "this node's network is not a custodian of "+origin)
	}
	for _, bl := range blobs {
		h, err := bl.Header()
		if err != nil {
			srv.bad(from)
			return w.fail(codeBadRequest, err.Error())
		}
		if h.Origin != origin {
			srv.refused.Add(1)
			return w.fail(codeRefused, fmt.Sprintf("a node of %s pushed a copy of a record of %s", origin, h.Origin))
		}
	}
	ack, err := srv.store.Keep(origin, from, through, blobs)
	if err != nil {
		srv.failed.Add(1)
		return w.fail(codeUnavailable, "keeping the custody copies failed")
	}
	f := binary.AppendUvarint([]byte{kindPushAck}, uint64(ack.Stored))
	f = binary.AppendUvarint(f, uint64(ack.Duplicates))
	f = binary.AppendUvarint(f, ack.Held)
	f = binary.AppendUvarint(f, ack.Through)
	if err := w.frame(f); err != nil {
		srv.failed.Add(1)
		return err
	}
	srv.pushes.Add(1)
	srv.stored.Add(uint64(ack.Stored))
	return nil
}

func (srv *CustodyServer) fetch(w *frameWriter, requester string, from peer.ID, b []byte) error {
	after, n := binary.Uvarint(b)
	if n <= 0 {
		srv.bad(from)
		return w.fail(codeBadRequest, "the fetch request has no position")
	}
	limit, k := binary.Uvarint(b[n:])
	origin := string(b[n+max(k, 0):])
	if k <= 0 || !model.ValidSlug(origin) {
		srv.bad(from)
		return w.fail(codeBadRequest, "the fetch request is not a position, a limit and a network slug")
	}
	if !srv.policy.MayFetch(requester, origin) {
		srv.refused.Add(1)
		return w.fail(codeRefused, fmt.Sprintf("a node of %s may not fetch the custody copies of %s", requester, origin))
	}
	if limit == 0 || limit > MaxCustodyBlobs {
		limit = MaxCustodyBlobs
	}
	batch, err := srv.store.Blobs(origin, after, int(limit), MaxBatchFrame-1024)
	if err != nil {
		srv.failed.Add(1)
		return w.fail(codeUnavailable, "reading the custody copies failed")
	}
	f := binary.AppendUvarint([]byte{kindFetchBatch}, batch.Last)
	more := byte(0)
	if batch.More {
		more = 1
	}
	f = append(f, more)
	f = appendBlobs(f, batch.Blobs)
	if len(f) > MaxBatchFrame {
		srv.failed.Add(1)
		return w.fail(codeUnavailable, "the custody copies do not fit in one answer")
	}
	if err := w.frame(f); err != nil {
		srv.failed.Add(1)
		return err
	}
	srv.fetches.Add(1)
	return nil
}

func appendBlobs(f []byte, blobs []Blob) []byte {
	f = binary.AppendUvarint(f, uint64(len(blobs)))
	for _, bl := range blobs {
		f = binary.AppendUvarint(f, uint64(len(bl)))
		f = append(f, bl...)
	}
	return f
}

// readBlobs reads what appendBlobs wrote and requires the end of b after it.
func readBlobs(b []byte) ([]Blob, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > MaxCustodyBlobs {
		return nil, fmt.Errorf("the blob count is missing or above %d", MaxCustodyBlobs)
	}
	b = b[k:]
	out := make([]Blob, 0, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > MaxBlobSize || uint64(len(b)-k) < l {
			return nil, errors.New("a blob's length is missing, above the limit or past the end")
		}
		out = append(out, Blob(bytes.Clone(b[k:k+int(l)])))
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, errors.New("data after the last blob")
	}
	return out, nil
}

func decodePush(b []byte) (uint64, []Blob, error) {
	through, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, errors.New("the push has no feed position")
	}
	blobs, err := readBlobs(b[n:])
	if err != nil {
		return 0, nil, fmt.Errorf("the push is malformed: %v", err)
	}
	return through, blobs, nil
}

// ---- Client ----

// PushCustody gives blobs (at most MaxCustodyBlobs, all of this node's
// network) to peer p, a node of a custodian network, saying that they
// cover this node's feed through seq through, and returns its ack, which
// comes once the blobs are on the custodian's disk. It honours ctx's
// cancellation and deadline (DefaultCustodyTimeout if none) and resets the
// stream on any error.
func PushCustody(ctx context.Context, h host.Host, p peer.ID, through uint64, blobs []Blob) (CustodyAck, error) {
	if len(blobs) > MaxCustodyBlobs {
		return CustodyAck{}, fmt.Errorf("push %d custody copies: at most %d go in one push", len(blobs), MaxCustodyBlobs)
	}
	req := appendBlobs(binary.AppendUvarint([]byte{kindPush}, through), blobs)
	f, err := custodyExchange(ctx, h, p, req, maxAckFrame)
	if err != nil {
		return CustodyAck{}, fmt.Errorf("push %d custody copies to %s: %w", len(blobs), p, err)
	}
	if f[0] != kindPushAck {
		return CustodyAck{}, fmt.Errorf("push custody copies to %s: %w: unexpected answer kind %#x", p, ErrCustodyProtocol, f[0])
	}
	vals, err := uvarints(f[1:], 4)
	if err != nil || vals[0]+vals[1] != uint64(len(blobs)) {
		return CustodyAck{}, fmt.Errorf("push custody copies to %s: %w: malformed ack", p, ErrCustodyProtocol)
	}
	return CustodyAck{Stored: int(vals[0]), Duplicates: int(vals[1]), Held: vals[2], Through: vals[3]}, nil
}

// FetchCustody asks peer p, a custodian, for the custody copies of network
// origin after its position after, at most limit (MaxCustodyBlobs if 0).
// Repeat from the batch's Last while More is set.
func FetchCustody(ctx context.Context, h host.Host, p peer.ID, origin string, after uint64, limit int) (CustodyBatch, error) {
	if !model.ValidSlug(origin) {
		return CustodyBatch{}, fmt.Errorf("fetch custody copies: %q is not a network slug", origin)
	}
	req := binary.AppendUvarint([]byte{kindFetch}, after)
	req = binary.AppendUvarint(req, uint64(max(limit, 0)))
	req = append(req, origin...)
	f, err := custodyExchange(ctx, h, p, req, MaxBatchFrame)
	if err != nil {
		return CustodyBatch{}, fmt.Errorf("fetch custody copies of %s from %s: %w", origin, p, err)
	}
	last, n := binary.Uvarint(f[1:])
	if f[0] != kindFetchBatch || n <= 0 || len(f) < 2+n || f[1+n] > 1 {
		return CustodyBatch{}, fmt.Errorf("fetch custody copies from %s: %w: malformed batch", p, ErrCustodyProtocol)
	}
	blobs, err := readBlobs(f[2+n:])
	if err != nil {
		return CustodyBatch{}, fmt.Errorf("fetch custody copies from %s: %w: %v", p, ErrCustodyProtocol, err)
	}
	if last < after || (len(blobs) > 0 && last == after) {
		return CustodyBatch{}, fmt.Errorf("fetch custody copies from %s: %w: position %d after asking from %d", p, ErrCustodyProtocol, last, after)
	}
	return CustodyBatch{Blobs: blobs, Last: last, More: f[1+n] == 1}, nil
}

// CustodyStatus asks peer p, a custodian, what it keeps for this node's
// network.
func CustodyStatus(ctx context.Context, h host.Host, p peer.ID) (CustodyHolding, error) {
	f, err := custodyExchange(ctx, h, p, []byte{kindStatus}, maxAckFrame)
	if err != nil {
		return CustodyHolding{}, fmt.Errorf("ask %s what it keeps: %w", p, err)
	}
	vals, err := uvarints(f[1:], 2)
	if f[0] != kindStatusReply || err != nil {
		return CustodyHolding{}, fmt.Errorf("ask %s what it keeps: %w: malformed answer", p, ErrCustodyProtocol)
	}
	return CustodyHolding{Held: vals[0], Through: vals[1]}, nil
}

// uvarints reads exactly n uvarints filling b.
func uvarints(b []byte, n int) ([]uint64, error) {
	out := make([]uint64, n)
	for i := range out {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, errors.New("missing number")
		}
		out[i], b = v, b[k:]
	}
	if len(b) != 0 {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}

// custodyExchange sends one request frame and reads the one answer frame
// (not empty, not an error frame: those come back as errors).
func custodyExchange(ctx context.Context, h host.Host, p peer.ID, req []byte, maxAnswer int) ([]byte, error) {
	if len(req) > MaxBatchFrame {
		return nil, fmt.Errorf("the request of %d bytes: %w", len(req), ErrFrameTooLarge)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCustodyTimeout)
		defer cancel()
	}
	s, err := h.NewStream(ctx, p, CustodyProtocol)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	f, err := custodyRoundTrip(ctx, s, req, maxAnswer)
	if err != nil {
		_ = s.Reset()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return nil, err
	}
	_ = s.Close()
	return f, nil
}

func custodyRoundTrip(ctx context.Context, s network.Stream, req []byte, maxAnswer int) ([]byte, error) {
	deadline, _ := ctx.Deadline()
	if err := s.SetDeadline(deadline); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	bw := bufio.NewWriterSize(s, 64<<10)
	if err := WriteFrame(bw, req, MaxBatchFrame); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := s.CloseWrite(); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(s, 64<<10)
	f, err := ReadFrame(br, maxAnswer)
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the stream ended without an answer", ErrCustodyProtocol)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCustodyProtocol, err)
	}
	if len(f) == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrCustodyProtocol)
	}
	if f[0] == kindError {
		code, k := binary.Uvarint(f[1:])
		if k <= 0 {
			return nil, fmt.Errorf("%w: malformed error frame", ErrCustodyProtocol)
		}
		return nil, fmt.Errorf("%w: %q", custodyErrForCode(code), peerText(f[1+k:]))
	}
	if _, err := ReadFrame(br, 0); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the answer", ErrCustodyProtocol)
	}
	return f, nil
}
