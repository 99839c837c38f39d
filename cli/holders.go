package cli

import (
	"fmt"
	"net/url"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/node"
)

// holdersCommand is `cairn record holders ID`: which networks hold which
// version of one of this network's records, from their delivery receipts.
func holdersCommand() *cli.Command {
	return &cli.Command{
		Name:      "holders",
		Usage:     "which networks hold which version of one of your network's records (from their delivery receipts)",
		UsageText: "cairn record holders ID",
		Description: "Every node that stores a shared record tells the record's origin network which version\n" +
			"it holds. Ask a node of the record's own network: it lists itself first with the current\n" +
			"version, then each network that acknowledged a copy, with the highest version it holds\n" +
			"and since when.",
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "ID"); err != nil {
				return err
			}
			var hs []node.RecordHolder
			if err := call(c, "GET", "/v1/records/"+url.PathEscape(c.Args().Get(0))+"/holders", nil, &hs); err != nil {
				return err
			}
			if wantJSON(c) {
				return printJSON(c.App.Writer, hs)
			}
			tw := table(c.App.Writer)
			fmt.Fprintln(tw, "NETWORK\tVERSION\tHASH\tSINCE")
			for i, h := range hs {
				name := h.Network
				if i == 0 {
					name += " (origin)"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", name, h.Version, h.Hash[:min(16, len(h.Hash))], h.At.Local().Format("2006-01-02 15:04:05"))
			}
			if len(hs) == 1 {
				fmt.Fprintln(tw, "(no other network has acknowledged a copy yet)")
			}
			return tw.Flush()
		},
	}
}
