package node

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/federation"
	"github.com/inpud/cairn/node/registry"
	"github.com/inpud/cairn/node/store"
	cairnsync "github.com/inpud/cairn/sync"
)

// These tests attack a real node (the victim, inpud's steward) from a
// real member node (rogue), whose pull handler the test replaces to serve
// crafted answers, or which opens raw streams. Each checks what a user
// would: the victim stores nothing of it, `cairn peers` counts it under
// its reason, the rogue is dropped where the rule (drop.go) says so and
// only there, and a record an honest member (tanpud) shares still reaches
// the victim afterwards.

// hostileFed is the federation under attack.
type hostileFed struct {
	victim, rogue, honest *Node
	requests              atomic.Int32 // pull requests the rogue's replaced handler answered
	disconnects           atomic.Int32 // victim-side disconnections from the rogue
}

func hostileConfig(t *testing.T, slug, level string) Config {
	cfg := DefaultConfig(filepath.Join(t.TempDir(), slug))
	cfg.API = "127.0.0.1:0"
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Registry = federation.FastConfig("")
	cfg.Network = Profile{Slug: slug, Name: strings.ToUpper(slug), Level: level}
	cfg.SyncInterval = time.Hour // rounds run when a test asks (SyncNow), so counts are exact
	cfg.Sync.RequestTimeout = 300 * time.Millisecond
	cfg.Sync.PullTimeout = 500 * time.Millisecond
	return cfg
}

