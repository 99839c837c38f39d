package node

import (
	"strings"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
	cairnsync "github.com/inpud/cairn/sync"
)

// The sink verifies a chunk's signatures in batches (model.VerifyBatch).
// Each envelope's verdict must be the one checking it alone gives:
// singleCheck is the receiver's check one envelope at a time, with the
// single signature check (records.CheckOpened), as the sink ran it before
// batches.
func singleCheck(s recordSink, env model.Envelope) checked {
	st := s.n.fed.State()
	self := model.Reader{Network: s.n.profile.Slug, Region: s.n.profile.Region, Member: true}
	p, err := env.Open()
	if err != nil {
		return checked{p: p, v: s.refusal(env, p, err)}
	}
	held, cur, err := s.n.store.Known(p.ID, p.Version, env.Hash())
	if err == nil && held {
		return checked{p: p, v: verdict{held: true}}
	}
	if err != nil {
		cur = 0
	}
	if _, err := s.n.records.CheckOpened(env, p); err != nil {
		return checked{p: p, v: s.refusal(env, p, err)}
	}
	return s.checkSigned(st, self, env, p, cur)
}

// A batch of the rogue's good records with every kind of bad envelope
// among them, at places inside and across the 64-signature batches: the
// batched checks give every envelope the verdict the single check gives,
// so exactly the bad ones are refused, each for its reason.
func TestSinkBatchVerdictsMatchSingleChecks(t *testing.T) {
	f := startHostileFed(t, nil)
	rogue := nodeSigner(t, f.rogue)
	var envs []model.Envelope
	for range 200 {
		env, _ := seal(t, rogue, f.rogue.ID(), "rogue", nil)
		envs = append(envs, env)
	}
	held, err := f.victim.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "Drug checking at festivals", Importance: 3, Achievability: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	heldEnv, err := f.victim.store.Get(held.ID)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := seal(t, rogue, f.honest.ID(), "tanpud", nil)
	tampered := envs[5]
	tampered.Payload = []byte(strings.Replace(string(tampered.Payload), "Naloxone", "Nalaxone", 1))
	future, _ := seal(t, rogue, f.rogue.ID(), "rogue", func(p *model.Payload) {
		p.HLC = model.MakeHLC(time.Now().Add(time.Hour).UnixMilli(), 0)
	})
	stranger := newSigner(t)
	unknown, _ := seal(t, stranger, stranger.id, "rogue", nil)
	noAuthor, _ := seal(t, rogue, "not-a-peer-id", "rogue", nil)
	outside, _ := seal(t, rogue, f.rogue.ID(), "rogue", func(p *model.Payload) { p.Audience = model.Audience{"network:someone-else"} })
	bad := map[int]struct {
		env    model.Envelope
		reason cairnsync.Reason
	}{
		3:   {forged, cairnsync.ReasonBadSignature},
		63:  {tampered, cairnsync.ReasonBadSignature},
		64:  {future, cairnsync.ReasonFutureTimestamp},
		90:  {unknown, cairnsync.ReasonUnknownKey},
		120: {noAuthor, cairnsync.ReasonMalformed},
		150: {outside, cairnsync.ReasonOutsideAudience},
		170: {heldEnv.Envelope, ""},
		199: {forged, cairnsync.ReasonBadSignature},
	}
	for i, b := range bad {
		envs[i] = b.env
	}
	sink := recordSink{n: f.victim, r: f.victim.repl}
	st := f.victim.fed.State()
	self := model.Reader{Network: f.victim.profile.Slug, Region: f.victim.profile.Region, Member: true}
	for _, chunk := range [][2]int{{0, len(envs)}, {0, 100}, {100, len(envs)}, {63, 65}} {
		got := make([]checked, chunk[1]-chunk[0])
		sink.checkChunk(st, self, envs[chunk[0]:chunk[1]], got)
		for j, g := range got {
			i := chunk[0] + j
			want := singleCheck(sink, envs[i])
			if g.v != want.v {
				t.Fatalf("chunk %v, envelope %d: batched verdict %+v, single %+v", chunk, i, g.v, want.v)
			}
			b, isBad := bad[i]
			switch {
			case i == 170 && !g.v.held:
				t.Fatalf("envelope %d is held, verdict %+v", i, g.v)
			case isBad && g.v.reason != b.reason:
				t.Fatalf("envelope %d: refused for %q, want %q", i, g.v.reason, b.reason)
			case !isBad && (g.v != verdict{} || g.body == nil):
				t.Fatalf("good envelope %d: verdict %+v", i, g.v)
			}
		}
	}
}

// A peer that sends many good records with one forged signature among
// them: the victim refuses exactly that one (one bad-signature refusal,
// dropped), stores nothing of the batch, and still gets honest records.
func TestHostileForgedAmongGood(t *testing.T) {
	f := startHostileFed(t, nil)
	rogue := nodeSigner(t, f.rogue)
	var envs []model.Envelope
	var ids []string
	for range 150 {
		env, id := seal(t, rogue, f.rogue.ID(), "rogue", nil)
		envs = append(envs, env)
		ids = append(ids, id)
	}
	envs[100], _ = seal(t, rogue, f.honest.ID(), "tanpud", nil)
	f.serveEnvelopes(envs...)
	if ps := f.syncVictim(t); ps.Rejected != 1 || ps.Stored != 0 || !strings.Contains(ps.Error, "dropped the peer") {
		t.Fatalf("the round with a forged record among 149 good: %+v", ps)
	}
	for i, id := range ids {
		if i != 100 {
			f.holdsNothing(t, id)
		}
	}
	f.refused(t, cairnsync.ReasonBadSignature, 1, true)
	f.honestStillArrives(t, true)
}
