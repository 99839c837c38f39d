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
// the body is read or allocated; a stream that ends inside a frame fails
// with io.ErrUnexpectedEOF; one that ends cleanly before a frame returns
// io.EOF. Deadlines are the caller's: set one on the stream first.
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, err // nothing of a frame was read
		}
		return nil, fmt.Errorf("read frame length: %w", err)
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("frame of %d bytes (at most %d): %w", n, max, ErrFrameTooLarge)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame body: %w", err)
	}
	return b, nil
}
