package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/federation"
	"github.com/inpud/cairn/node/records"
	cairnsync "github.com/inpud/cairn/sync"
)

// barrageHonestRecords is how many records the honest member shares while
// the attack runs; the victim must receive every one.
const barrageHonestRecords = 100

// barrageMaxRSS is the bound on the victim's peak resident memory (issue 6).
const barrageMaxRSS = 256 << 20

// TestHostilePeerBarrage (issue 6): one node, the victim, runs as a real
// `cairn start` process, so its peak memory (VmHWM) can be read. A member
// node's key is taken over by the test: a raw libp2p host controlled by
// the test (the attacker) holds that member's identity, on loopback. It
// throws every kind of bad input at the victim: as a pull server it
// answers the victim's pulls with forged signatures, unknown keys,
// out-of-audience records, invalid UTF-8, timestamps ten years ahead and
// ten years back, a replayed older version, a rolled-back version (version
// 3 of its own record after it served version 5), oversized and malformed
// frames and a stalled answer, and forks (a second version 2 of its own
// records, following the same version 1); as a client it opens a flood of
// 1,000 pull streams that never write, then 100 that write garbage,
// oversized, malformed and invalid-UTF-8 requests and silent streams on
// every Cairn protocol (pull, notify, receipt, custody). Meanwhile an
// honest member (an in-process node) shares records.
//
// What a user would check: nothing the attacker sent is in the victim's
// store (the rolled-back record stays at version 5, and its history notes
// the rollback); `cairn peers` counts the attacker's refusals under their
// reasons, each bad request as it is sent, whatever its protocol; each
// fork is kept, marked in `cairn record history` and counted against the
// attacker, with model.Wins' pick current; the honest member's records
// all arrive; the victim's peak RSS stays under 256 MB. The test logs
// "tried N bad inputs, accepted 0; forks detected F of F".
//
// The builders are the ones of node/hostile_test.go (pull answers framed
// as sync.PullProtocol does, envelopes sealed by a chosen key), written
// again here because that file is in package node's tests.
func TestHostilePeerBarrage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real node process; run without -short")
	}
	t0 := time.Now()
	elapsed := func() time.Duration { return time.Since(t0).Round(time.Millisecond) }
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "cairn")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	root := t.TempDir()
	victim := &proc{slug: "inpud", level: "global", dir: filepath.Join(root, "inpud"), api: freePort(t), p2p: freePort(t)}
	t.Cleanup(victim.kill)
	victim.start(t, bin, "--bootstrap",
		"--sync-interval", "200ms", "--sync-request-timeout", "1s", "--sync-pull-timeout", "3s",
		"--sync-drop-backoff", "1s")
	must := func(args ...string) string {
		t.Helper()
		out, err := cairnAt(victim.dir, args...)
		if err != nil {
			t.Fatalf("cairn %v: %v", args, err)
		}
		return out
	}
	var vst struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(must("status", "--json")), &vst); err != nil || vst.ID == "" {
		t.Fatalf("the victim's status: %v", err)
	}
	victimID, err := peer.Decode(vst.ID)
	if err != nil {
		t.Fatal(err)
	}
	victimAddr := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", victim.p2p))
	t.Logf("%v: built; the victim %s is ready", elapsed(), vst.ID)

	// The honest member and the rogue member join as in-process nodes;
	// then the rogue node stops and the attacker takes over its key and
	// its address (which the registry publishes to the victim).
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	join := func(slug string, port int) (*node.Node, node.Identity) {
		t.Helper()
		cfg := node.DefaultConfig(filepath.Join(root, slug))
		cfg.API = "127.0.0.1:0"
		cfg.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}
		cfg.Registry = federation.FastConfig("")
		cfg.Network = node.Profile{Slug: slug, Name: strings.ToUpper(slug), Level: "national"}
		cfg.SyncInterval = time.Second
		id, err := node.Init(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n, err := node.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(ctx); err != nil {
			n.Close()
			t.Fatal(err)
		}
		code := strings.TrimSpace(must("invite", "--network", slug, "--name", strings.ToUpper(slug), "--level", "national"))
		if _, err := n.Join(ctx, code); err != nil {
			n.Close()
			t.Fatalf("%s joins: %v", slug, err)
		}
		return n, id
	}
	honest, honestID := join("tanpud", freePort(t))
	t.Cleanup(func() { honest.Close() })
	roguePort := freePort(t)
	rogueNode, rogueID := join("rogue", roguePort)
	rogueKey, err := rogueID.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	rogueName := rogueNode.ID()
	waitUntil(t, ctx, "the honest member to know all three nodes", func() bool {
		return len(honest.Federation().State().Peers()) == 3
	})
	waitUntil(t, ctx, "the victim to list the rogue as a member", func() bool {
		out, err := cairnAt(victim.dir, "members", "--json")
		return err == nil && strings.Contains(out, rogueName)
	})
	if err := rogueNode.Close(); err != nil {
		t.Fatal(err)
	}
	att := newAttacker(t, rogueKey, roguePort, victimID)
	if att.h.ID().String() != rogueName {
		t.Fatalf("the attacker is %s, not the rogue member %s", att.h.ID(), rogueName)
	}
	connect := func() error {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		return att.h.Connect(cctx, peer.AddrInfo{ID: victimID, Addrs: []ma.Multiaddr{victimAddr}})
	}
	if err := connect(); err != nil {
		t.Fatalf("the attacker connects to the victim: %v", err)
	}
	t.Logf("%v: the honest member and the attacker (as member %s) are in", elapsed(), rogueName)
	// attackerPeer is the attacker's line of `cairn peers --json` on the
	// victim (zero counts while the victim has none).
	attackerPeer := func() node.PeerState {
		t.Helper()
		var peers []node.PeerState
		if err := json.Unmarshal([]byte(must("peers", "--json")), &peers); err != nil {
			t.Fatalf("cairn peers --json: %v", err)
		}
		for _, p := range peers {
			if p.ID == rogueName {
				return p
			}
		}
		return node.PeerState{ID: rogueName, Rejections: map[cairnsync.Reason]int{}}
	}

	// The honest member shares records all through the attack.
	honestIDs := make(chan []string, 1)
	go func() {
		var ids []string
		defer func() { honestIDs <- ids }()
		for i := range barrageHonestRecords {
			if ctx.Err() != nil {
				return
			}
			rec, err := honest.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: fmt.Sprintf("Naloxone in every pharmacy, district %d", i+1), Importance: 4, Achievability: 3}, false)
			if err != nil {
				t.Errorf("the honest member adds a priority: %v", err)
				return
			}
			if _, err := honest.Records().Share(rec.ID, model.Audience{model.AudienceMembers}); err != nil {
				t.Errorf("the honest member shares a priority: %v", err)
				return
			}
			ids = append(ids, rec.ID)
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// Phase 1: streams the attacker opens. First a flood: 1,000 pull
	// streams opened at once that never write (the resource manager lets
	// 16 through, the stream limiter 8 of those; they stall), then 100 at
	// once that write garbage (the first one read drops the attacker; the
	// rest find the connection closed, or reconnect and are dropped again).
	flood := func(n int, b []byte) {
		var wg stdsync.WaitGroup
		for range n {
			att.tried.Add(1)
			wg.Go(func() { att.stream(ctx, cairnsync.PullProtocol, b) })
		}
		wg.Wait()
	}
	flood(1000, nil)
	flooded := att.opened.Load()
	t.Logf("%v: the 1,000-stream flood is over; %d of its streams opened before the victim dropped the attacker", elapsed(), att.opened.Load())
	waitUntil(t, ctx, "the attacker to reconnect", func() bool { return connect() == nil })
	flood(100, []byte("\xff\xfegarbage, not a frame\x00\x01"))
	t.Logf("%v: the garbage flood is over", elapsed())
	// Then bad requests and silent streams on every protocol.
	// oversizedAt announces a frame of n bytes (over the protocol's
	// maximum) and sends 4 KiB of it.
	oversizedAt := func(n int) []byte { return append(binary.AppendUvarint(nil, uint64(n)), make([]byte, 4096)...) }
	oversized := oversizedAt(1 << 20) // 1 MiB: over every request maximum but custody's
	requests := []struct {
		proto protocol.ID
		b     []byte           // nil: a slow peer that never writes
		want  cairnsync.Reason // what the victim counts it as
	}{
		{cairnsync.PullProtocol, oversized, cairnsync.ReasonOversizedFrame},
		{cairnsync.PullProtocol, frame([]byte(`{"after":0,"limit":"` + "\xff\xfe" + `"}`)), cairnsync.ReasonMalformedFrame},     // invalid UTF-8
		{cairnsync.PullProtocol, frame([]byte(`{"after":0,"limit":1,"` + "\xc3\x28" + `":1}`)), cairnsync.ReasonMalformedFrame}, // invalid UTF-8 key
		{cairnsync.PullProtocol, nil, cairnsync.ReasonStalled},
		{cairnsync.NotifyProtocol, oversized, cairnsync.ReasonOversizedFrame},
		{cairnsync.NotifyProtocol, frame([]byte("\xff\xff")), cairnsync.ReasonMalformedFrame},                              // not a uvarint
		{cairnsync.NotifyProtocol, []byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), cairnsync.ReasonMalformedFrame}, // a length that overflows
		{cairnsync.NotifyProtocol, nil, cairnsync.ReasonStalled},
		{cairnsync.ReceiptProtocol, oversized, cairnsync.ReasonOversizedFrame},
		{cairnsync.ReceiptProtocol, frame([]byte(`{"receipts":[{"id":"` + "\xff" + `","version":1,"hash":"00"}]}`)), cairnsync.ReasonMalformedFrame},
		{cairnsync.ReceiptProtocol, nil, cairnsync.ReasonStalled},
		{cairnsync.CustodyProtocol, oversizedAt(cairnsync.MaxBatchFrame + 1), cairnsync.ReasonOversizedFrame},
		{cairnsync.CustodyProtocol, frame([]byte("\x00\xff not a custody request")), cairnsync.ReasonMalformedFrame},
		{cairnsync.CustodyProtocol, frame(nil), cairnsync.ReasonMalformedFrame}, // an empty request
		{cairnsync.CustodyProtocol, nil, cairnsync.ReasonStalled},
	}
	// Silent streams on every protocol at once (a slow peer that never
	// writes: each is reset after its protocol's request timeout, and
	// counted as stalled), then each bad request alone, reconnecting
	// first if the one before got the attacker dropped: every one of
	// them reaches the victim, and `cairn peers` counts it against the
	// attacker under its reason, whichever protocol it came on.
	stalledBefore := attackerPeer().Rejections[cairnsync.ReasonStalled]
	var silent stdsync.WaitGroup
	var silentOpened atomic.Int32
	for _, r := range requests {
		if r.b == nil {
			silent.Go(func() {
				if att.stream(ctx, r.proto, nil) {
					att.tried.Add(1)
					silentOpened.Add(1)
				}
			})
		}
	}
	silent.Wait()
	if n := silentOpened.Load(); n != 4 {
		t.Errorf("%d of the 4 silent streams (one per protocol) opened", n)
	}
	waitUntil(t, ctx, "the victim to count every silent stream as stalled", func() bool {
		return attackerPeer().Rejections[cairnsync.ReasonStalled]-stalledBefore >= int(silentOpened.Load())
	})
	for _, r := range requests {
		if r.b == nil {
			continue
		}
		before := attackerPeer().Rejections[r.want]
		waitUntil(t, ctx, "the attacker to reach the victim", func() bool {
			return connect() == nil && att.stream(ctx, r.proto, r.b)
		})
		att.tried.Add(1)
		waitUntil(t, ctx, fmt.Sprintf("the victim to count a bad %s request as %s", r.proto, r.want), func() bool {
			return attackerPeer().Rejections[r.want] > before
		})
	}
	t.Logf("%v: the bad requests are done; each was counted against the attacker under its reason", elapsed())

	// Phase 2: answers to the victim's own pulls, one bad answer a pull.
	stranger := newBarrageSigner(t)
	rogue := barrageSigner{key: rogueKey, id: rogueName}
	honestKey, err := honestID.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	var attackIDs []string
	sealed := func(by barrageSigner, author, origin string, edit func(*model.Payload)) model.Envelope {
		env, id := barrageSeal(t, by, author, origin, edit)
		attackIDs = append(attackIDs, id)
		return env
	}
	// A record of the honest member the victim will hold at version 3,
	// replayed at version 2 (validly signed by its origin, never held by
	// the victim): stale.
	base, err := honest.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: "OAT take-home doses", Importance: 5, Achievability: 4}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := honest.Records().Share(base.ID, model.Audience{model.AudienceMembers}); err != nil {
		t.Fatal(err)
	}
	title := "OAT take-home doses for everyone"
	if _, err := honest.Records().UpdatePriority(base.ID, records.PriorityPatch{Title: &title}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "the victim to hold the honest record at version 3", func() bool {
		return recordVersion(victim.dir, base.ID) == 3
	})
	replayed, _ := barrageSeal(t, barrageSigner{key: honestKey, id: honest.ID()}, honest.ID(), "tanpud", func(p *model.Payload) {
		p.ID, p.Version = base.ID, 2
		p.HLC = model.MakeHLC(time.Now().Add(-time.Hour).UnixMilli(), 0)
	})
	junkSig := sealed(rogue, rogueName, "rogue", nil)
	junkSig.Sig = make([]byte, ed25519.SignatureSize)
	_, _ = rand.Read(junkSig.Sig)
	// A record of the rogue's own network, versions 1 to 5, each following
	// the one before: the attacker serves version 5 (valid: the victim
	// stores it), then, in a later answer, version 3: a rollback.
	rolled := barrageChain(t, rogue, 5, "Drug checking at every festival")
	rolledID := payloadOf(t, rolled[0]).ID
	// Two records of the rogue's network, each forked: versions 1 and 2
	// first, then, in a later answer, another version 2 following the
	// same version 1 (as two nodes of one network writing at once would
	// make honestly, and a hostile one on purpose). A fork is not refused:
	// both versions are kept, the current one is model.Wins' pick, and
	// the history and `cairn peers` show it.
	type forked struct {
		id           string
		v1, v2, twin model.Envelope
		winner       string // the hash model.Wins makes current
	}
	var forks []forked
	for _, title := range []string{"Peer-run overdose response", "Safe supply pilots"} {
		vs := barrageChain(t, rogue, 2, title)
		p2 := payloadOf(t, vs[1])
		p2.HLC += 1 << 20
		body, err := json.Marshal(model.Priority{Kind: model.PriorityChange, Title: title + ", worded at the same time elsewhere", Importance: 3, Achievability: 3, HorizonYears: model.DefaultHorizon})
		if err != nil {
			t.Fatal(err)
		}
		p2.Body = body
		twin, err := model.Seal(rogueKey, p2)
		if err != nil {
			t.Fatal(err)
		}
		f := forked{id: p2.ID, v1: vs[0], v2: vs[1], twin: twin, winner: twin.Hash()}
		if model.Wins(payloadOf(t, vs[1]), p2, vs[1].Hash(), twin.Hash()) {
			f.winner = vs[1].Hash()
		}
		forks = append(forks, f)
	}
	validUTF8 := sealed(rogue, rogueName, "rogue", nil)
	i := strings.Index(string(validUTF8.Payload), `"title":"`) + len(`"title":"`)
	badUTF8 := append([]byte{}, validUTF8.Payload...)
	badUTF8[i] = 0xff // the title's first byte: not UTF-8
	answers := []answer{
		stallAnswer(),                          // takes the request, never answers
		setup(batch(rolled[4])),                // version 5 of the record rolled back below
		setup(batch(forks[0].v1, forks[0].v2)), // versions 1 and 2 of the records forked below
		setup(batch(forks[1].v1, forks[1].v2)),
		batch(sealed(rogue, rogueName, "tanpud", nil)),     // a forgery: another network's record, the rogue's key
		batch(sealed(rogue, honest.ID(), "tanpud", nil)),   // a forgery: the honest node named as author
		batch(junkSig),                                     // a signature of random bytes
		batch(sealed(stranger, stranger.id, "rogue", nil)), // a key the registry does not hold
		batch(sealed(rogue, rogueName, "rogue", func(p *model.Payload) { // outside the victim's audience
			p.Audience = model.Audience{"network:someone-else"}
		})),
		batch(model.Envelope{Payload: badUTF8, Sig: ed25519.Sign(rogueKey, badUTF8)}), // invalid UTF-8, validly signed
		batch(sealed(rogue, rogueName, "rogue", func(p *model.Payload) { // ten years ahead
			p.HLC = model.MakeHLC(time.Now().AddDate(10, 0, 0).UnixMilli(), 0)
		})),
		batch(sealed(rogue, rogueName, "rogue", func(p *model.Payload) { // ten years back
			p.HLC = model.MakeHLC(time.Now().AddDate(-10, 0, 0).UnixMilli(), 0)
		})),
		batch(sealed(rogue, rogueName, "rogue", func(p *model.Payload) { // a body the rules refuse
			p.Body = json.RawMessage(`{"kind":"change-needed","title":"x","importance":9,"achievability":4}`)
		})),
		batch(replayed), // an older version of a record the victim holds
		rawAnswer(append(binary.AppendUvarint(nil, cairnsync.MaxBatchFrame+1), make([]byte, 64<<10)...)), // oversized frame
		rawAnswer([]byte("\x0bnot a frame\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")),             // malformed frame
		batch(rolled[2]),           // version 3 after version 5: rolled back
		fork(batch(forks[0].twin)), // another version 2 after version 1: a fork
		fork(batch(forks[1].twin)),
	}
	badAnswers, forksTried := 0, 0
	for _, a := range answers {
		switch {
		case a.fork:
			forksTried++
		case !a.setup:
			badAnswers++
		}
	}
	attackIDs = append(attackIDs, replayedMarker(base.ID))
	att.serve(answers)
	waitUntil(t, ctx, "the victim to pull every bad answer", func() bool {
		if !att.connected(victimID) {
			_ = connect() // the victim dropped the attacker; it comes back
		}
		return att.served.Load() == int32(len(answers))
	})
	t.Logf("%v: the victim pulled all %d answers (%d bad, %d forks)", elapsed(), len(answers), badAnswers, forksTried)

	// The honest member's records all arrive.
	ids := <-honestIDs
	if len(ids) != barrageHonestRecords {
		t.Fatalf("the honest member shared %d records, want %d", len(ids), barrageHonestRecords)
	}
	waitUntil(t, ctx, "every honest record to reach the victim", func() bool {
		held := victimPriorities(t, victim.dir)
		for _, id := range ids {
			if _, ok := held[id]; !ok {
				return false
			}
		}
		return true
	})
	t.Logf("%v: all %d honest records reached the victim", elapsed(), len(ids))

	// Nothing of the attacker's is in the victim's store.
	held := victimPriorities(t, victim.dir)
	accepted := 0
	for _, id := range attackIDs {
		if base, ok := strings.CutPrefix(id, "replayed:"); ok {
			if v := recordVersion(victim.dir, base); v != 3 {
				t.Errorf("the replayed version 2 of %s changed what the victim holds: version %d", base, v)
				accepted++
			}
			// The victim may hold the genuine version 2 (if it pulled it
			// before version 3); the replay was sealed anew: its hash must
			// not be there.
			if hist := must("record", "history", base, "--json"); strings.Contains(hist, replayed.Hash()) {
				t.Errorf("the victim stored the replayed version of %s", base)
				accepted++
			}
			continue
		}
		if _, ok := held[id]; ok {
			t.Errorf("the victim stored %s, sent by the attacker", id)
			accepted++
		}
	}
	// The rogue's records the victim may hold: the one rolled back (at
	// version 5) and the forked ones, all validly signed by the rogue's
	// registered key; what it holds of them is checked below.
	legit := map[string]bool{rolledID: true}
	for _, f := range forks {
		legit[f.id] = true
	}
	for id, r := range held {
		if legit[id] {
			continue
		}
		if r.Origin == "rogue" || r.Author == rogueName || r.Author == stranger.id {
			t.Errorf("the victim holds %s (origin %s, author %s) from the attacker", id, r.Origin, r.Author)
			accepted++
		}
	}

	// The rolled-back version 3 was refused: the victim holds version 5
	// as current, no version 3, and the record's history notes the
	// rollback, naming the attacker.
	if cur, ok := held[rolledID]; !ok || cur.Version != 5 || cur.Hash != rolled[4].Hash() {
		t.Errorf("the victim holds %+v of the rolled-back record, want version 5 (%s) current", cur, rolled[4].Hash())
		accepted++
	}
	var rolledHist []historyEntry
	if err := json.Unmarshal([]byte(must("record", "history", rolledID, "--json")), &rolledHist); err != nil {
		t.Fatalf("cairn record history --json: %v", err)
	}
	noted := false
	for _, h := range rolledHist {
		if h.Hash == rolled[2].Hash() {
			t.Errorf("the victim stored the rolled-back version 3 of %s", rolledID)
			accepted++
		}
		for _, ev := range h.Events {
			noted = noted || (ev.Kind == "rolled-back" && ev.Version == 3 && ev.Hash == rolled[2].Hash() && ev.Peer == rogueName && ev.Held == 5)
		}
	}
	if !noted {
		t.Errorf("the history of %s does not note version 3 from the attacker refused against version 5: %+v", rolledID, rolledHist)
	}

	// Each fork was detected: the history marks both versions 2 as a fork
	// after version 1, and the current one is model.Wins' pick.
	forksDetected := 0
	for _, f := range forks {
		var hist []historyEntry
		if err := json.Unmarshal([]byte(must("record", "history", f.id, "--json")), &hist); err != nil {
			t.Fatalf("cairn record history --json: %v", err)
		}
		marked := 0
		for _, h := range hist {
			if h.Version == 2 && (h.Hash == f.v2.Hash() || h.Hash == f.twin.Hash()) && h.Fork != nil && h.Fork.Prev == f.v1.Hash() &&
				len(h.Fork.Versions) == 2 && slices.Contains(h.Fork.Versions, f.v2.Hash()) && slices.Contains(h.Fork.Versions, f.twin.Hash()) {
				marked++
			}
		}
		if marked == 2 {
			forksDetected++
		} else {
			t.Errorf("the history of %s marks %d of its two versions 2 as a fork after version 1: %+v", f.id, marked, hist)
		}
		if cur := held[f.id]; cur.Version != 2 || cur.Hash != f.winner {
			t.Errorf("the current version of forked %s is %d (%s), want model.Wins' pick %s", f.id, cur.Version, cur.Hash, f.winner)
		}
	}

	// `cairn peers` counts the attacker's refusals by reason.
	var peers []node.PeerState
	if err := json.Unmarshal([]byte(must("peers", "--json")), &peers); err != nil {
		t.Fatal(err)
	}
	var ps *node.PeerState
	for i := range peers {
		if peers[i].ID == rogueName {
			ps = &peers[i]
		}
	}
	if ps == nil {
		t.Fatalf("the victim's peers do not list the attacker: %+v", peers)
	}
	// The honest member, syncing all along, stayed far below the limits:
	// nothing it did was refused.
	for _, p := range peers {
		if p.ID == honest.ID() && (p.Rejected != 0 || p.Drops != 0) {
			t.Errorf("the victim refused the honest member %d times (%v), dropped it %d times", p.Rejected, p.Rejections, p.Drops)
		}
	}
	t.Logf("the victim counts against the attacker: %d refusals %v, %d drops", ps.Rejected, ps.Rejections, ps.Drops)
	for _, r := range []cairnsync.Reason{
		cairnsync.ReasonBadSignature, cairnsync.ReasonUnknownKey, cairnsync.ReasonOutsideAudience, cairnsync.ReasonMalformed,
		cairnsync.ReasonFutureTimestamp, cairnsync.ReasonStale, cairnsync.ReasonRolledBack, cairnsync.ReasonOversizedFrame,
		cairnsync.ReasonMalformedFrame, cairnsync.ReasonStalled, cairnsync.ReasonRateLimited,
	} {
		if ps.Rejections[r] == 0 {
			t.Errorf("the victim counted no %q against the attacker", r)
		}
	}
	if ps.Drops == 0 {
		t.Error("the victim never dropped the attacker")
	}
	if n := ps.Rejections[cairnsync.ReasonRolledBack]; n != 1 {
		t.Errorf("the victim counts %d rolled-back versions against the attacker, want the 1 it served", n)
	}
	if ps.Forks != forksTried {
		t.Errorf("the victim counts %d forks against the attacker, want %d", ps.Forks, forksTried)
	}

	// The victim is still up, and its peak memory stayed bounded.
	must("status")
	hwm := vmHWM(t, victim.cmd.Process.Pid)
	tried := int(att.tried.Load()) + badAnswers
	t.Logf("tried %d bad inputs, accepted %d; forks detected %d of %d (1,100 flood streams, of which %d of the 1,000 silent ones opened before the victim dropped the attacker; %d single streams; %d bad pull answers; %d valid versions served first); the victim's peak RSS (VmHWM) %.1f MiB",
		tried, accepted, forksDetected, forksTried, flooded, att.tried.Load()-1100, badAnswers, len(answers)-badAnswers-forksTried, float64(hwm)/(1<<20))
	if accepted != 0 {
		t.Fatalf("the victim accepted %d bad inputs", accepted)
	}
	if hwm >= barrageMaxRSS {
		t.Fatalf("the victim's peak RSS is %d bytes, over %d", hwm, barrageMaxRSS)
	}
}

