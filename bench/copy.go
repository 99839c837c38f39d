package bench

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// PlainCopy writes records over one loopback TCP connection, each a
// uvarint length and its bytes, and reads them all on the other end into
// a buffer, as the least any sync of the same bytes must do. It returns
// the time from the first write to the last byte read.
func PlainCopy(records [][]byte) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("plain copy: listen on loopback: %w", err)
	}
	defer ln.Close()
	type result struct {
		n   int
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Minute))
		n, err := readAll(bufio.NewReaderSize(c, 64<<10))
		got <- result{n, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, fmt.Errorf("plain copy: dial loopback: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	t0 := time.Now()
	w := bufio.NewWriterSize(c, 64<<10)
	var hdr [binary.MaxVarintLen64]byte
	for _, r := range records {
		w.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(r)))])
		w.Write(r)
	}
	if err := w.Flush(); err != nil {
		return 0, fmt.Errorf("plain copy: write: %w", err)
	}
	c.(*net.TCPConn).CloseWrite()
	res := <-got
	d := time.Since(t0)
	if res.err != nil {
		return 0, fmt.Errorf("plain copy: read: %w", res.err)
	}
	if res.n != len(records) {
		return 0, fmt.Errorf("plain copy: read %d records of %d", res.n, len(records))
	}
	return d, nil
}

// readAll reads length-prefixed records until EOF and returns how many.
func readAll(r *bufio.Reader) (int, error) {
	buf := make([]byte, 0, 4<<10)
	n := 0
	for {
		l, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if l > 1<<20 {
			return n, fmt.Errorf("record %d claims %d bytes", n, l)
		}
		buf = buf[:l]
		if _, err := io.ReadFull(r, buf); err != nil {
			return n, err
		}
		n++
	}
}
