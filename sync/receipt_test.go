package sync

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/store"
)

// receiptStore keeps receipts in node/store, for records of origin.
type receiptStore struct {
	s      *store.Store
	origin string
}

func (r receiptStore) Receive(network string, rs []Receipt) (int, error) {
	in := make([]store.Receipt, len(rs))
	for i, rc := range rs {
		in[i] = store.Receipt{ID: rc.ID, Version: rc.Version, Hash: rc.Hash}
	}
	res, err := r.s.PutReceipts(network, r.origin, time.Now(), in)
	return res.Accepted, err
}

// serveReceipts registers a receipt server on n and returns it.
func (n *testNode) serveReceipts(t *testing.T, reg *registry) *ReceiptServer {
	t.Helper()
	srv, err := NewReceiptServer(reg, receiptStore{n.st, n.self.Network}, fastPullConfig())
	if err != nil {
		t.Fatal(err)
	}
	n.h.SetStreamHandler(ReceiptProtocol, srv.Handle)
	return srv
}

func (n *testNode) holders(t *testing.T, id string) map[string]store.Holder {
	t.Helper()
	hs, err := n.st.Holders(id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Holder{}
	for _, h := range hs {
		out[h.Network] = h
	}
	return out
}

func (n *testNode) receipt(t *testing.T, id string) Receipt {
	t.Helper()
	st, err := n.st.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return Receipt{ID: id, Version: st.Payload.Version, Hash: st.Hash}
}

func waitReceiptStats(srv *ReceiptServer, done func(ReceiptServerStats) bool) ReceiptServerStats {
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := srv.Stats()
		if done(st) || time.Now().After(deadline) {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReceiptsKeptUnderTheSendersNetwork: a member's receipts are kept
// under the network the registry names for it; receipts for versions the
// origin never wrote, or for other networks' records, change nothing.
func TestReceiptsKeptUnderTheSendersNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := newRegistry()
	tanpud := newTestNode(t, reg, model.Reader{Network: "tanpud", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	srv := tanpud.serveReceipts(t, reg)
	ehrn.connect(t, tanpud)

	shared := tanpud.write(t, "members")
	foreign := ehrn.write(t, "members") // ehrn's own record: tanpud does not collect receipts for it
	if _, err := ehrn.puller.CatchUp(ctx, tanpud.h.ID()); err != nil {
		t.Fatal(err)
	}
	good := ehrn.receipt(t, shared)
	forged := []Receipt{
		{ID: shared, Version: 2, Hash: strings.Repeat("ab", 32)}, // a version tanpud never wrote
		{ID: shared, Version: 1, Hash: strings.Repeat("cd", 32)}, // a hash tanpud never wrote
		ehrn.receipt(t, foreign),                                 // not tanpud's record
		{ID: "not an id", Version: 1, Hash: good.Hash},
		{ID: shared, Version: 1, Hash: strings.ToUpper(good.Hash)},
	}
	ack, err := SendReceipts(ctx, ehrn.h, tanpud.h.ID(), append(forged, good))
	if err != nil {
		t.Fatal(err)
	}
	if ack != (Ack{Accepted: 1, Ignored: len(forged)}) {
		t.Fatalf("ack %+v, want 1 accepted and %d ignored", ack, len(forged))
	}
	hs := tanpud.holders(t, shared)
	if len(hs) != 1 || hs["ehrn"].Version != 1 || hs["ehrn"].Hash != good.Hash {
		t.Fatalf("holders %+v, want ehrn on version 1", hs)
	}
	if got := tanpud.holders(t, foreign); len(got) != 0 {
		t.Fatalf("tanpud keeps receipts for ehrn's record: %+v", got)
	}
	if st := srv.Stats(); st.Served != 1 || st.Accepted != 1 || st.Ignored != uint64(len(forged)) {
		t.Fatalf("server stats %+v", st)
	}

	// Only forged receipts: nothing kept, nothing changed.
	ack, err = SendReceipts(ctx, ehrn.h, tanpud.h.ID(), forged[:2])
	if err != nil || ack != (Ack{Ignored: 2}) {
		t.Fatalf("forged only: %+v, %v", ack, err)
	}
	if hs := tanpud.holders(t, shared); len(hs) != 1 || hs["ehrn"].Hash != good.Hash {
		t.Fatalf("holders after forged receipts: %+v", hs)
	}
}

// TestReceiptsRefusedFromNonMembers: a peer the registry does not know,
// or no longer counts as a member, has its receipts refused.
func TestReceiptsRefusedFromNonMembers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := newRegistry()
	tanpud := newTestNode(t, reg, model.Reader{Network: "tanpud", Member: true}, fastPullConfig())
	stranger := newTestNode(t, reg, model.Reader{Network: "stranger", Member: true}, fastPullConfig())
	former := newTestNode(t, reg, model.Reader{Network: "former", Member: true}, fastPullConfig())
	srv := tanpud.serveReceipts(t, reg)
	shared := tanpud.write(t, "members")
	for _, n := range []*testNode{stranger, former} {
		n.connect(t, tanpud)
		if _, err := n.puller.CatchUp(ctx, tanpud.h.ID()); err != nil {
			t.Fatal(err)
		}
	}
	// What they got while members is genuine; their receipts still do not count.
	good := stranger.receipt(t, shared)
	reg.mu.Lock()
	delete(reg.readers, stranger.h.ID())
	reg.readers[former.h.ID()] = model.Reader{Network: "former", Member: false}
	reg.mu.Unlock()
	for _, n := range []*testNode{stranger, former} {
		_, err := SendReceipts(ctx, n.h, tanpud.h.ID(), []Receipt{good})
		if !errors.Is(err, ErrReceiptsRefused) {
			t.Fatalf("%s: got %v, want ErrReceiptsRefused", n.self.Network, err)
		}
	}
	if hs := tanpud.holders(t, shared); len(hs) != 0 {
		t.Fatalf("receipts from non-members were kept: %+v", hs)
	}
	if st := waitReceiptStats(srv, func(s ReceiptServerStats) bool { return s.Refused == 2 }); st.Refused != 2 || st.Served != 0 || st.Accepted != 0 {
		t.Fatalf("server stats %+v, want 2 refused", st)
	}
}

// rawReceipts opens a receipt stream from h to p, writes raw and closes
// its write side; it returns what the server answered and the read error.
func rawReceipts(t *testing.T, h host.Host, p peer.ID, raw []byte) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p, ReceiptProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write(raw); err != nil {
		return nil, err
	}
	_ = s.CloseWrite()
	return io.ReadAll(s)
}

func TestReceiptServerSurvivesHostileFrames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := newRegistry()
	tanpud := newTestNode(t, reg, model.Reader{Network: "tanpud", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	srv := tanpud.serveReceipts(t, reg)
	ehrn.connect(t, tanpud)
	shared := tanpud.write(t, "members")

	frame := func(b string) []byte { return append(binary.AppendUvarint(nil, uint64(len(b))), b...) }
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"length over the maximum", binary.AppendUvarint(nil, MaxReceiptFrame+1)},
		{"length near 2^62", binary.AppendUvarint(nil, 1<<62)},
		{"truncated frame", append(binary.AppendUvarint(nil, 40), `{"receipts":`...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := rawReceipts(t, ehrn.h, tanpud.h.ID(), tc.raw); err == nil {
				t.Fatal("the server answered instead of resetting the stream")
			}
		})
	}
	many, _ := json.Marshal(receiptFrame{Receipts: make([]Receipt, MaxReceipts+1)})
	for _, tc := range []struct{ name, req string }{
		{"not JSON", "\x00garbage"},
		{"unknown field", `{"receipts":[],"network":"inpud"}`},
		{"claimed network", `{"receipts":[{"id":"x","version":1,"hash":"y","network":"inpud"}]}`},
		{"trailing data", `{"receipts":[]}{}`},
		{"too many receipts", string(many)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := rawReceipts(t, ehrn.h, tanpud.h.ID(), frame(tc.req))
			if err != nil {
				t.Fatalf("read the answer: %v", err)
			}
			f, err := ReadFrame(bufio.NewReader(bytes.NewReader(resp)), maxAckFrame)
			if err != nil || len(f) < 2 || f[0] != kindError || f[1] != codeBadRequest {
				t.Fatalf("answer %q (%v), want a bad-request error frame", resp, err)
			}
		})
	}
	if st := waitReceiptStats(srv, func(s ReceiptServerStats) bool { return s.Malformed == 8 }); st.Malformed != 8 || st.Served != 0 {
		t.Fatalf("server stats %+v, want 8 malformed", st)
	}
	if _, err := SendReceipts(ctx, ehrn.h, tanpud.h.ID(), make([]Receipt, MaxReceipts+1)); err == nil {
		t.Fatal("SendReceipts sent more than MaxReceipts")
	}
	// The server still takes an honest member's receipts.
	if _, err := ehrn.puller.CatchUp(ctx, tanpud.h.ID()); err != nil {
		t.Fatal(err)
	}
	if ack, err := SendReceipts(ctx, ehrn.h, tanpud.h.ID(), []Receipt{ehrn.receipt(t, shared)}); err != nil || ack.Accepted != 1 {
		t.Fatalf("after hostile frames: %+v, %v", ack, err)
	}
}

