package cli

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/api"
	"github.com/inpud/cairn/node/federation"
)

func inviteCommand() *cli.Command {
	return &cli.Command{
		Name:      "invite",
		Usage:     "invite a network into the federation (stewards only); prints the one-time invite code",
		UsageText: "cairn invite --network SLUG --name TEXT --level L [--country CC] [--region NAME] [--role member|steward] [--expires 72h]",
		Description: "Hand the code to the new network over a channel you trust. It works once, until it\n" +
			"expires, and only for a node of that network: they run cairn join CODE.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "network", Usage: "the new network's slug", Required: true},
			&cli.StringFlag{Name: "name", Usage: "its full name", Required: true},
			&cli.StringFlag{Name: "level", Usage: "global, regional, national or local", Required: true},
			&cli.StringFlag{Name: "country", Usage: "two-letter country code"},
			&cli.StringFlag{Name: "region", Usage: "region name"},
			&cli.StringFlag{Name: "parent", Usage: "slug of its parent network"},
			&cli.StringFlag{Name: "role", Usage: "member (a read-only registry replica) or steward (a registry voter)", Value: "member"},
			&cli.StringFlag{Name: "expires", Usage: "how long the code stays valid", Value: "72h"},
		},
		Action: func(c *cli.Context) error {
			req := api.InviteRequest{Network: c.String("network"), Name: c.String("name"), Level: c.String("level"),
				Country: strings.ToUpper(c.String("country")), Region: c.String("region"), Parent: c.String("parent"),
				Role: c.String("role"), Expires: c.String("expires")}
			var res api.InviteResponse
			if err := call(c, "POST", "/v1/invites", req, &res); err != nil {
				return err
			}
			if wantJSON(c) {
				return printJSON(c.App.Writer, res)
			}
			fmt.Fprintln(c.App.Writer, res.Code)
			return nil
		},
	}
}

func joinCommand() *cli.Command {
	return &cli.Command{
		Name:      "join",
		Usage:     "join the federation with an invite code from a steward",
		UsageText: "cairn join CODE",
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "the invite CODE"); err != nil {
				return err
			}
			var res api.ResultView
			if err := call(c, "POST", "/v1/join", api.JoinRequest{Code: c.Args().Get(0)}, &res); err != nil {
				return err
			}
			if wantJSON(c) {
				return printJSON(c.App.Writer, res)
			}
			fmt.Fprintln(c.App.Writer, res.Summary)
			return nil
		},
	}
}

func membersCommand() *cli.Command {
	return &cli.Command{
		Name:  "members",
		Usage: "list the federation's member networks",
		Action: func(c *cli.Context) error {
			var ms []api.MemberView
			if err := call(c, "GET", "/v1/members", nil, &ms); err != nil {
				return err
			}
			if wantJSON(c) {
				return printJSON(c.App.Writer, ms)
			}
			if len(ms) == 0 {
				fmt.Fprintln(c.App.Writer, "This node belongs to no federation yet.")
				return nil
			}
			tw := table(c.App.Writer)
			fmt.Fprintln(tw, "NETWORK\tNAME\tLEVEL\tROLE\tSTATUS\tNODES")
			for _, m := range ms {
				status := string(m.Status)
				if m.Steward != "" {
					status += " (archive held by " + m.Steward + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", m.Slug, m.Name, m.Level, m.Role, status, len(m.Nodes))
			}
			return tw.Flush()
		},
	}
}

func memberCommand() *cli.Command {
	action := func(name, usage string) *cli.Command {
		return &cli.Command{
			Name:      name,
			Usage:     usage,
			UsageText: "cairn member " + name + " SLUG",
			Action: func(c *cli.Context) error {
				if err := needArgs(c, 1, "the network's SLUG"); err != nil {
					return err
				}
				var res api.ResultView
				if err := call(c, "POST", "/v1/members/"+url.PathEscape(c.Args().Get(0))+"/"+name, nil, &res); err != nil {
					return err
				}
				if wantJSON(c) {
					return printJSON(c.App.Writer, res)
				}
				fmt.Fprintln(c.App.Writer, res.Summary)
				return nil
			},
		}
	}
	return &cli.Command{
		Name:  "member",
		Usage: "one member network: show it, or (stewards) suspend, reinstate, retire, promote or demote it",
		Subcommands: []*cli.Command{
			{
				Name:      "show",
				Usage:     "show a member network and its nodes",
				UsageText: "cairn member show SLUG",
				Action: func(c *cli.Context) error {
					if err := needArgs(c, 1, "the network's SLUG"); err != nil {
						return err
					}
					var m api.MemberView
					if err := call(c, "GET", "/v1/members/"+url.PathEscape(c.Args().Get(0)), nil, &m); err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, m)
					}
					w := c.App.Writer
					fmt.Fprintf(w, "%s (%s)\n  Level: %s   Role: %s   Status: %s\n", m.Name, m.Slug, m.Level, m.Role, m.Status)
					if m.Country != "" || m.Region != "" {
						fmt.Fprintf(w, "  Country: %s   Region: %s\n", m.Country, m.Region)
					}
					if len(m.Custodians) > 0 {
						fmt.Fprintf(w, "  Custodians: %s\n", strings.Join(m.Custodians, ", "))
					}
					if m.Steward != "" {
						fmt.Fprintf(w, "  Archive held by: %s\n", m.Steward)
					}
					for _, n := range m.Nodes {
						state := "active"
						if n.Revoked {
							state = "revoked"
						}
						fmt.Fprintf(w, "  Node %s (%s)\n", n.PeerID, state)
						for _, a := range n.Addrs {
							fmt.Fprintf(w, "    %s\n", a)
						}
					}
					return nil
				},
			},
			action("suspend", "suspend a network: its nodes are disconnected and may change nothing (stewards)"),
			action("reinstate", "reinstate a suspended network (stewards)"),
			action("retire", "retire a network for good (stewards)"),
			action("promote", "make a network a steward: its nodes vote in the registry (stewards)"),
			action("demote", "make a steward network a member again (stewards)"),
		},
	}
}

