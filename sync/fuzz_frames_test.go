package sync

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/p2p"
)

// Fuzz targets for every sync frame (RELIABILITY T10): the pull request and
// batch decoders on their own, and the pull answer, notify, receipt and
// ack frames as a node reads them, from a real libp2p stream on loopback.
// `make fuzz` runs each for a while, `make fuzz-ci` for a fixed count.

// fuzzEnvelopes seals n small valid envelopes.
func fuzzEnvelopes(tb testing.TB, n int) []model.Envelope {
	tb.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	var out []model.Envelope
	for i := range n {
		now := time.Now()
		env, err := model.Seal(key, model.Payload{
			ID: model.NewID(now, rand.Reader), Kind: model.KindPriority, Origin: "tanpud", Author: "12D3KooWfuzz",
			Version: uint64(i + 1), HLC: model.MakeHLC(now.UnixMilli(), 0), Audience: model.Audience{model.AudienceMembers},
			Body: json.RawMessage(`{"kind":"change-needed","title":"Naloxone","importance":3,"achievability":3}`),
		})
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

// batchBody is a batch frame's body (after its kind byte), as a server
// writes it.
func batchBody(tb testing.TB, envs []model.Envelope) []byte {
	tb.Helper()
	var b []byte
	for _, e := range envs {
		eb, err := e.MarshalBinary()
		if err != nil {
			tb.Fatal(err)
		}
		b = binary.AppendUvarint(b, uint64(len(eb)))
		b = append(b, eb...)
	}
	return b
}

func frame(b []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(b))), b...) }

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"after":0,"limit":100}`, `{"after":18446744073709551615}`, `{}`, `{"after":1,"limit":-1}`,
		`{"after":1,"extra":2}`, `{"after":1}{"after":2}`, `[]`, `null`, "{\"after\":\xff}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req pullRequest
		if err := decodeRequest(data, &req); err != nil {
			return
		}
		if req.Limit < 0 {
			t.Fatalf("accepted a negative limit %d", req.Limit)
		}
		// What was accepted means the same once encoded again.
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var again pullRequest
		if err := decodeRequest(b, &again); err != nil || again != req {
			t.Fatalf("request %+v re-encoded as %s decodes to %+v (%v)", req, b, again, err)
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	envs := fuzzEnvelopes(f, 3)
	f.Add(batchBody(f, envs[:1]))
	f.Add(batchBody(f, envs))
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add(binary.AppendUvarint(nil, MaxEnvelopeSize+1))
	f.Add(append(batchBody(f, envs[:1]), 0xff))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, total, err := decodeBatch(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("a bad batch is not a protocol error: %v", err)
			}
			return
		}
		if len(got) == 0 || total > len(data) {
			t.Fatalf("decoded %d envelopes, %d bytes, from %d bytes", len(got), total, len(data))
		}
		// Each envelope encodes to what it was decoded from, and the batch
		// made again decodes to the same envelopes.
		again, total2, err := decodeBatch(batchBody(t, got))
		if err != nil || len(again) != len(got) || total2 != total {
			t.Fatalf("re-encoded batch: %d envelopes, %d bytes, %v; want %d, %d", len(again), total2, err, len(got), total)
		}
		for i := range got {
			if again[i].Hash() != got[i].Hash() {
				t.Fatalf("envelope %d changed in a round trip", i)
			}
		}
	})
}

// fuzzPair is two real hosts on loopback, a connected to b, whose gaters
// admit each other.
type fuzzPair struct{ a, b host.Host }

func newFuzzPair(tb testing.TB) fuzzPair {
	tb.Helper()
	mk := func() host.Host {
		priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		pc := p2p.DefaultConfig()
		pc.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		h, err := p2p.New(priv, pc, p2p.NewGater(func(peer.ID) bool { return true }))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = h.Close() })
		return h
	}
	p := fuzzPair{a: mk(), b: mk()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.a.Connect(ctx, peer.AddrInfo{ID: p.b.ID(), Addrs: p.b.Addrs()}); err != nil {
		tb.Fatal(err)
	}
	return p
}

// stream opens a stream from a to b for proto.
func (p fuzzPair) stream(t *testing.T, proto protocol.ID) network.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := p.a.NewStream(ctx, p.b.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sendRaw writes data on a new stream to b's handler for proto, closes
// its side, and returns everything b answers until it closes or resets
// the stream (b's handler has returned by then).
func (p fuzzPair) sendRaw(t *testing.T, proto protocol.ID, data []byte) []byte {
	t.Helper()
	s := p.stream(t, proto)
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = s.Write(data) // the handler may reset the stream before it reads everything
	_ = s.CloseWrite()
	out, err := io.ReadAll(s)
	if err != nil && !errors.Is(err, network.ErrReset) {
		var se *network.StreamError
		if !errors.As(err, &se) {
			t.Fatalf("reading the answer: %v", err)
		}
	}
	return out
}

// serveCanned makes b answer every stream for proto with the bytes in
// answer, after reading what a sends.
func (p fuzzPair) serveCanned(proto protocol.ID, answer *atomic.Pointer[[]byte]) {
	p.b.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.Copy(io.Discard, io.LimitReader(s, 1<<20))
		_, _ = s.Write(*answer.Load())
	})
}

// FuzzPullAnswer: whatever a server answers a pull with, the puller's
// reader returns a batch within what it asked for, or a protocol or
// stream error; it never panics.
func FuzzPullAnswer(f *testing.F) {
	envs := fuzzEnvelopes(f, 3)
	end := func(last uint64, more byte) []byte {
		return frame(append(binary.AppendUvarint([]byte{kindEnd}, last), more))
	}
	f.Add(append(frame(append([]byte{kindBatch}, batchBody(f, envs)...)), end(3, 0)...), uint64(0), uint16(10))
	f.Add(append(frame(append([]byte{kindBatch}, batchBody(f, envs)...)), end(3, 1)...), uint64(0), uint16(2))
	f.Add(end(7, 0), uint64(7), uint16(10))
	f.Add(end(5, 0), uint64(7), uint16(10))
	f.Add(frame(append(binary.AppendUvarint([]byte{kindError}, codeRefused), "members only"...)), uint64(0), uint16(10))
	f.Add(append(end(3, 0), 1, 'x'), uint64(0), uint16(10))
	f.Add(binary.AppendUvarint(nil, MaxBatchFrame+1), uint64(0), uint16(10))
	f.Add([]byte{}, uint64(0), uint16(10))
	p := newFuzzPair(f)
	const proto = "/cairn/fuzz/pull-answer"
	var answer atomic.Pointer[[]byte]
	p.serveCanned(proto, &answer)
	f.Fuzz(func(t *testing.T, data []byte, after uint64, limit uint16) {
		answer.Store(&data)
		lim := int(limit%MaxPullLimit) + 1
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s := p.stream(t, proto)
		defer s.Reset()
		req, _ := json.Marshal(pullRequest{After: after, Limit: lim})
		b, err := readAnswer(ctx, s, req, after, lim)
		if err != nil {
			return
		}
		if len(b.Envelopes) > lim || b.Last < after || (b.Last == after && (len(b.Envelopes) > 0 || b.More)) {
			t.Fatalf("accepted %d envelopes up to %d (more %v), asked for %d after %d", len(b.Envelopes), b.Last, b.More, lim, after)
		}
	})
}

// FuzzNotifyFrame: every notify stream is counted once, as received (a
// frame holding exactly one uvarint: the sender's head, passed on as is)
// or malformed; nothing panics.
func FuzzNotifyFrame(f *testing.F) {
	f.Add(frame(binary.AppendUvarint(nil, 1234567)))
	f.Add(frame(binary.AppendUvarint(nil, 0)))
	f.Add(frame([]byte{0x80}))
	f.Add(frame(append(binary.AppendUvarint(nil, 1), 0)))
	f.Add([]byte{0x0b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{})
	p := newFuzzPair(f)
	var mu stdsync.Mutex
	var heads []uint64
	srv, err := NewNotifyServer(allMembers{}, func(_ peer.ID, head uint64) {
		mu.Lock()
		heads = append(heads, head)
		mu.Unlock()
	}, 5*time.Second)
	if err != nil {
		f.Fatal(err)
	}
	p.b.SetStreamHandler(NotifyProtocol, srv.Handle)
	f.Fuzz(func(t *testing.T, data []byte) {
		before := srv.Stats()
		mu.Lock()
		heads = heads[:0]
		mu.Unlock()
		p.sendRaw(t, NotifyProtocol, data)
		after := srv.Stats()
		// The oracle: the first frame, if whole and small enough, holding one uvarint.
		want, ok := uint64(0), false
		if fr, err := ReadFrame(bufio.NewReader(bytes.NewReader(data)), MaxNotifyFrame); err == nil {
			h, n := binary.Uvarint(fr)
			want, ok = h, n > 0 && n == len(fr)
		}
		got := after.Received - before.Received
		bad := after.Malformed - before.Malformed
		if got+bad != 1 || (got == 1) != ok {
			t.Fatalf("a notify of %x: received %d, malformed %d; want it %s", data, got, bad, map[bool]string{true: "received", false: "malformed"}[ok])
		}
		mu.Lock()
		defer mu.Unlock()
		if ok && (len(heads) != 1 || heads[0] != want) {
			t.Fatalf("a notify of head %d reached the node as %v", want, heads)
		}
	})
}

// allMembers says every peer is a member node of tanpud.
type allMembers struct{}

func (allMembers) Reader(peer.ID) (model.Reader, bool) {
	return model.Reader{Network: "tanpud", Member: true}, true
}

// keepAll keeps every receipt it is given.
type keepAll struct{}

func (keepAll) Receive(_ string, rs []Receipt) (int, error) { return len(rs), nil }

// FuzzReceiptFrame: whatever a member sends as receipts, the receipt
// server answers with an ack that counts every receipt of the frame
// (accepted ones all well formed), with a bad-request error frame, or by
// resetting the stream; it never panics.
func FuzzReceiptFrame(f *testing.F) {
	good := Receipt{ID: model.NewID(time.Now(), rand.Reader), Version: 1, Hash: string(bytes.Repeat([]byte("ab"), 32))}
	for _, rs := range [][]Receipt{{good}, {good, {ID: "x", Version: 0, Hash: "zz"}}, {}} {
		b, _ := json.Marshal(receiptFrame{Receipts: rs})
		f.Add(frame(b))
	}
	f.Add(frame([]byte(`{"receipts":[{"id":"a","version":1,"hash":"b","more":1}]}`)))
	f.Add(frame([]byte(`{"receipts":null} {}`)))
	f.Add(binary.AppendUvarint(nil, MaxReceiptFrame+1))
	p := newFuzzPair(f)
	srv, err := NewReceiptServer(allMembers{}, keepAll{}, PullConfig{RequestTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	p.b.SetStreamHandler(ReceiptProtocol, srv.Handle)
	f.Fuzz(func(t *testing.T, data []byte) {
		out := p.sendRaw(t, ReceiptProtocol, data)
		fr, err := ReadFrame(bufio.NewReader(bytes.NewReader(data)), MaxReceiptFrame)
		if err != nil {
			if len(out) != 0 {
				t.Fatalf("answered %x to a stream that held no frame", out)
			}
			return
		}
		rs, derr := decodeReceipts(fr)
		ans, err := ReadFrame(bufio.NewReader(bytes.NewReader(out)), maxAckFrame)
		if err != nil || len(ans) == 0 {
			t.Fatalf("no answer frame (%x, %v) to %x", out, err, data)
		}
		if derr != nil {
			if ans[0] != kindError {
				t.Fatalf("answered %x to a frame it cannot decode (%v)", ans, derr)
			}
			return
		}
		acc, k := binary.Uvarint(ans[1:])
		ign, k2 := binary.Uvarint(ans[1+k:])
		valid := 0
		for _, r := range rs {
			if r.valid() {
				valid++
			}
		}
		if ans[0] != kindAck || k <= 0 || k2 <= 0 || int(acc+ign) != len(rs) || int(acc) != valid {
			t.Fatalf("acked %x for %d receipts, %d of them well formed", ans, len(rs), valid)
		}
	})
}

// FuzzReceiptAck: whatever the origin's node answers a frame of receipts
// with, the sender reads an ack within MaxReceipts or an error.
func FuzzReceiptAck(f *testing.F) {
	ack := func(a, i uint64) []byte {
		return frame(binary.AppendUvarint(binary.AppendUvarint([]byte{kindAck}, a), i))
	}
	f.Add(ack(3, 1))
	f.Add(ack(MaxReceipts+1, 0))
	f.Add(append(ack(1, 0), 1, 'x'))
	f.Add(frame(append(binary.AppendUvarint([]byte{kindError}, codeRefused), "members only"...)))
	f.Add(frame([]byte{kindAck, 0x80}))
	f.Add([]byte{})
	p := newFuzzPair(f)
	const proto = "/cairn/fuzz/receipt-ack"
	var answer atomic.Pointer[[]byte]
	p.serveCanned(proto, &answer)
	req, _ := json.Marshal(receiptFrame{Receipts: []Receipt{{ID: "x", Version: 1, Hash: "y"}}})
	f.Fuzz(func(t *testing.T, data []byte) {
		answer.Store(&data)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s := p.stream(t, proto)
		defer s.Reset()
		a, err := exchangeReceipts(ctx, s, req)
		if err != nil {
			return
		}
		if a.Accepted < 0 || a.Ignored < 0 || a.Accepted > MaxReceipts || a.Ignored > MaxReceipts {
			t.Fatalf("accepted an ack of %+v", a)
		}
	})
}