// replayedMarker names the replay in the list of attack ids: its record
// is the honest member's, so it is checked by version, not presence.
func replayedMarker(id string) string { return "replayed:" + id }

// attacker is the test-controlled libp2p host holding the rogue member's
// key. tried counts the bad streams it opened; served the bad answers the
// victim pulled.
type attacker struct {
	t      *testing.T
	h      host.Host
	victim peer.ID
	tried  atomic.Int32
	served atomic.Int32
	opened atomic.Int32

	mu      stdsync.Mutex
	answers []answer // guarded by mu
	done    chan struct{}
}

// answer is one answer to a pull: bytes to write (followed by an end
// frame if end), or stall. Most are bad inputs; setup ones carry valid
// versions a later bad one needs (the version 5 a version 3 rolls back);
// fork ones carry a valid version that forks its record: not refused, but
// detected, and counted apart.
type answer struct {
	b     []byte
	end   bool
	stall bool
	setup bool
	fork  bool
}

func rawAnswer(b []byte) answer { return answer{b: b} }
func stallAnswer() answer       { return answer{stall: true} }
func setup(a answer) answer     { a.setup = true; return a }
func fork(a answer) answer      { a.fork = true; return a }

// batch frames envs as one pull answer (sync.PullProtocol): a batch frame
// ('b', each envelope with its length), then an end frame ('e', the last
// seq, no more). The seq is filled in per request (see serve).
func batch(envs ...model.Envelope) answer {
	b := []byte{'b'}
	for _, e := range envs {
		eb, _ := e.MarshalBinary()
		b = binary.AppendUvarint(b, uint64(len(eb)))
		b = append(b, eb...)
	}
	return answer{b: frame(b), end: true}
}