func registryCommand() *cli.Command {
	return &cli.Command{
		Name:  "registry",
		Usage: "the federation registry this node replicates",
		Subcommands: []*cli.Command{
			{
				Name:  "status",
				Usage: "genesis, leader, voters, non-voters, term, commit index and this node's role",
				Action: func(c *cli.Context) error {
					var st federation.RaftStatus
					if err := call(c, "GET", "/v1/registry/status", nil, &st); err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, st)
					}
					w := c.App.Writer
					if st.Genesis == "" {
						fmt.Fprintln(w, "This node belongs to no federation yet: create one with cairn start --bootstrap, or join one with cairn join CODE.")
						return nil
					}
					tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
					fmt.Fprintf(tw, "Genesis:\t%s\n", st.Genesis)
					fmt.Fprintf(tw, "This node:\t%s (%s)\n", st.ID, st.Role)
					fmt.Fprintf(tw, "Leader:\t%s\n", orNone(st.Leader))
					fmt.Fprintf(tw, "Voters:\t%s\n", orNone(strings.Join(st.Voters, ", ")))
					fmt.Fprintf(tw, "Non-voters:\t%s\n", orNone(strings.Join(st.NonVoters, ", ")))
					fmt.Fprintf(tw, "Term:\t%d\n", st.Term)
					fmt.Fprintf(tw, "Commit index:\t%d (applied %d)\n", st.CommitIndex, st.Applied)
					return tw.Flush()
				},
			},
			{
				Name:      "recover",
				Usage:     "with the node stopped, rebuild the registry's voter set after a quorum of stewards is lost for good",
				UsageText: "cairn registry recover --voters PEERID,PEERID,...",
				Description: "Read docs/OPERATIONS.md first. Whatever this node's registry log holds becomes the\n" +
					"registry: run it on the surviving steward node with the longest log, give every\n" +
					"surviving steward node's peer ID (this one included), then start the nodes and retire\n" +
					"the lost stewards' networks.",
				Flags: []cli.Flag{&cli.StringFlag{Name: "voters", Usage: "comma-separated peer IDs of the steward nodes that vote from now on", Required: true}},
				Action: func(c *cli.Context) error {
					var voters []string
					for _, v := range strings.Split(c.String("voters"), ",") {
						if v = strings.TrimSpace(v); v != "" {
							voters = append(voters, v)
						}
					}
					res, err := node.RecoverRegistry(node.DefaultConfig(dataDir(c)), voters)
					if err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, res)
					}
					fmt.Fprintf(c.App.Writer, "registry recovered: %d voter(s) (%s); %d member networks kept. Start the node, then retire the lost stewards' networks.\n", len(res.Voters), strings.Join(res.Voters, ", "), res.Networks)
					return nil
				},
			},
		},
	}
}

func templatePublishCommand() *cli.Command {
	return &cli.Command{
		Name:      "publish",
		Usage:     "publish a template version to the federation (stewards); refused if it drops item ids of earlier versions",
		UsageText: "cairn template publish FILE",
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "a template FILE (YAML or JSON)"); err != nil {
				return err
			}
			f, err := os.Open(c.Args().Get(0))
			if err != nil {
				return fmt.Errorf("open %s: %w", c.Args().Get(0), err)
			}
			defer f.Close()
			var res api.ResultView
			if err := call(c, "POST", "/v1/templates", f, &res); err != nil {
				return err
			}
			if wantJSON(c) {
				return printJSON(c.App.Writer, res)
			}
			fmt.Fprintln(c.App.Writer, res.Summary)
			return nil
		},
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
