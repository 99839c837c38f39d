package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/durable"
	"github.com/inpud/cairn/node/federation"
	"github.com/inpud/cairn/node/p2p"
	"github.com/inpud/cairn/node/secrets"
	"github.com/inpud/cairn/node/store"
	cairnsync "github.com/inpud/cairn/sync"
)

// Config is everything a node needs to start. DefaultConfig gives the
// defaults; the CLI fills it from flags, CAIRN_* variables and config.yaml.
type Config struct {
	DataDir string
	// API is the local API's listen address. It must be a loopback address:
	// the API carries the network's records and is protected by a token only.
	API string
	// Network describes this node's network; used when the data dir is
	// initialised, and checked against the data dir afterwards.
	Network Profile
	// Language tags new records, e.g. "en", "fr", "es", "ru".
	Language string
	// MaxClockAhead refuses versions dated further ahead of this node's clock.
	MaxClockAhead time.Duration
	Store         store.Config
	// Encrypt makes Init create a data key sealed under Passphrase and
	// seal record bodies (atrest.go) and the node's two keys (keyseal.go)
	// with it.
	Encrypt bool
	// Passphrase opens the data key of an encrypted data dir (and seals a
	// new one with Encrypt). It is never written or logged.
	Passphrase Passphrase
	// KDF is the Argon2id cost of sealing the data key (zero: secrets.
	// DefaultParams). Tests make it cheap.
	KDF secrets.Params
	// Listen holds the libp2p multiaddrs the node listens on for other
	// member nodes (TCP and QUIC). A fixed port keeps the addresses the
	// registry publishes valid across restarts.
	Listen []string
	// P2P holds the libp2p limits.
	P2P p2p.Config
	// Registry tunes the Raft replica of the federation registry.
	Registry federation.Config
	// Bootstrap creates a new federation with this node's network as its
	// first steward, if the node belongs to none yet.
	Bootstrap bool
	// SyncInterval is how often the node pulls from every member node it
	// can reach (`cairn sync now` pulls at once).
	SyncInterval time.Duration
	// Sync tunes replication's timeouts and how the node treats member
	// nodes that send what it must refuse.
	Sync SyncConfig
	// Peers are member nodes' addresses known in advance, each a multiaddr
	// ending in /p2p/PEERID; the registry supplies the rest.
	Peers []string
	// GC tunes the Go garbage collector of the process the node runs in
	// (applyGC).
	GC     GCConfig
	Logger *slog.Logger
	// Now is the node's clock. Tests inject one.
	Now func() time.Time
}

// DefaultAPI is the local API address when none is given.
const DefaultAPI = "127.0.0.1:7410"

// DefaultListen is where a node listens for other member nodes: TCP and
// QUIC on port 7411 of every interface. The connection gater admits only
// registered member nodes (and a few joiners, on the join protocol only).
func DefaultListen() []string {
	return []string{"/ip4/0.0.0.0/tcp/7411", "/ip4/0.0.0.0/udp/7411/quic-v1"}
}

// DefaultConfig returns the defaults for a node keeping its data in dataDir.
func DefaultConfig(dataDir string) Config {
	return Config{
		DataDir:       dataDir,
		API:           DefaultAPI,
		Language:      "en",
		MaxClockAhead: 10 * time.Minute,
		Store:         store.DefaultConfig(),
		Listen:        DefaultListen(),
		P2P:           p2p.DefaultConfig(),
		Registry:      federation.DefaultConfig(""),
		SyncInterval:  30 * time.Second,
		Sync:          DefaultSyncConfig(),
		GC:            DefaultGCConfig(),
	}
}

