package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/durable"
	"github.com/inpud/cairn/node/registry"
	"github.com/inpud/cairn/node/secrets"
	"github.com/inpud/cairn/node/store"
	cairnsync "github.com/inpud/cairn/sync"
)

// Restore (issue 5, RELIABILITY T6) brings a node back into an empty data
// dir from its key backup: the node key and the archive key. It
//
//  1. writes the restore marker (restoreMarkerFile) first, then the keys
//     and a profile holding only the network's slug;
//  2. opens the node without its API and joins the registry's raft as the
//     node it was, trusting only the member nodes the operator named
//     (--peer) until the registry has arrived;
//  3. writes the network's profile as the registry holds it;
//  4. fetches the network's custody copies from every node of each
//     custodian network, opens those its archive key sealed, verifies each
//     version's signature and that its author is a node of this network,
//     and stores them: these are the own records, private ones included;
//  5. asks every other member node for the versions of this network's
//     records it holds (sync.PullOwn: what this network shared with it),
//     checks them as custody copies are checked, and stores those custody
//     did not bring (the store skips versions it holds): so shared own
//     records come back even when custodians hold nothing, or an older
//     version, or are unreachable;
//  6. pulls from every member node as sync does: what was shared with this
//     network;
//  7. removes the marker and closes.
//
// The marker is the write guard: while it is in the data dir, the node
// refuses record writes (ErrRestorePending), so a restore that stopped
// half-way never lets the node write a version its custodians and peers
// already hold under the same id and number (a fork of its own history).
// Running restore again is the only way to remove it. A file is the rule
// chosen because it needs nothing else to be decided: the registry does
// not hold a node's feed head, and asking custodians at every start would
// make writing depend on the network.

// restoreMarkerFile is in the data dir while a restore has not finished.
const restoreMarkerFile = "restore.pending"

// ErrRestorePending is returned for record writes on a node whose restore
// has not finished.
var ErrRestorePending = errors.New("this node's restore has not finished: run cairn restore again (with the node stopped) before writing records")

// ErrStoreMissing is returned by New for a data dir that holds the node's
// key but not its record store.
var ErrStoreMissing = errors.New("this data dir holds the node's key but not its record store")

// checkStoreKept refuses to start a node whose record store is gone while
// its key is still there (the store directory deleted or lost, the key
// copied into a new dir): started empty, it would write version numbers its
// custodians and peers already hold under the same ids, a fork of its own
// history. Init makes the store with the key, and restore makes it after
// writing its marker, so outside a restore the store is always there.
func checkStoreKept(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, storeDir)); !errors.Is(err, fs.ErrNotExist) || RestorePending(dir) {
		return nil
	}
	return fmt.Errorf("%w (%s): starting it empty would fork its own history; move this data dir away and bring the node back with cairn restore from its key backup", ErrStoreMissing, filepath.Join(dir, storeDir))
}

// ErrDataDirNotEmpty is returned when restore is given a data dir that
// holds anything.
var ErrDataDirNotEmpty = errors.New("restore writes only into an empty data dir")

// RestorePending reports whether dir holds a restore that has not finished.
func RestorePending(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, restoreMarkerFile))
	return err == nil
}

// RestoreConfig says what to restore and from whom.
type RestoreConfig struct {
	// Node is the node's config: its data dir (empty or missing), listen
	// addresses, registry timeouts; Peers are member nodes' multiaddrs
	// (with /p2p/ID) to reach the registry through, stewards best.
	Node Config
	// Keys are the node's keys, from its key backup.
	Keys NodeKeys
	// RegistryWait bounds the wait for the registry to arrive; default 2 min.
	RegistryWait time.Duration
	// Progress, if set, gets one line per step.
	Progress func(string)
}

// RestoreReport is what a restore brought back.
type RestoreReport struct {
	ID      string `json:"id"` // the node's peer ID
	Network string `json:"network"`
	// OwnFromCustody counts own versions stored from custody copies.
	OwnFromCustody int `json:"own_from_custody"`
	// OwnFromPeers counts own versions stored from member nodes the
	// network had shared them with, beyond those custody brought.
	OwnFromPeers int `json:"own_from_peers"`
	// OtherKeys counts custody copies sealed by another archive key (another
	// node of this network), not opened.
	OtherKeys int `json:"other_keys"`
	// Others counts versions of other networks' records pulled from peers.
	Others int `json:"others"`
	// Records are the records the store holds at the end, by kind.
	Records    map[model.Kind]int `json:"records"`
	FeedHead   uint64             `json:"feed_head"`
	Custodians []string           `json:"custodians"`
	Seconds    float64            `json:"seconds"`
}

