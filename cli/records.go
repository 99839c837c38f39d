package cli

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
	"github.com/inpud/cairn/node/store"
)

func allowIdentifiersFlag() cli.Flag {
	return &cli.BoolFlag{Name: "allow-identifiers", Usage: "accept text that looks like a phone number or e-mail address (only for things that are not people, e.g. a service's public line)"}
}

// recordView is a record as the API returns it, with the body left raw so
// each command decodes the kind it expects.
type recordView struct {
	records.Record
	Body json.RawMessage `json:"body,omitempty"`
}

func (r recordView) audit() (model.Audit, error) {
	var a model.Audit
	return a, json.Unmarshal(r.Body, &a)
}

func (r recordView) priority() (model.Priority, error) {
	var p model.Priority
	return p, json.Unmarshal(r.Body, &p)
}

func (r recordView) report() (model.Report, error) {
	var p model.Report
	return p, json.Unmarshal(r.Body, &p)
}

// printRecord prints a written record: its id, or with --json the record.
func printWritten(c *cli.Context, rec recordView) error {
	if wantJSON(c) {
		return printJSON(c.App.Writer, rec)
	}
	fmt.Fprintln(c.App.Writer, rec.ID)
	return nil
}

func listRecords(c *cli.Context, kind model.Kind, extra url.Values) ([]recordView, error) {
	cl, err := connect(c)
	if err != nil {
		return nil, err
	}
	q := url.Values{"kind": {string(kind)}}
	for k, v := range extra {
		q[k] = v
	}
	var recs []recordView
	return recs, cl.do(c.Context, "GET", "/v1/records?"+q.Encode(), nil, &recs)
}

func getRecord(c *cli.Context, id string, kind model.Kind) (recordView, error) {
	cl, err := connect(c)
	if err != nil {
		return recordView{}, err
	}
	var rec recordView
	if err := cl.do(c.Context, "GET", "/v1/records/"+url.PathEscape(id), nil, &rec); err != nil {
		return rec, err
	}
	if kind != "" && rec.Kind != kind {
		return rec, fmt.Errorf("%s is a %s, not a %s; see it with: cairn %s show %s", id, rec.Kind, kind, records.ShortKind(rec.Kind), id)
	}
	return rec, nil
}

func originFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "origin", Usage: "only records of this network (slug)"}
}

