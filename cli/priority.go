package cli

import (
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/model"
)

func priorityFlags(required bool) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "title", Usage: "what the priority is, in a few words", Required: required},
		&cli.StringFlag{Name: "kind", Usage: "change (a change needed), achievement (a positive achievement) or action (a community action)", Required: required},
		&cli.IntFlag{Name: "importance", Usage: "1 (least) to 5 (most important): height on the board", Required: required},
		&cli.IntFlag{Name: "achievability", Usage: "1 (hardest) to 5 (most achievable within the horizon): position to the right on the board", Required: required},
		&cli.StringFlag{Name: "area", Usage: "e.g. harm reduction, drug-law reform, empowerment"},
		&cli.StringFlag{Name: "target", Usage: "who can make the change (by role or body)"},
		&cli.StringFlag{Name: "ask", Usage: "the exact ask to policy makers"},
		&cli.StringFlag{Name: "horizon", Usage: "horizon in years (default 3-5)"},
		&cli.StringFlag{Name: "status", Usage: "proposed, selected, in-progress, achieved or dropped"},
		&cli.IntFlag{Name: "rank", Usage: "rank among the selected priorities (1 = first)"},
		allowIdentifiersFlag(),
	}
}

func priorityCommand() *cli.Command {
	return &cli.Command{
		Name:  "priority",
		Usage: "priorities for change, placed on the importance × achievability board",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "add a priority; prints the new id",
				UsageText: "cairn priority add --title TEXT --kind change|achievement|action --importance 1-5 --achievability 1-5 [--area TEXT] [--target TEXT] [--ask TEXT]",
				Flags:     priorityFlags(true),
				Action: func(c *cli.Context) error {
					req := map[string]any{
						"title": c.String("title"), "kind": c.String("kind"),
						"importance": c.Int("importance"), "achievability": c.Int("achievability"),
						"area": c.String("area"), "target": c.String("target"), "ask": c.String("ask"),
						"horizon_years": c.String("horizon"), "status": c.String("status"), "rank": c.Int("rank"),
						"allow_identifiers": c.Bool("allow-identifiers"),
					}
					var rec recordView
					if err := call(c, "POST", "/v1/priorities", req, &rec); err != nil {
						return err
					}
					return printWritten(c, rec)
				},
			},
			{
				Name:      "update",
				Usage:     "change a priority: only the options given change (e.g. move it on the board)",
				UsageText: "cairn priority update ID [--title TEXT] [--kind K] [--importance N] [--achievability N] [--area TEXT] [--target TEXT] [--ask TEXT] [--status S]",
				Flags:     priorityFlags(false),
				Action: func(c *cli.Context) error {
					if err := needArgs(c, 1, "ID"); err != nil {
						return err
					}
					patch := map[string]any{"allow_identifiers": c.Bool("allow-identifiers")}
					for flag, field := range map[string]string{"title": "title", "kind": "kind", "area": "area", "target": "target", "ask": "ask", "horizon": "horizon_years", "status": "status"} {
						if c.IsSet(flag) {
							patch[field] = c.String(flag)
						}
					}
					for _, f := range []string{"importance", "achievability", "rank"} {
						if c.IsSet(f) {
							patch[f] = c.Int(f)
						}
					}
					if len(patch) == 1 {
						return usageError("nothing to change: give at least one option, e.g. --importance 5 (see: cairn priority update --help)")
					}
					var rec recordView
					if err := call(c, "PATCH", "/v1/priorities/"+url.PathEscape(c.Args().Get(0)), patch, &rec); err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, rec)
					}
					fmt.Fprintf(c.App.Writer, "%s updated (version %d)\n", rec.ID, rec.Version)
					return nil
				},
			},
			{
				Name:  "list",
				Usage: "list priorities, the three kinds apart",
				Flags: []cli.Flag{originFlag()},
				Action: func(c *cli.Context) error {
					recs, err := listRecords(c, model.KindPriority, originQuery(c))
					if err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, recs)
					}
					tw := table(c.App.Writer)
					fmt.Fprintln(tw, "ID\tORIGIN\tKIND\tIMPORTANCE\tACHIEVABILITY\tTITLE\tAUDIENCE")
					for _, k := range []model.PriorityKind{model.PriorityChange, model.PriorityAchievement, model.PriorityAction} {
						for _, r := range recs {
							p, _ := r.priority()
							if p.Kind == k {
								fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.ID, r.Origin, k.Short(), p.Importance, p.Achievability, p.Title, r.Audience)
							}
						}
					}
					return tw.Flush()
				},
			},
			{
				Name:      "show",
				Usage:     "show one priority",
				UsageText: "cairn priority show ID",
				Action: func(c *cli.Context) error {
					if err := needArgs(c, 1, "ID"); err != nil {
						return err
					}
					rec, err := getRecord(c, c.Args().Get(0), model.KindPriority)
					if err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, rec)
					}
					p, err := rec.priority()
					if err != nil {
						return err
					}
					w := c.App.Writer
					fmt.Fprintf(w, "Priority %s\n  %s\n", rec.ID, p.Title)
					fmt.Fprintf(w, "  Kind:          %s\n", p.Kind)
					fmt.Fprintf(w, "  Importance:    %d of 5\n  Achievability: %d of 5 (within %s years)\n", p.Importance, p.Achievability, p.HorizonYears)
					if p.TopRight() {
						fmt.Fprintln(w, "  On the board:  top-right quadrant (important and achievable: focus here)")
					}
					for _, f := range [][2]string{{"Area", p.Area}, {"Target", p.Target}, {"Ask", p.Ask}, {"Status", p.Status}} {
						if f[1] != "" {
							fmt.Fprintf(w, "  %-14s %s\n", f[0]+":", f[1])
						}
					}
					fmt.Fprintf(w, "  Origin: %s   Audience: %s   Version %d, %s\n", rec.Origin, rec.Audience, rec.Version, rec.Updated.Format("2006-01-02 15:04 MST"))
					return nil
				},
			},
			{
				Name:  "board",
				Usage: "draw the training manual's importance × achievability board; the top-right quadrant is where to focus",
				Flags: []cli.Flag{originFlag()},
				Action: func(c *cli.Context) error {
					recs, err := listRecords(c, model.KindPriority, originQuery(c))
					if err != nil {
						return err
					}
					entries := boardEntries(recs)
					if wantJSON(c) {
						return printJSON(c.App.Writer, entries)
					}
					drawBoard(c.App.Writer, entries)
					return nil
				},
			},
		},
	}
}