// Restore brings the node with keys rc.Keys back into rc.Node.DataDir; see
// the comment above. On bad input (a non-empty data dir, no --peer) it
// writes nothing.
func Restore(ctx context.Context, rc RestoreConfig) (rep RestoreReport, err error) {
	start := time.Now()
	cfg := rc.Node
	if rc.RegistryWait <= 0 {
		rc.RegistryWait = 2 * time.Minute
	}
	progress := rc.Progress
	if progress == nil {
		progress = func(string) {}
	}
	if cfg.DataDir == "" {
		return rep, errors.New("restore needs a data dir: give --data-dir")
	}
	if err := checkEmptyDir(cfg.DataDir); err != nil {
		return rep, err
	}
	var peers []peer.AddrInfo
	for _, a := range cfg.Peers {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			return rep, fmt.Errorf("--peer %q is not a member node's address /ip4/HOST/tcp/PORT/p2p/PEERID: %w", a, err)
		}
		peers = append(peers, *ai)
	}
	if len(peers) == 0 {
		return rep, errors.New("restore needs a member node to reach the registry through: give --peer /ip4/HOST/tcp/PORT/p2p/PEERID of a steward node (cairn status on that node shows its addresses)")
	}
	if err := writeRestoreStart(cfg, rc.Keys); err != nil {
		return rep, err
	}
	progress(fmt.Sprintf("wrote the keys of node %s (network %s) to %s", rc.Keys.ID, rc.Keys.Network, cfg.DataDir))
	if cfg.Encrypt {
		progress("the restored node's keys and records are sealed at rest under the passphrase")
	}
	cfg.Network = Profile{}
	n, err := New(cfg)
	if err != nil {
		return rep, err
	}
	defer func() {
		if cerr := n.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	rep.ID, rep.Network = n.ID(), n.profile.Slug
	ids := make([]peer.ID, len(peers))
	for i, p := range peers {
		ids[i] = p.ID
		n.host.Peerstore().AddAddrs(p.ID, p.Addrs, peerstore.PermanentAddrTTL)
	}
	release := n.fed.TrustForRestore(ids...)
	defer release()
	progress("waiting for the registry from " + fmt.Sprint(ids))
	if err := n.awaitRegistry(ctx, peers, rc.RegistryWait); err != nil {
		return rep, err
	}
	release()
	if !n.settleRegistry(ctx, min(rc.RegistryWait, 30*time.Second)) {
		progress("the registry was still changing; going on with what has arrived")
	}
	if err := n.restoreProfile(); err != nil {
		return rep, err
	}
	progress(fmt.Sprintf("the registry arrived: network %s (%s)", n.profile.Slug, n.profile.Name))

	cust, err := newCustody(n)
	if err != nil {
		return rep, err
	}
	n.cust = cust
	names, nodes := cust.custodians()
	rep.Custodians = append([]string{}, names...)
	if len(names) == 0 {
		progress("this network has no custodians: its own records come back only from the member nodes it shared them with, and its private ones not at all")
	}
	for _, name := range names {
		for _, id := range nodes[name] {
			got, other, err := n.restoreFromCustodian(ctx, id)
			if err != nil {
				progress(fmt.Sprintf("custodian %s, node %s: %v", name, id, err))
				continue
			}
			rep.OwnFromCustody += got
			rep.OtherKeys = max(rep.OtherKeys, other)
			progress(fmt.Sprintf("custodian %s, node %s: %d own versions stored", name, id, got))
		}
	}

	for _, p := range n.restorePeers() {
		got, err := n.restoreOwnFromPeer(ctx, p.id)
		rep.OwnFromPeers += got
		line := fmt.Sprintf("peer %s (%s): %d own versions stored", p.id, p.network, got)
		if err != nil {
			line += ": " + err.Error()
		}
		progress(line)
	}

	repl, err := newReplication(n)
	if err != nil {
		return rep, err
	}
	n.repl = repl
	repl.start()
	before := n.store.Head()
	for _, ps := range repl.Round(ctx) {
		line := fmt.Sprintf("peer %s (%s): %d versions", ps.ID, ps.Network, ps.Stored)
		if ps.Error != "" {
			line += ": " + ps.Error
		}
		progress(line)
	}
	rep.Others = int(n.store.Head() - before)
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("restore stopped before it finished (run it again): %w", err)
	}
	if rep.Records, err = n.store.Counts(); err != nil {
		return rep, err
	}
	rep.FeedHead = n.store.Head()
	if err := os.Remove(filepath.Join(cfg.DataDir, restoreMarkerFile)); err != nil {
		return rep, fmt.Errorf("mark the restore finished: %w", err)
	}
	rep.Seconds = time.Since(start).Seconds()
	progress("restore finished")
	return rep, nil
}

