package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/api"
)

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:  "report",
		Usage: "community committee reports",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "file a committee report; prints the new id",
				UsageText: "cairn report add --committee TEXT --date YYYY-MM-DD --service TEXT [--issue TEXT]... [--file F]",
				Description: "--file takes a JSON report with every field of a committee report (committee, meeting_date,\n" +
					"service, attendance, issues_raised, clinical_review, commodities_review, barriers,\n" +
					"planned_changes, data_shared, feedback_to_management, management_contacts, follow_ups);\n" +
					"options given on the command line replace the file's values, and each --issue is added.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "committee", Usage: "the committee's name"},
					&cli.StringFlag{Name: "date", Usage: "meeting date, YYYY-MM-DD"},
					&cli.StringFlag{Name: "service", Usage: "the service reviewed"},
					&cli.StringSliceFlag{Name: "issue", Usage: "an issue raised (repeat for each)"},
					&cli.StringFlag{Name: "file", Usage: "a JSON file with the full report"},
					allowIdentifiersFlag(),
				},
				Action: func(c *cli.Context) error {
					var r model.Report
					if f := c.String("file"); f != "" {
						b, err := os.ReadFile(f)
						if err != nil {
							return fmt.Errorf("read report file: %w", err)
						}
						if r, err = parseReportFile(f, b); err != nil {
							return err
						}
					}
					if c.IsSet("committee") {
						r.Committee.Name = c.String("committee")
					}
					if c.IsSet("date") {
						r.MeetingDate = c.String("date")
					}
					if c.IsSet("service") {
						r.Service = c.String("service")
					}
					for _, is := range c.StringSlice("issue") {
						r.IssuesRaised = append(r.IssuesRaised, model.Issue{Description: is, Status: "open"})
					}
					for _, f := range []struct{ name, v string }{{"committee", r.Committee.Name}, {"date", r.MeetingDate}, {"service", r.Service}} {
						if f.v == "" {
							return usageError("--%s is required (or give it in --file)", f.name)
						}
					}
					var rec recordView
					if err := call(c, "POST", "/v1/reports", api.ReportRequest{Report: r, AllowIdentifiers: c.Bool("allow-identifiers")}, &rec); err != nil {
						return err
					}
					return printWritten(c, rec)
				},
			},
			{
				Name:  "list",
				Usage: "list committee reports, newest first",
				Flags: []cli.Flag{originFlag()},
				Action: func(c *cli.Context) error {
					recs, err := listRecords(c, model.KindReport, originQuery(c))
					if err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, recs)
					}
					tw := table(c.App.Writer)
					fmt.Fprintln(tw, "ID\tORIGIN\tDATE\tCOMMITTEE\tSERVICE\tISSUES\tAUDIENCE")
					for _, rv := range recs {
						r, _ := rv.report()
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", rv.ID, rv.Origin, r.MeetingDate, r.Committee.Name, r.Service, len(r.IssuesRaised), rv.Audience)
					}
					return tw.Flush()
				},
			},
			{
				Name:      "show",
				Usage:     "show one committee report",
				UsageText: "cairn report show ID",
				Action: func(c *cli.Context) error {
					if err := needArgs(c, 1, "ID"); err != nil {
						return err
					}
					rec, err := getRecord(c, c.Args().Get(0), model.KindReport)
					if err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, rec)
					}
					r, err := rec.report()
					if err != nil {
						return err
					}
					printReport(c.App.Writer, rec, r)
					return nil
				},
			},
		},
	}
}

