package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"

	"github.com/inpud/cairn/node"
)

// nodeFlags are the options of `cairn start` and `cairn init`. Each can come
// from the flag, then its CAIRN_* variable, then config.yaml in the data
// dir (the key is the flag's name), then the default.
func nodeFlags() []cli.Flag {
	def := node.DefaultConfig("")
	return []cli.Flag{
		altsrc.NewStringFlag(&cli.StringFlag{Name: "api", Usage: "HOST:PORT for the local API (a loopback address; port 0 picks a free one)", EnvVars: []string{"CAIRN_API"}, Value: def.API}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "listen", Usage: "multiaddr to listen on for other member nodes (repeat for several)", EnvVars: []string{"CAIRN_LISTEN"}, Value: cli.NewStringSlice(def.Listen...)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "network", Usage: "your network's short name (slug), e.g. tanpud; needed when the data dir is new", EnvVars: []string{"CAIRN_NETWORK"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "name", Usage: "your network's full name", EnvVars: []string{"CAIRN_NAME"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "level", Usage: "global, regional, national or local", EnvVars: []string{"CAIRN_LEVEL"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "country", Usage: "two-letter country code (ISO 3166-1), e.g. TZ", EnvVars: []string{"CAIRN_COUNTRY"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "region", Usage: "region name, e.g. eeca or asia", EnvVars: []string{"CAIRN_REGION"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "language", Usage: "language tag of new records: en, fr, es, ru…", EnvVars: []string{"CAIRN_LANGUAGE"}, Value: def.Language}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "max-clock-ahead", Usage: "refuse records dated further ahead of this node's clock", EnvVars: []string{"CAIRN_MAX_CLOCK_AHEAD"}, Value: def.MaxClockAhead}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "store-gc-interval", Usage: "how often an idle node compacts its record store's value log", EnvVars: []string{"CAIRN_STORE_GC_INTERVAL"}, Value: def.Store.GCInterval}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "registry-heartbeat-timeout", Usage: "how long a registry replica waits for the leader before calling an election", EnvVars: []string{"CAIRN_REGISTRY_HEARTBEAT_TIMEOUT"}, Value: def.Registry.HeartbeatTimeout}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "registry-election-timeout", Usage: "how long a registry election may take before another starts", EnvVars: []string{"CAIRN_REGISTRY_ELECTION_TIMEOUT"}, Value: def.Registry.ElectionTimeout}),
		altsrc.NewUint64Flag(&cli.Uint64Flag{Name: "registry-snapshot-threshold", Usage: "registry log entries between snapshots", EnvVars: []string{"CAIRN_REGISTRY_SNAPSHOT_THRESHOLD"}, Value: def.Registry.SnapshotThreshold}),
		altsrc.NewUint64Flag(&cli.Uint64Flag{Name: "registry-trailing-logs", Usage: "registry log entries kept after a snapshot, for replicas that fall behind", EnvVars: []string{"CAIRN_REGISTRY_TRAILING_LOGS"}, Value: def.Registry.TrailingLogs}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "peer", Usage: "a member node's address, /ip4/…/tcp/…/p2p/PEERID (repeat for several; the registry supplies the rest)", EnvVars: []string{"CAIRN_PEER"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "sync-interval", Usage: "how often to pull from every member node this node can reach", EnvVars: []string{"CAIRN_SYNC_INTERVAL"}, Value: def.SyncInterval}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "sync-request-timeout", Usage: "how long a member node that opened a pull stream may take to send its request", EnvVars: []string{"CAIRN_SYNC_REQUEST_TIMEOUT"}, Value: def.Sync.RequestTimeout}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "sync-write-timeout", Usage: "how long sending one frame of a pull answer may take", EnvVars: []string{"CAIRN_SYNC_WRITE_TIMEOUT"}, Value: def.Sync.WriteTimeout}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "sync-pull-timeout", Usage: "how long one pull may wait for a member node's whole answer", EnvVars: []string{"CAIRN_SYNC_PULL_TIMEOUT"}, Value: def.Sync.PullTimeout}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "sync-drop-backoff", Usage: "how long to stop pulling from a member node dropped for what it sent", EnvVars: []string{"CAIRN_SYNC_DROP_BACKOFF"}, Value: def.Sync.DropBackoff}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "sync-drop-after", Usage: "refusals an honest node could also cause, in a row, that drop a member node", EnvVars: []string{"CAIRN_SYNC_DROP_AFTER"}, Value: def.Sync.DropAfter}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "sync-peer-streams", Usage: "streams of one sync protocol a member node may hold open to this node at once", EnvVars: []string{"CAIRN_SYNC_PEER_STREAMS"}, Value: def.Sync.Streams.Streams}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "sync-peer-rate", Usage: "streams of one sync protocol a member node may open per second, sustained", EnvVars: []string{"CAIRN_SYNC_PEER_RATE"}, Value: int(def.Sync.Streams.Rate)}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "sync-peer-burst", Usage: "streams of one sync protocol a member node may open at once above sync-peer-rate", EnvVars: []string{"CAIRN_SYNC_PEER_BURST"}, Value: def.Sync.Streams.Burst}),
		&cli.BoolFlag{Name: "bootstrap", Usage: "create a new federation with this network as its first steward"},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-format", Usage: "text or json", EnvVars: []string{"CAIRN_LOG_FORMAT"}, Value: "text"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", EnvVars: []string{"CAIRN_LOG_LEVEL"}, Value: "info"}),
	}
}

