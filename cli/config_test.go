package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/node"
)

// configFrom runs `cairn start` far enough to build the node's config from
// flags, the environment and config.yaml, without starting a node.
func configFrom(t *testing.T, dir string, args ...string) node.Config {
	t.Helper()
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
	full := append([]string{"cairn", "--data-dir", dir, "start"}, args...)
	if err := app.RunContext(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	got.Logger = nil
	return got
}

func TestExampleConfigLoadsToDefaults(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("../configs/cairn.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, node.ConfigFile), b, 0o600)
	got := configFrom(t, dir)
	want := node.DefaultConfig(dir)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("configs/cairn.example.yaml loads to\n%+v\nwant the defaults\n%+v", got, want)
	}
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, node.ConfigFile), []byte("api: 127.0.0.1:7001\nlanguage: fr\nnetwork: fromfile\nmax-clock-ahead: 5m\n"), 0o600)
	got := configFrom(t, dir)
	if got.API != "127.0.0.1:7001" || got.Language != "fr" || got.Network.Slug != "fromfile" || got.MaxClockAhead.Minutes() != 5 {
		t.Fatalf("config.yaml not applied: %+v", got)
	}
	t.Setenv("CAIRN_API", "127.0.0.1:7002")
	t.Setenv("CAIRN_LANGUAGE", "es")
	got = configFrom(t, dir)
	if got.API != "127.0.0.1:7002" || got.Language != "es" || got.Network.Slug != "fromfile" {
		t.Fatalf("environment must beat config.yaml: %+v", got)
	}
	got = configFrom(t, dir, "--api", "127.0.0.1:7003")
	if got.API != "127.0.0.1:7003" || got.Language != "es" {
		t.Fatalf("flags must beat the environment: %+v", got)
	}
	// A repeated flag replaces the default list, it does not add to it.
	got = configFrom(t, dir, "--listen", "/ip4/127.0.0.1/tcp/7500", "--listen", "/ip4/127.0.0.1/udp/7500/quic-v1")
	if !reflect.DeepEqual(got.Listen, []string{"/ip4/127.0.0.1/tcp/7500", "/ip4/127.0.0.1/udp/7500/quic-v1"}) {
		t.Fatalf("--listen twice gave %v", got.Listen)
	}
}
