package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/api"
	"github.com/inpud/cairn/node/secrets"
)

func handoverCommand() *cli.Command {
	return &cli.Command{
		Name:  "handover",
		Usage: "retire a network and give its archive to a steward network, which keeps serving its shared records; a registry change",
		UsageText: "cairn handover --to STEWARD                                   (this node's own network)\n" +
			"cairn handover --to STEWARD --network GONE --shares F1,F2[,...] (a custodian, for a network that is gone)\n" +
			"cairn handover --to STEWARD --network GONE --backup FILE [--passphrase-file FILE]",
		Description: "The retiring network's archive key goes to the steward network's nodes through the\n" +
			"registry, wrapped so only they can open it. The steward fetches the network's custody\n" +
			"copies from its custodians and serves each shared record to the networks its audience\n" +
			"names, as before; private records stay sealed. The network is retired: this cannot be\n" +
			"undone. When the network is gone, a steward first suspends it (cairn member suspend GONE);\n" +
			"then a node of one of its custodians hands it over with the network's key shares (no\n" +
			"passphrase needed) or its key backup (passphrase asked, or $CAIRN_PASSPHRASE).\n" +
			"See docs/OPERATIONS.md, \"Handing over an archive\".",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Usage: "the steward network (`SLUG`) that takes the archive (cairn members shows the stewards)"},
			&cli.StringFlag{Name: "network", Usage: "the network (`SLUG`) to hand over, when it is not this node's own"},
			&cli.StringFlag{Name: "shares", Usage: "that network's key share files, `F1,F2,...` (at least its threshold)"},
			&cli.StringFlag{Name: "backup", Usage: "that network's key backup `FILE` (sealed under a passphrase)"},
			passphraseFileFlag(),
		},
		Action: handover,
		Subcommands: []*cli.Command{
			{
				Name:  "archives",
				Usage: "the archives handed over to this node's network, and what this node made of each",
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageError("cairn handover archives takes no arguments (got %q)", c.Args().First())
					}
					var as []node.ArchiveStatus
					if err := call(c, "GET", "/v1/handover/archives", nil, &as); err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, as)
					}
					return printArchives(c, as)
				},
			},
		},
	}
}

func printArchives(c *cli.Context, as []node.ArchiveStatus) error {
	w := c.App.Writer
	if len(as) == 0 {
		fmt.Fprintln(w, "No archive has been handed over to this network.")
		return nil
	}
	tw := table(w)
	fmt.Fprintln(tw, "NETWORK\tSTATE\tSHARED\tPRIVATE (SEALED)\tSEALED COPIES\tPROBLEM")
	for _, a := range as {
		state := "imported"
		if !a.Imported {
			state = "not yet"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", a.ID, state, a.Shared, a.Private, a.Sealed, dash(a.Problem))
	}
	return tw.Flush()
}

func handover(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("cairn handover takes no arguments (got %q); name the steward network with --to SLUG", c.Args().First())
	}
	to := strings.TrimSpace(c.String("to"))
	if to == "" {
		return usageError("cairn handover needs --to SLUG: the steward network that takes the archive (cairn members shows the stewards)")
	}
	if !model.ValidSlug(to) {
		return usageError("--to %q is not a network slug (lower-case letters, digits and hyphens); cairn members lists the networks", to)
	}
	network := strings.TrimSpace(c.String("network"))
	if network != "" && !model.ValidSlug(network) {
		return usageError("--network %q is not a network slug (lower-case letters, digits and hyphens); cairn members lists the networks", network)
	}
	shares, backup := c.String("shares"), c.String("backup")
	if shares != "" && backup != "" {
		return usageError("give the network's key shares (--shares) or its key backup (--backup), not both")
	}
	if c.IsSet("passphrase-file") && backup == "" {
		return usageError("--passphrase-file goes with --backup: key shares need no passphrase")
	}
	own, _ := node.NetworkOf(dataDir(c))
	req := api.HandoverRequest{To: to, Network: network}
	if shares != "" || backup != "" {
		if network == "" {
			return usageError("--shares and --backup hand over another network: name it with --network SLUG")
		}
		var keys node.NodeKeys
		var err error
		if shares != "" {
			keys, err = keysFromShares(shares)
		} else {
			keys, err = keysFromBackup(c, backup)
		}
		if err != nil {
			return err
		}
		if keys.Network != network {
			return fmt.Errorf("the keys given are network %s's, not %s's: give the shares or backup of %s", keys.Network, network, network)
		}
		req.ArchiveKey = keys.Archive
		defer clear(keys.Archive)
	} else if network != "" && network != own {
		return usageError("%s is not this node's network: give its key shares (--shares F1,F2) or its key backup (--backup FILE)", network)
	}
	var res api.ResultView
	if err := call(c, "POST", "/v1/handover", req, &res); err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(c.App.Writer, res)
	}
	fmt.Fprintln(c.App.Writer, res.Summary)
	fmt.Fprintf(c.App.Writer, "%s now fetches the archive from the custodians; cairn members shows %s retired with its archive held by %s.\n", to, res.ID, to)
	return nil
}

// keysFromShares combines key share files given as F1,F2,...
func keysFromShares(list string) (node.NodeKeys, error) {
	var shares []secrets.Share
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return node.NodeKeys{}, fmt.Errorf("read share %s: %w", f, err)
		}
		s, err := secrets.ParseShare(b)
		if err != nil {
			return node.NodeKeys{}, fmt.Errorf("%s: %w", f, err)
		}
		s.Name = f
		shares = append(shares, s)
	}
	_, secret, err := secrets.Combine(shares)
	if err != nil {
		if errors.Is(err, secrets.ErrTooFewShares) {
			return node.NodeKeys{}, fmt.Errorf("the shares do not open the keys: %w", err)
		}
		return node.NodeKeys{}, err
	}
	defer clear(secret)
	return node.DecodeNodeKeys(secret)
}

// keysFromBackup opens a passphrase key backup.
func keysFromBackup(c *cli.Context, file string) (node.NodeKeys, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return node.NodeKeys{}, fmt.Errorf("read the key backup: %w", err)
	}
	pass, err := readPassphrase(c, false)
	if err != nil {
		return node.NodeKeys{}, err
	}
	defer clear(pass)
	_, secret, err := secrets.Open(b, pass)
	if err != nil {
		return node.NodeKeys{}, fmt.Errorf("%s: %w", file, err)
	}
	defer clear(secret)
	return node.DecodeNodeKeys(secret)
}
