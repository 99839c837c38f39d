// Package node is Cairn's composition root: it opens the data dir, the
// record store and the local API, wires them together and owns their
// lifecycle. New starts nothing; Start serves; Close stops everything,
// waits for it and may be called more than once.
package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	stdsync "sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/model/templates"
	"github.com/inpud/cairn/node/api"
	"github.com/inpud/cairn/node/durable"
	"github.com/inpud/cairn/node/federation"
	"github.com/inpud/cairn/node/p2p"
	"github.com/inpud/cairn/node/records"
	"github.com/inpud/cairn/node/registry"
	"github.com/inpud/cairn/node/store"
	"github.com/inpud/cairn/node/web"
)

// Version is the program version, set at build time.
var Version = "0.1.0-dev"

// ErrRunning is returned when another node already uses the data dir.
var ErrRunning = errors.New("a node is already running on this data dir")

// Node is one running member node.
type Node struct {
	cfg Config
	log *slog.Logger
	id  Identity
	// archiveKey is the network's archive key, read once in New: on an
	// encrypted node its file opens only with the data key.
	archiveKey []byte
	profile    Profile
	store      *store.Store
	records    *records.Service
	host       host.Host
	gater      *p2p.Gater
	fed        *federation.Registry
	repl       *replication
	limits     *streamLimits // set in newReplication, before any handler
	rcpt       *receipts
	cust       *custody
	hand       *handovers // imports archives handed over to this network
	metrics    *prometheus.Registry
	started    time.Time
	unlock     func()

	srv    *http.Server
	addr   string
	wg     stdsync.WaitGroup
	closed stdsync.Once
	err    error
}

