package api

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
	"github.com/inpud/cairn/node/store"
)

// Export formats.
const (
	FormatNDJSON = "ndjson"
	FormatCSV    = "csv"
)

// CSVHeader is the first row of a CSV export: one row per audit answer,
// per priority and per committee-report issue, so a spreadsheet can filter
// by kind. Only current versions go into CSV; NDJSON carries every version.
var CSVHeader = []string{
	"id", "kind", "origin", "version", "updated", "audience",
	"template", "subject", "place", "period", "section", "item", "item_text", "answer", "note",
	"title", "priority_kind", "area", "importance", "achievability", "target", "ask", "status",
	"committee", "meeting_date", "service", "issue", "issue_category", "suggested_fix",
}

func (s *server) export(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	format := q.Get("format")
	if format == "" {
		format = FormatNDJSON
	}
	var kind model.Kind
	if k := q.Get("kind"); k != "" {
		var err error
		if kind, err = model.ParseKind(k); err != nil {
			return err
		}
	}
	ctype, err := ExportContentType(format)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", ctype)
	return WriteExport(w, s.node, kind, format)
}

// ExportSource is what an export reads: the records and the templates
// their answers are recorded against.
type ExportSource interface {
	Records() *records.Service
	Template(ref string) (model.Template, bool)
}

// ExportContentType is the Content-Type of an export format; an unknown
// format is bad input naming the formats there are.
func ExportContentType(format string) (string, error) {
	switch format {
	case FormatNDJSON:
		return "application/x-ndjson", nil
	case FormatCSV:
		return "text/csv; charset=utf-8", nil
	}
	return "", badRequest("%q is not an export format: use ndjson or csv", format)
}

// WriteExport writes every record of kind (every kind when kind is "")
// from src to w in format: NDJSON carries every version's signed
// envelope, CSV the current versions as rows (CSVHeader). The API's
// /v1/export and the web interface's download buttons both use it.
func WriteExport(w io.Writer, src ExportSource, kind model.Kind, format string) error {
	if _, err := ExportContentType(format); err != nil {
		return err
	}
	rs := src.Records()
	if format == FormatNDJSON {
		bw := bufio.NewWriterSize(w, 64<<10)
		enc := json.NewEncoder(bw)
		err := rs.ExportAll(kind, func(st store.Stored) error {
			return enc.Encode(st.Envelope.Wire(st.Payload.ID))
		})
		if err != nil {
			return err
		}
		return bw.Flush()
	}
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	kinds := model.Kinds
	if kind != "" {
		kinds = []model.Kind{kind}
	}
	for _, k := range kinds {
		recs, err := rs.List(records.Query{Kind: k})
		if err != nil {
			return err
		}
		for _, rec := range recs {
			for _, row := range csvRows(src, rec) {
				if err := cw.Write(row); err != nil {
					return err
				}
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

func csvRows(src ExportSource, rec records.Record) [][]string {
	base := func() map[string]string {
		return map[string]string{
			"id": rec.ID, "kind": string(rec.Kind), "origin": rec.Origin,
			"version": strconv.FormatUint(rec.Version, 10), "updated": rec.Updated.Format(time.RFC3339), "audience": rec.Audience,
		}
	}
	var rows []map[string]string
	switch b := rec.Body.(type) {
	case *model.Audit:
		t, _ := src.Template(b.Template)
		ids := make([]string, 0, len(b.Answers))
		for id := range b.Answers {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		head := func() map[string]string {
			m := base()
			m["template"], m["subject"], m["place"], m["period"] = b.Template, b.Subject.Name, b.Place, b.Period
			m["status"] = b.Status
			return m
		}
		if len(ids) == 0 {
			rows = append(rows, head())
		}
		// Rows follow the template's order, not the ids' sort order.
		for _, sec := range t.Sections {
			for _, it := range sec.Items {
				ans, ok := b.Answers[it.ID]
				if !ok {
					continue
				}
				m := head()
				m["section"], m["item"], m["item_text"], m["answer"], m["note"] = sec.ID, it.ID, it.Text, string(ans.Answer), ans.Note
				rows = append(rows, m)
			}
		}
	case *model.Priority:
		m := base()
		m["title"], m["priority_kind"], m["area"] = b.Title, string(b.Kind), b.Area
		m["importance"], m["achievability"] = strconv.Itoa(b.Importance), strconv.Itoa(b.Achievability)
		m["target"], m["ask"], m["status"] = b.Target, b.Ask, b.Status
		rows = append(rows, m)
	case *model.Report:
		head := func() map[string]string {
			m := base()
			m["committee"], m["meeting_date"], m["service"] = b.Committee.Name, b.MeetingDate, b.Service
			return m
		}
		if len(b.IssuesRaised) == 0 {
			rows = append(rows, head())
		}
		for _, is := range b.IssuesRaised {
			m := head()
			m["issue"], m["issue_category"], m["suggested_fix"], m["status"], m["item"] = is.Description, is.Category, is.SuggestedFix, is.Status, is.Item
			rows = append(rows, m)
		}
	}
	out := make([][]string, len(rows))
	for i, m := range rows {
		row := make([]string, len(CSVHeader))
		for j, col := range CSVHeader {
			row[j] = csvSafe(m[col])
		}
		out[i] = row
	}
	return out
}

// csvSafe stops a spreadsheet from reading a cell as a formula (text that
// begins with =, +, - or @ is prefixed with a single quote).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@", rune(s[0])) {
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return "'" + s
		}
	}
	return s
}

// ImportResult is what an import reports.
type ImportResult struct {
	records.ImportResult
	Lines        int  `json:"lines"`
	AllOrNothing bool `json:"all_or_nothing"`
}

// importRecords reads NDJSON envelopes. By default it is all or nothing:
// if any line is malformed or any envelope fails verification, nothing is
// stored and every rejected line is named. With ?partial=true the verified
// envelopes are stored and the rejected ones only reported.
func (s *server) importRecords(w http.ResponseWriter, r *http.Request) error {
	partial := r.URL.Query().Get("partial") == "true"
	sc := bufio.NewScanner(http.MaxBytesReader(w, r.Body, s.cfg.MaxImport))
	sc.Buffer(make([]byte, 0, 64<<10), 2*model.LimitPayload+4096)
	var envs []model.Envelope
	var lines []int
	res := ImportResult{ImportResult: records.ImportResult{Rejected: []records.Rejection{}}, AllOrNothing: !partial}
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var we model.WireEnvelope
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&we); err != nil {
			res.Rejected = append(res.Rejected, records.Rejection{Line: line, Reason: fmt.Sprintf("not a Cairn envelope: %v", err)})
			continue
		}
		envs = append(envs, we.Envelope())
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return badRequest("could not read the import at line %d: %v (a line may be longer than one record can be)", line+1, err)
	}
	res.Lines = line
	good, rejected := s.rec.Verify(envs, lines)
	res.Rejected = append(res.Rejected, rejected...)
	sort.Slice(res.Rejected, func(i, j int) bool { return res.Rejected[i].Line < res.Rejected[j].Line })
	if len(res.Rejected) > 0 && !partial {
		writeJSON(w, http.StatusUnprocessableEntity, res)
		return nil
	}
	var err error
	if res.Imported, res.Skipped, err = s.rec.Import(good); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
