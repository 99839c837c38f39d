package sync

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/store"
)

// custodyStore keeps blobs in node/store, as the node does.
type custodyStore struct{ s *store.Store }

func (c custodyStore) Keep(origin string, from peer.ID, through uint64, blobs []Blob) (CustodyAck, error) {
	in := make([]store.CustodyBlob, len(blobs))
	for i, b := range blobs {
		h, err := b.Header()
		if err != nil {
			return CustodyAck{}, err
		}
		in[i] = store.CustodyBlob{ID: h.ID, Version: h.Version, Tag: h.Tag, Data: b}
	}
	k, err := c.s.KeepCustody(origin, from.String(), through, in)
	return CustodyAck{Stored: k.Stored, Duplicates: k.Duplicates, Held: k.Held, Through: k.Through}, err
}

func (c custodyStore) Blobs(origin string, after uint64, limit, maxBytes int) (CustodyBatch, error) {
	bs, last, more, err := c.s.CustodyBlobs(origin, after, limit, maxBytes)
	out := CustodyBatch{Last: last, More: more}
	for _, b := range bs {
		out.Blobs = append(out.Blobs, Blob(b))
	}
	return out, err
}

func (c custodyStore) Holding(origin string, from peer.ID) (CustodyHolding, error) {
	held, through, err := c.s.CustodyHolding(origin, from.String())
	return CustodyHolding{Held: held, Through: through}, err
}

// custodians is the registry's custodian lists, as one custodian sees them.
type custodians struct {
	self string
	of   map[string][]string
}

func (c custodians) Keeps(network string) bool { return slices.Contains(c.of[network], c.self) }
func (c custodians) MayFetch(requester, origin string) bool {
	return requester == origin
}

func (n *testNode) serveCustody(t *testing.T, reg *registry, of map[string][]string) *CustodyServer {
	t.Helper()
	srv, err := NewCustodyServer(reg, custodians{self: n.self.Network, of: of}, custodyStore{n.st}, fastPullConfig())
	if err != nil {
		t.Fatal(err)
	}
	n.h.SetStreamHandler(CustodyProtocol, srv.Handle)
	return srv
}

func testArchiveKey(t *testing.T) *ArchiveKey {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	k, err := NewArchiveKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// privateVersion seals a private record of n's network whose body holds marker.
func (n *testNode) privateVersion(t *testing.T, marker string) (model.Envelope, model.Payload) {
	t.Helper()
	now := time.Now()
	body, _ := json.Marshal(map[string]string{"title": marker})
	p := model.Payload{
		ID: model.NewID(now, rand.Reader), Kind: model.KindPriority, Origin: n.self.Network,
		Author: n.h.ID().String(), Version: 1, HLC: model.MakeHLC(now.UnixMilli(), 0), Body: body,
	}
	env, err := model.Seal(n.key, p)
	if err != nil {
		t.Fatal(err)
	}
	return env, p
}

// TestBlobSealsTheWholeEnvelope: a blob opens, with the right key only,
// to exactly the bytes sealed; the body is nowhere in it; sealing twice
// gives the same blob; a changed byte anywhere fails to open.
func TestBlobSealsTheWholeEnvelope(t *testing.T) {
	reg := newRegistry()
	o := newTestNode(t, reg, model.Reader{Network: "tanpud", Member: true}, fastPullConfig())
	k := testArchiveKey(t)
	env, p := o.privateVersion(t, "MARKER-kept-in-the-office-safe")
	b, err := k.Seal("tanpud", env, p)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("MARKER")) || bytes.Contains(b, env.Payload) || bytes.Contains(b, []byte(p.Author)) {
		t.Fatal("the blob carries the body, the payload or the author in clear")
	}
	h, err := b.Header()
	if err != nil || h.Origin != "tanpud" || h.ID != p.ID || h.Version != 1 || h.KeyID != k.ID() || len(h.Tag) != 32 {
		t.Fatalf("header %+v, %v", h, err)
	}
	again, err := k.Seal("tanpud", env, p)
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("sealing the same version twice gave another blob (%v)", err)
	}
	got, _, err := k.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := env.MarshalBinary()
	if gotBytes, _ := got.MarshalBinary(); !bytes.Equal(gotBytes, want) {
		t.Fatal("the blob opened to other bytes than the envelope sealed")
	}
	if _, _, err := testArchiveKey(t).Open(b); err == nil {
		t.Fatal("another archive key opened the blob")
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		if _, _, err := k.Open(c); err == nil {
			t.Fatalf("a blob with byte %d changed opened", i)
		}
	}
	if _, err := k.Seal("vnpud", env, p); err == nil {
		t.Fatal("sealed a tanpud record as vnpud's")
	}
}

