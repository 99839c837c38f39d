package cli

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/api"
)

func custodyCommand() *cli.Command {
	return &cli.Command{
		Name:  "custody",
		Usage: "custody copies: other member networks keep this network's records, sealed, so nothing is lost if its node is",
		Subcommands: []*cli.Command{
			{
				Name:      "set",
				Usage:     "name this network's custodians (at least two other active member networks); a registry change",
				UsageText: "cairn custody set SLUG,SLUG[,...]",
				Description: "Every version of this network's records, private ones included, is then pushed to a node\n" +
					"of each custodian, sealed with the archive key: custodians keep the copies and give them\n" +
					"back, and cannot read them. Keep a backup of the archive key (cairn key backup).",
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return usageError("cairn custody set needs the custodians, as SLUG,SLUG (at least two other member networks; cairn members lists them)")
					}
					var slugs []string
					for _, a := range c.Args().Slice() {
						for _, s := range strings.Split(a, ",") {
							slugs = append(slugs, strings.TrimSpace(s))
						}
					}
					var res api.ResultView
					if err := call(c, "PUT", "/v1/custody/custodians", api.CustodiansRequest{Custodians: slugs}, &res); err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, res)
					}
					fmt.Fprintln(c.App.Writer, res.Summary)
					return nil
				},
			},
			{
				Name:  "status",
				Usage: "what each custodian network's nodes keep of this network's versions, and how far behind each is",
				Action: func(c *cli.Context) error {
					var st node.CustodyStatus
					if err := call(c, "GET", "/v1/custody/status", nil, &st); err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, st)
					}
					return printCustody(c, st)
				},
			},
		},
	}
}

func printCustody(c *cli.Context, st node.CustodyStatus) error {
	w := c.App.Writer
	fmt.Fprintf(w, "Network:      %s (archive key %s)\n", st.Network, st.ArchiveKey)
	fmt.Fprintf(w, "Feed head:    %d\n", st.FeedHead)
	if len(st.Custodians) == 0 {
		fmt.Fprintln(w, "Custodians:   none yet: name two or more with cairn custody set SLUG,SLUG")
	} else {
		fmt.Fprintln(w)
		tw := table(w)
		fmt.Fprintln(tw, "CUSTODIAN\tSTATE\tACKNOWLEDGED\tBEHIND\tNODE\tHELD\tPROBLEM")
		for _, cs := range st.Custodians {
			state := "caught up"
			if !cs.CaughtUp {
				state = "behind"
			}
			if cs.Status != "active" {
				state += " (" + cs.Status + ")"
			}
			behind := fmt.Sprint(cs.Behind)
			if cs.BehindMore {
				behind += "+"
			}
			if len(cs.Nodes) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t-\t-\t%s\n", cs.ID, state, cs.Acknowledged, behind, dash(cs.Problem))
			}
			for i, n := range cs.Nodes {
				problem := n.Error
				if problem == "" && i == 0 {
					problem = cs.Problem
				}
				if i > 0 {
					fmt.Fprintf(tw, "\t\t\t\t%s\t%d\t%s\n", n.ID, n.Held, dash(problem))
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%s\n", cs.ID, state, cs.Acknowledged, behind, n.ID, n.Held, dash(problem))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(st.Keeping) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "This node keeps custody copies for:")
		for _, k := range st.Keeping {
			fmt.Fprintf(w, "  %s: %d sealed versions\n", k.ID, k.Held)
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
