package sync

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"slices"
	stdsync "sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/p2p"
	"github.com/inpud/cairn/node/store"
)

// registry stands in for the federation registry: which node key belongs
// to which network, and who each peer is.
type registry struct {
	mu      stdsync.Mutex
	keys    map[string]authorKey // by peer ID string (payload Author)
	readers map[peer.ID]model.Reader
}

type authorKey struct {
	network string
	pub     ed25519.PublicKey
}

func newRegistry() *registry {
	return &registry{keys: map[string]authorKey{}, readers: map[peer.ID]model.Reader{}}
}

func (r *registry) Reader(p peer.ID) (model.Reader, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rd, ok := r.readers[p]
	return rd, ok
}

func (r *registry) key(author string) (authorKey, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.keys[author]
	return k, ok
}

// storeFeed adapts node/store to Feed.
type storeFeed struct{ s *store.Store }

func (f storeFeed) Feed(after uint64, limit int) ([]Entry, uint64, error) {
	st, last, err := f.s.Feed(after, limit)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Entry, len(st))
	for i, e := range st {
		out[i] = Entry{Seq: e.Seq, Env: e.Envelope, Payload: e.Payload}
	}
	return out, last, nil
}

// storeCheckpoints adapts node/store to Checkpoints.
type storeCheckpoints struct{ s *store.Store }

func (c storeCheckpoints) Checkpoint(p peer.ID) (uint64, error) { return c.s.Checkpoint(p.String()) }
func (c storeCheckpoints) SetCheckpoint(p peer.ID, seq uint64) error {
	return c.s.SetCheckpoint(p.String(), seq)
}

// storeSink verifies envelopes as a node would and stores the rest.
type storeSink struct {
	s    *store.Store
	self model.Reader
	reg  *registry
}

func (k storeSink) Store(_ peer.ID, envs []model.Envelope) (Counts, error) {
	var c Counts
	var ok []model.Envelope
	for _, env := range envs {
		p, err := env.Open()
		if err != nil {
			c.Rejected++
			continue
		}
		key, found := k.reg.key(p.Author)
		if !found || key.network != p.Origin || env.Verify(key.pub) != nil {
			c.Rejected++
			continue
		}
		if p.Origin != k.self.Network && !p.Audience.Admits(k.self) {
			c.Rejected++
			continue
		}
		ok = append(ok, env)
	}
	res, err := k.s.Put(ok...)
	if err != nil {
		return Counts{}, err
	}
	c.Stored, c.Duplicates = len(res.Stored), res.Duplicates
	return c, nil
}

// testNode is one member node: a real libp2p host on loopback, a real
// store, a pull server and a puller.
type testNode struct {
	self   model.Reader
	h      host.Host
	st     *store.Store
	key    ed25519.PrivateKey
	srv    *PullServer
	puller *Puller
}

