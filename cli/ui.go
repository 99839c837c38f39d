package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/node/api"
)

func uiCommand() *cli.Command {
	return &cli.Command{
		Name:  "ui",
		Usage: "open the web interface: prints a one-time login link (and opens it on a desktop)",
		Description: "The link logs a browser on this computer in to the node's web interface. It works once,\n" +
			"within 2 minutes; the session it opens ends after 12 hours without use.",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "no-open", Usage: "print the link only, do not open a browser"}},
		Action: func(c *cli.Context) error {
			var res api.LoginCodeResponse
			if err := call(c, "POST", "/v1/ui/login-code", nil, &res); err != nil {
				return err
			}
			if wantJSON(c) {
				return printJSON(c.App.Writer, res)
			}
			fmt.Fprintf(c.App.Writer, "Open this link in a browser on this computer (it works once, until %s):\n\n  %s\n", res.Expires.Local().Format("15:04:05"), res.URL)
			if opener := desktopOpener(); opener != "" && !c.Bool("no-open") {
				ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
				defer cancel()
				if err := exec.CommandContext(ctx, opener, res.URL).Run(); err != nil {
					fmt.Fprintf(c.App.ErrWriter, "Could not open a browser with %s (%v); open the link yourself.\n", opener, err)
				}
			}
			return nil
		},
	}
}

// desktopOpener is the program that opens a link in the desktop's
// browser, or "" when there is no desktop (no display, or no such program).
func desktopOpener() string {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	} else if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return ""
	}
	if _, err := exec.LookPath(name); err != nil {
		return ""
	}
	return name
}
