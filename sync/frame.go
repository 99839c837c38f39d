package sync

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/inpud/cairn/model"
)

// Frame size limits. Every frame read names its maximum, so a peer can
// never make this node allocate more than that for one frame.
const (
	// MaxEnvelopeSize is the largest encoded envelope
	// (model.Envelope.MarshalBinary) a frame may carry: a payload of at
	// most model.LimitPayload bytes, its length and a signature.
	MaxEnvelopeSize = model.LimitPayload + binary.MaxVarintLen64 + 64
	// MaxBatchFrame is the largest batch frame: 4 MiB, room for at least
	// one envelope of the largest size.
	MaxBatchFrame = 4 << 20
	// MaxRequestFrame is the largest request frame.
	MaxRequestFrame = 256
)

// ErrFrameTooLarge means a frame announced a length above the reader's
// maximum, or a writer was given one. Nothing of its body was read.
var ErrFrameTooLarge = errors.New("frame larger than allowed")

// ErrMalformedFrame means the bytes read are not a frame: a length that is
// not a uvarint, or a stream that ended cleanly inside a frame. A stream
// reset or a deadline is not this: those come back as the stream's error.
var ErrMalformedFrame = errors.New("malformed frame")

// WriteFrame writes b as one frame: its length as a uvarint, then b. It
// refuses a frame longer than max. Deadlines are the caller's.
func WriteFrame(w io.Writer, b []byte, max int) error {
	if len(b) > max {
		return fmt.Errorf("write frame of %d bytes (at most %d): %w", len(b), max, ErrFrameTooLarge)
	}
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(b)))
	if _, err := w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// ReadFrame reads one frame written by WriteFrame and returns its body in a
// new slice. A length above max fails with ErrFrameTooLarge before any of
// the body is read or allocated; a length that is not a uvarint, or a
// stream that ends inside a frame, fails with ErrMalformedFrame (and
// io.ErrUnexpectedEOF for the latter); one that ends cleanly before a
// frame returns io.EOF. Other errors are the stream's own (a reset, a
// deadline), returned wrapped. Deadlines are the caller's: set one on the
// stream first.
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := readLength(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("frame of %d bytes (at most %d): %w", n, max, ErrFrameTooLarge)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read frame body: %w: %w", ErrMalformedFrame, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("read frame body: %w", err)
	}
	return b, nil
}

// readLength reads a frame's uvarint length, telling a clean end (io.EOF),
// bytes that are not a length (ErrMalformedFrame) and the stream's own
// errors apart.
func readLength(r *bufio.Reader) (uint64, error) {
	var x uint64
	for i := range binary.MaxVarintLen64 {
		c, err := r.ReadByte()
		if err != nil {
			if i == 0 && errors.Is(err, io.EOF) {
				return 0, io.EOF // nothing of a frame was read
			}
			if errors.Is(err, io.EOF) {
				return 0, fmt.Errorf("read frame length: %w: %w", ErrMalformedFrame, io.ErrUnexpectedEOF)
			}
			return 0, fmt.Errorf("read frame length: %w", err)
		}
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break // overflows 64 bits
			}
			return x | uint64(c)<<(7*i), nil
		}
		x |= uint64(c&0x7f) << (7 * i)
	}
	return 0, fmt.Errorf("read frame length: %w: the length overflows 64 bits", ErrMalformedFrame)
}