func newTestNode(t *testing.T, reg *registry, self model.Reader, cfg PullConfig) *testNode {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := priv.Raw()
	if err != nil {
		t.Fatal(err)
	}
	pc := p2p.DefaultConfig()
	pc.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	g := p2p.NewGater(func(peer.ID) bool { return true })
	h, err := p2p.New(priv, pc, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	sc := store.DefaultConfig()
	sc.GCInterval = 0
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	n := &testNode{self: self, h: h, st: st, key: ed25519.PrivateKey(raw)}
	if n.srv, err = NewPullServer(storeFeed{st}, reg, cfg); err != nil {
		t.Fatal(err)
	}
	h.SetStreamHandler(PullProtocol, g.GuardStream(false, n.srv.Handle))
	n.puller = &Puller{Host: h, Sink: storeSink{s: st, self: self, reg: reg}, Checkpoints: storeCheckpoints{st}, Limit: 2}
	reg.mu.Lock()
	reg.keys[h.ID().String()] = authorKey{network: self.Network, pub: n.key.Public().(ed25519.PublicKey)}
	reg.readers[h.ID()] = self
	reg.mu.Unlock()
	return n
}

// connect makes n know other's addresses and connects them.
func (n *testNode) connect(t *testing.T, other *testNode) {
	t.Helper()
	if err := n.h.Connect(context.Background(), peer.AddrInfo{ID: other.h.ID(), Addrs: other.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// write seals a new record of n's network with audience aud and stores it.
func (n *testNode) write(t *testing.T, aud ...string) string {
	t.Helper()
	now := time.Now()
	p := model.Payload{
		ID:       model.NewID(now, rand.Reader),
		Kind:     model.KindPriority,
		Origin:   n.self.Network,
		Author:   n.h.ID().String(),
		Version:  1,
		HLC:      model.MakeHLC(now.UnixMilli(), 0),
		Audience: model.Audience(aud),
	}
	env, err := model.Seal(n.key, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.st.Put(env); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

// ids lists the ids of the current records n holds from origin.
func (n *testNode) ids(t *testing.T, origin string) []string {
	t.Helper()
	recs, err := n.st.List(store.Query{Origin: origin})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Payload.ID)
	}
	slices.Sort(out)
	return out
}

func (n *testNode) checkpoint(t *testing.T, p peer.ID) uint64 {
	t.Helper()
	seq, err := n.st.Checkpoint(p.String())
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func sorted(s ...string) []string { slices.Sort(s); return s }

func fastPullConfig() PullConfig {
	return PullConfig{RequestTimeout: 300 * time.Millisecond, WriteTimeout: 5 * time.Second}
}

func TestPullSendsOnlyWhatTheAudienceAdmits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Region: "global", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Region: "europe", Member: true}, fastPullConfig())
	ehrn.connect(t, inpud)

	// ehrn's own record, already relayed to inpud: inpud must not send it back.
	own := ehrn.write(t, "members")
	if _, err := ehrn.puller.CatchUp(ctx, inpud.h.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := inpud.puller.CatchUp(ctx, ehrn.h.ID()); err != nil {
		t.Fatal(err)
	}
	if got := inpud.ids(t, "ehrn"); !slices.Equal(got, []string{own}) {
		t.Fatalf("inpud holds %v from ehrn, want [%s]", got, own)
	}

	forEHRN := inpud.write(t, "network:ehrn")
	inpud.write(t, "private")
	inpud.write(t, "network:vnpud")
	forAll := inpud.write(t, "members")
	inpud.write(t, "region:eeca")
	forEurope := inpud.write(t, "region:europe")
	both := inpud.write(t, "network:vnpud", "region:europe")
	inpud.write(t, "network:vnpud") // the feed ends with a record ehrn may not see
	inpud.write(t)                  // and a private one (zero audience)

	st, err := ehrn.puller.CatchUp(ctx, inpud.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	want := sorted(forEHRN, forAll, forEurope, both)
	if got := ehrn.ids(t, "inpud"); !slices.Equal(got, want) {
		t.Fatalf("ehrn holds %v from inpud, want %v", got, want)
	}
	if got := ehrn.ids(t, "ehrn"); !slices.Equal(got, []string{own}) {
		t.Fatalf("ehrn holds %v of its own, want [%s]", got, own)
	}
	if st.Stored != 4 || st.Duplicates != 0 || st.Rejected != 0 || st.Received != 4 {
		t.Fatalf("stats %+v: want 4 received and stored", st)
	}
	head := inpud.st.Head()
	if cp := ehrn.checkpoint(t, inpud.h.ID()); cp != head {
		t.Fatalf("ehrn's checkpoint for inpud is %d, want inpud's head %d (past the filtered records)", cp, head)
	}
	if st.To != head || st.Requests < 5 {
		t.Fatalf("stats %+v: want To %d in several requests of 2", st, head)
	}

	// A second pull from the checkpoint transfers nothing.
	st, err = ehrn.puller.CatchUp(ctx, inpud.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	if st.Received != 0 || st.Requests != 1 || st.From != head || st.To != head {
		t.Fatalf("second catch-up: %+v, want one empty request at %d", st, head)
	}
	b, err := Pull(ctx, ehrn.h, inpud.h.ID(), head)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Envelopes) != 0 || b.Last != head || b.More {
		t.Fatalf("pull after the head: %d envelopes, last %d, more %v", len(b.Envelopes), b.Last, b.More)
	}

	// New records that ehrn may not see still move its checkpoint.
	inpud.write(t, "private")
	inpud.write(t, "network:vnpud")
	st, err = ehrn.puller.CatchUp(ctx, inpud.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	if st.Received != 0 || st.To != head+2 {
		t.Fatalf("catch-up over filtered records: %+v, want nothing received and checkpoint %d", st, head+2)
	}
}

func TestPullRefusesStrangersAndFormerMembers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, fastPullConfig())
	stranger := newTestNode(t, reg, model.Reader{Network: "stranger", Member: true}, fastPullConfig())
	former := newTestNode(t, reg, model.Reader{Network: "former", Member: true}, fastPullConfig())
	reg.mu.Lock()
	delete(reg.readers, stranger.h.ID())
	reg.readers[former.h.ID()] = model.Reader{Network: "former", Member: false}
	reg.mu.Unlock()
	inpud.write(t, "members")
	inpud.write(t, "network:stranger")

	for _, n := range []*testNode{stranger, former} {
		n.connect(t, inpud)
		st, err := n.puller.CatchUp(ctx, inpud.h.ID())
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("%s: got %v, want ErrRefused", n.self.Network, err)
		}
		if st.Received != 0 || n.checkpoint(t, inpud.h.ID()) != 0 || len(n.ids(t, "inpud")) != 0 {
			t.Fatalf("%s got something: %+v", n.self.Network, st)
		}
	}
	if got := waitStats(inpud.srv, func(g PullServerStats) bool { return g.Refused == 2 }); got.Refused != 2 || got.Served != 0 {
		t.Fatalf("server stats %+v, want 2 refused", got)
	}
}

// rawExchange opens a pull stream from h to p, writes raw and, if
// closeWrite, closes its write side; it returns what the server answered
// and the read error (nil when the server closed the stream cleanly).
func rawExchange(t *testing.T, h host.Host, p peer.ID, raw []byte, closeWrite bool) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p, PullProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write(raw); err != nil {
		return nil, err
	}
	if closeWrite {
		_ = s.CloseWrite()
	}
	return io.ReadAll(s)
}

func TestPullServerSurvivesHostileRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	ehrn.connect(t, inpud)
	shared := inpud.write(t, "members")

	frame := func(b string) []byte { return append(binary.AppendUvarint(nil, uint64(len(b))), b...) }
	reset := []struct {
		name       string
		raw        []byte
		closeWrite bool
	}{
		{"length over the maximum", binary.AppendUvarint(nil, MaxRequestFrame+1), true},
		{"length near 2^62", binary.AppendUvarint(nil, 1<<62), true},
		{"varint overflow", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true},
		{"truncated frame", append(binary.AppendUvarint(nil, 40), `{"after":`...), true},
		{"nothing, then silence", nil, false},
	}
	for _, tc := range reset {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := rawExchange(t, ehrn.h, inpud.h.ID(), tc.raw, tc.closeWrite); err == nil {
				t.Fatal("the server answered instead of resetting the stream")
			}
		})
	}
	refused := []struct{ name, req string }{
		{"not JSON", "\x00\x01garbage"},
		{"wrong type", `{"after":"x"}`},
		{"unknown field", `{"after":0,"limit":1,"all":true}`},
		{"negative limit", `{"after":0,"limit":-1}`},
		{"trailing data", `{"after":0}{}`},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := rawExchange(t, ehrn.h, inpud.h.ID(), frame(tc.req), true)
			if err != nil {
				t.Fatalf("read the answer: %v", err)
			}
			f, err := ReadFrame(bufio.NewReader(bytes.NewReader(resp)), MaxBatchFrame)
			if err != nil || len(f) < 2 || f[0] != kindError || f[1] != codeBadRequest {
				t.Fatalf("answer %q (%v), want a bad-request error frame", resp, err)
			}
		})
	}
	want := uint64(len(reset) + len(refused))
	if got := waitStats(inpud.srv, func(g PullServerStats) bool { return g.Malformed == want }); got.Malformed != want || got.Served != 0 {
		t.Fatalf("server stats %+v, want %d malformed", got, len(reset)+len(refused))
	}

	// The server still serves an honest member.
	st, err := ehrn.puller.CatchUp(ctx, inpud.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got := ehrn.ids(t, "inpud"); st.Stored != 1 || !slices.Equal(got, []string{shared}) {
		t.Fatalf("after hostile requests: %+v, holds %v", st, got)
	}
}