func originQuery(c *cli.Context) url.Values {
	q := url.Values{}
	if o := c.String("origin"); o != "" {
		q.Set("origin", o)
	}
	return q
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "community audits of services against the IDUIT checklists",
		Subcommands: []*cli.Command{
			{
				Name:      "new",
				Usage:     "start an audit of a service against a checklist template; prints the new id",
				UsageText: "cairn audit new --template ID --subject TEXT --place TEXT --period TEXT",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "template", Usage: "template id, e.g. iduit-bg/3.1 (cairn template list)", Required: true},
					&cli.StringFlag{Name: "subject", Usage: "the service or programme audited, e.g. \"City NSP drop-in\"", Required: true},
					&cli.StringFlag{Name: "place", Usage: "where (coarse: country, area or city)", Required: true},
					&cli.StringFlag{Name: "period", Usage: "the period covered, e.g. 2026-Q1", Required: true},
					&cli.StringFlag{Name: "conducted-on", Usage: "date of the audit, YYYY-MM-DD"},
					&cli.StringFlag{Name: "method", Usage: "visit, group, survey, committee or documents"},
					&cli.StringFlag{Name: "subject-kind", Usage: "service, programme, jurisdiction or community"},
					allowIdentifiersFlag(),
				},
				Action: func(c *cli.Context) error {
					req := records.NewAudit{
						Template: c.String("template"),
						Subject:  model.Subject{Name: c.String("subject"), Kind: c.String("subject-kind")},
						Place:    c.String("place"), Period: c.String("period"),
						ConductedOn: c.String("conducted-on"), Method: c.String("method"),
						AllowIdentifiers: c.Bool("allow-identifiers"),
					}
					var rec recordView
					if err := call(c, "POST", "/v1/audits", req, &rec); err != nil {
						return err
					}
					return printWritten(c, rec)
				},
			},
			{
				Name:      "answer",
				Usage:     "answer one checklist item: yes, partly, no, unknown or na (not applicable)",
				UsageText: "cairn audit answer ID ITEM yes|partly|no|unknown|na [--note TEXT]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "note", Usage: "a de-identified note on the answer"},
					&cli.StringFlag{Name: "evidence", Usage: "observation, document, group-discussion, survey, interview or other"},
					&cli.BoolFlag{Name: "priority-problem", Usage: "flag this item as a priority problem"},
					allowIdentifiersFlag(),
				},
				Action: func(c *cli.Context) error {
					if err := needArgs(c, 3, "ID ITEM ANSWER"); err != nil {
						return err
					}
					in := records.AnswerInput{Item: c.Args().Get(1), Answer: c.Args().Get(2), Note: c.String("note"), Evidence: c.String("evidence"), PriorityProblem: c.Bool("priority-problem")}
					return sendAnswers(c, c.Args().Get(0), []records.AnswerInput{in})
				},
			},
			{
				Name:      "answers",
				Usage:     "record many answers from a file: CSV with columns item,answer,note, or JSON; all or nothing",
				UsageText: "cairn audit answers ID --file F",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "file", Usage: "CSV (item,answer,note) or JSON ([{\"item\":…,\"answer\":…,\"note\":…}] or {\"ITEM\":\"ANSWER\"})", Required: true}, allowIdentifiersFlag()},
				Action: func(c *cli.Context) error {
					if err := needArgs(c, 1, "ID"); err != nil {
						return err
					}
					b, err := os.ReadFile(c.String("file"))
					if err != nil {
						return fmt.Errorf("read answers file: %w", err)
					}
					answers, err := parseAnswersFile(c.String("file"), b)
					if err != nil {
						return err
					}
					return sendAnswers(c, c.Args().Get(0), answers)
				},
			},
			{
				Name:      "show",
				Usage:     "show an audit: items grouped by section, with a score per section",
				UsageText: "cairn audit show ID",
				Action: func(c *cli.Context) error {
					if err := needArgs(c, 1, "ID"); err != nil {
						return err
					}
					rec, err := getRecord(c, c.Args().Get(0), model.KindAudit)
					if err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, rec)
					}
					return printAudit(c, rec)
				},
			},
			{
				Name:  "list",
				Usage: "list audits, newest first (your network's and those shared with it)",
				Flags: []cli.Flag{&cli.StringFlag{Name: "template", Usage: "only audits against this template"}, originFlag()},
				Action: func(c *cli.Context) error {
					q := originQuery(c)
					if t := c.String("template"); t != "" {
						q.Set("template", t)
					}
					recs, err := listRecords(c, model.KindAudit, q)
					if err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, recs)
					}
					tw := table(c.App.Writer)
					fmt.Fprintln(tw, "ID\tORIGIN\tTEMPLATE\tSUBJECT\tPLACE\tPERIOD\tANSWERED\tAUDIENCE")
					for _, r := range recs {
						a, _ := r.audit()
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.Origin, a.Template, a.Subject.Name, a.Place, a.Period, len(a.Answers), r.Audience)
					}
					return tw.Flush()
				},
			},
		},
	}
}

func sendAnswers(c *cli.Context, id string, answers []records.AnswerInput) error {
	var rec recordView
	req := map[string]any{"answers": answers, "allow_identifiers": c.Bool("allow-identifiers")}
	if err := call(c, "POST", "/v1/audits/"+url.PathEscape(id)+"/answers", req, &rec); err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(c.App.Writer, rec)
	}
	fmt.Fprintf(c.App.Writer, "%s: %d answer(s) recorded (version %d)\n", rec.ID, len(answers), rec.Version)
	return nil
}

// parseAnswersFile reads answers from CSV (item,answer,note; a header row
// is optional) or JSON, naming the line of any problem.
func parseAnswersFile(name string, b []byte) ([]records.AnswerInput, error) {
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%s: line %d: is not valid UTF-8 text", name, badUTF8Line(b))
	}
	trimmed := bytes.TrimLeft(b, " \t\r\n\ufeff")
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%s is empty: give one answer per line as item,answer,note", name)
	}
	if trimmed[0] == '[' || trimmed[0] == '{' {
		return parseAnswersJSON(name, b)
	}
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(b, []byte("\ufeff"))))
	r.FieldsPerRecord = -1
	var out []records.AnswerInput
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("%s: line %d: not valid CSV: %v", name, pe.StartLine, pe.Err)
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := r.FieldPos(0)
		if len(out) == 0 && strings.EqualFold(strings.TrimSpace(rec[0]), "item") {
			continue // header
		}
		if len(rec) < 2 || len(rec) > 3 {
			return nil, fmt.Errorf("%s: line %d: has %d column(s); each line needs item,answer and optionally a note", name, line, len(rec))
		}
		in := records.AnswerInput{Item: strings.TrimSpace(rec[0]), Answer: strings.TrimSpace(rec[1]), Line: line}
		if len(rec) == 3 {
			in.Note = rec[2]
		}
		out = append(out, in)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no answers: give one answer per line as item,answer,note", name)
	}
	return out, nil
}

