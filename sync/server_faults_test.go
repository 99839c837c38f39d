package sync

import (
	"context"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/inpud/cairn/model"
)

// rawOn opens a stream of proto from h to p, writes raw, closes its write
// side if closeWrite, and reads until the server ends the stream (bounded
// at 10 s).
func rawOn(t *testing.T, h host.Host, p peer.ID, proto protocol.ID, raw []byte, closeWrite bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p, proto)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write(raw); err != nil {
		return // the server reset it already
	}
	if closeWrite {
		_ = s.CloseWrite()
	}
	_, _ = io.ReadAll(s)
}

// faultCase is one bad request and the reason it must be reported under.
type faultCase struct {
	name       string
	raw        []byte
	closeWrite bool
	want       Reason
}

// expectFaults sends each case from `from` to `to` on proto, one at a
// time, and checks that log heard of each, in order, against `from`,
// under its reason and nothing else. It returns how many faults log holds.
func expectFaults(t *testing.T, log *faultLog, from, to host.Host, proto protocol.ID, cases []faultCase) int {
	t.Helper()
	before, _ := log.wait(0)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rawOn(t, from, to.ID(), proto, tc.raw, tc.closeWrite)
			n := len(before) + i + 1
			got, by := log.wait(n)
			if len(got) != n || got[n-1] != tc.want || by[n-1] != from.ID() {
				t.Fatalf("reported %v by %v, want %s by %s last", got, by, tc.want, from.ID())
			}
		})
	}
	got, _ := log.wait(0)
	return len(got)
}

func frameOf(b []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(b))), b...) }

// varintOverflow is a frame length that overflows 64 bits.
var varintOverflow = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// assertNoMoreFaults checks, after the honest exchange that came before
// it, that log still holds exactly n faults.
func assertNoMoreFaults(t *testing.T, log *faultLog, n int) {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // a fault would be reported before the server answered; this is slack only
	if got, by := log.wait(n); len(got) != n {
		t.Fatalf("an honest exchange was reported as a fault: %v by %v", got[n:], by[n:])
	}
}

// TestNotifyServerReportsFaults: every notify an honest node would never
// send is reported against the peer that sent it, under its reason; a
// good notify, and one from a node that is not a member (refused, not a
// protocol fault), are not.
func TestNotifyServerReportsFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	former := newTestNode(t, reg, model.Reader{Network: "former", Member: true}, fastPullConfig())
	reg.mu.Lock()
	reg.readers[former.h.ID()] = model.Reader{Network: "former", Member: false}
	reg.mu.Unlock()
	heads := make(chan uint64, 4)
	srv, err := NewNotifyServer(reg, func(_ peer.ID, head uint64) { heads <- head }, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	log := &faultLog{}
	srv.ReportFaults(log)
	inpud.h.SetStreamHandler(NotifyProtocol, srv.Handle)
	ehrn.connect(t, inpud)
	former.connect(t, inpud)

	n := expectFaults(t, log, ehrn.h, inpud.h, NotifyProtocol, []faultCase{
		{"length over the maximum", binary.AppendUvarint(nil, MaxNotifyFrame+1), true, ReasonOversizedFrame},
		{"varint overflow", varintOverflow, true, ReasonMalformedFrame},
		{"truncated frame", []byte{5, 0x80}, true, ReasonMalformedFrame},
		{"closed without a notify", nil, true, ReasonMalformedFrame},
		{"nothing, then silence", nil, false, ReasonStalled},
		{"a frame that is not a uvarint", frameOf([]byte{0xff, 0xff}), true, ReasonMalformedFrame},
		{"a uvarint and more", frameOf([]byte{7, 0}), true, ReasonMalformedFrame},
	})
	if n != 7 {
		t.Fatalf("%d faults reported, want 7", n)
	}
	if st := srv.Stats(); st.Malformed != 7 || st.Received != 0 {
		t.Fatalf("stats %+v, want 7 malformed and none received", st)
	}

	// A former member's garbage is refused as such, not counted as a fault.
	rawOn(t, former.h, inpud.h.ID(), NotifyProtocol, varintOverflow, true)
	if err := Notify(ctx, ehrn.h, inpud.h.ID(), 42); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-heads:
		if h != 42 {
			t.Fatalf("heard head %d, want 42", h)
		}
	case <-ctx.Done():
		t.Fatal("the good notify never arrived")
	}
	if st := srv.Stats(); st.Refused != 1 {
		t.Fatalf("stats %+v, want the former member's notify refused", st)
	}
	assertNoMoreFaults(t, log, n)
}