// TestCustodyPushFetchAndRefusals: the origin's pushes are kept once,
// acknowledged with what the custodian holds, and fetched back in order;
// a network the origin did not choose is refused, and so is a push of
// another network's record and a fetch by another network.
func TestCustodyPushFetchAndRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := newRegistry()
	o := newTestNode(t, reg, model.Reader{Network: "tanpud", Member: true}, fastPullConfig())
	c := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	x := newTestNode(t, reg, model.Reader{Network: "vnpud", Member: true}, fastPullConfig())
	of := map[string][]string{"tanpud": {"ehrn", "inpud"}}
	srv := c.serveCustody(t, reg, of)
	o.connect(t, c)
	x.connect(t, c)
	k := testArchiveKey(t)

	var blobs []Blob
	var envs [][]byte
	for range 7 {
		env, p := o.privateVersion(t, "private")
		b, err := k.Seal("tanpud", env, p)
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, b)
		raw, _ := env.MarshalBinary()
		envs = append(envs, raw)
	}
	ack, err := PushCustody(ctx, o.h, c.h.ID(), 4, blobs[:4])
	if err != nil {
		t.Fatal(err)
	}
	if ack != (CustodyAck{Stored: 4, Held: 4, Through: 4}) {
		t.Fatalf("first push: %+v", ack)
	}
	ack, err = PushCustody(ctx, o.h, c.h.ID(), 9, blobs[2:])
	if err != nil || ack != (CustodyAck{Stored: 3, Duplicates: 2, Held: 7, Through: 9}) {
		t.Fatalf("second push: %+v, %v", ack, err)
	}
	if hold, err := CustodyStatus(ctx, o.h, c.h.ID()); err != nil || hold != (CustodyHolding{Held: 7, Through: 9}) {
		t.Fatalf("status: %+v, %v", hold, err)
	}

	var got [][]byte
	after := uint64(0)
	for range 10 {
		b, err := FetchCustody(ctx, o.h, c.h.ID(), "tanpud", after, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, bl := range b.Blobs {
			env, _, err := k.Open(bl)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := env.MarshalBinary()
			got = append(got, raw)
		}
		after = b.Last
		if !b.More {
			break
		}
	}
	if len(got) != len(envs) {
		t.Fatalf("fetched %d envelopes, want %d", len(got), len(envs))
	}
	for i := range envs {
		if !bytes.Equal(got[i], envs[i]) {
			t.Fatalf("envelope %d fetched back differs", i)
		}
	}

	// vnpud did not choose ehrn: its push is refused and nothing kept.
	xenv, xp := x.privateVersion(t, "x")
	xb, err := k.Seal("vnpud", xenv, xp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PushCustody(ctx, x.h, c.h.ID(), 1, []Blob{xb}); !errors.Is(err, ErrCustodyRefused) {
		t.Fatalf("push by a network that did not choose this custodian: %v", err)
	}
	// A tanpud node pushing another network's record is refused.
	if _, err := PushCustody(ctx, o.h, c.h.ID(), 10, []Blob{xb}); !errors.Is(err, ErrCustodyRefused) {
		t.Fatalf("push of another network's record: %v", err)
	}
	// vnpud may not fetch tanpud's copies.
	if _, err := FetchCustody(ctx, x.h, c.h.ID(), "tanpud", 0, 0); !errors.Is(err, ErrCustodyRefused) {
		t.Fatalf("fetch by another network: %v", err)
	}
	// A node the registry does not list is refused everything.
	reg.mu.Lock()
	delete(reg.readers, x.h.ID())
	reg.mu.Unlock()
	if _, err := CustodyStatus(ctx, x.h, c.h.ID()); !errors.Is(err, ErrCustodyRefused) {
		t.Fatalf("status for a stranger: %v", err)
	}
	if held, _, _ := c.st.CustodyHolding("vnpud", x.h.ID().String()); held != 0 {
		t.Fatalf("the custodian keeps %d blobs of vnpud after refusing its push", held)
	}
	if held, _, _ := c.st.CustodyHolding("tanpud", o.h.ID().String()); held != 7 {
		t.Fatalf("the custodian keeps %d blobs of tanpud, want 7", held)
	}
	if st := srv.Stats(); st.Pushes != 2 || st.Stored != 7 || st.Refused != 4 || st.Fetches < 3 {
		t.Errorf("server stats %+v", st)
	}
}

// TestCustodyServerSurvivesHostileRequests: unreadable requests are
// answered with a refusal the requester can read, and nothing is kept.
func TestCustodyServerSurvivesHostileRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := newRegistry()
	o := newTestNode(t, reg, model.Reader{Network: "tanpud", Member: true}, fastPullConfig())
	c := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	c.serveCustody(t, reg, map[string][]string{"tanpud": {"ehrn", "inpud"}})
	o.connect(t, c)
	for name, req := range map[string][]byte{
		"empty":            {},
		"unknown kind":     {'z'},
		"push no position": {kindPush},
		"push too many":    {kindPush, 1, 0xff, 0x0f},
		"push past end":    {kindPush, 1, 1, 10, 1, 2},
		"push not a blob":  {kindPush, 1, 1, 3, 9, 9, 9},
		"push trailing":    {kindPush, 1, 0, 7},
		"fetch no slug":    {kindFetch, 0, 0},
		"fetch bad slug":   append([]byte{kindFetch, 0, 0}, "Not/A slug"...),
		"status trailing":  {kindStatus, 1},
	} {
		_, err := custodyExchange(ctx, o.h, c.h.ID(), req, MaxBatchFrame)
		if !errors.Is(err, ErrCustodyBad) {
			t.Errorf("%s: %v, want the server to say it could not read it", name, err)
		}
	}
	if held, _, _ := c.st.CustodyHolding("tanpud", o.h.ID().String()); held != 0 {
		t.Fatalf("kept %d blobs from malformed pushes", held)
	}
}