// GCConfig tunes the Go garbage collector (runtime/debug), for the whole
// process: a node is meant to have its process to itself (`cairn start`).
//
// Why not Go's defaults (GOGC 100, no limit): in a first sync, allocation
// and the collector were 15–30% of each process's CPU; GOGC 200 halves how
// often it runs, for ~10% less CPU a record (docs/BENCHMARKS.md, first
// sync, fourth round). Alone it raised the peak RSS of a node serving a
// million records from ~134 to ~181 MB (issue 2's bound is 150 MB); the
// soft memory limit makes the collector run sooner once the heap nears it,
// which brings that peak below GOGC 100's, and caps a syncing receiver's too.
type GCConfig struct {
	// Percent is GOGC: the heap may grow by this percentage of the live
	// heap before a collection. 0 leaves the runtime's setting.
	Percent int
	// MemoryLimit is GOMEMLIMIT, in bytes: a soft limit on the memory the
	// Go runtime manages (not on mapped files). 0 leaves the runtime's
	// setting.
	MemoryLimit int64
}

// DefaultGCConfig returns the collector settings a node starts with.
func DefaultGCConfig() GCConfig {
	return GCConfig{Percent: 200, MemoryLimit: 128 << 20}
}

// applyGC sets the collector as c says, except for what the process's
// environment sets already: GOGC and GOMEMLIMIT, an operator's explicit
// choice, win over the defaults.
func applyGC(c GCConfig) {
	if c.Percent > 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(c.Percent)
	}
	if c.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(c.MemoryLimit)
	}
}

// SyncConfig tunes replication with other member nodes.
type SyncConfig struct {
	// RequestTimeout is how long a member node that opened a pull stream
	// may take to send its request; then the stream is reset and counted
	// "stalled" against it.
	RequestTimeout time.Duration
	// WriteTimeout is how long sending one frame of an answer may take.
	WriteTimeout time.Duration
	// PullTimeout is how long one pull request may wait for a member
	// node's whole answer; then it is given up and counted "stalled".
	PullTimeout time.Duration
	// DropBackoff is how long the node stops pulling from a member node it
	// dropped (see DropAfter and replication's drop rule).
	DropBackoff time.Duration
	// DropAfter is how many refusals an honest node can also cause
	// (unknown or revoked key, outside the audience, future
	// timestamp, invalid body, stalled) one member node may earn in a row,
	// with nothing accepted in between, before it is dropped.
	DropAfter int
	// Streams bounds, per member node and per Cairn protocol (pull,
	// notify, receipt, custody), the streams open at once and how fast new
	// ones may come (sync/limit.go). Streams over them are reset unread and
	// counted "rate-limited" against the member node.
	Streams cairnsync.StreamLimits
}

// DefaultSyncConfig returns the replication defaults.
func DefaultSyncConfig() SyncConfig {
	pc := cairnsync.DefaultPullConfig()
	return SyncConfig{
		RequestTimeout: pc.RequestTimeout,
		WriteTimeout:   pc.WriteTimeout,
		PullTimeout:    cairnsync.DefaultPullTimeout,
		DropBackoff:    10 * time.Minute,
		DropAfter:      100,
		Streams:        cairnsync.DefaultStreamLimits(),
	}
}

// Validate says what is wrong with c, if anything, in one sentence.
func (c SyncConfig) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"sync-request-timeout", c.RequestTimeout}, {"sync-write-timeout", c.WriteTimeout},
		{"sync-pull-timeout", c.PullTimeout}, {"sync-drop-backoff", c.DropBackoff},
	} {
		if d.v <= 0 {
			return &model.FieldError{Field: d.name, Msg: "must be a positive duration, e.g. 10m"}
		}
	}
	if c.DropAfter < 1 {
		return &model.FieldError{Field: "sync-drop-after", Msg: fmt.Sprintf("%d is not a count: give how many refusals in a row drop a member node, at least 1 (default 100)", c.DropAfter)}
	}
	def := cairnsync.DefaultStreamLimits()
	switch l := c.Streams; {
	case l.Streams < 1:
		return &model.FieldError{Field: "sync-peer-streams", Msg: fmt.Sprintf("%d is not a limit: give how many streams of one protocol a member node may hold open at once, at least 1 (default %d)", l.Streams, def.Streams)}
	case !(l.Rate > 0):
		return &model.FieldError{Field: "sync-peer-rate", Msg: fmt.Sprintf("%v is not a rate: give how many streams of one protocol a member node may open a second, more than 0 (default %v)", l.Rate, def.Rate)}
	case l.Burst < 1:
		return &model.FieldError{Field: "sync-peer-burst", Msg: fmt.Sprintf("%d is not a limit: give how many streams of one protocol a member node may open at once above the rate, at least 1 (default %d)", l.Burst, def.Burst)}
	}
	return nil
}

