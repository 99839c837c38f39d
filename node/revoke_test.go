package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	stdsync "sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/registry"
	"github.com/inpud/cairn/node/store"
	cairnsync "github.com/inpud/cairn/sync"
)

// RELIABILITY T7 and issue 6 "Must show" (revocation), on four real nodes
// on loopback: inpud is the steward; anpud, enpud and dnpud are members,
// and dnpud (D) is the one removed, by revoking its node key or by
// suspending its network.

// refuseWithin is how soon after the registry change every other node
// must refuse D, as the issue states it.
const refuseWithin = 5 * time.Second

func revocationCluster(t *testing.T) *cluster {
	t.Helper()
	return newCluster(t, []Profile{
		{Slug: "inpud", Name: "INPUD", Level: "global"},
		{Slug: "anpud", Name: "ANPUD", Level: "regional", Region: "asia"},
		{Slug: "enpud", Name: "ENPUD", Level: "regional", Region: "eeca"},
		{Slug: "dnpud", Name: "DNPUD", Level: "national", Region: "asia"},
	}, 1)
}

// shareWithMembers writes a priority on n and shares it with every member.
func shareWithMembers(t *testing.T, n *Node, title string) string {
	t.Helper()
	rec, err := n.Records().AddPriority(model.Priority{Kind: model.PriorityChange, Title: title, Importance: 4, Achievability: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Records().Share(rec.ID, model.Audience{model.AudienceMembers}); err != nil {
		t.Fatal(err)
	}
	return rec.ID
}

// waitAllRefuse waits, at most refuseWithin from since, until every node
// of others refuses d in its gater and holds no connection to it; it
// returns how long that took.
func waitAllRefuse(t *testing.T, others []*Node, d *Node, since time.Time) time.Duration {
	t.Helper()
	refuses := func() bool {
		for _, n := range others {
			if n.gater.Allowed(d.host.ID()) || n.host.Network().Connectedness(d.host.ID()) == network.Connected {
				return false
			}
		}
		return true
	}
	for !refuses() {
		if time.Since(since) > refuseWithin {
			for _, n := range others {
				t.Logf("%s: allows D %v, connected to D %v", n.profile.Slug, n.gater.Allowed(d.host.ID()),
					n.host.Network().Connectedness(d.host.ID()) == network.Connected)
			}
			t.Fatalf("not every node refused D within %s of the registry change", refuseWithin)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(since)
}

// checkDCannotConnect: D dials every other node; each refuses the
// authenticated connection (its gater counts it) and none stays open.
func checkDCannotConnect(t *testing.T, others []*Node, d *Node) {
	t.Helper()
	for _, n := range others {
		before := n.gater.Refused().Secured
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := d.host.Connect(ctx, peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
		cancel()
		if err == nil {
			waitFor(t, n.profile.Slug+" to close D's connection", func() bool {
				return n.host.Network().Connectedness(d.host.ID()) != network.Connected
			})
		}
		if got := n.gater.Refused().Secured; got <= before {
			t.Errorf("%s's gater did not refuse D's connection (refused %d before, %d after; dial error %v)", n.profile.Slug, before, got, err)
		}
	}
}

// checkNothingNewReachesD: a record a member shares with every member
// after D's removal reaches the other nodes and never D, although D asks.
func checkNothingNewReachesD(t *testing.T, c *cluster, others []*Node, d *Node) {
	t.Helper()
	id := shareWithMembers(t, others[1], "Housing first for people who use drugs")
	waitFor(t, "the record shared after D's removal to reach the other nodes", func() bool {
		for _, n := range others {
			if !holds(n, id) {
				return false
			}
		}
		return true
	})
	for range 3 {
		res, err := d.SyncNow(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, ps := range res.([]PeerSync) {
			if ps.Stored > 0 {
				t.Errorf("D stored %d records from %s after its removal", ps.Stored, ps.Network)
			}
		}
	}
	if holds(d, id) {
		t.Fatal("a record shared after D's removal reached D")
	}
	// The origin's delivery receipts (`cairn record holders`) do not list D.
	hs, err := others[1].Holders(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs.([]RecordHolder) {
		if h.Network == "dnpud" {
			t.Errorf("the origin lists D as holding a record shared after D's removal: %+v", h)
		}
	}
}

// relay replaces n's pull handler: the first pull from each requester is
// answered with envs after its checkpoint, later ones with nothing new,
// as an honest-looking relay that stored them would.
func relay(n *Node, envs ...model.Envelope) {
	var mu stdsync.Mutex
	served := map[peer.ID]bool{}
	n.host.SetStreamHandler(cairnsync.PullProtocol, func(s network.Stream) {
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		b, err := cairnsync.ReadFrame(bufio.NewReader(s), cairnsync.MaxRequestFrame)
		if err != nil {
			_ = s.Reset()
			return
		}
		var req struct {
			After uint64 `json:"after"`
		}
		_ = json.Unmarshal(b, &req)
		mu.Lock()
		first := !served[s.Conn().RemotePeer()]
		served[s.Conn().RemotePeer()] = true
		mu.Unlock()
		var out []byte
		end := req.After
		if first {
			batch := []byte{'b'}
			for _, e := range envs {
				eb, _ := e.MarshalBinary()
				batch = binary.AppendUvarint(batch, uint64(len(eb)))
				batch = append(batch, eb...)
			}
			out = appendFrame(out, batch)
			end += uint64(len(envs))
		}
		out = appendFrame(out, append(binary.AppendUvarint([]byte{'e'}, end), 0))
		_, _ = s.Write(out)
	})
}

func TestRevokedNodeIsRefusedEverywhere(t *testing.T) {
	c := revocationCluster(t)
	steward, d := c.nodes[0], c.nodes[3]
	others := c.nodes[:3]

	// Before: D is a working member; what it shares reaches everyone.
	early := shareWithMembers(t, d, "Peer-led naloxone training")
	waitFor(t, "D's record to reach every node before the revocation", func() bool {
		for _, n := range others {
			if !holds(n, early) {
				return false
			}
		}
		return true
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := steward.Federation().Propose(ctx, registry.RevokeNodeKey, registry.RevokeNodeKeyArgs{PeerID: d.ID()}); err != nil {
		t.Fatalf("the steward revokes D's node key: %v", err)
	}
	took := waitAllRefuse(t, others, d, time.Now())
	t.Logf("every other node refused D %s after the revocation was committed", took.Round(time.Millisecond))

	var cutoff int64
	for _, n := range others { // D, cut off, does not learn it
		k, ok := n.fed.State().Node(d.ID())
		if !ok || !k.Revoked || k.Cutoff == 0 || (cutoff != 0 && k.Cutoff != cutoff) {
			t.Fatalf("%s's registry holds D's key as %+v, want it revoked with the cutoff the others hold", n.profile.Slug, k)
		}
		cutoff = k.Cutoff
	}
	checkDCannotConnect(t, others, d)
	checkNothingNewReachesD(t, c, others, d)

	// D signs after the cutoff: a record through its own service, and one
	// the test seals with its key; D offers both (its store, its feed).
	own := shareWithMembers(t, d, "Written after the revocation")
	dkey := nodeSigner(t, d)
	post, postID := seal(t, dkey, d.ID(), "dnpud", func(p *model.Payload) {
		p.HLC = model.MakeHLC(max(cutoff, time.Now().UnixMilli()), 0)
	})
	if _, err := d.store.Put(post); err != nil {
		t.Fatal(err)
	}
	// And one dated before the cutoff, which still counts.
	pre, preID := seal(t, dkey, d.ID(), "dnpud", func(p *model.Payload) {
		p.HLC = model.MakeHLC(cutoff-60_000, 0)
	})
	// Two honest-looking members relay both to everyone who asks.
	relay(others[1], pre, post)
	relay(others[2], pre, post)
	for _, n := range c.nodes {
		if _, err := n.SyncNow(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the version dated before the cutoff to reach every other node", func() bool {
		for _, n := range others {
			if !holds(n, preID) {
				if _, err := n.SyncNow(context.Background()); err != nil {
					t.Fatal(err)
				}
				return false
			}
		}
		return true
	})
	for _, n := range others {
		for _, id := range []string{own, postID} {
			if st, err := n.store.Get(id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s stored D's version signed after the cutoff (%s, version %d): %v", n.profile.Slug, id, st.Payload.Version, err)
			}
		}
		if !holds(n, early) {
			t.Errorf("%s lost D's record from before the revocation", n.profile.Slug)
		}
		revoked := 0
		ps, err := n.Peers()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps.([]PeerState) {
			revoked += p.Rejections[cairnsync.ReasonRevokedKey]
			if p.ID == d.ID() && p.Stored > 0 && p.Received > 0 && p.Connected {
				t.Errorf("%s is connected to D and stored from it: %+v", n.profile.Slug, p)
			}
		}
		if revoked == 0 {
			t.Errorf("%s counted no revoked-key refusal, so it was never offered D's post-cutoff version", n.profile.Slug)
		}
		t.Logf("%s refused %d versions as revoked-key", n.profile.Slug, revoked)
	}
}

func TestSuspendedNetworkIsRefusedEverywhere(t *testing.T) {
	c := revocationCluster(t)
	steward, d := c.nodes[0], c.nodes[3]
	others := c.nodes[:3]
	waitFor(t, "every node to be connected to D", func() bool {
		for _, n := range others {
			if n.host.Network().Connectedness(d.host.ID()) != network.Connected {
				if _, err := n.SyncNow(context.Background()); err != nil {
					t.Fatal(err)
				}
				return false
			}
		}
		return true
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := steward.Federation().Propose(ctx, registry.Suspend, registry.NetworkArgs{Network: "dnpud"}); err != nil {
		t.Fatalf("the steward suspends dnpud: %v", err)
	}
	took := waitAllRefuse(t, others, d, time.Now())
	t.Logf("every other node refused D %s after the suspension was committed", took.Round(time.Millisecond))
	checkDCannotConnect(t, others, d)
	checkNothingNewReachesD(t, c, others, d)

	// Versions D's key signs after the suspension are refused everywhere,
	// relayed by an honest-looking member; one dated before still counts.
	var since int64
	for _, n := range others {
		net, ok := n.fed.State().Network("dnpud")
		if !ok || net.Status != registry.StatusSuspended || net.Since == 0 || (since != 0 && net.Since != since) {
			t.Fatalf("%s's registry holds dnpud as %+v, want it suspended since one time", n.profile.Slug, net)
		}
		since = net.Since
	}
	dkey := nodeSigner(t, d)
	post, postID := seal(t, dkey, d.ID(), "dnpud", func(p *model.Payload) {
		p.HLC = model.MakeHLC(max(since, time.Now().UnixMilli()), 0)
	})
	pre, preID := seal(t, dkey, d.ID(), "dnpud", func(p *model.Payload) {
		p.HLC = model.MakeHLC(since-60_000, 0)
	})
	relay(others[1], pre, post)
	for _, n := range []*Node{others[0], others[2]} {
		waitFor(t, "the version dated before the suspension to arrive through the relay", func() bool {
			if _, err := n.SyncNow(context.Background()); err != nil {
				t.Fatal(err)
			}
			return holds(n, preID)
		})
		if holds(n, postID) {
			t.Errorf("%s stored a version dnpud signed while suspended", n.profile.Slug)
		}
		ps, err := n.Peers()
		if err != nil {
			t.Fatal(err)
		}
		revoked := 0
		for _, p := range ps.([]PeerState) {
			revoked += p.Rejections[cairnsync.ReasonRevokedKey]
		}
		if revoked == 0 {
			t.Errorf("%s counted no refusal of the version signed while suspended", n.profile.Slug)
		}
	}

	// Reinstated, D is admitted again and catches up.
	if _, err := steward.Federation().Propose(ctx, registry.Reinstate, registry.NetworkArgs{Network: "dnpud"}); err != nil {
		t.Fatalf("the steward reinstates dnpud: %v", err)
	}
	later := shareWithMembers(t, others[2], "Drug checking at festivals")
	waitFor(t, "D to catch up once reinstated", func() bool {
		if _, err := d.SyncNow(context.Background()); err != nil {
			t.Fatal(err)
		}
		return holds(d, later)
	})
}