// checkConfigFile reads config.yaml in the data dir, if there is one, and
// refuses unknown keys, so a typo never passes silently.
func checkConfigFile(c *cli.Context, flags []cli.Flag) (path string, err error) {
	path = filepath.Join(dataDir(c), node.ConfigFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("%s is not valid YAML: %s", path, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	known := map[string]bool{}
	var names []string
	for _, f := range flags {
		if _, fromFile := f.(altsrc.FlagInputSourceExtension); !fromFile {
			continue // e.g. --bootstrap: an action, not a setting
		}
		known[f.Names()[0]] = true
		names = append(names, f.Names()[0])
	}
	sort.Strings(names)
	for k := range m {
		if !known[k] {
			return "", fmt.Errorf("%s: unknown option %q; the options are: %s", path, k, strings.Join(names, ", "))
		}
	}
	return path, nil
}

// withConfigFile makes a command read config.yaml before its action. Its
// values apply only where neither the flag nor its CAIRN_* variable is set.
func withConfigFile(cmd *cli.Command) *cli.Command {
	cmd.Before = func(c *cli.Context) error {
		path, err := checkConfigFile(c, cmd.Flags)
		if err != nil || path == "" {
			return err
		}
		src, err := altsrc.NewYamlSourceFromFile(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if err := altsrc.ApplyInputSourceValues(c, src, cmd.Flags); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}
	return cmd
}

// nodeConfig builds the node's config from the command's options.
func nodeConfig(c *cli.Context) (node.Config, error) {
	cfg := node.DefaultConfig(dataDir(c))
	cfg.API = c.String("api")
	cfg.Language = c.String("language")
	cfg.MaxClockAhead = c.Duration("max-clock-ahead")
	cfg.Store.GCInterval = c.Duration("store-gc-interval")
	cfg.Listen = c.StringSlice("listen")
	cfg.Bootstrap = c.Bool("bootstrap")
	cfg.SyncInterval = c.Duration("sync-interval")
	cfg.Sync.RequestTimeout = c.Duration("sync-request-timeout")
	cfg.Sync.WriteTimeout = c.Duration("sync-write-timeout")
	cfg.Sync.PullTimeout = c.Duration("sync-pull-timeout")
	cfg.Sync.DropBackoff = c.Duration("sync-drop-backoff")
	cfg.Sync.DropAfter = c.Int("sync-drop-after")
	cfg.Sync.Streams.Streams = c.Int("sync-peer-streams")
	cfg.Sync.Streams.Rate = float64(c.Int("sync-peer-rate"))
	cfg.Sync.Streams.Burst = c.Int("sync-peer-burst")
	cfg.Peers = c.StringSlice("peer")
	cfg.Registry.HeartbeatTimeout = c.Duration("registry-heartbeat-timeout")
	cfg.Registry.ElectionTimeout = c.Duration("registry-election-timeout")
	cfg.Registry.SnapshotThreshold = c.Uint64("registry-snapshot-threshold")
	cfg.Registry.TrailingLogs = c.Uint64("registry-trailing-logs")
	cfg.Network = node.Profile{
		Slug: c.String("network"), Name: c.String("name"), Level: c.String("level"),
		Country: strings.ToUpper(c.String("country")), Region: c.String("region"),
	}
	logger, err := newLogger(c)
	if err != nil {
		return cfg, err
	}
	cfg.Logger = logger
	if cfg.Store.GCInterval <= 0 {
		return cfg, fmt.Errorf("store-gc-interval: must be a positive duration, e.g. 10m")
	}
	return cfg, cfg.Validate()
}

func newLogger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, fmt.Errorf("log-level: %q is not a level: use debug, info, warn or error", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.String("log-format") {
	case "text":
		return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts)), nil
	}
	return nil, fmt.Errorf("log-format: %q is not a log format: use text or json", c.String("log-format"))
}

func initCommand() *cli.Command {
	return withConfigFile(&cli.Command{
		Name:      "init",
		Usage:     "initialise a data dir for a new node without starting it",
		UsageText: "cairn init --network SLUG --name TEXT --level global|regional|national|local [--country CC] [--region NAME] [--bootstrap] [--encrypt]",
		Flags:     append(nodeFlags(), atRestFlags()...),
		Action: func(c *cli.Context) error {
			cfg, err := nodeConfig(c)
			if err != nil {
				return err
			}
			if !node.Initialised(cfg.DataDir) {
				if err := withAtRest(c, &cfg, false); err != nil {
					return err
				}
			}
			id, err := node.Init(cfg)
			if err != nil {
				return err
			}
			if cfg.Bootstrap {
				if err := bootstrapOffline(c, cfg); err != nil {
					return err
				}
			}
			if wantJSON(c) {
				return printJSON(c.App.Writer, map[string]string{"id": id.ID.String(), "network": cfg.Network.Slug, "data_dir": cfg.DataDir})
			}
			fmt.Fprintf(c.App.Writer, "initialised node %s of network %s in %s\n", id.ID, cfg.Network.Slug, cfg.DataDir)
			return nil
		},
	})
}

func startCommand() *cli.Command {
	return withConfigFile(&cli.Command{
		Name:      "start",
		Usage:     "run the node in the foreground (initialising the data dir first if it is new)",
		UsageText: "cairn start [--api HOST:PORT] [--listen MULTIADDR]... [--bootstrap] [--network SLUG --name TEXT --level LEVEL --country CC --region NAME] [--encrypt] [--passphrase-file F]",
		Flags:     append(nodeFlags(), atRestFlags()...),
		Action: func(c *cli.Context) error {
			cfg, err := nodeConfig(c)
			if err != nil {
				return err
			}
			if err := withAtRest(c, &cfg, true); err != nil {
				return err
			}
			n, err := node.New(cfg)
			if err != nil {
				return err
			}
			defer n.Close()
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := n.Start(ctx); err != nil {
				return err
			}
			p := n.Profile()
			if wantJSON(c) {
				printJSON(c.App.Writer, map[string]string{"id": n.ID(), "network": p.Slug, "api": "http://" + n.APIAddr(), "data_dir": cfg.DataDir, "status": "ready"})
			} else {
				fmt.Fprintf(c.App.Writer, "cairn node %s of network %s ready: API http://%s (data dir %s)\n", n.ID(), p.Slug, n.APIAddr(), cfg.DataDir)
			}
			cfg.Logger.Info("node ready", "id", n.ID(), "network", p.Slug, "api", n.APIAddr())
			<-ctx.Done()
			cfg.Logger.Info("shutting down")
			start := time.Now()
			err = n.Close()
			cfg.Logger.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
			return err
		},
	})
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the running node: network, identity, API, record counts",
		Action: func(c *cli.Context) error {
			var st node.Status
			if err := call(c, "GET", "/v1/status", nil, &st); err != nil {
				return err
			}
			if wantJSON(c) {
				return printJSON(c.App.Writer, st)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "Network:   %s (%s, %s", st.Network.Slug, st.Network.Name, st.Network.Level)
			if st.Network.Country != "" {
				fmt.Fprintf(w, ", %s", st.Network.Country)
			}
			if st.Network.Region != "" {
				fmt.Fprintf(w, ", region %s", st.Network.Region)
			}
			fmt.Fprintln(w, ")")
			fmt.Fprintf(w, "Node:      %s\n", st.ID)
			fmt.Fprintf(w, "API:       %s\n", st.API)
			fmt.Fprintf(w, "Data dir:  %s\n", st.DataDir)
			fmt.Fprintf(w, "Version:   %s, up %s\n", st.Version, st.Uptime)
			fmt.Fprintf(w, "Records:   %d audits, %d priorities, %d committee reports\n", st.Records["audit"], st.Records["priority"], st.Records["committee-report"])
			fmt.Fprintf(w, "Templates: %d\n", st.Templates)
			return nil
		},
	}
}

// bootstrapOffline creates the federation on a node that is not started:
// it opens the node, commits the genesis and closes it again.
func bootstrapOffline(c *cli.Context, cfg node.Config) error {
	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	_, err = n.Bootstrap(c.Context)
	return err
}
