package cli

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/api"
	cairnsync "github.com/inpud/cairn/sync"
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

func syncCommand() *cli.Command {
	return &cli.Command{
		Name:  "sync",
		Usage: "replication with the other member nodes",
		Subcommands: []*cli.Command{
			{
				Name:  "status",
				Usage: "this node's feed head, when it last pulled, what it served, and each member node's state",
				Action: func(c *cli.Context) error {
					var st node.SyncStatus
					if err := call(c, "GET", "/v1/sync/status", nil, &st); err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, st)
					}
					w := c.App.Writer
					fmt.Fprintf(w, "Feed head:  %d\n", st.FeedHead)
					last := "not yet"
					if !st.LastRound.IsZero() {
						last = st.LastRound.Format("2006-01-02 15:04:05")
					}
					fmt.Fprintf(w, "Pulls:      every %s; last round %s\n", st.Interval, last)
					fmt.Fprintf(w, "Served:     %d pull requests answered, %d refused, %d malformed\n", st.Server.Served, st.Server.Refused, st.Server.Malformed)
					fmt.Fprintf(w, "Notified:   %d times by member nodes that their feed grew (%d refused, %d malformed)\n", st.Notifies.Received, st.Notifies.Refused, st.Notifies.Malformed)
					fmt.Fprintf(w, "Refused:    %d connections and %d streams from nodes that are not current members (suspended, retired or unknown)\n", st.Refused.Secured, st.Refused.Streams)
					fmt.Fprintln(w)
					return printPeers(c, st.Peers)
				},
			},
			{
				Name:  "now",
				Usage: "pull new records from every member node this node can reach, now",
				Action: func(c *cli.Context) error {
					var res []node.PeerSync
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

func peersCommand() *cli.Command {
	return &cli.Command{
		Name:  "peers",
		Usage: "member nodes this node replicates with: address, network, last pull, lag, records received and rejected (rolled-back: an older version than it served before), forks it delivered",
		Action: func(c *cli.Context) error {
			var ps []node.PeerState
			if err := call(c, "GET", "/v1/peers", nil, &ps); err != nil {
				return err
			}
			if wantJSON(c) {
				return printJSON(c.App.Writer, ps)
			}
			return printPeers(c, ps)
		},
	}
}

func printPeers(c *cli.Context, ps []node.PeerState) error {
	if len(ps) == 0 {
		fmt.Fprintln(c.App.Writer, "No member nodes pulled from yet.")
		return nil
	}
	tw := table(c.App.Writer)
	fmt.Fprintln(tw, "NETWORK\tNODE\tADDRESS\tLAST PULL\tLAG\tRECEIVED\tREJECTED\tFORKS\tPROBLEM")
	for _, p := range ps {
		addr := p.Address
		if !p.Connected {
			addr = "(not connected)"
		}
		last := "never"
		if !p.LastPull.IsZero() {
			last = p.LastPull.Format("15:04:05")
		}
		problem := p.LastError
		if time.Now().Before(p.DroppedUntil) {
			problem = fmt.Sprintf("dropped for %s until %s", p.DropReason, p.DroppedUntil.Local().Format("15:04:05"))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\t%s\n", p.Network, shortID(p.ID), addr, last, p.Lag, p.Received, rejected(p), p.Forks, problem)
	}
	return tw.Flush()
}

// rejected is the REJECTED cell: the total, then each reason's count,
// e.g. "3 (bad-signature 2, stale 1)".
func rejected(p node.PeerState) string {
	var parts []string
	for _, r := range cairnsync.Reasons {
		if n := p.Rejections[r]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r, n))
		}
	}
	if len(parts) == 0 {
		return strconv.Itoa(p.Rejected)
	}
	return fmt.Sprintf("%d (%s)", p.Rejected, strings.Join(parts, ", "))
}
