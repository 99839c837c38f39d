package cli

import (
	"context"
	"io"
	"strings"
	stdsync "sync"

	"github.com/urfave/cli/v2"
)

// Run runs the command line args (args[0] is the program name) with the
// given output streams. It accepts options anywhere on the line, as people
// type them: `cairn audit answer ID 3.1.1 yes --note "…"` and
// `cairn audit list --json` both work, although urfave/cli v2 itself stops
// reading options at the first argument and reads global options only
// before the command.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	app := App()
	app.Writer, app.ErrWriter = stdout, stderr
	// urfave/cli v2 writes package-level flags (its help flag) while it
	// parses, so apps running at once in one process (tests do) must not
	// parse at the same time. The lock is released when the command's
	// action starts, so a long-running `start` does not hold it.
	parseMu.Lock()
	var once stdsync.Once
	release := func() { once.Do(parseMu.Unlock) }
	defer release()
	return app.RunContext(context.WithValue(ctx, parsedKey{}, release), normaliseArgs(app, args))
}

var parseMu stdsync.Mutex

type parsedKey struct{}

// parsed releases the parse lock; every action calls it first.
func parsed(ctx context.Context) {
	if release, ok := ctx.Value(parsedKey{}).(func()); ok {
		release()
	}
}

// normaliseArgs moves global options to the front, then puts the
// command's own options before its arguments.
func normaliseArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	globals := flagArity(app.Flags)
	var global, path, rest []string
	cmds := app.Commands
	var cmd *cli.Command
	i := 1
	// The command path: leading words that name commands, with global
	// options possibly in between.
	for i < len(args) {
		a := args[i]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			takesValue, known := globals[flagName(a)]
			if !known {
				break
			}
			global = append(global, a)
			if takesValue && !strings.Contains(a, "=") && i+1 < len(args) {
				global = append(global, args[i+1])
				i++
			}
			i++
			continue
		}
		next := findCommand(cmds, a)
		if next == nil {
			break
		}
		cmd = next
		path = append(path, a)
		cmds = next.Subcommands
		i++
	}
	if cmd == nil {
		return args
	}
	local := flagArity(cmd.Flags)
	var opts, positional []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || len(a) == 1 {
			positional = append(positional, a)
			continue
		}
		name := flagName(a)
		if takesValue, ok := globals[name]; ok {
			if _, shadow := local[name]; !shadow {
				global = append(global, a)
				if takesValue && !strings.Contains(a, "=") && i+1 < len(args) {
					global = append(global, args[i+1])
					i++
				}
				continue
			}
		}
		opts = append(opts, a)
		if local[name] && !strings.Contains(a, "=") && i+1 < len(args) {
			opts = append(opts, args[i+1])
			i++
		}
	}
	rest = append(rest, opts...)
	if len(positional) > 0 {
		rest = append(rest, "--")
		rest = append(rest, positional...)
	}
	out := []string{args[0]}
	out = append(out, global...)
	out = append(out, path...)
	return append(out, rest...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// flagArity maps every name of every flag to whether it takes a value.
func flagArity(flags []cli.Flag) map[string]bool {
	m := map[string]bool{"help": false, "h": false}
	for _, f := range flags {
		takes := true
		if _, ok := f.(*cli.BoolFlag); ok {
			takes = false
		}
		for _, n := range f.Names() {
			m[n] = takes
		}
	}
	return m
}

func flagName(a string) string {
	a = strings.TrimLeft(a, "-")
	if i := strings.IndexByte(a, '='); i >= 0 {
		a = a[:i]
	}
	return a
}