func frame(b []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(b))), b...) }

func endFrame(last uint64) []byte { return frame(append(binary.AppendUvarint([]byte{'e'}, last), 0)) }

func newAttacker(t *testing.T, key ed25519.PrivateKey, port int, victim peer.ID) *attacker {
	t.Helper()
	priv, err := crypto.UnmarshalEd25519PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// No resource manager of its own: the attacker must be free to open
	// as many streams as it likes; the victim's limits are under test.
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)),
		libp2p.ResourceManager(&network.NullResourceManager{}))
	if err != nil {
		t.Fatalf("the attacker's host on port %d: %v", port, err)
	}
	a := &attacker{t: t, h: h, victim: victim, done: make(chan struct{})}
	t.Cleanup(func() { close(a.done); h.Close() })
	a.serve(nil)
	return a
}

// serve makes the attacker answer the victim's pulls with answers, one
// each, in order; then (and before) with an empty answer. Other peers (the
// honest member pulls from the rogue's address too) get empty answers.
func (a *attacker) serve(answers []answer) {
	a.mu.Lock()
	a.answers = answers
	a.mu.Unlock()
	a.h.SetStreamHandler(cairnsync.PullProtocol, func(s network.Stream) {
		_ = s.SetDeadline(time.Now().Add(30 * time.Second))
		b, err := cairnsync.ReadFrame(bufio.NewReader(s), cairnsync.MaxRequestFrame)
		if err != nil {
			_ = s.Reset()
			return
		}
		var req struct {
			After uint64 `json:"after"`
		}
		_ = json.Unmarshal(b, &req)
		a.mu.Lock()
		var next *answer
		if len(a.answers) > 0 && s.Conn().RemotePeer() == a.victim {
			next = &a.answers[0]
			a.answers = a.answers[1:]
		}
		a.mu.Unlock()
		if next == nil {
			_, _ = s.Write(endFrame(req.After))
			_ = s.Close()
			return
		}
		a.served.Add(1)
		if next.stall {
			select {
			case <-a.done:
			case <-time.After(10 * time.Second): // the victim gives up after 3 s
			}
			_ = s.Reset()
			return
		}
		_, _ = s.Write(next.b)
		if next.end {
			_, _ = s.Write(endFrame(req.After + 1))
		}
		_ = s.Close()
	})
}

