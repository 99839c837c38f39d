package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/inpud/cairn/node/secrets"
)

// passphraseEnv names the variable a passphrase may come from, for scripts.
const passphraseEnv = "CAIRN_PASSPHRASE"

func passphraseFileFlag() cli.Flag {
	return &cli.StringFlag{Name: "passphrase-file", Usage: "read the passphrase from the first line of `FILE` (otherwise $" + passphraseEnv + ", otherwise a prompt)"}
}

// readPassphrase gets a passphrase from --passphrase-file, then
// CAIRN_PASSPHRASE, then a prompt on the terminal (twice when creating). It
// is never written anywhere. A new one must be long enough.
func readPassphrase(c *cli.Context, creating bool) ([]byte, error) {
	p, prompted, err := passphraseFrom(c, creating)
	if err != nil {
		return nil, err
	}
	if creating && !prompted {
		if err := secrets.CheckNewPassphrase(p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func passphraseFrom(c *cli.Context, creating bool) (p []byte, prompted bool, err error) {
	if f := c.String("passphrase-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, false, fmt.Errorf("read the passphrase file: %w", err)
		}
		line, _, _ := bytes.Cut(b, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			return nil, false, fmt.Errorf("the passphrase file %s has nothing on its first line; put the passphrase there", f)
		}
		return line, false, nil
	}
	if v, ok := os.LookupEnv(passphraseEnv); ok {
		if v == "" {
			return nil, false, fmt.Errorf("%s is set but empty; set it to the passphrase, or unset it to be asked", passphraseEnv)
		}
		return []byte(v), false, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, false, fmt.Errorf("no passphrase given: run this in a terminal to be asked for it, or set %s, or give --passphrase-file FILE", passphraseEnv)
	}
	ask := func(prompt string) ([]byte, error) {
		fmt.Fprint(c.App.ErrWriter, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(c.App.ErrWriter)
		return b, err
	}
	first := "Passphrase: "
	if creating {
		first = fmt.Sprintf("New passphrase (at least %d characters; a few unrelated words are good): ", secrets.MinPassphrase)
	}
	p, err = ask(first)
	if err != nil {
		return nil, true, fmt.Errorf("read the passphrase: %w", err)
	}
	if !creating {
		return p, true, nil
	}
	if err := secrets.CheckNewPassphrase(p); err != nil {
		return nil, true, err
	}
	again, err := ask("The same passphrase again: ")
	if err != nil {
		return nil, true, fmt.Errorf("read the passphrase: %w", err)
	}
	if !bytes.Equal(p, again) {
		return nil, true, errors.New("the two passphrases differ; nothing was written, run the command again")
	}
	return p, true, nil
}