// TestReceiptServerReportsFaults: every receipt frame an honest node would
// never send is reported against its sender under its reason; good
// receipts, and well-formed receipts the server ignores, are not.
func TestReceiptServerReportsFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	log := &faultLog{}
	cfg := fastPullConfig()
	cfg.Faults = log
	srv, err := NewReceiptServer(reg, receiptStore{inpud.st, inpud.self.Network}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	inpud.h.SetStreamHandler(ReceiptProtocol, srv.Handle)
	ehrn.connect(t, inpud)

	tooMany := `{"receipts":[` + strings.Repeat(`{"id":"x","version":1,"hash":"00"},`, MaxReceipts) + `{"id":"x","version":1,"hash":"00"}]}`
	n := expectFaults(t, log, ehrn.h, inpud.h, ReceiptProtocol, []faultCase{
		{"length over the maximum", binary.AppendUvarint(nil, MaxReceiptFrame+1), true, ReasonOversizedFrame},
		{"varint overflow", varintOverflow, true, ReasonMalformedFrame},
		{"truncated frame", append(binary.AppendUvarint(nil, 40), `{"receipts":`...), true, ReasonMalformedFrame},
		{"closed without a frame", nil, true, ReasonMalformedFrame},
		{"nothing, then silence", nil, false, ReasonStalled},
		{"not JSON", frameOf([]byte("\x00\x01garbage")), true, ReasonMalformedFrame},
		{"invalid UTF-8", frameOf([]byte(`{"receipts":[{"id":"` + "\xff" + `","version":1,"hash":"00"}]}`)), true, ReasonMalformedFrame},
		{"an unknown field", frameOf([]byte(`{"receipts":[],"more":1}`)), true, ReasonMalformedFrame},
		{"too many receipts", frameOf([]byte(tooMany)), true, ReasonMalformedFrame},
	})
	if n != 9 {
		t.Fatalf("%d faults reported, want 9", n)
	}

	// Good receipts: one for a record inpud holds, one it cannot vouch for.
	id := inpud.write(t, "members")
	ack, err := SendReceipts(ctx, ehrn.h, inpud.h.ID(), []Receipt{inpud.receipt(t, id), {ID: "not-an-id", Version: 1, Hash: "00"}})
	if err != nil {
		t.Fatal(err)
	}
	if ack.Accepted != 1 || ack.Ignored != 1 {
		t.Fatalf("ack %+v, want 1 accepted and 1 ignored", ack)
	}
	assertNoMoreFaults(t, log, n)
}

// TestCustodyServerReportsFaults: every custody request an honest node
// would never send is reported against its sender under its reason; a
// good request, and one the policy refuses, are not.
func TestCustodyServerReportsFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	log := &faultLog{}
	cfg := fastPullConfig()
	cfg.Faults = log
	srv, err := NewCustodyServer(reg, custodians{self: "inpud", of: map[string][]string{"ehrn": {"inpud"}}}, custodyStore{inpud.st}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	inpud.h.SetStreamHandler(CustodyProtocol, srv.Handle)
	ehrn.connect(t, inpud)

	push := binary.AppendUvarint([]byte{kindPush}, 3)
	push = binary.AppendUvarint(push, 1)
	push = append(binary.AppendUvarint(push, 5), "hello"...) // one blob, not a sealed one
	n := expectFaults(t, log, ehrn.h, inpud.h, CustodyProtocol, []faultCase{
		{"length over the maximum", binary.AppendUvarint(nil, MaxBatchFrame+1), true, ReasonOversizedFrame},
		{"varint overflow", varintOverflow, true, ReasonMalformedFrame},
		{"truncated frame", append(binary.AppendUvarint(nil, 40), 's'), true, ReasonMalformedFrame},
		{"closed without a request", nil, true, ReasonMalformedFrame},
		{"nothing, then silence", nil, false, ReasonStalled},
		{"an empty request", frameOf(nil), true, ReasonMalformedFrame},
		{"an unknown kind", frameOf([]byte("\x00\xff not a custody request")), true, ReasonMalformedFrame},
		{"a status with more", frameOf([]byte{kindStatus, 0}), true, ReasonMalformedFrame},
		{"a push with no position", frameOf([]byte{kindPush}), true, ReasonMalformedFrame},
		{"a push of a blob that is not one", frameOf(push), true, ReasonMalformedFrame},
		{"a fetch with no position", frameOf([]byte{kindFetch}), true, ReasonMalformedFrame},
		{"a fetch of no network", frameOf(append(binary.AppendUvarint([]byte{kindFetch}, 0), 1, '!')), true, ReasonMalformedFrame},
	})
	if n != 12 {
		t.Fatalf("%d faults reported, want 12", n)
	}

	// A good status request, and a fetch the policy refuses (ehrn may
	// fetch only its own copies): neither is a fault.
	if _, err := CustodyStatus(ctx, ehrn.h, inpud.h.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := FetchCustody(ctx, ehrn.h, inpud.h.ID(), "inpud", 0, 1); err == nil {
		t.Fatal("ehrn fetched inpud's custody copies")
	}
	if st := srv.Stats(); st.Statuses != 1 || st.Refused != 1 {
		t.Fatalf("stats %+v, want 1 status answered and 1 fetch refused", st)
	}
	assertNoMoreFaults(t, log, n)
}