// New opens the node in cfg.DataDir, initialising the dir first when it is
// empty and cfg.Network names a network. It starts nothing.
func New(cfg Config) (n *Node, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	applyGC(cfg.GC)
	if !Initialised(cfg.DataDir) {
		if cfg.Network.Slug == "" {
			return nil, fmt.Errorf("%w: %s has no node yet; start one with: cairn start --data-dir %s --network SLUG --name TEXT --level global|regional|national|local", ErrNotInitialised, cfg.DataDir, cfg.DataDir)
		}
		if _, err := Init(cfg); err != nil {
			return nil, err
		}
		cfg.Logger.Info("initialised a new node", "data_dir", cfg.DataDir, "network", cfg.Network.Slug)
	}
	profile, err := readProfile(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if cfg.Network.Slug != "" && cfg.Network.Slug != profile.Slug {
		return nil, fmt.Errorf("data dir %s belongs to network %s, not %s: give the right --data-dir, or leave out --network", cfg.DataDir, profile.Slug, cfg.Network.Slug)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	// The data key first: on an encrypted node the keys are sealed under
	// it, and a missing or wrong passphrase must stop New before it writes.
	dk, err := openDataKey(cfg.DataDir, cfg.Passphrase)
	if err != nil {
		return nil, err
	}
	id, err := loadOrCreateIdentity(cfg.DataDir, dk, false)
	if err != nil {
		return nil, err
	}
	if dk != nil {
		// A node encrypted before its keys were sealed seals them now.
		if err = sealKeys(cfg.DataDir, dk, id.ID.String()); err != nil {
			return nil, err
		}
		cfg.Store.Sealer = dk
	}
	// Data dirs made before archive keys existed get one now.
	archive, err := loadOrCreateArchiveKey(cfg.DataDir, dk, id.ID.String(), true)
	if err != nil {
		return nil, err
	}
	key, err := id.SigningKey()
	if err != nil {
		return nil, err
	}
	if err := checkStoreKept(cfg.DataDir); err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(cfg.DataDir, storeDir), cfg.Store)
	if err != nil {
		return nil, err
	}
	n = &Node{cfg: cfg, log: cfg.Logger, id: id, archiveKey: archive, profile: profile, store: st, unlock: unlock, metrics: prometheus.NewRegistry()}
	if err := n.openNetwork(key); err != nil {
		st.Close()
		return nil, err
	}
	st.SetTakeBack(n.takesBack)
	n.records = records.New(records.Config{
		Network: profile.Slug, Author: id.ID.String(), Key: key, Language: cfg.Language,
		Templates: n.Template, KeyOf: AuthorKey, Now: cfg.Now, MaxClockAhead: cfg.MaxClockAhead,
	}, writeGuard{Store: st, dir: cfg.DataDir})
	return n, nil
}

// takesBack says whether a retracting version of another network's record
// (a deletion, or a withdrawal whose Keep leaves this network out) takes
// the bodies of the versions before it back from this node. The store
// asks while it stores the version, so the bodies go in the same write.
func (n *Node) takesBack(p model.Payload) bool {
	self := model.Reader{Network: n.profile.Slug, Region: n.profile.Region, Member: true}
	if n.fed != nil {
		n.fed.View(func(s *registry.State) {
			if net, ok := s.Network(self.Network); ok {
				self.Region = net.Region
			}
		})
	}
	return p.TakesBackFrom(self)
}

// joinGuests is how many nodes not yet in the federation may hold a
// connection at once, to speak the join protocol and nothing else.
const joinGuests = 4

// openNetwork starts the libp2p host and the registry replica. The gater
// admits only nodes the registry lists.
func (n *Node) openNetwork(key ed25519.PrivateKey) error {
	n.gater = p2p.NewGater(func(peer.ID) bool { return false })
	n.gater.AdmitGuests(joinGuests)
	pc := n.cfg.P2P
	pc.Listen = n.cfg.Listen
	h, err := p2p.New(n.id.Priv, pc, n.gater)
	if err != nil {
		return fmt.Errorf("start the network host on %s: %w (is another node using that port? --listen sets another)", strings.Join(n.cfg.Listen, ", "), err)
	}
	rc := n.cfg.Registry
	rc.Dir = filepath.Join(n.cfg.DataDir, registryDir)
	rc.Logger = n.log
	fed, err := federation.Open(rc, h, n.gater, key)
	if err != nil {
		h.Close()
		return err
	}
	n.host, n.fed = h, fed
	n.gater.SetAllow(fed.Allowed)
	n.gater.RefuseAsGuests(fed.Removed)
	for _, a := range n.cfg.Peers {
		if ai, err := peer.AddrInfoFromString(a); err == nil {
			h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		}
	}
	return nil
}

// Start listens on the API address and serves until Close.
func (n *Node) Start(ctx context.Context) error {
	token, err := loadOrCreateToken(n.cfg.DataDir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", n.cfg.API)
	if err != nil {
		return fmt.Errorf("listen for the local API on %s: %w (is another program using that port? --api 127.0.0.1:0 picks a free one)", n.cfg.API, err)
	}
	n.addr = ln.Addr().String()
	ui, err := web.New(web.Config{Language: n.cfg.Language, Logger: n.log, Now: n.cfg.Now}, n)
	if err != nil {
		ln.Close()
		return fmt.Errorf("build the web interface: %w", err)
	}
	handler := api.New(api.Config{Token: token, Logger: n.log, Metrics: n.metrics, UI: ui}, n)
	n.metrics.MustRegister(newStoreCollector(n.store))
	n.started = n.cfg.Now()
	n.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	if err := durable.WriteFile(filepath.Join(n.cfg.DataDir, addrFile), []byte(n.addr+"\n"), 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("record the API address: %w", err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("local API stopped", "err", err)
		}
	}()
	if n.cfg.Bootstrap {
		if _, err := n.Bootstrap(ctx); err != nil {
			return err
		}
	}
	if err := n.publishAddrs(ctx); err != nil {
		n.log.Warn("could not publish this node's addresses in the registry", "err", err)
	}
	repl, err := newReplication(n)
	if err != nil {
		return err
	}
	n.repl = repl
	repl.start()
	rcpt, err := newReceipts(n)
	if err != nil {
		return err
	}
	n.rcpt = rcpt
	rcpt.start()
	cust, err := newCustody(n)
	if err != nil {
		return err
	}
	n.cust = cust
	cust.start()
	n.hand = newHandovers(n)
	n.hand.start()
	return nil
}

// Bootstrap creates a new federation with this node's network as its first
// steward, publishing the IDUIT templates.
func (n *Node) Bootstrap(ctx context.Context) (registry.Result, error) {
	if !n.fed.Empty() {
		return registry.Result{}, fmt.Errorf("%w: this node already belongs to the federation with genesis %s; --bootstrap creates a new federation only on a node that belongs to none (leave it out to start this node as it is)", federation.ErrAlreadyExists, n.fed.State().Genesis)
	}
	res, err := n.fed.Bootstrap(ctx, registry.GenesisArgs{Network: n.profile, Templates: templates.Builtin()})
	if err != nil {
		return res, fmt.Errorf("create the federation: %w", err)
	}
	n.log.Info("created a new federation", "network", n.profile.Slug, "genesis", n.fed.State().Genesis)
	return res, n.publishAddrs(ctx)
}

// publishAddrs records this node's listen addresses in the registry when
// it is a member and they changed, so other members can reach it. (After a
// restart the registry may not have caught up yet; the registry replica
// publishes them itself once it has.)
func (n *Node) publishAddrs(ctx context.Context) error {
	return n.fed.PublishAddrs(ctx)
}

// Join makes this node's network a member of the federation an invite
// code names. The invite must be for this node's network.
func (n *Node) Join(ctx context.Context, code string) (registry.Result, error) {
	c, err := federation.ParseInviteCode(code)
	if err != nil {
		return registry.Result{}, err
	}
	if c.Network != n.profile.Slug {
		return registry.Result{}, fmt.Errorf("%w: this invite is for network %s, but this node belongs to %s", registry.ErrConflict, c.Network, n.profile.Slug)
	}
	if time.Now().UnixMilli() >= c.Expires {
		return registry.Result{}, fmt.Errorf("%w: this invite expired at %s; ask a steward for a new one", registry.ErrExpired, time.UnixMilli(c.Expires).UTC().Format(time.RFC3339))
	}
	res, err := n.fed.Join(ctx, c)
	if err != nil {
		return res, err
	}
	return res, n.publishAddrs(ctx)
}

// Federation is the node's registry replica.
func (n *Node) Federation() *federation.Registry { return n.fed }

// Addrs are the addresses other member nodes can reach this node on.
func (n *Node) Addrs() []string {
	var out []string
	for _, a := range n.host.Addrs() {
		out = append(out, a.String()+"/p2p/"+n.ID())
	}
	return out
}

// APIAddr is the address the local API listens on, once started.
func (n *Node) APIAddr() string { return n.addr }

// ID is the node's peer ID.
func (n *Node) ID() string { return n.id.ID.String() }

// Profile is the node's network.
func (n *Node) Profile() Profile { return n.profile }

// Close stops the API, waits for requests in flight, closes the store and
// releases the data dir. It is safe to call more than once.
func (n *Node) Close() error {
	n.closed.Do(func() {
		var errs []error
		if n.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			errs = append(errs, n.srv.Shutdown(ctx))
			cancel()
			n.wg.Wait()
			os.Remove(filepath.Join(n.cfg.DataDir, addrFile))
		}
		if n.repl != nil {
			n.repl.stop()
		}
		if n.rcpt != nil {
			n.rcpt.stop()
		}
		if n.cust != nil {
			n.cust.stop()
		}
		if n.hand != nil {
			n.hand.stop()
		}
		errs = append(errs, n.fed.Close(), n.host.Close(), n.store.Close())
		n.unlock()
		n.err = errors.Join(errs...)
	})
	return n.err
}

// Records is the node's record service.
func (n *Node) Records() *records.Service { return n.records }

// Status is what `cairn status` shows.
type Status struct {
	ID        string             `json:"id"` // peer ID
	Network   Profile            `json:"network"`
	Version   string             `json:"version"`
	DataDir   string             `json:"data_dir"`
	API       string             `json:"api"`
	Started   time.Time          `json:"started"`
	Uptime    string             `json:"uptime"`
	Records   map[model.Kind]int `json:"records"`
	FeedHead  uint64             `json:"feed_head"`
	Templates int                `json:"templates"`
	Addrs     []string           `json:"addrs"` // where other member nodes reach this node
}

// Status reports the node's state.
func (n *Node) Status() (any, error) {
	counts, err := n.store.Counts()
	if err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(n.cfg.DataDir)
	return Status{
		ID: n.ID(), Network: n.profile, Version: Version, DataDir: abs, API: "http://" + n.addr,
		Started: n.started.UTC(), Uptime: n.cfg.Now().Sub(n.started).Round(time.Second).String(),
		Records: counts, FeedHead: n.store.Head(), Templates: len(n.Templates()), Addrs: n.Addrs(),
	}, nil
}

// Templates lists the checklist templates this node knows: those the
// federation registry holds (latest version of each), or the built-in
// IDUIT set when the node belongs to no federation.
func (n *Node) Templates() []model.Template {
	var ts []model.Template
	n.fed.View(func(s *registry.State) { ts = s.TemplateList() })
	if len(ts) == 0 {
		return templates.Builtin()
	}
	return ts
}

// Template finds one template by id (latest version) or versioned
// reference "id@version", in the registry first, then the built-in set.
func (n *Node) Template(ref string) (model.Template, bool) {
	var t model.Template
	var ok bool
	n.fed.View(func(s *registry.State) {
		if id, v, versioned := strings.Cut(ref, "@"); versioned {
			t, ok = s.TemplateVersion(id, v)
		} else {
			t, ok = s.Template(ref)
		}
	})
	if ok {
		return t, true
	}
	return templates.Lookup(ref)
}

// lockDataDir takes an exclusive lock on the data dir, so two nodes never
// share one store. The lock file names the holder's process id.
func lockDataDir(dir string) (func(), error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		holder := strings.TrimSpace(string(b))
		if holder != "" {
			holder = " (process " + holder + ")"
		}
		return nil, fmt.Errorf("%w: %s is in use by another cairn node%s; stop it first, or give another --data-dir", ErrRunning, dir, holder)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		f.Truncate(0)
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// loadOrCreateToken returns the API bearer token, creating it (0600) when missing.
func loadOrCreateToken(dir string) (string, error) {
	path := filepath.Join(dir, tokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 32 {
			return t, nil
		}
		return "", fmt.Errorf("API token %s is damaged; delete it and start the node again to make a new one", path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read API token: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	t := hex.EncodeToString(raw)
	if err := durable.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save API token: %w", err)
	}
	return t, nil
}