func startHostileFed(t *testing.T, tune func(*Config)) *hostileFed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := func(cfg Config) *Node {
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(ctx); err != nil {
			n.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	vc := hostileConfig(t, "inpud", "global")
	vc.Bootstrap = true
	if tune != nil {
		tune(&vc)
	}
	f := &hostileFed{victim: start(vc), rogue: start(hostileConfig(t, "rogue", "national")), honest: start(hostileConfig(t, "tanpud", "national"))}
	for _, n := range []*Node{f.rogue, f.honest} {
		code, err := f.victim.Federation().Invite(ctx, registry.Profile{Slug: n.Profile().Slug, Name: n.Profile().Name, Level: "national"}, registry.RoleMember, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Join(ctx, code.String()); err != nil {
			t.Fatal(err)
		}
	}
	rogue := f.rogue.host.ID()
	nb := &network.NotifyBundle{DisconnectedF: func(_ network.Network, c network.Conn) {
		if c.RemotePeer() == rogue {
			f.disconnects.Add(1)
		}
	}}
	f.victim.host.Network().Notify(nb)
	t.Cleanup(func() { f.victim.host.Network().StopNotify(nb) })
	// Every node knows every member before the attack starts.
	waitFor(t, "the registry to reach every node", func() bool {
		for _, n := range []*Node{f.victim, f.rogue, f.honest} {
			if len(n.fed.State().Peers()) != 3 {
				return false
			}
		}
		return true
	})
	return f
}

// serve replaces the rogue's pull handler: every request is answered
// with the bytes answer returns for the request's "after". f.requests
// counts the victim's.
func (f *hostileFed) serve(answer func(after uint64) []byte) {
	f.rogue.host.SetStreamHandler(cairnsync.PullProtocol, func(s network.Stream) {
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		b, err := cairnsync.ReadFrame(bufio.NewReader(s), cairnsync.MaxRequestFrame)
		if err != nil {
			_ = s.Reset()
			return
		}
		var req struct {
			After uint64 `json:"after"`
			Limit int    `json:"limit"`
		}
		_ = json.Unmarshal(b, &req)
		if s.Conn().RemotePeer() == f.victim.host.ID() {
			f.requests.Add(1)
		}
		_, _ = s.Write(answer(req.After))
	})
}

// serveEnvelopes makes the rogue answer every request with envs, as the
// pull protocol frames them (sync.PullProtocol): one batch frame ('b',
// then each envelope with its length) and an end frame ('e', last seq,
// no more).
func (f *hostileFed) serveEnvelopes(envs ...model.Envelope) {
	f.serve(func(after uint64) []byte {
		var out []byte
		if len(envs) > 0 {
			batch := []byte{'b'}
			for _, e := range envs {
				eb, _ := e.MarshalBinary()
				batch = binary.AppendUvarint(batch, uint64(len(eb)))
				batch = append(batch, eb...)
			}
			out = appendFrame(out, batch)
		}
		return appendFrame(out, append(binary.AppendUvarint([]byte{'e'}, after+uint64(len(envs))), 0))
	})
}

func appendFrame(out, f []byte) []byte {
	return append(binary.AppendUvarint(out, uint64(len(f))), f...)
}

// signer is a node key: the rogue's own, or one it made up.
type signer struct {
	key ed25519.PrivateKey
	id  string // peer ID: the payload's author
}

func newSigner(t *testing.T) signer {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := priv.Raw()
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer{key: ed25519.PrivateKey(raw), id: id.String()}
}

func nodeSigner(t *testing.T, n *Node) signer {
	t.Helper()
	key, err := n.id.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	return signer{key: key, id: n.ID()}
}

// seal signs a valid, members-wide priority of origin as author, after
// edit changes its payload.
func seal(t *testing.T, by signer, author, origin string, edit func(*model.Payload)) (model.Envelope, string) {
	t.Helper()
	now := time.Now()
	body, err := json.Marshal(model.Priority{Kind: model.PriorityChange, Title: "Naloxone in every pharmacy", Importance: 5, Achievability: 4, HorizonYears: model.DefaultHorizon})
	if err != nil {
		t.Fatal(err)
	}
	p := model.Payload{
		ID: model.NewID(now, nil), Kind: model.KindPriority, Schema: model.SchemaVersion, Origin: origin, Author: author,
		Version: 1, HLC: model.MakeHLC(now.UnixMilli(), 0), Audience: model.Audience{model.AudienceMembers}, Language: "en", Body: body,
	}
	if edit != nil {
		edit(&p)
	}
	env, err := model.Seal(by.key, p)
	if err != nil {
		t.Fatal(err)
	}
	return env, p.ID
}

// syncVictim runs one round on the victim and returns what it did with
// the rogue.
func (f *hostileFed) syncVictim(t *testing.T) PeerSync {
	t.Helper()
	res, err := f.victim.SyncNow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range res.([]PeerSync) {
		if ps.ID == f.rogue.ID() {
			return ps
		}
	}
	t.Fatalf("the round did not try the rogue: %+v", res)
	return PeerSync{}
}

// rogueState is the rogue's line in the victim's `cairn peers`.
func (f *hostileFed) rogueState(t *testing.T) PeerState {
	t.Helper()
	p, ok := f.rogueListed(t)
	if !ok {
		t.Fatal("the victim's peers do not list the rogue")
	}
	return p
}

func (f *hostileFed) rogueListed(t *testing.T) (PeerState, bool) {
	t.Helper()
	ps, err := f.victim.Peers()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps.([]PeerState) {
		if p.ID == f.rogue.ID() {
			return p, true
		}
	}
	return PeerState{}, false
}

// holdsNothing fails if the victim holds any version of the record id.
func (f *hostileFed) holdsNothing(t *testing.T, id string) {
	t.Helper()
	if st, err := f.victim.store.Get(id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the victim stored %s (version %d) from the rogue: %v", id, st.Payload.Version, err)
	}
}

// refused checks the victim counted want refusals for reason against the
// rogue (and no others), and dropped it or not, as the rule says.
func (f *hostileFed) refused(t *testing.T, reason cairnsync.Reason, want int, dropped bool) PeerState {
	t.Helper()
	ps := f.rogueState(t)
	total := 0
	for _, n := range ps.Rejections {
		total += n
	}
	if ps.Rejections[reason] != want || total != want || ps.Rejected != want {
		t.Fatalf("the victim counts %d rejected, by reason %v; want %d %s", ps.Rejected, ps.Rejections, want, reason)
	}
	if !dropped {
		if ps.Drops != 0 || f.disconnects.Load() != 0 || f.victim.host.Network().Connectedness(f.rogue.host.ID()) != network.Connected {
			t.Fatalf("the rogue was dropped for %s (%d drops, %d disconnections); the rule only counts it", reason, ps.Drops, f.disconnects.Load())
		}
		return ps
	}
	if ps.Drops < 1 || ps.DropReason != reason || !ps.DroppedUntil.After(time.Now().Add(9*time.Minute)) {
		t.Fatalf("the rogue was not dropped for %s for the default 10 minutes: %+v", reason, ps)
	}
	waitFor(t, "the victim to close its connections to the rogue", func() bool { return f.disconnects.Load() > 0 })
	return ps
}

// honestStillArrives: a record the honest member shares reaches the
// victim, and a dropped rogue is not asked for anything meanwhile.
func (f *hostileFed) honestStillArrives(t *testing.T, dropped bool) {
	t.Helper()
	rec, err := f.honest.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "OAT take-home doses", Importance: 4, Achievability: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.honest.Records().Share(rec.ID, model.Audience{model.AudienceMembers}); err != nil {
		t.Fatal(err)
	}
	asked := f.requests.Load()
	waitFor(t, "the honest member's record to reach the victim", func() bool {
		ps := f.syncVictim(t)
		if dropped && !strings.Contains(ps.Error, "dropped the peer") {
			t.Fatalf("the victim pulled from the dropped rogue: %+v", ps)
		}
		_, err := f.victim.Records().Get(rec.ID)
		return err == nil
	})
	if got := f.requests.Load(); dropped && got != asked {
		t.Fatalf("the victim asked the dropped rogue %d more times", got-asked)
	}
}

func TestHostileForgedSignature(t *testing.T) {
	var skew atomic.Int64
	f := startHostileFed(t, func(c *Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	// A valid payload naming the honest member's node as author and
	// tanpud as origin, signed with the rogue's own key; a good record of
	// the rogue's own comes after it in the same batch.
	forged, id := seal(t, nodeSigner(t, f.rogue), f.honest.ID(), "tanpud", nil)
	good, goodID := seal(t, nodeSigner(t, f.rogue), f.rogue.ID(), "rogue", nil)
	f.serveEnvelopes(forged, good)
	if ps := f.syncVictim(t); ps.Rejected != 1 || ps.Stored != 0 || !strings.Contains(ps.Error, "dropped the peer") {
		t.Fatalf("the round with a forged record: %+v", ps)
	}
	f.holdsNothing(t, id)
	f.holdsNothing(t, goodID) // nothing of a batch with a forgery in it
	f.refused(t, cairnsync.ReasonBadSignature, 1, true)
	f.honestStillArrives(t, true)

	// After the backoff the victim pulls from the rogue again, and drops
	// it again for the same forgery.
	skew.Store(int64(11 * time.Minute))
	asked := f.requests.Load()
	f.syncVictim(t)
	if f.requests.Load() == asked {
		t.Fatal("the victim did not pull from the rogue again after the backoff")
	}
	if ps := f.rogueState(t); ps.Drops != 2 || ps.Rejections[cairnsync.ReasonBadSignature] != 2 {
		t.Fatalf("after the backoff: %+v", ps)
	}
	f.holdsNothing(t, id)
}

func TestHostileUnknownKey(t *testing.T) {
	f := startHostileFed(t, func(c *Config) { c.Sync.DropAfter = 3 })
	// Signed by a key the registry does not hold.
	stranger := newSigner(t)
	env, id := seal(t, stranger, stranger.id, "rogue", nil)
	f.serveEnvelopes(env)
	for range 2 {
		if ps := f.syncVictim(t); !strings.Contains(ps.Error, "not (yet) in this node's registry") {
			t.Fatalf("the round: %+v", ps)
		}
	}
	f.holdsNothing(t, id)
	f.refused(t, cairnsync.ReasonUnknownKey, 2, false)

	// Signed by the rogue's registered key, for another network: the
	// third refusal in a row drops it.
	other, otherID := seal(t, nodeSigner(t, f.rogue), f.rogue.ID(), "tanpud", nil)
	f.serveEnvelopes(other)
	f.syncVictim(t)
	f.holdsNothing(t, otherID)
	f.refused(t, cairnsync.ReasonUnknownKey, 3, true)
	f.honestStillArrives(t, true)
}

func TestHostileRevokedKey(t *testing.T) {
	f := startHostileFed(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The rogue network registers a second node key, then revokes it.
	old := newSigner(t)
	if _, err := f.rogue.Federation().Propose(ctx, registry.AddNodeKey, registry.AddNodeKeyArgs{Network: "rogue", PeerID: old.id}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.rogue.Federation().Propose(ctx, registry.RevokeNodeKey, registry.RevokeNodeKeyArgs{PeerID: old.id}); err != nil {
		t.Fatal(err)
	}
	var cutoff int64
	waitFor(t, "the revocation to reach the victim", func() bool {
		k, ok := f.victim.fed.State().Node(old.id)
		cutoff = k.Cutoff
		return ok && k.Revoked
	})
	// A version dated before the cutoff still counts; one dated after it
	// (the revoked key backdates nothing: the cutoff is the registry's).
	before, beforeID := seal(t, old, old.id, "rogue", func(p *model.Payload) { p.HLC = model.MakeHLC(cutoff-60_000, 0) })
	after, afterID := seal(t, old, old.id, "rogue", func(p *model.Payload) { p.HLC = model.MakeHLC(max(cutoff, time.Now().UnixMilli()), 0) })
	f.serveEnvelopes(before, after)
	if ps := f.syncVictim(t); ps.Stored != 1 || ps.Rejected != 1 || ps.Error != "" {
		t.Fatalf("the round: %+v", ps)
	}
	if _, err := f.victim.store.Get(beforeID); err != nil {
		t.Fatalf("the version dated before the cutoff was not stored: %v", err)
	}
	f.holdsNothing(t, afterID)
	f.refused(t, cairnsync.ReasonRevokedKey, 1, false)
	f.honestStillArrives(t, false)
}

func TestHostileOutsideAudience(t *testing.T) {
	f := startHostileFed(t, nil)
	env, id := seal(t, nodeSigner(t, f.rogue), f.rogue.ID(), "rogue", func(p *model.Payload) { p.Audience = model.Audience{"network:someone-else"} })
	f.serveEnvelopes(env)
	if ps := f.syncVictim(t); ps.Rejected != 1 || ps.Error != "" {
		t.Fatalf("the round: %+v", ps)
	}
	f.holdsNothing(t, id)
	f.refused(t, cairnsync.ReasonOutsideAudience, 1, false)
	f.honestStillArrives(t, false)
}

func TestHostileOversizedFrame(t *testing.T) {
	f := startHostileFed(t, nil)
	// A frame announcing one byte more than a batch may have, then data.
	f.serve(func(uint64) []byte {
		return append(binary.AppendUvarint(nil, cairnsync.MaxBatchFrame+1), make([]byte, 64<<10)...)
	})
	if ps := f.syncVictim(t); ps.Stored != 0 || ps.Error == "" {
		t.Fatalf("the round: %+v", ps)
	}
	f.refused(t, cairnsync.ReasonOversizedFrame, 1, true)
	f.honestStillArrives(t, true)
}

func TestHostileMalformedFrame(t *testing.T) {
	f := startHostileFed(t, nil)
	f.serve(func(uint64) []byte { return []byte("\x0bnot a frame\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff") })
	if ps := f.syncVictim(t); ps.Stored != 0 || ps.Error == "" {
		t.Fatalf("the round: %+v", ps)
	}
	f.refused(t, cairnsync.ReasonMalformedFrame, 1, true)
	f.honestStillArrives(t, true)

	// Garbage as a pull request, on a stream the rogue opens, counts too.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := f.rogue.host.NewStream(ctx, f.victim.host.ID(), cairnsync.PullProtocol)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.Write([]byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xffgarbage"))
	_ = s.CloseWrite()
	waitFor(t, "the victim to count the garbage request", func() bool {
		return f.rogueState(t).Rejections[cairnsync.ReasonMalformedFrame] == 2
	})
	_ = s.Reset()
	if ps := f.rogueState(t); ps.Drops != 2 {
		t.Fatalf("after a garbage request: %+v", ps)
	}
}

func TestHostileMalformedEnvelope(t *testing.T) {
	f := startHostileFed(t, nil)
	rogue := nodeSigner(t, f.rogue)
	// A validly signed record whose body breaks the rules only counts: a
	// newer program, or a template not replicated here yet, explains it.
	bad, badID := seal(t, rogue, f.rogue.ID(), "rogue", func(p *model.Payload) {
		p.Body = json.RawMessage(`{"kind":"change-needed","title":"x","importance":9,"achievability":4}`)
	})
	f.serveEnvelopes(bad)
	f.syncVictim(t)
	f.holdsNothing(t, badID)
	f.refused(t, cairnsync.ReasonMalformed, 1, false)

	// An envelope whose payload is not a payload at all drops the rogue.
	junk := []byte("this is not JSON")
	f.serveEnvelopes(model.Envelope{Payload: junk, Sig: ed25519.Sign(rogue.key, junk)})
	f.syncVictim(t)
	f.refused(t, cairnsync.ReasonMalformed, 2, true)
	f.honestStillArrives(t, true)
}

func TestHostileReplayedOlderVersion(t *testing.T) {
	f := startHostileFed(t, nil)
	// Three versions of one rogue record, all shared with members, each
	// with its own title, signed with the rogue's key. (Sealed here, not
	// written through the rogue's service, so no notify makes the victim
	// pull them by itself.)
	rogue := nodeSigner(t, f.rogue)
	var hs []store.Stored
	var id, prev string
	for v, title := range []string{"First wording", "Withdrawn wording", "Corrected wording"} {
		env, _ := seal(t, rogue, f.rogue.ID(), "rogue", func(p *model.Payload) {
			if id == "" {
				id = p.ID
			}
			p.ID, p.Version, p.Prev = id, uint64(v+1), prev
			p.HLC += model.HLC(v) << 16
			p.Body = json.RawMessage(`{"kind":"change-needed","title":"` + title + `","importance":3,"achievability":3,"horizon_years":"` + model.DefaultHorizon + `"}`)
		})
		p, err := env.Open()
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, store.Stored{Envelope: env, Payload: p, Hash: env.Hash()})
		prev = env.Hash()
	}
	v2, v3 := hs[1], hs[2]

	// The victim gets v3 only.
	f.serveEnvelopes(v3.Envelope)
	if ps := f.syncVictim(t); ps.Stored != 1 {
		t.Fatalf("the round with v3: %+v", ps)
	}
	// Then v2, which it never held, is replayed with v3 again, twice. v2
	// is refused as rolled back (the rogue served v3 before; a peer that
	// never did would get stale) and not stored (it could never be
	// current); v3 is a copy of what it holds, neither stored nor refused.
	// It counts but never drops the peer (rollback.go).
	for i := range 2 {
		f.serveEnvelopes(v2.Envelope, v3.Envelope)
		if ps := f.syncVictim(t); ps.Stored != 0 || ps.Rejected != 1 || ps.Error != "" {
			t.Fatalf("replay %d of v2 and v3: %+v, want nothing stored and v2 refused", i+1, ps)
		}
		if cur, err := f.victim.store.Get(id); err != nil || cur.Hash != v3.Hash {
			t.Fatalf("after replay %d the current version is %d (%v), want v3", i+1, cur.Payload.Version, err)
		}
		if held, _ := f.victim.store.Holds(id, 2, v2.Hash); held {
			t.Fatalf("after replay %d the victim holds v2", i+1)
		}
	}

	// Another v3 (same version number, another body) is kept as a
	// conflict, and the winner (the later one) is current.
	p := v3.Payload
	p.HLC++
	p.Body = json.RawMessage(`{"kind":"change-needed","title":"Concurrent wording","importance":3,"achievability":3,"horizon_years":"` + model.DefaultHorizon + `"}`)
	fork, err := model.Seal(rogue.key, p)
	if err != nil {
		t.Fatal(err)
	}
	f.serveEnvelopes(fork)
	if ps := f.syncVictim(t); ps.Stored != 1 || ps.Rejected != 0 {
		t.Fatalf("the round with a second v3: %+v", ps)
	}
	held, err := f.victim.store.History(id)
	if err != nil || len(held) != 2 {
		t.Fatalf("the victim holds %d versions (%v), want v3 and its conflicting twin", len(held), err)
	}
	if cur, err := f.victim.store.Get(id); err != nil || cur.Hash != fork.Hash() {
		t.Fatalf("current after the conflict: %v, %v; want the later v3", cur.Hash, err)
	}
	f.refused(t, cairnsync.ReasonRolledBack, 2, false)
	f.honestStillArrives(t, false)
}

func TestHostileFutureTimestamp(t *testing.T) {
	f := startHostileFed(t, nil)
	env, id := seal(t, nodeSigner(t, f.rogue), f.rogue.ID(), "rogue", func(p *model.Payload) {
		p.HLC = model.MakeHLC(time.Now().Add(time.Hour).UnixMilli(), 0)
	})
	f.serveEnvelopes(env)
	if ps := f.syncVictim(t); ps.Rejected != 1 || ps.Error != "" {
		t.Fatalf("the round: %+v", ps)
	}
	f.holdsNothing(t, id)
	f.refused(t, cairnsync.ReasonFutureTimestamp, 1, false)
	f.honestStillArrives(t, false)
}

// TestHostileStalledRequests: streams the rogue opens and never writes on
// are reset after the request timeout and counted against it, and the
// victim serves an honest member all the while.
func TestHostileStalledRequests(t *testing.T) {
	f := startHostileFed(t, nil)
	mine, err := f.victim.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Peer distribution of naloxone", Importance: 5, Achievability: 5}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.victim.Records().Share(mine.ID, model.Audience{model.AudienceMembers}); err != nil {
		t.Fatal(err)
	}
	// Five silent streams stay open at all times: each reopens once the
	// victim resets it.
	ctx, cancel := context.WithCancel(context.Background())
	var opened atomic.Int32
	var running atomic.Int32
	for range 5 {
		running.Add(1)
		go func() {
			defer running.Add(-1)
			for ctx.Err() == nil {
				sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
				s, err := f.rogue.host.NewStream(sctx, f.victim.host.ID(), cairnsync.PullProtocol)
				scancel()
				if err != nil {
					return
				}
				opened.Add(1)
				_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, _ = s.Read(make([]byte, 1)) // returns when the victim resets it
				_ = s.Reset()
			}
		}()
	}
	defer func() {
		cancel()
		waitFor(t, "the rogue's streams to stop", func() bool { return running.Load() == 0 })
	}()
	waitFor(t, "the rogue to open its silent streams", func() bool { return opened.Load() >= 5 })
	waitFor(t, "the victim's shared record to reach the honest member", func() bool {
		if _, err := f.honest.SyncNow(context.Background()); err != nil {
			t.Fatal(err)
		}
		_, err := f.honest.Records().Get(mine.ID)
		return err == nil
	})
	waitFor(t, "the victim to count the stalled streams", func() bool {
		ps, _ := f.rogueListed(t)
		return ps.Rejections[cairnsync.ReasonStalled] >= 5
	})
	ps := f.rogueState(t)
	if ps.Drops != 0 || ps.Rejected != ps.Rejections[cairnsync.ReasonStalled] {
		t.Fatalf("stalled streams are only counted: %+v", ps)
	}
	f.honestStillArrives(t, false)
}

// TestHostileStalledAnswer: a rogue that takes the request and never
// answers is given up after the pull timeout and counted; the round goes
// on to the honest member.
func TestHostileStalledAnswer(t *testing.T) {
	f := startHostileFed(t, nil)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	f.rogue.host.SetStreamHandler(cairnsync.PullProtocol, func(s network.Stream) {
		_, _ = cairnsync.ReadFrame(bufio.NewReader(s), cairnsync.MaxRequestFrame)
		f.requests.Add(1)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
		}
		_ = s.Reset()
	})
	if ps := f.syncVictim(t); !strings.Contains(ps.Error, "stopped answering") {
		t.Fatalf("the round: %+v", ps)
	}
	f.refused(t, cairnsync.ReasonStalled, 1, false)
	f.honestStillArrives(t, false)
}