// checkEmptyDir refuses a data dir that holds anything.
func checkEmptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read data dir %s: %w", dir, err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("%w: %s holds %d entries (%s…); stop the node and give a new --data-dir, or move this one away", ErrDataDirNotEmpty, dir, len(ents), ents[0].Name())
	}
	return nil
}

// writeRestoreStart writes the marker, then, with cfg.Encrypt, a new data
// key sealed under the passphrase (a node restored with --encrypt seals its
// keys and its records at rest from the first one on: how a node kept in
// clear becomes an encrypted one), then the keys (sealed under the data key
// when there is one), then a profile with only the network's slug (the
// registry's comes later).
func writeRestoreStart(cfg Config, keys NodeKeys) error {
	dir := cfg.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := durable.WriteFile(filepath.Join(dir, restoreMarkerFile), []byte(keys.ID.String()+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", restoreMarkerFile, err)
	}
	var dk *dataKey
	if cfg.Encrypt {
		owner := secrets.Owner{Network: keys.Network, PeerID: keys.ID.String(), Created: time.Now().UTC().Truncate(time.Second)}
		k, err := createDataKey(dir, owner, cfg.Passphrase, cfg.kdf())
		if err != nil {
			return err
		}
		dk = k
	}
	if err := writeKey(dir, identityFile, keys.Identity, keys.ID.String(), dk); err != nil {
		return err
	}
	if err := writeKey(dir, archiveKeyFile, keys.Archive, keys.ID.String(), dk); err != nil {
		return err
	}
	if _, err := loadOrCreateToken(dir); err != nil {
		return err
	}
	return writeProfile(dir, Profile{Slug: keys.Network})
}

func writeProfile(dir string, p Profile) error {
	b, _ := json.MarshalIndent(p, "", "  ")
	if err := durable.WriteFile(filepath.Join(dir, profileFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save network profile: %w", err)
	}
	return nil
}

// awaitRegistry connects to the given member nodes and waits until this
// replica holds a registry with this node's key in it.
func (n *Node) awaitRegistry(ctx context.Context, peers []peer.AddrInfo, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		for _, p := range peers {
			if len(n.host.Network().ConnsToPeer(p.ID)) == 0 {
				dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
				lastErr = n.host.Connect(dctx, p)
				dcancel()
			}
		}
		var member, known bool
		n.fed.View(func(s *registry.State) {
			_, _, member = s.Member(n.ID())
			known = !s.Empty()
		})
		if member {
			return nil
		}
		if known {
			var net string
			n.fed.View(func(s *registry.State) {
				if k, ok := s.Node(n.ID()); ok {
					net = k.Network
				}
			})
			if net == "" {
				// The registry may still be replicating; keep waiting until it is complete.
				lastErr = fmt.Errorf("the registry does not (yet) list node %s", n.ID())
			} else {
				return fmt.Errorf("the registry holds node %s of network %s, but no longer as a member (revoked, or its network suspended or retired): ask a steward", n.ID(), net)
			}
		}
		select {
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = errors.New("no registry entries arrived")
			}
			return fmt.Errorf("the registry did not reach this node within %s (%v): give --peer the address of a steward node that is running, and listen on the address this node had (--listen), so the registry's leader can reach it", wait, lastErr)
		case <-tick.C:
		}
	}
}

