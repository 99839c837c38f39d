package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/inpud/cairn/node"
)

// FuzzConfigFile runs `cairn start` far enough to build the node's config
// from an arbitrary config.yaml (as configFrom does). It must never panic;
// a file it takes names only known options and gives a config that
// passes node.Config.Validate; a file it refuses is refused in one line.
func FuzzConfigFile(f *testing.F) {
	example, err := os.ReadFile("../configs/cairn.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"api: 127.0.0.1:7001\nlanguage: fr\nnetwork: fromfile\nmax-clock-ahead: 5m\n",
		"listen:\n  - /ip4/127.0.0.1/tcp/7500\n  - /ip4/127.0.0.1/udp/7500/quic-v1\n",
		"colour: red\n", "api: [1, 2]\n", "sync-interval: soon\n", "sync-drop-after: -3\n",
		"sync-peer-streams: 0\n", "sync-peer-rate: 0\n", "sync-peer-burst: 2.5\n",
		"registry-snapshot-threshold: -1\n", "api: 0.0.0.0:7410\n", "store-gc-interval: 0s\n",
		"- a list\n", "api: &a 127.0.0.1:1\nlanguage: *a\n", ": :\n\t", "",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	path := filepath.Join(dir, node.ConfigFile)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var got node.Config
		app := App()
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		for _, c := range app.Commands {
			if c.Name == "start" {
				c.Action = func(c *cli.Context) error {
					var err error
					got, err = nodeConfig(c)
					return err
				}
			}
		}
		err := app.RunContext(context.Background(), []string{"cairn", "--data-dir", dir, "start"})
		if err != nil {
			msg := err.Error()
			if msg == "" || strings.Contains(msg, "\n") {
				t.Fatalf("config.yaml %q refused with %q: not one line", data, msg)
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("config.yaml %q accepted, but the config is not valid: %v", data, err)
		}
		var m map[string]any
		if yaml.Unmarshal(data, &m) == nil {
			known := map[string]bool{}
			for _, fl := range nodeFlags() {
				known[fl.Names()[0]] = true
			}
			for k := range m {
				if !known[k] {
					t.Fatalf("config.yaml %q accepted with the unknown option %q", data, k)
				}
			}
		}
	})
}
