package federation

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/inpud/cairn/node/registry"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ProposeProtocol carries a signed command from a member's node to the
// registry leader, and the leader's answer back. Only members may open it.
const ProposeProtocol protocol.ID = "/cairn/registry/propose/1"

// maxFrame bounds one frame of the propose and join protocols.
const maxFrame = registry.MaxPayload + 4096

// Wire codes for refusals, so errors.Is works across a stream.
const (
	codeUnauthorised = "unauthorised"
	codeBadSignature = "bad-signature"
	codeInvalid      = "invalid"
	codeNotFound     = "not-found"
	codeConflict     = "conflict"
	codeApplied      = "already-applied" // a conflict too; an older leader sends "conflict"
	codeExpired      = "expired"
	codeNotLeader    = "not-leader"
	codeInternal     = "internal"
)

var codeSentinels = map[string]error{
	codeUnauthorised: registry.ErrUnauthorised, codeBadSignature: registry.ErrBadSignature, codeInvalid: registry.ErrInvalidCommand,
	codeNotFound: registry.ErrNotFound, codeConflict: registry.ErrConflict, codeExpired: registry.ErrExpired, codeNotLeader: ErrNoLeader,
	codeApplied: registry.ErrAlreadyApplied,
}

func codeOf(err error) string {
	if errors.Is(err, registry.ErrAlreadyApplied) { // before the conflict it also is
		return codeApplied
	}
	for code, s := range codeSentinels {
		if errors.Is(err, s) {
			return code
		}
	}
	return codeInternal
}

// remoteError is a refusal that came back over a stream.
type remoteError struct {
	Code string
	Msg  string
}

func (e *remoteError) Error() string { return e.Msg }

func (e *remoteError) Unwrap() error { return codeSentinels[e.Code] }

// answer is the reply frame. A refusal carries no result.
type answer struct {
	Result *registry.Result `json:"result,omitempty"`
	Code   string           `json:"code,omitempty"`
	Error  string           `json:"error,omitempty"`
}

func writeFrame(w io.Writer, b []byte) error {
	var n [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(n[:], uint64(len(b)))
	if _, err := w.Write(n[:k]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

func readFrame(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > maxFrame {
		return nil, fmt.Errorf("frame of %d bytes is over the %d-byte limit", n, maxFrame)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

// forward sends sc to the leader and waits for its answer.
func (r *Registry) forward(ctx context.Context, leader peer.ID, sc registry.SignedCommand) (registry.Result, error) {
	s, err := r.host.NewStream(ctx, leader, ProposeProtocol)
	if err != nil {
		return registry.Result{}, fmt.Errorf("reach the registry leader %s: %w", leader, err)
	}
	defer s.Close()
	s.SetDeadline(deadline(ctx, r.cfg.ApplyTimeout))
	if err := writeFrame(s, registry.EncodeSigned(sc)); err != nil {
		s.Reset()
		return registry.Result{}, fmt.Errorf("send to the registry leader: %w", err)
	}
	s.CloseWrite()
	return readAnswer(bufio.NewReader(s))
}

func readAnswer(br *bufio.Reader) (registry.Result, error) {
	b, err := readFrame(br)
	if err != nil {
		return registry.Result{}, fmt.Errorf("read the registry's answer: %w", err)
	}
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		return registry.Result{}, fmt.Errorf("read the registry's answer: %w", err)
	}
	if a.Code != "" {
		return registry.Result{}, &remoteError{Code: a.Code, Msg: a.Error}
	}
	if a.Result == nil {
		return registry.Result{}, errors.New("read the registry's answer: it carries neither a result nor a refusal")
	}
	return *a.Result, nil
}

func writeAnswer(s network.Stream, res registry.Result, err error) {
	a := answer{Result: &res}
	if err != nil {
		a = answer{Code: codeOf(err), Error: err.Error()}
	}
	b, err := json.Marshal(a)
	if err != nil {
		b, _ = json.Marshal(answer{Code: codeInternal, Error: "the registry could not encode its answer: " + err.Error()})
	}
	writeFrame(s, b)
}

// handlePropose serves ProposeProtocol on the leader. GuardStream has
// already refused non-members.
func (r *Registry) handlePropose(s network.Stream) {
	defer s.Close()
	b, ok := r.readRequest(s)
	if !ok {
		return
	}
	sc, err := registry.DecodeSigned(b)
	if err != nil {
		writeAnswer(s, registry.Result{}, err)
		return
	}
	if !r.isLeader() {
		writeAnswer(s, registry.Result{}, fmt.Errorf("%w: this node is not the registry leader", ErrNoLeader))
		return
	}
	// The command may end the proposer's membership (a network handing
	// over its own archive retires itself), and the follower goroutine
	// then closes its connection: hold it open while the answer is written
	// and for answerGrace after, so the answer is on the wire before
	// Enforce closes the connection. (The proposer half-closed its side
	// after its request, so there is no end-of-stream to wait for.) The
	// gater refuses the proposer's new streams meanwhile.
	release := r.gater.Hold(s.Conn().RemotePeer())
	defer func() { time.AfterFunc(answerGrace, func() { release(); r.notify() }) }()
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.ApplyTimeout)
	defer cancel()
	res, err, _ := r.submitOnce(ctx, sc)
	writeAnswer(s, res, err)
}

// answerGrace is how long a proposer's connection stays open after its
// answer was written, whatever the command did to its membership.
const answerGrace = 500 * time.Millisecond

// readRequest reads the one request frame of a propose or join stream,
// under the apply timeout; on failure it resets the stream.
func (r *Registry) readRequest(s network.Stream) ([]byte, bool) {
	s.SetDeadline(time.Now().Add(r.cfg.ApplyTimeout))
	b, err := readFrame(bufio.NewReader(s))
	if err != nil {
		s.Reset()
		return nil, false
	}
	return b, true
}