// settleRegistry waits, at most wait, until this replica knows a leader,
// has applied every entry it knows to be committed, and has applied
// nothing new for a quiet spell (twice the heartbeat timeout, at least a
// second), and reports whether it did. awaitRegistry returns as soon as
// the replica lists this node, which can be before the entries after its
// joining have arrived (custodians named later, networks that joined
// later): going on then would restore from no custodians, or from some
// member nodes only.
func (n *Node) settleRegistry(ctx context.Context, wait time.Duration) bool {
	quiet := max(time.Second, 2*n.cfg.Registry.HeartbeatTimeout)
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var applied uint64
	since := time.Now()
	for time.Now().Before(deadline) {
		st, err := n.fed.Status()
		switch {
		case err != nil || st.Leader == "" || st.Applied < st.CommitIndex:
			since = time.Now()
		case st.Applied != applied:
			applied, since = st.Applied, time.Now()
		case time.Since(since) >= quiet:
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return false
}

// restoreProfile writes the network's profile as the registry holds it.
func (n *Node) restoreProfile() error {
	var p Profile
	var ok bool
	n.fed.View(func(s *registry.State) {
		var net registry.Network
		net, ok = s.Network(n.profile.Slug)
		p = net.Profile
	})
	if !ok {
		return fmt.Errorf("the registry has no network %s, yet lists this node as its member", n.profile.Slug)
	}
	if err := writeProfile(n.cfg.DataDir, p); err != nil {
		return err
	}
	n.profile = p
	return nil
}

// restoreFromCustodian fetches this network's custody copies from one
// custodian node, checks each opened version as a receiver checks a
// record (signature, author a node of this network), and stores them.
func (n *Node) restoreFromCustodian(ctx context.Context, id peer.ID) (stored, otherKeys int, err error) {
	if len(n.host.Network().ConnsToPeer(id)) == 0 {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.host.Connect(dctx, peer.AddrInfo{ID: id})
		cancel()
		if err != nil {
			return 0, 0, fmt.Errorf("connect: %w", err)
		}
	}
	copies, err := n.FetchCustodyCopies(ctx, id)
	if err != nil {
		return 0, 0, err
	}
	stored, err = n.storeOwnVersions(copies.Envelopes, "a custody copy")
	return stored, copies.OtherKeys, err
}

// storeOwnVersions checks versions of this network's own records that
// came back from another node as a receiver checks a record (signature,
// author a node of this network, origin this network) and stores them,
// in batches; versions already held are skipped and not counted. It
// stops at the first version that does not pass: a node that sends one
// sends nothing more that is trusted. what names the source in that
// error ("a custody copy").
func (n *Node) storeOwnVersions(envs []model.Envelope, what string) (stored int, err error) {
	st := n.fed.State()
	batch := make([]model.Envelope, 0, store.MaxBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := n.store.Put(batch...)
		stored += len(res.Stored)
		batch = batch[:0]
		return err
	}
	for _, env := range envs {
		// A version held already (from custody, or another peer) is
		// skipped before its signature is checked: storing it would
		// change nothing.
		if p, err := env.Open(); err == nil {
			if held, err := n.store.Holds(p.ID, p.Version, env.Hash()); err != nil {
				return stored, err
			} else if held {
				continue
			}
		}
		p, err := n.records.Check(env)
		if err != nil {
			return stored, fmt.Errorf("%s does not verify: %w", what, err)
		}
		if k, ok := st.Node(p.Author); !ok || k.Network != n.profile.Slug || p.Origin != n.profile.Slug {
			return stored, fmt.Errorf("%s (record %s) was not written by a node of network %s", what, p.ID, n.profile.Slug)
		}
		batch = append(batch, env)
		if len(batch) == store.MaxBatch {
			if err := flush(); err != nil {
				return stored, err
			}
		}
	}
	return stored, flush()
}

// restorePeer is a member node a restore asks for this network's records.
type restorePeer struct {
	id      peer.ID
	network string
}

// restorePeers lists every other node of an active member network, as a
// sync round does.
func (n *Node) restorePeers() []restorePeer {
	var out []restorePeer
	n.fed.View(func(s *registry.State) {
		for _, k := range s.Peers() {
			if k.PeerID == n.ID() {
				continue
			}
			if _, _, ok := s.Member(k.PeerID); !ok {
				continue
			}
			if id, err := peer.Decode(k.PeerID); err == nil {
				out = append(out, restorePeer{id, k.Network})
			}
		}
	})
	return out
}

// restoreOwnFromPeer pulls from one member node, with "own" requests
// (sync.PullOwn), the versions of this network's records it holds, from
// the start of its feed to its end, and stores them (storeOwnVersions).
// A node whose pull server predates "own" answers ErrBadRequest: it is
// reported, and the restore goes on with the others.
func (n *Node) restoreOwnFromPeer(ctx context.Context, id peer.ID) (stored int, err error) {
	if len(n.host.Network().ConnsToPeer(id)) == 0 {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.host.Connect(dctx, peer.AddrInfo{ID: id})
		cancel()
		if err != nil {
			return 0, fmt.Errorf("connect: %w", err)
		}
	}
	var after uint64
	// Each answer moves after forwards (the pull client checks it), so
	// the feed's end comes; the bound is only a guard of a feed of
	// 100 million entries.
	for range 100_000_000 / cairnsync.DefaultPullLimit {
		b, err := cairnsync.PullOwn(ctx, n.host, id, after)
		if errors.Is(err, cairnsync.ErrBadRequest) {
			return stored, fmt.Errorf("it does not serve a network its own records (an older version of cairn): %w", err)
		}
		if err != nil {
			return stored, err
		}
		got, err := n.storeOwnVersions(b.Envelopes, "a version it sent")
		stored += got
		if err != nil {
			return stored, err
		}
		if !b.More {
			return stored, nil
		}
		after = b.Last
	}
	return stored, errors.New("its change feed did not end")
}

// writeGuard is the store the record service writes through: it refuses
// writes while a restore has not finished.
type writeGuard struct {
	*store.Store
	dir string
}

func (g writeGuard) Put(envs ...model.Envelope) (store.PutResult, error) {
	if RestorePending(g.dir) {
		return store.PutResult{}, ErrRestorePending
	}
	return g.Store.Put(envs...)
}