// stream opens one stream of proto to the victim, writes b (nothing if
// nil) and waits, bounded, for the victim to end it. It reports whether
// the stream opened and b was written; errors are expected (the victim
// refuses, resets or drops), so they are not the test's failures.
func (a *attacker) stream(ctx context.Context, proto protocol.ID, b []byte) (sent bool) {
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	s, err := a.h.NewStream(sctx, a.victim, proto)
	cancel()
	if err != nil {
		return false
	}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(15 * time.Second))
	if b != nil {
		if _, err := s.Write(b); err != nil {
			return false
		}
	}
	a.opened.Add(1)
	_, _ = s.Read(make([]byte, 1)) // returns when the victim resets or answers
	return true
}

func (a *attacker) connected(p peer.ID) bool {
	return a.h.Network().Connectedness(p) == network.Connected
}

// barrageSigner is a node key: the rogue's, the honest member's, or one
// the attacker made up.
type barrageSigner struct {
	key ed25519.PrivateKey
	id  string
}

func newBarrageSigner(t *testing.T) barrageSigner {
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
	return barrageSigner{key: ed25519.PrivateKey(raw), id: id.String()}
}

// barrageSeal signs a valid, members-wide priority of origin as author,
// after edit changes its payload.
func barrageSeal(t *testing.T, by barrageSigner, author, origin string, edit func(*model.Payload)) (model.Envelope, string) {
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

type heldRecord struct {
	ID      string `json:"id"`
	Origin  string `json:"origin"`
	Author  string `json:"author"`
	Version uint64 `json:"version"`
	Hash    string `json:"hash"`
}

// historyEntry is one version in `cairn record history --json`: its fork
// mark, and (on the last) the events noted about the record's chain.
type historyEntry struct {
	Version uint64 `json:"version"`
	Hash    string `json:"hash"`
	Fork    *struct {
		Prev     string   `json:"prev"`
		Versions []string `json:"versions"`
	} `json:"fork"`
	Events []struct {
		Kind    string `json:"kind"`
		Peer    string `json:"peer"`
		Version uint64 `json:"version"`
		Hash    string `json:"hash"`
		Held    uint64 `json:"held"`
	} `json:"events"`
}

// barrageChain seals versions 1 to n of one new priority of the rogue's
// network titled title, each following the one before (Prev) and dated
// after it, signed by the rogue's key.
func barrageChain(t *testing.T, rogue barrageSigner, n int, title string) []model.Envelope {
	t.Helper()
	var out []model.Envelope
	var id, prev string
	for v := 1; v <= n; v++ {
		env, pid := barrageSeal(t, rogue, rogue.id, "rogue", func(p *model.Payload) {
			if id != "" {
				p.ID = id
			}
			p.Version, p.Prev = uint64(v), prev
			p.HLC += model.HLC(v) << 16
			body, err := json.Marshal(model.Priority{Kind: model.PriorityChange, Title: fmt.Sprintf("%s (version %d)", title, v), Importance: 4, Achievability: 3, HorizonYears: model.DefaultHorizon})
			if err != nil {
				t.Fatal(err)
			}
			p.Body = body
		})
		id, prev = pid, env.Hash()
		out = append(out, env)
	}
	return out
}

// payloadOf opens env, which the test sealed.
func payloadOf(t *testing.T, env model.Envelope) model.Payload {
	t.Helper()
	p, err := env.Open()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// victimPriorities is `cairn priority list --json` on the victim, by id.
func victimPriorities(t *testing.T, dir string) map[string]heldRecord {
	t.Helper()
	out, err := cairnAt(dir, "priority", "list", "--json")
	if err != nil {
		t.Fatalf("cairn priority list: %v", err)
	}
	var recs []heldRecord
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("cairn priority list --json: %v\n%s", err, out)
	}
	m := map[string]heldRecord{}
	for _, r := range recs {
		m[r.ID] = r
	}
	return m
}

// recordVersion is the version of id the victim holds as current, 0 if
// none.
func recordVersion(dir, id string) uint64 {
	out, err := cairnAt(dir, "priority", "list", "--json")
	if err != nil {
		return 0
	}
	var recs []heldRecord
	if json.Unmarshal([]byte(out), &recs) != nil {
		return 0
	}
	for _, r := range recs {
		if r.ID == id {
			return r.Version
		}
	}
	return 0
}

// vmHWM is the peak resident set size of process pid, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read the victim's memory: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// waitUntil polls cond every 100 ms until it holds, or fails the test
// when ctx ends or two minutes pass.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(2 * time.Minute)
	for !cond() {
		if ctx.Err() != nil || time.Now().After(end) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
