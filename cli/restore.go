package cli

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/secrets"
)

// restoreCommand is `cairn restore`: bring a node back into an empty data
// dir from its key backup (node/restore.go says how).
func restoreCommand() *cli.Command {
	flags := append(nodeFlags(),
		&cli.StringFlag{Name: "key", Usage: "the passphrase backup `FILE` made by cairn key backup"},
		&cli.StringSliceFlag{Name: "shares", Usage: "the share files `F1,F2,...` of one set made by cairn key backup --shares (at least its threshold)"},
		passphraseFileFlag(),
		&cli.BoolFlag{Name: "encrypt", Usage: "seal the restored node's records at rest under a passphrase: with --key the backup's own, with --shares a new one (--passphrase-file, $" + passphraseEnv + " or asked twice). How a node kept in clear becomes an encrypted one"},
		&cli.DurationFlag{Name: "registry-wait", Usage: "how long to wait for the registry to reach this node", Value: 2 * time.Minute},
	)
	return &cli.Command{
		Name:      "restore",
		Usage:     "bring this node back from its key backup: its identity, its own records from its custodians, and what other networks shared with it",
		UsageText: "cairn restore --data-dir EMPTY_DIR (--key FILE | --shares F1,F2,...) --peer /ip4/HOST/tcp/PORT/p2p/PEERID [--listen MULTIADDR]",
		Description: "Run it with the node stopped and an empty (or missing) data dir. The passphrase comes from --passphrase-file, $" + passphraseEnv + " or a prompt.\n" +
			"--peer names a steward node to reach the registry through; listen on the address this node had (--listen) so the registry's leader can reach it.\n" +
			"When it finishes, start the node as before with cairn start.",
		Flags:  flags,
		Action: restore,
	}
}

func restore(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("cairn restore takes no arguments (got %q); give the backup with --key FILE or --shares F1,F2,...", c.Args().First())
	}
	for _, f := range []string{"bootstrap", "network", "name", "level", "country", "region"} {
		if c.IsSet(f) {
			return usageError("--%s is not used by cairn restore: the network comes from the key backup and the registry", f)
		}
	}
	key, shares := c.String("key"), c.StringSlice("shares")
	switch {
	case key == "" && len(shares) == 0:
		return usageError("cairn restore needs the node's key backup: give --key FILE, or --shares F1,F2,... with enough shares of one set")
	case key != "" && len(shares) > 0:
		return usageError("give --key FILE or --shares F1,F2,..., not both")
	case len(shares) > 0 && c.IsSet("passphrase-file") && !c.Bool("encrypt"):
		return usageError("--passphrase-file is not used with --shares: shares need no passphrase (it is, with --encrypt, for the new node's records)")
	}
	if len(c.StringSlice("peer")) == 0 {
		return usageError("cairn restore needs --peer /ip4/HOST/tcp/PORT/p2p/PEERID: the address of a steward node to reach the registry through (cairn status on that node shows its addresses)")
	}
	cfg, err := nodeConfig(c)
	if err != nil {
		return err
	}
	if err := refuseNonEmpty(cfg.DataDir); err != nil {
		return err
	}
	var pass []byte // with --key, the backup's passphrase
	if key != "" {
		if pass, err = readPassphrase(c, false); err != nil {
			return err
		}
		defer clear(pass)
	}
	keys, err := openBackup(c, key, pass, shares)
	if err != nil {
		return err
	}
	if c.Bool("encrypt") {
		// The data key is sealed under the backup's passphrase (--key),
		// or a new one (--shares), and the node started after it needs it.
		if pass == nil {
			if pass, err = readPassphrase(c, true); err != nil {
				return err
			}
			defer clear(pass)
		} else if err := secrets.CheckNewPassphrase(pass); err != nil {
			return fmt.Errorf("--encrypt seals the node's records under the backup's passphrase, which is too short for that: %w", err)
		}
		cfg.Encrypt, cfg.Passphrase, cfg.KDF = true, append(node.Passphrase{}, pass...), backupParams
	}
	w, progress := c.App.Writer, c.App.ErrWriter
	rep, err := node.Restore(c.Context, node.RestoreConfig{
		Node: cfg, Keys: keys, RegistryWait: c.Duration("registry-wait"),
		Progress: func(s string) { fmt.Fprintln(progress, "restore: "+s) },
	})
	if err != nil {
		return fmt.Errorf("restore into %s: %w", cfg.DataDir, err)
	}
	if wantJSON(c) {
		return printJSON(w, rep)
	}
	fmt.Fprintf(w, "Restored node %s of network %s into %s in %.1f s.\n", rep.ID, rep.Network, cfg.DataDir, rep.Seconds)
	fmt.Fprintf(w, "  own record versions from custodians (%s): %d\n", strings.Join(rep.Custodians, ", "), rep.OwnFromCustody)
	fmt.Fprintf(w, "  own record versions from peers they were shared with: %d\n", rep.OwnFromPeers)
	fmt.Fprintf(w, "  versions of other networks' records from peers: %d\n", rep.Others)
	if rep.OtherKeys > 0 {
		fmt.Fprintf(w, "  custody copies sealed by another node of this network, not opened: %d\n", rep.OtherKeys)
	}
	kinds := make([]string, 0, len(rep.Records))
	for k := range rep.Records {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %s records now held: %d\n", k, rep.Records[model.Kind(k)])
	}
	fmt.Fprintf(w, "Start the node as before: cairn start --data-dir %s\n", cfg.DataDir)
	return nil
}

// refuseNonEmpty is node.Restore's check, made before the passphrase is
// asked for.
func refuseNonEmpty(dir string) error {
	ents, err := os.ReadDir(dir)
	if err == nil && len(ents) > 0 {
		return fmt.Errorf("%w: %s holds %d entries; stop the node and give a new, empty --data-dir (or move this one away)", node.ErrDataDirNotEmpty, dir, len(ents))
	}
	return nil
}

// openBackup opens a passphrase backup or combines shares into the node's
// keys, checking they are what the backup says.
func openBackup(c *cli.Context, key string, pass []byte, shares []string) (node.NodeKeys, error) {
	var (
		owner  secrets.Owner
		secret []byte
		name   string
	)
	if key != "" {
		name = key
		b, err := os.ReadFile(key)
		if err != nil {
			return node.NodeKeys{}, fmt.Errorf("read the key backup: %w", err)
		}
		owner, secret, err = secrets.Open(b, pass)
		if err != nil {
			return node.NodeKeys{}, fmt.Errorf("%s: %w", key, err)
		}
	} else {
		name = shares[0]
		var parts []secrets.Share
		for _, f := range shares {
			b, err := os.ReadFile(strings.TrimSpace(f))
			if err != nil {
				return node.NodeKeys{}, fmt.Errorf("read a key share: %w", err)
			}
			s, err := secrets.ParseShare(b)
			if err != nil {
				return node.NodeKeys{}, fmt.Errorf("%s: %w", f, err)
			}
			s.Name = f
			parts = append(parts, s)
		}
		var err error
		owner, secret, err = secrets.Combine(parts)
		if err != nil {
			return node.NodeKeys{}, err
		}
	}
	defer clear(secret)
	keys, err := node.DecodeNodeKeys(secret)
	if err != nil {
		return node.NodeKeys{}, fmt.Errorf("%s: %w", name, err)
	}
	if keys.ID.String() != owner.PeerID || keys.Network != owner.Network {
		return node.NodeKeys{}, fmt.Errorf("%s: %w: the keys inside are of network %s, peer %s", name, secrets.ErrDamaged, keys.Network, keys.ID)
	}
	return keys, nil
}