func parseAnswersJSON(name string, b []byte) ([]records.AnswerInput, error) {
	lineAt := func(off int64) int { return lineOf(b, off) }
	jsonErr := func(err error) error {
		if le := jsonLineError(name, b, err); le != nil {
			return le
		}
		return fmt.Errorf("%s: not valid answers JSON: %v", name, err)
	}
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	var out []records.AnswerInput
	if trimmed[0] == '[' {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if _, err := dec.Token(); err != nil {
			return nil, jsonErr(err)
		}
		for dec.More() {
			line := lineAt(dec.InputOffset() + 1)
			var in records.AnswerInput
			if err := dec.Decode(&in); err != nil {
				return nil, jsonErr(err)
			}
			in.Line = line
			out = append(out, in)
		}
		if _, err := dec.Token(); err != nil {
			return nil, jsonErr(err)
		}
	} else {
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, jsonErr(err)
		}
		for item, ans := range m {
			line := lineAt(int64(bytes.Index(b, []byte(`"`+item+`"`))))
			out = append(out, records.AnswerInput{Item: item, Answer: ans, Line: line})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no answers", name)
	}
	return out, nil
}

func badUTF8Line(b []byte) int {
	line := 1
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			return line
		}
		if r == '\n' {
			line++
		}
		b = b[size:]
	}
	return line
}

func printAudit(c *cli.Context, rec recordView) error {
	a, err := rec.audit()
	if err != nil {
		return fmt.Errorf("read audit %s: %w", rec.ID, err)
	}
	var t model.Template
	if err := call(c, "GET", "/v1/templates/"+a.Template, nil, &t); err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "Audit %s\n", rec.ID)
	fmt.Fprintf(w, "  Subject:  %s\n  Place:    %s\n  Period:   %s\n", a.Subject.Name, a.Place, a.Period)
	fmt.Fprintf(w, "  Template: %s (%s)\n", t.Title, a.Template)
	fmt.Fprintf(w, "  Origin:   %s   Audience: %s   Version %d, %s\n", rec.Origin, rec.Audience, rec.Version, rec.Updated.Format("2006-01-02 15:04 MST"))
	scores := map[string]model.SectionScore{}
	for _, s := range rec.Scores {
		scores[s.Section] = s
	}
	for _, sec := range t.Sections {
		sc := scores[sec.ID]
		fmt.Fprintf(w, "\n%s %s\n", sec.ID, sec.Title)
		if sc.Scored > 0 {
			fmt.Fprintf(w, "  Score %.0f%% %s (%d of %d items scored; %d answered)\n", sc.Score*100, bar(sc.Score, 20), sc.Scored, sc.Items, sc.Answered)
		} else {
			fmt.Fprintf(w, "  No score yet (%d of %d items answered; unknown and not-applicable items are not scored)\n", sc.Answered, sc.Items)
		}
		for _, it := range sec.Items {
			ans, ok := a.Answers[it.ID]
			label := "—"
			if ok {
				label = ans.Answer.Label()
			}
			fmt.Fprintf(w, "  %-7s %-15s %s\n", it.ID, "["+label+"]", it.Text)
			if ans.Note != "" {
				fmt.Fprintf(w, "  %-7s %-15s note: %s\n", "", "", ans.Note)
			}
		}
	}
	return nil
}

// bar draws a score from 0 to 1 as a bar of width cells.
func bar(score float64, width int) string {
	n := int(score*float64(width) + 0.5)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func recordCommand() *cli.Command {
	return &cli.Command{
		Name:  "record",
		Usage: "any record: its history, who holds it, or delete it",
		Subcommands: []*cli.Command{
			{
				Name:      "history",
				Usage:     "every version held of a record, oldest first",
				UsageText: "cairn record history ID",
				Action: func(c *cli.Context) error {
					if err := needArgs(c, 1, "ID"); err != nil {
						return err
					}
					var hs []recordView
					if err := call(c, "GET", "/v1/records/"+url.PathEscape(c.Args().Get(0))+"/history", nil, &hs); err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, hs)
					}
					return printHistory(c.App.Writer, hs)
				},
			},
			{
				Name:      "delete",
				Usage:     "delete a record: a signed tombstone; its history is kept",
				UsageText: "cairn record delete ID",
				Action: func(c *cli.Context) error {
					if err := needArgs(c, 1, "ID"); err != nil {
						return err
					}
					var rec recordView
					if err := call(c, "DELETE", "/v1/records/"+url.PathEscape(c.Args().Get(0)), nil, &rec); err != nil {
						return err
					}
					if wantJSON(c) {
						return printJSON(c.App.Writer, rec)
					}
					fmt.Fprintf(c.App.Writer, "%s deleted (version %d); its history is kept\n", rec.ID, rec.Version)
					return nil
				},
			},
			holdersCommand(),
		},
	}
}

func shortID(s string) string {
	if len(s) > 12 {
		return "…" + s[len(s)-8:]
	}
	return s
}