// parseReportFile reads a JSON committee report strictly, naming the line
// of a problem.
func parseReportFile(name string, b []byte) (model.Report, error) {
	var r model.Report
	if !utf8.Valid(b) {
		return r, fmt.Errorf("%s: line %d: is not valid UTF-8 text", name, badUTF8Line(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		if le := jsonLineError(name, b, err); le != nil {
			return r, le
		}
		if errors.Is(err, io.EOF) {
			return r, fmt.Errorf("%s is empty: it should hold one JSON committee report", name)
		}
		return r, fmt.Errorf("%s: %v (a committee report has the fields listed in cairn report add --help)", name, err)
	}
	if dec.More() {
		return r, fmt.Errorf("%s: line %d: more than one JSON value; the file holds one report", name, lineOf(b, dec.InputOffset()))
	}
	return r, nil
}

func printReport(w io.Writer, rec recordView, r model.Report) {
	fmt.Fprintf(w, "Committee report %s\n", rec.ID)
	fmt.Fprintf(w, "  Committee: %s\n  Meeting:   %s\n  Service:   %s\n", r.Committee.Name, r.MeetingDate, r.Service)
	fmt.Fprintf(w, "  Origin: %s   Audience: %s   Version %d\n", rec.Origin, rec.Audience, rec.Version)
	if len(r.Attendance) > 0 {
		var parts []string
		for _, a := range r.Attendance {
			parts = append(parts, fmt.Sprintf("%d %s", a.Count, a.Role))
		}
		fmt.Fprintf(w, "  Attendance: %s\n", strings.Join(parts, ", "))
	}
	section := func(title string, items []string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s\n", title)
		for _, it := range items {
			fmt.Fprintf(w, "  - %s\n", it)
		}
	}
	var issues []string
	for _, is := range r.IssuesRaised {
		s := is.Description
		if is.Status != "" {
			s += " [" + is.Status + "]"
		}
		if is.SuggestedFix != "" {
			s += " — suggested: " + is.SuggestedFix
		}
		issues = append(issues, s)
	}
	section("Issues raised", issues)
	var clinical []string
	for _, f := range r.ClinicalReview {
		clinical = append(clinical, f.Finding)
	}
	section("Clinical services review", clinical)
	var commodities []string
	for _, cr := range r.CommoditiesReview {
		s := cr.Item
		if cr.RightTypes != nil {
			s += fmt.Sprintf("; right types and sizes: %s", yesNo(*cr.RightTypes))
		}
		if cr.Enough != nil {
			s += fmt.Sprintf("; enough: %s", yesNo(*cr.Enough))
		}
		if cr.Note != "" {
			s += " — " + cr.Note
		}
		commodities = append(commodities, s)
	}
	section("Commodities review", commodities)
	section("Structural barriers", r.Barriers)
	section("Planned changes", r.PlannedChanges)
	if r.FeedbackManagement != "" {
		section("Feedback to management", []string{r.FeedbackManagement})
	}
	section("Follow-ups", r.FollowUps)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func templateCommand() *cli.Command {
	return &cli.Command{
		Name:  "template",
		Usage: "the checklist templates audits are recorded against",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list the templates this node knows",
				Action: func(c *cli.Context) error {
					var ts []api.TemplateSummary
					if err := call(c, "GET", "/v1/templates", nil, &ts); err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, ts)
					}
					tw := table(c.App.Writer)
					fmt.Fprintln(tw, "ID\tVERSION\tITEMS\tTITLE")
					for _, t := range ts {
						fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", t.ID, t.Version, t.Items, t.Title)
					}
					return tw.Flush()
				},
			},
			templatePublishCommand(),
			{
				Name:      "show",
				Usage:     "show a template's sections and items, with the item ids answers use",
				UsageText: "cairn template show ID",
				Action: func(c *cli.Context) error {
					if err := needArgs(c, 1, "ID"); err != nil {
						return err
					}
					var t model.Template
					if err := call(c, "GET", "/v1/templates/"+c.Args().Get(0), nil, &t); err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, t)
					}
					w := c.App.Writer
					fmt.Fprintf(w, "%s (%s, %s)\nSource: %s\n", t.Title, t.Ref(), t.Language, t.Source)
					for _, s := range t.Sections {
						fmt.Fprintf(w, "\n%s %s\n", s.ID, s.Title)
						for _, it := range s.Items {
							fmt.Fprintf(w, "  %-7s %s\n", it.ID, it.Text)
						}
					}
					return nil
				},
			},
		},
	}
}