// BoardEntry is one priority placed on the board.
type BoardEntry struct {
	ID            string `json:"id"`
	Marker        string `json:"marker"` // C1, P1, A1: change, positive achievement, community action
	Kind          string `json:"kind"`
	Title         string `json:"title"`
	Importance    int    `json:"importance"`
	Achievability int    `json:"achievability"`
	TopRight      bool   `json:"top_right"`
	Origin        string `json:"origin"`
}

var kindMarker = map[model.PriorityKind]string{model.PriorityChange: "C", model.PriorityAchievement: "P", model.PriorityAction: "A"}

func boardEntries(recs []recordView) []BoardEntry {
	// Oldest first, so markers stay put as priorities are added.
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	count := map[model.PriorityKind]int{}
	out := []BoardEntry{}
	for _, r := range recs {
		p, err := r.priority()
		if err != nil {
			continue
		}
		count[p.Kind]++
		out = append(out, BoardEntry{
			ID: r.ID, Marker: fmt.Sprintf("%s%d", kindMarker[p.Kind], count[p.Kind]), Kind: string(p.Kind), Title: p.Title,
			Importance: p.Importance, Achievability: p.Achievability, TopRight: p.TopRight(), Origin: r.Origin,
		})
	}
	return out
}

// drawBoard draws a 5×5 grid: importance up, achievability right. The
// top-right quadrant (importance and achievability 4 or 5) is framed with
// double lines and marked with stars.
func drawBoard(w io.Writer, entries []BoardEntry) {
	const cellW = 12
	cells := map[[2]int][]string{}
	for _, e := range entries {
		k := [2]int{e.Importance, e.Achievability}
		cells[k] = append(cells[k], e.Marker)
	}
	fmt.Fprintln(w, "Priority board: higher = more important, further right = more achievable within 3-5 years.")
	fmt.Fprintln(w, "Focus on the top-right quadrant (framed with ═ and ║, marked *).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "importance")
	for imp := 5; imp >= 1; imp-- {
		// Each row may need more than one line when a cell holds many markers.
		lines := 1
		for ach := 1; ach <= 5; ach++ {
			if n := len(cellLines(cells[[2]int{imp, ach}], cellW-1)); n > lines {
				lines = n
			}
		}
		for l := 0; l < lines; l++ {
			label := "   "
			if l == 0 {
				label = fmt.Sprintf(" %d ", imp)
			}
			var b strings.Builder
			b.WriteString(label + "│")
			for ach := 1; ach <= 5; ach++ {
				if ach == 4 {
					if imp >= 4 {
						b.WriteString("║")
					} else {
						b.WriteString(" ")
					}
				}
				cl := cellLines(cells[[2]int{imp, ach}], cellW-1)
				text := ""
				if l < len(cl) {
					text = cl[l]
				} else if l == 0 {
					text = "·"
					if imp >= 4 && ach >= 4 {
						text = "*"
					}
				}
				b.WriteString(" " + pad(text, cellW-1))
			}
			fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		}
		if imp == 4 {
			fmt.Fprintln(w, "   │"+strings.Repeat(" ", 3*cellW)+"╚"+strings.Repeat("═", 2*cellW))
		}
	}
	fmt.Fprintln(w, "   └"+strings.Repeat("─", 5*cellW+1))
	var axis strings.Builder
	axis.WriteString("    ")
	for ach := 1; ach <= 5; ach++ {
		if ach == 4 {
			axis.WriteString(" ")
		}
		axis.WriteString(" " + pad(fmt.Sprint(ach), cellW-1))
	}
	fmt.Fprintln(w, strings.TrimRight(axis.String(), " ")+"  achievability →")
	fmt.Fprintln(w)
	if len(entries) == 0 {
		fmt.Fprintln(w, "No priorities yet: add one with cairn priority add.")
		return
	}
	for _, k := range []model.PriorityKind{model.PriorityChange, model.PriorityAchievement, model.PriorityAction} {
		heading := map[model.PriorityKind]string{model.PriorityChange: "Changes needed (C)", model.PriorityAchievement: "Positive achievements (P)", model.PriorityAction: "Community actions (A)"}[k]
		printed := false
		for _, e := range entries {
			if e.Kind != string(k) {
				continue
			}
			if !printed {
				fmt.Fprintln(w, heading)
				printed = true
			}
			star := " "
			if e.TopRight {
				star = "*"
			}
			fmt.Fprintf(w, "  %s %-4s %s (importance %d, achievability %d)  %s\n", star, e.Marker, e.Title, e.Importance, e.Achievability, e.ID)
		}
	}
}

func cellLines(markers []string, width int) []string {
	var lines []string
	cur := ""
	for _, m := range markers {
		switch {
		case cur == "":
			cur = m
		case len([]rune(cur))+1+len([]rune(m)) <= width:
			cur += " " + m
		default:
			lines = append(lines, cur)
			cur = m
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

func pad(s string, n int) string {
	if r := len([]rune(s)); r < n {
		return s + strings.Repeat(" ", n-r)
	}
	return s
}
