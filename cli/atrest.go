package cli

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/inpud/cairn/node"
)

// atRestFlags are the options of init and start for encryption at rest.
func atRestFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "encrypt", Usage: "new data dir only: seal record bodies, exports and the node's keys under a passphrase (asked for, or $" + passphraseEnv + ", or --passphrase-file)"},
		passphraseFileFlag(),
	}
}

// withAtRest fills cfg's encryption settings: a new data dir is encrypted
// with --encrypt (or, on a terminal, when the person says so at the first
// start); an encrypted one needs its passphrase.
func withAtRest(c *cli.Context, cfg *node.Config, firstStart bool) error {
	if node.Initialised(cfg.DataDir) {
		if c.IsSet("encrypt") && !node.Encrypted(cfg.DataDir) {
			return usageError("--encrypt: %s already holds a node whose records are in clear; to encrypt it, back up its keys (cairn key backup), stop it, move the data dir away and run cairn restore --encrypt into a new one (docs/OPERATIONS.md)", cfg.DataDir)
		}
		if !node.Encrypted(cfg.DataDir) {
			return nil
		}
		p, err := readPassphrase(c, false)
		if err != nil {
			return err
		}
		cfg.Passphrase, cfg.KDF = p, backupParams
		return nil
	}
	encrypt := c.Bool("encrypt")
	if firstStart && !c.IsSet("encrypt") && term.IsTerminal(int(os.Stdin.Fd())) {
		fmt.Fprint(c.App.ErrWriter, "Encrypt this node's records at rest under a passphrase? A seized disk then shows no record contents. [Y/n] ")
		line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		a := strings.ToLower(strings.TrimSpace(line))
		encrypt = a == "" || a == "y" || a == "yes"
	}
	if !encrypt {
		return nil
	}
	p, err := readPassphrase(c, true)
	if err != nil {
		return err
	}
	cfg.Encrypt, cfg.Passphrase, cfg.KDF = true, p, backupParams
	return nil
}