// Profile describes a member network (model.Profile).
type Profile = model.Profile

// Validate checks the parts of the config that do not need the data dir.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return &model.FieldError{Field: "data-dir", Msg: "is required"}
	}
	host, _, err := net.SplitHostPort(c.API)
	if err != nil {
		return &model.FieldError{Field: "api", Msg: fmt.Sprintf("%q is not HOST:PORT, e.g. 127.0.0.1:7410 (port 0 picks a free port)", c.API)}
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return &model.FieldError{Field: "api", Msg: fmt.Sprintf("%q is not a loopback address: the local API only listens on 127.0.0.1 (or another 127.x address, or ::1) so nothing outside this machine can reach it", host)}
	}
	if c.MaxClockAhead <= 0 {
		return &model.FieldError{Field: "max-clock-ahead", Msg: "must be a positive duration, e.g. 10m"}
	}
	for _, a := range c.Peers {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			return &model.FieldError{Field: "peer", Msg: fmt.Sprintf("%q is not a peer address: give a multiaddr ending in /p2p/PEERID, e.g. /ip4/198.51.100.7/tcp/7411/p2p/12D3KooW…", a)}
		}
	}
	if c.SyncInterval < 10*time.Millisecond {
		return &model.FieldError{Field: "sync-interval", Msg: "must be a duration of at least 10ms, e.g. 30s"}
	}
	if err := c.Sync.Validate(); err != nil {
		return err
	}
	if err := c.Registry.Validate(); err != nil {
		return &model.FieldError{Field: "registry", Msg: err.Error()}
	}
	p := c.P2P
	p.Listen = c.Listen
	if err := p.Validate(); err != nil {
		return &model.FieldError{Field: "listen", Msg: err.Error()}
	}
	if c.Language == "" || len(c.Language) > 16 {
		return &model.FieldError{Field: "language", Msg: "must be a language tag such as en, fr, es or ru"}
	}
	return nil
}

// Files in the data dir.
const (
	profileFile = "network.json"
	tokenFile   = "api.token"
	addrFile    = "api.addr"
	lockFile    = "lock"
	storeDir    = "store"
	registryDir = "registry"
	// ConfigFile is the optional config file the CLI reads from the data dir.
	ConfigFile = "config.yaml"
)

// ErrNotInitialised is returned for a data dir with no node in it.
var ErrNotInitialised = errors.New("data dir is not initialised")

// ErrAlreadyInitialised is returned by Init on a data dir that has a node.
var ErrAlreadyInitialised = errors.New("data dir is already initialised")

// Initialised reports whether dir holds an initialised node.
func Initialised(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, profileFile))
	return err == nil
}