// lineOf is the line of byte offset off in b.
func lineOf(b []byte, off int64) int {
	return bytes.Count(b[:min(max(int(off), 0), len(b))], []byte("\n")) + 1
}

// jsonLineError names the line of a JSON syntax or type error in file
// name, or returns nil for other errors.
func jsonLineError(name string, b []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("%s: line %d: not valid JSON: %v", name, lineOf(b, se.Offset), err)
	case errors.As(err, &te):
		return fmt.Errorf("%s: line %d: %s should be %s", name, lineOf(b, te.Offset), te.Field, te.Type)
	}
	return nil
}

// printHistory is `cairn record history` as text: one line per version,
// then the forks and broken chains among them, then the events the node
// noted about the record's chain (on the last entry).
func printHistory(w io.Writer, hs []recordView) error {
	tw := table(w)
	fmt.Fprintln(tw, "VERSION\tUPDATED\tAUTHOR\tAUDIENCE\tSTATE\tHASH")
	for _, h := range hs {
		state := "current"
		switch {
		case h.Deleted:
			state = "deleted"
		case h.Withdrawn:
			state = "withdrawn; kept by " + h.Keep
		case h.TakenBack:
			state = "body taken back by its origin (by " + h.TakenBackBy[:min(16, len(h.TakenBackBy))] + ")"
		case h.Hash != hs[len(hs)-1].Hash:
			state = "earlier"
		}
		if h.Fork != nil {
			state += "; fork"
		}
		if h.BrokenChain {
			state += "; broken chain"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", h.Version, h.Updated.Format("2006-01-02 15:04:05"), shortID(h.Author), h.Audience, state, h.Hash[:min(16, len(h.Hash))])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	shown := map[string]bool{}
	for _, h := range hs {
		if f := h.Fork; f != nil && !shown[strings.Join(f.Versions, ",")] {
			shown[strings.Join(f.Versions, ",")] = true
			vs := make([]string, len(f.Versions))
			for i, v := range f.Versions {
				vs[i] = shortHash(v)
			}
			if f.Prev != "" {
				both := "all"
				if len(vs) == 2 {
					both = "both"
				}
				fmt.Fprintf(w, "fork: versions %s %s follow %s; the current one wins until a new version resolves the fork\n", joinAnd(vs), both, shortHash(f.Prev))
			} else {
				fmt.Fprintf(w, "fork: versions %s have the same number %d; the current one wins until a new version resolves the fork\n", joinAnd(vs), h.Version)
			}
		}
		if h.BrokenChain {
			fmt.Fprintf(w, "broken chain: version %d (%s) follows %s, which is none of the versions %d this node holds\n", h.Version, shortHash(h.Hash), prevOf(h.Prev), h.Version-1)
		}
	}
	if len(hs) == 0 || len(hs[len(hs)-1].Events) == 0 {
		return nil
	}
	fmt.Fprintln(w, "Noticed as versions arrived:")
	for _, e := range hs[len(hs)-1].Events {
		from := "this node (its own write or an import)"
		if e.Peer != "" {
			from = "node " + shortID(e.Peer)
			if e.Network != "" {
				from += " (" + e.Network + ")"
			}
		}
		var what string
		switch e.Kind {
		case store.EventRolledBack:
			what = fmt.Sprintf("refused version %d (%s) from %s: rolled back, it had served version %d before", e.Version, shortHash(e.Hash), from, e.Held)
		case store.EventFork:
			what = fmt.Sprintf("stored version %d (%s) from %s: a fork of %s", e.Version, shortHash(e.Hash), from, joinAnd(shortHashes(e.Others)))
		case store.EventBrokenChain:
			what = fmt.Sprintf("stored version %d (%s) from %s: it follows %s, none of the versions %d held (%s)", e.Version, shortHash(e.Hash), from, prevOf(e.Prev), e.Version-1, joinAnd(shortHashes(e.Others)))
		default:
			what = fmt.Sprintf("%s: version %d (%s) from %s", e.Kind, e.Version, shortHash(e.Hash), from)
		}
		fmt.Fprintf(w, "  %s  %s\n", e.At.Local().Format("2006-01-02 15:04:05"), what)
	}
	return nil
}

// shortHash is the start of a version hash, enough to tell versions apart.
func shortHash(h string) string {
	if len(h) > 8 {
		return h[:8] + "…"
	}
	return h
}

func shortHashes(hs []string) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = shortHash(h)
	}
	return out
}

// joinAnd is "a", "a and b", or "a, b and c".
func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return "none"
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// prevOf names the version a version follows: its short hash, or "no
// version" for one that names none.
func prevOf(h string) string {
	if h == "" {
		return "no version"
	}
	return shortHash(h)
}
