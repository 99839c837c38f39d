// Package cli is Cairn's command line. It turns flags into calls to a
// running node's local API and prints the answers; only `start` and `init`
// build a node themselves. App returns a fresh app each call, so tests run
// commands with their own output buffers; only main exits.
package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/node"
)

// DefaultDataDir is where a node keeps its data when --data-dir is not
// given: $XDG_DATA_HOME/cairn, or ~/.local/share/cairn.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "cairn")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "cairn")
	}
	return "cairn-data"
}

// globalFlags are built anew for every App: urfave/cli writes into a flag
// when it parses, so two apps running at once must not share one.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "data-dir", Usage: "the node's data directory", EnvVars: []string{"CAIRN_DATA_DIR"}, Value: DefaultDataDir()},
		&cli.BoolFlag{Name: "json", Usage: "print JSON instead of text (an object or array, an id on every record)"},
	}
}

// App returns Cairn's command-line app.
func App() *cli.App {
	app := &cli.App{
		Name:  "cairn",
		Usage: "keep your network's community audits, priorities and committee reports, and share what you choose",
		Description: "Cairn keeps a network's community monitoring data on its own node. Start a node with\n" +
			"`cairn start`, then record audits against the IDUIT checklists, priorities and\n" +
			"committee reports with the commands below. Nothing leaves the node unless you share it.",
		Version:              node.Version,
		EnableBashCompletion: true,
		Flags:                globalFlags(),
		Commands: []*cli.Command{
			initCommand(), startCommand(), statusCommand(),
			templateCommand(), auditCommand(), priorityCommand(), reportCommand(),
			recordCommand(), exportCommand(), importCommand(), bundleCommand(),
			inviteCommand(), joinCommand(), membersCommand(), memberCommand(), registryCommand(),
			shareCommand(), syncCommand(), peersCommand(), uiCommand(), keyCommand(), custodyCommand(), restoreCommand(), passphraseCommand(), handoverCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main prints and exits
	}
	for _, c := range app.Commands {
		guardText(c)
		explainUnknown(c)
	}
	app.Action = func(c *cli.Context) error {
		if c.NArg() > 0 {
			return fmt.Errorf("%q is not a command; cairn --help lists them", c.Args().First())
		}
		return cli.ShowAppHelp(c)
	}
	return app
}

// explainUnknown gives every command group an action that names its
// subcommands when given one it does not have, instead of urfave's "No
// help topic".
func explainUnknown(c *cli.Command) {
	if len(c.Subcommands) == 0 {
		return
	}
	for _, sub := range c.Subcommands {
		explainUnknown(sub)
	}
	if c.Action != nil {
		return
	}
	var names []string
	for _, sub := range c.Subcommands {
		names = append(names, sub.Name)
	}
	c.Action = func(ctx *cli.Context) error {
		if ctx.NArg() > 0 {
			return fmt.Errorf("%q is not something cairn %s can do: use %s", ctx.Args().First(), c.Name, strings.Join(names, ", "))
		}
		return cli.ShowSubcommandHelp(ctx)
	}
}

// guardText makes every command refuse flag values and arguments that are
// not valid UTF-8 before anything is sent: encoding to JSON would silently
// replace the bad bytes.
func guardText(c *cli.Command) {
	for _, sub := range c.Subcommands {
		guardText(sub)
	}
	if c.Action == nil {
		return
	}
	action := c.Action
	c.Action = func(ctx *cli.Context) error {
		parsed(ctx.Context)
		for _, name := range ctx.FlagNames() {
			for _, v := range append([]string{ctx.String(name)}, ctx.StringSlice(name)...) {
				if !utf8.ValidString(v) {
					return fmt.Errorf("--%s: is not valid UTF-8 text; Cairn stores text as UTF-8 only", name)
				}
			}
		}
		for i, a := range ctx.Args().Slice() {
			if !utf8.ValidString(a) {
				return fmt.Errorf("argument %d is not valid UTF-8 text; Cairn stores text as UTF-8 only", i+1)
			}
		}
		return action(ctx)
	}
}

func dataDir(c *cli.Context) string { return c.String("data-dir") }

func connect(c *cli.Context) (*client, error) { return newClient(dataDir(c)) }

// call sends one request to the node running for the command's data dir
// and decodes its answer into out.
func call(c *cli.Context, method, path string, body, out any) error {
	cl, err := connect(c)
	if err != nil {
		return err
	}
	return cl.do(c.Context, method, path, body, out)
}

func wantJSON(c *cli.Context) bool { return c.Bool("json") }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// usageError is bad input on the command line itself.
func usageError(format string, args ...any) error { return fmt.Errorf(format, args...) }

// needArgs checks the number of positional arguments.
func needArgs(c *cli.Context, n int, names string) error {
	if c.NArg() != n {
		return usageError("%s needs %s (got %d argument(s)); see: %s --help", c.Command.HelpName, names, c.NArg(), c.Command.HelpName)
	}
	return nil
}
