package cli

import (
	"fmt"
	"net/url"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/node/api"
)

func shareCommand() *cli.Command {
	return &cli.Command{
		Name:      "share",
		Usage:     "choose who may receive a record: a new signed version with that audience",
		UsageText: "cairn share ID --audience private|members|network:SLUG|region:NAME[,...]",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "audience", Usage: "private, members, network:SLUG or region:NAME, separated by commas", Required: true}},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "the record's ID"); err != nil {
				return err
			}
			var rec recordView
			if err := call(c, "POST", "/v1/records/"+url.PathEscape(c.Args().Get(0))+"/audience", api.AudienceRequest{Audience: c.String("audience")}, &rec); err != nil {
				return err
			}
			if wantJSON(c) {
				return printJSON(c.App.Writer, rec)
			}
			fmt.Fprintf(c.App.Writer, "%s is now shared with: %s (version %d)\n", rec.ID, rec.Audience, rec.Version)
			return nil
		},
	}
}

// peerSync mirrors node.PeerSync for printing.
type peerSync struct {
	ID       string `json:"id"`
	Network  string `json:"network"`
	Received int    `json:"received"`
	Stored   int    `json:"stored"`
	Rejected int    `json:"rejected"`
	Error    string `json:"error,omitempty"`
}

func syncCommand() *cli.Command {
	return &cli.Command{
		Name:  "sync",
		Usage: "replication with the other member nodes",
		Subcommands: []*cli.Command{
			{
				Name:  "now",
				Usage: "pull new records from every member node this node can reach, now",
				Action: func(c *cli.Context) error {
					var res []peerSync
					if err := call(c, "POST", "/v1/sync/now", nil, &res); err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, res)
					}
					if len(res) == 0 {
						fmt.Fprintln(c.App.Writer, "No other member nodes to sync with.")
						return nil
					}
					tw := table(c.App.Writer)
					fmt.Fprintln(tw, "NETWORK\tNODE\tRECEIVED\tSTORED\tREJECTED\tPROBLEM")
					for _, p := range res {
						fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", p.Network, shortID(p.ID), p.Received, p.Stored, p.Rejected, p.Error)
					}
					return tw.Flush()
				},
			},
		},
	}
}
