package sync

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	msgs := [][]byte{{}, []byte("a"), bytes.Repeat([]byte{7}, 200), bytes.Repeat([]byte{1}, MaxRequestFrame)}
	for _, m := range msgs {
		if err := WriteFrame(&buf, m, MaxRequestFrame); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for i, m := range msgs {
		got, err := ReadFrame(r, MaxRequestFrame)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, m) {
			t.Fatalf("frame %d: got %d bytes, want %d", i, len(got), len(m))
		}
	}
	if _, err := ReadFrame(r, MaxRequestFrame); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestFrameLimits(t *testing.T) {
	huge := binary.AppendUvarint(nil, 1<<62)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"length over max", binary.AppendUvarint(nil, MaxRequestFrame+1), ErrFrameTooLarge},
		{"length near 2^62", huge, ErrFrameTooLarge},
		{"length 2^63, ten bytes", binary.AppendUvarint(nil, 1<<63), ErrFrameTooLarge},
		{"varint overflow", bytes.Repeat([]byte{0xff}, 11), ErrMalformedFrame},
		{"varint overflow in the tenth byte", append(bytes.Repeat([]byte{0xff}, 9), 0x02), ErrMalformedFrame},
		{"truncated length", []byte{0x80}, io.ErrUnexpectedEOF},
		{"truncated length is malformed", []byte{0x80}, ErrMalformedFrame},
		{"truncated body", append(binary.AppendUvarint(nil, 10), "abc"...), io.ErrUnexpectedEOF},
		{"truncated body is malformed", append(binary.AppendUvarint(nil, 10), "abc"...), ErrMalformedFrame},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadFrame(bufio.NewReader(bytes.NewReader(tc.in)), MaxRequestFrame)
			if err == nil || err == io.EOF {
				t.Fatalf("got %v, want an error", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if err := WriteFrame(io.Discard, make([]byte, MaxRequestFrame+1), MaxRequestFrame); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("writing an oversized frame: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{3, 'a', 'b', 'c'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(binary.AppendUvarint(nil, MaxBatchFrame+1))
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1 << 10
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			b, err := ReadFrame(r, max)
			if err != nil {
				return
			}
			if len(b) > max {
				t.Fatalf("read a frame of %d bytes, above the maximum %d", len(b), max)
			}
			var again bytes.Buffer
			if err := WriteFrame(&again, b, max); err != nil {
				t.Fatal(err)
			}
			got, err := ReadFrame(bufio.NewReader(&again), max)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("round trip of %d bytes: %v", len(b), err)
			}
		}
	})
}