// initKeys makes the node key, the data key when cfg.Encrypt is set, and
// the archive key. On an encrypted node the two keys are written only
// sealed under the data key (keyseal.go), so the node key is made in
// memory first: the data key's file names its peer ID. Keys left by an
// init that stopped half-way are kept (a data key only if the passphrase
// opens it), and clear ones are sealed.
func initKeys(cfg Config) (Identity, *dataKey, error) {
	var dk *dataKey
	if cfg.Encrypt {
		k, err := openDataKey(cfg.DataDir, cfg.Passphrase)
		if err != nil {
			return Identity{}, nil, fmt.Errorf("%s holds the data key of an init that stopped half-way: %w", cfg.DataDir, err)
		}
		dk = k
	}
	id, err := loadOrCreateIdentity(cfg.DataDir, dk, false)
	fresh := errors.Is(err, fs.ErrNotExist)
	if fresh {
		var raw []byte
		id, raw, err = newIdentity()
		if cfg.Encrypt && dk == nil && err == nil {
			owner := secrets.Owner{Network: cfg.Network.Slug, PeerID: id.ID.String(), Created: time.Now().UTC().Truncate(time.Second)}
			dk, err = createDataKey(cfg.DataDir, owner, cfg.Passphrase, cfg.kdf())
		}
		if err == nil {
			err = writeKey(cfg.DataDir, identityFile, raw, id.ID.String(), dk)
		}
	} else if err == nil && cfg.Encrypt && dk == nil {
		// A clear node key from an init that stopped half-way: seal it.
		owner := secrets.Owner{Network: cfg.Network.Slug, PeerID: id.ID.String(), Created: time.Now().UTC().Truncate(time.Second)}
		dk, err = createDataKey(cfg.DataDir, owner, cfg.Passphrase, cfg.kdf())
	}
	if err != nil {
		return Identity{}, nil, err
	}
	if dk != nil {
		if err := sealKeys(cfg.DataDir, dk, id.ID.String()); err != nil {
			return Identity{}, nil, err
		}
	}
	if _, err := loadOrCreateArchiveKey(cfg.DataDir, dk, id.ID.String(), true); err != nil {
		return Identity{}, nil, err
	}
	return id, dk, nil
}

func readProfile(dir string) (Profile, error) {
	b, err := os.ReadFile(filepath.Join(dir, profileFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Profile{}, fmt.Errorf("%w: %s has no node yet; create one with: cairn init --data-dir %s --network SLUG --name TEXT --level LEVEL", ErrNotInitialised, dir, dir)
	}
	if err != nil {
		return Profile{}, fmt.Errorf("read network profile: %w", err)
	}
	var p Profile
	if err := json.Unmarshal(b, &p); err != nil {
		return Profile{}, fmt.Errorf("network profile %s is damaged: %w", filepath.Join(dir, profileFile), err)
	}
	return p, nil
}

// Init initialises dir for a new node of the network in cfg: the node key,
// the archive key, the API token, the network profile and an empty record
// store. It refuses
// a dir that already holds a node.
func Init(cfg Config) (Identity, error) {
	if err := cfg.Validate(); err != nil {
		return Identity{}, err
	}
	if err := cfg.Network.Validate(); err != nil {
		return Identity{}, err
	}
	if Initialised(cfg.DataDir) {
		p, _ := readProfile(cfg.DataDir)
		return Identity{}, fmt.Errorf("%w: %s already holds the node of network %s", ErrAlreadyInitialised, cfg.DataDir, p.Slug)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return Identity{}, fmt.Errorf("create data dir: %w", err)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return Identity{}, err
	}
	defer unlock()
	id, dk, err := initKeys(cfg)
	if err != nil {
		return Identity{}, err
	}
	if dk != nil {
		cfg.Store.Sealer = dk
	}
	if _, err := loadOrCreateToken(cfg.DataDir); err != nil {
		return Identity{}, err
	}
	st, err := store.Open(filepath.Join(cfg.DataDir, storeDir), cfg.Store)
	if err != nil {
		return Identity{}, err
	}
	if err := st.Close(); err != nil {
		return Identity{}, err
	}
	b, _ := json.MarshalIndent(cfg.Network, "", "  ")
	// The profile is written last: its presence marks the dir initialised.
	if err := durable.WriteFile(filepath.Join(cfg.DataDir, profileFile), append(b, '\n'), 0o600); err != nil {
		return Identity{}, fmt.Errorf("save network profile: %w", err)
	}
	return id, nil
}