func TestPullRejectsHostileServers(t *testing.T) {
	reg := newRegistry()
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	rogue := newTestNode(t, reg, model.Reader{Network: "rogue", Member: true}, fastPullConfig())
	ehrn.connect(t, rogue)

	env, err := model.Seal(rogue.key, model.Payload{ID: model.NewID(time.Now(), rand.Reader), Kind: model.KindPriority, Origin: "rogue", Author: rogue.h.ID().String(), Version: 1, Audience: model.Audience{"members"}})
	if err != nil {
		t.Fatal(err)
	}
	eb, _ := env.MarshalBinary()
	batch := append(binary.AppendUvarint([]byte{kindBatch}, uint64(len(eb))), eb...)
	end := func(last uint64, more byte) []byte { return append(binary.AppendUvarint([]byte{kindEnd}, last), more) }
	framed := func(fs ...[]byte) []byte {
		var out []byte
		for _, f := range fs {
			out = append(binary.AppendUvarint(out, uint64(len(f))), f...)
		}
		return out
	}
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"oversized frame", binary.AppendUvarint(nil, MaxBatchFrame+1), ErrFrameTooLarge},
		{"no end frame", framed(batch), ErrProtocol},
		{"empty frame", framed([]byte{}), ErrProtocol},
		{"empty batch", framed([]byte{kindBatch}, end(5, 0)), ErrProtocol},
		{"bad envelope length", framed([]byte{kindBatch, 0xff, 0x01}, end(5, 0)), ErrProtocol},
		{"torn envelope", framed(append([]byte{kindBatch, 3}, "abc"...), end(5, 0)), ErrProtocol},
		{"end before the request", framed(end(9, 0)), ErrProtocol},
		{"records but no progress", framed(batch, end(10, 0)), ErrProtocol},
		{"more without progress", framed(end(10, 1)), ErrProtocol},
		{"malformed end", framed([]byte{kindEnd, 11}), ErrProtocol},
		{"data after the end", framed(end(11, 0), batch), ErrProtocol},
		{"unknown frame kind", framed([]byte{'?'}), ErrProtocol},
		{"unknown error code", framed([]byte{kindError, 99}), ErrProtocol},
		{"more records than asked", framed(batch, batch, batch, end(20, 0)), ErrProtocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rogue.h.SetStreamHandler(PullProtocol, func(s network.Stream) {
				defer s.Close()
				_, _ = ReadFrame(bufio.NewReader(s), MaxRequestFrame)
				_, _ = s.Write(tc.raw)
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := pull(ctx, ehrn.h, rogue.h.ID(), 10, 2, DefaultPullTimeout)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}

	// An honest end frame after a valid batch is accepted, unverified:
	// verification is the Sink's.
	rogue.h.SetStreamHandler(PullProtocol, func(s network.Stream) {
		defer s.Close()
		_, _ = ReadFrame(bufio.NewReader(s), MaxRequestFrame)
		_, _ = s.Write(framed(batch, end(11, 1)))
	})
	b, err := pull(context.Background(), ehrn.h, rogue.h.ID(), 10, 2, DefaultPullTimeout)
	if err != nil || len(b.Envelopes) != 1 || b.Last != 11 || !b.More || b.Envelopes[0].Hash() != env.Hash() {
		t.Fatalf("honest answer: %+v, %v", b, err)
	}
}

// failingSink stores nothing.
type failingSink struct{}

func (failingSink) Store(peer.ID, []model.Envelope) (Counts, error) {
	return Counts{}, errors.New("disk full")
}

func TestPullerKeepsCheckpointWhenStoringFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	ehrn.connect(t, inpud)
	inpud.write(t, "private")
	inpud.write(t, "members")
	inpud.write(t, "members")

	broken := &Puller{Host: ehrn.h, Sink: failingSink{}, Checkpoints: storeCheckpoints{ehrn.st}, Limit: 1}
	if _, err := broken.CatchUp(ctx, inpud.h.ID()); err == nil {
		t.Fatal("catch-up with a failing sink succeeded")
	}
	// The first request scanned only the private record and moved past it;
	// the second failed to store and must not move the checkpoint.
	if cp := ehrn.checkpoint(t, inpud.h.ID()); cp != 1 {
		t.Fatalf("checkpoint %d after a failed store, want 1", cp)
	}
	st, err := ehrn.puller.CatchUp(ctx, inpud.h.ID())
	if err != nil || st.Stored != 2 || st.To != 3 {
		t.Fatalf("catch-up after the failure: %+v, %v", st, err)
	}
}

