package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/secrets"
)

// newPassphraseEnv gives the new passphrase of `cairn passphrase change`,
// for scripts.
const newPassphraseEnv = "CAIRN_NEW_PASSPHRASE"

// passphraseCommand changes the passphrase of an encrypted node. It runs
// on the stopped node, on the data dir: the passphrase then never travels
// over the local API, and the running node needs no way to rewrite its
// key file while it uses it.
func passphraseCommand() *cli.Command {
	return &cli.Command{
		Name:  "passphrase",
		Usage: "manage the passphrase of a node encrypted at rest",
		Subcommands: []*cli.Command{{
			Name:      "change",
			Usage:     "seal the node's data key under a new passphrase (stop the node first); the old passphrase stops working",
			UsageText: "cairn passphrase change [--passphrase-file OLD] [--new-passphrase-file NEW]",
			Description: "The current passphrase comes from --passphrase-file, $" + passphraseEnv + " or a prompt; the new one from\n" +
				"--new-passphrase-file, $" + newPassphraseEnv + " or a prompt (twice). Exports written before keep opening with the old one.",
			Flags: []cli.Flag{
				passphraseFileFlag(),
				&cli.StringFlag{Name: "new-passphrase-file", Usage: "read the new passphrase from the first line of `FILE`"},
			},
			Action: func(c *cli.Context) error {
				dir := dataDir(c)
				if !node.Initialised(dir) {
					return usageError("%s holds no node; give the node's --data-dir", dir)
				}
				if !node.Encrypted(dir) {
					return usageError("the node in %s is not encrypted at rest, so it has no passphrase to change", dir)
				}
				old, err := readPassphrase(c, false)
				if err != nil {
					return err
				}
				nw, err := readNewPassphrase(c)
				if err != nil {
					return err
				}
				if err := node.ChangePassphrase(dir, old, nw, backupParams); err != nil {
					return err
				}
				if wantJSON(c) {
					return printJSON(c.App.Writer, map[string]string{"id": dir, "data_dir": dir, "status": "changed"})
				}
				fmt.Fprintln(c.App.Writer, "passphrase changed: the node now opens only with the new one")
				return nil
			},
		}},
	}
}

// readNewPassphrase gets the new passphrase from --new-passphrase-file,
// CAIRN_NEW_PASSPHRASE or two prompts, and checks its length.
func readNewPassphrase(c *cli.Context) ([]byte, error) {
	var p []byte
	if f := c.String("new-passphrase-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read the new passphrase file: %w", err)
		}
		p, _, _ = bytes.Cut(b, []byte("\n"))
		p = bytes.TrimSuffix(p, []byte("\r"))
	} else if v, ok := os.LookupEnv(newPassphraseEnv); ok {
		p = []byte(v)
	} else {
		fd := int(os.Stdin.Fd())
		if !term.IsTerminal(fd) {
			return nil, fmt.Errorf("no new passphrase given: run this in a terminal to be asked for it, or set %s, or give --new-passphrase-file FILE", newPassphraseEnv)
		}
		ask := func(prompt string) ([]byte, error) {
			fmt.Fprint(c.App.ErrWriter, prompt)
			b, err := term.ReadPassword(fd)
			fmt.Fprintln(c.App.ErrWriter)
			return b, err
		}
		var err error
		if p, err = ask(fmt.Sprintf("New passphrase (at least %d characters): ", secrets.MinPassphrase)); err != nil {
			return nil, fmt.Errorf("read the new passphrase: %w", err)
		}
		again, err := ask("The same passphrase again: ")
		if err != nil {
			return nil, fmt.Errorf("read the new passphrase: %w", err)
		}
		if !bytes.Equal(p, again) {
			return nil, errors.New("the two passphrases differ; nothing was changed, run the command again")
		}
	}
	if err := secrets.CheckNewPassphrase(p); err != nil {
		return nil, fmt.Errorf("the new passphrase: %w", err)
	}
	return p, nil
}