// TestReceiptSenderRejectsHostileServers: answers the protocol does not
// allow fail with ErrReceiptProtocol.
func TestReceiptSenderRejectsHostileServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := newRegistry()
	tanpud := newTestNode(t, reg, model.Reader{Network: "tanpud", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	ehrn.connect(t, tanpud)
	for _, tc := range []struct {
		name   string
		answer []byte
	}{
		{"nothing", nil},
		{"empty frame", []byte{0}},
		{"unknown kind", []byte{1, 'z'}},
		{"ack with trailing bytes", []byte{4, kindAck, 1, 0, 9}},
		{"ack counting more than a frame holds", append(append([]byte{4, kindAck}, binary.AppendUvarint(nil, MaxReceipts+1)...), 0)},
		{"oversized frame", binary.AppendUvarint(nil, maxAckFrame+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tanpud.h.SetStreamHandler(ReceiptProtocol, func(s network.Stream) {
				_, _ = io.Copy(io.Discard, s)
				_, _ = s.Write(tc.answer)
				_ = s.Close()
			})
			_, err := SendReceipts(ctx, ehrn.h, tanpud.h.ID(), nil)
			if !errors.Is(err, ErrReceiptProtocol) {
				t.Fatalf("got %v, want ErrReceiptProtocol", err)
			}
		})
	}
}