// memFeed is a Feed in memory that can fail from a given seq on.
type memFeed struct {
	entries  []Entry
	failFrom uint64 // Feed fails when asked after a seq >= failFrom (0: never)
}

func (m *memFeed) Feed(after uint64, limit int) ([]Entry, uint64, error) {
	if m.failFrom != 0 && after >= m.failFrom {
		return nil, 0, errors.New("disk on fire")
	}
	var out []Entry
	last := after
	for _, e := range m.entries {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
			last = e.Seq
		}
	}
	return out, last, nil
}

// bigEntries seals n records of n's network, each with a body of size
// bytes, as feed entries 1..n.
func (n *testNode) bigEntries(t *testing.T, count, size int) []Entry {
	t.Helper()
	body := append(append([]byte(`{"note":"`), bytes.Repeat([]byte("x"), size)...), `"}`...)
	var out []Entry
	for i := range count {
		p := model.Payload{ID: model.NewID(time.Now(), rand.Reader), Kind: model.KindPriority, Origin: n.self.Network, Author: n.h.ID().String(), Version: 1, Audience: model.Audience{"members"}, Body: body}
		env, err := model.Seal(n.key, p)
		if err != nil {
			t.Fatal(err)
		}
		p.Schema = model.SchemaVersion
		out = append(out, Entry{Seq: uint64(i + 1), Env: env, Payload: p})
	}
	return out
}

func TestPullBoundsTheAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	ehrn.connect(t, inpud)

	// 40 records of about 1 MB: more than MaxPullBytes, and several per
	// batch frame.
	feed := &memFeed{entries: inpud.bigEntries(t, 40, 1_000_000)}
	srv, err := NewPullServer(feed, reg, fastPullConfig())
	if err != nil {
		t.Fatal(err)
	}
	inpud.h.SetStreamHandler(PullProtocol, srv.Handle)

	var got []model.Envelope
	after, requests := uint64(0), 0
	for {
		b, err := pull(ctx, ehrn.h, inpud.h.ID(), after, 100, DefaultPullTimeout)
		if err != nil {
			t.Fatal(err)
		}
		requests++
		size := 0
		for _, e := range b.Envelopes {
			size += len(e.Payload) + len(e.Sig)
		}
		if size > MaxPullBytes {
			t.Fatalf("one answer carried %d bytes, above MaxPullBytes", size)
		}
		got = append(got, b.Envelopes...)
		after = b.Last
		if !b.More {
			break
		}
	}
	if len(got) != 40 || after != 40 || requests < 2 {
		t.Fatalf("got %d envelopes up to %d in %d requests, want 40 up to 40 in several", len(got), after, requests)
	}
	for i, e := range got {
		if e.Hash() != feed.entries[i].Env.Hash() {
			t.Fatalf("envelope %d differs from the feed's", i)
		}
	}
}

func TestPullReportsFeedFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	ehrn.connect(t, inpud)
	feed := &memFeed{entries: inpud.bigEntries(t, feedPage+100, 10), failFrom: feedPage}
	srv, err := NewPullServer(feed, reg, fastPullConfig())
	if err != nil {
		t.Fatal(err)
	}
	inpud.h.SetStreamHandler(PullProtocol, srv.Handle)

	// The first page is sent; the feed fails on the second.
	b, err := pull(ctx, ehrn.h, inpud.h.ID(), 0, MaxPullLimit, DefaultPullTimeout)
	if err != nil || len(b.Envelopes) != feedPage || b.Last != feedPage || !b.More {
		t.Fatalf("pull across a failing feed: %d envelopes, last %d, more %v, %v", len(b.Envelopes), b.Last, b.More, err)
	}
	// Asked from there, the failure is reported.
	if _, err := pull(ctx, ehrn.h, inpud.h.ID(), b.Last, MaxPullLimit, DefaultPullTimeout); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	// The puller stores what arrived and keeps its checkpoint there.
	st, err := ehrn.puller.CatchUp(ctx, inpud.h.ID())
	if !errors.Is(err, ErrUnavailable) || st.Stored != feedPage || ehrn.checkpoint(t, inpud.h.ID()) != feedPage {
		t.Fatalf("catch-up across a failing feed: %+v, %v", st, err)
	}
	if got := waitStats(srv, func(g PullServerStats) bool { return g.Failed == 2 }); got.Failed != 2 {
		t.Fatalf("server stats %+v, want 2 failed", got)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultPullConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []PullConfig{{WriteTimeout: time.Second}, {RequestTimeout: time.Second}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if _, err := NewPullServer(nil, newRegistry(), DefaultPullConfig()); err == nil {
		t.Error("NewPullServer without a feed: no error")
	}
}

// waitStats returns the server's stats once done says they are complete, or
// after 10 s. The server counts an outcome after its last frame is on the
// wire, so a client can be ahead of the count.
func waitStats(srv *PullServer, done func(PullServerStats) bool) PullServerStats {
	deadline := time.Now().Add(10 * time.Second)
	for !done(srv.Stats()) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return srv.Stats()
}

// A page of large envelopes makes the next page smaller, so that pages
// come to about pageBytes; small ones, or none wanted, keep feedPage.
func TestNextPageFollowsEnvelopeSize(t *testing.T) {
	entries := func(n, size int) []Entry {
		out := make([]Entry, n)
		for i := range out {
			out[i].Env = model.Envelope{Payload: make([]byte, size-64), Sig: make([]byte, 64)}
		}
		return out
	}
	for _, c := range []struct {
		name string
		page []Entry
		want int
	}{
		{"1.5 KB audits", entries(100, 1500), feedPage},
		{"700 KB reports", entries(3, 700<<10), pageBytes / (700 << 10)},
		{"1 MB records", entries(2, 1<<20), 4},
		{"nothing wanted", make([]Entry, 50), feedPage},
	} {
		if got := nextPage(c.page); got != c.want {
			t.Errorf("%s: next page %d entries, want %d", c.name, got, c.want)
		}
	}
}
