package web

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
)

// A committee report's form (DOMAIN §4) names each input as the services
// name its field, so their sentences land next to it: committee, date,
// service, attendance[0].role, issues_raised[1].description, and so on.
// The repeated parts (attendance, issues, clinical findings, commodities,
// contacts with management) come as rows; blank rows are left out, and
// "one more row" redraws the form with what was typed and a row more.

// reportGroup is one repeated part of the form and the inputs of a row.
type reportGroup struct {
	Name   string
	Fields []string
	Rows   int // blank rows a new form shows
}

var reportGroups = []reportGroup{
	{"attendance", []string{"role", "count"}, 2},
	{"issues_raised", []string{"description", "category", "item", "suggested_fix", "status"}, 3},
	{"clinical_review", []string{"finding", "charter_displayed"}, 1},
	{"commodities_review", []string{"item", "right_types", "enough", "note"}, 2},
	{"management_contacts", []string{"date", "form", "role_met", "issues", "commitments"}, 1},
}

// reportSingles are the inputs that are not in rows.
var reportSingles = []string{"committee", "committee.kind", "committee.services", "date", "service",
	"barriers", "planned_changes", "data_shared", "feedback_to_management", "follow_ups"}

// maxReportRows bounds the rows of one part a form can ask for
// (model.LimitList bounds what can be saved).
const maxReportRows = model.LimitList

type reportFormPage struct {
	Form *form
	Rows map[string][]int // row numbers of each part
}

func (u *UI) reportNewForm(r *req) error {
	p := reportFormPage{Form: newForm(), Rows: map[string][]int{}}
	for _, g := range reportGroups {
		p.Rows[g.Name] = rowNumbers(g.Rows)
	}
	p.Form.Values["issues_raised[0].status"] = "open"
	u.render(r, http.StatusOK, "report_new", pageData{Title: r.lang.T("report.new"), Nav: "reports", Body: p})
	return nil
}

func rowNumbers(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func (u *UI) reportCreate(r *req) error {
	f := newForm()
	p := reportFormPage{Form: f, Rows: map[string][]int{}}
	for _, k := range reportSingles {
		f.Values[k] = r.PostFormValue(k)
	}
	rows := map[string]int{}
	for _, g := range reportGroups {
		n, _ := strconv.Atoi(r.PostFormValue("rows." + g.Name))
		n = min(max(n, 1), maxReportRows)
		if r.PostFormValue("more") == g.Name && n < maxReportRows {
			n++
		}
		rows[g.Name] = n
		p.Rows[g.Name] = rowNumbers(n)
		for i := range n {
			for _, fl := range g.Fields {
				key := fmt.Sprintf("%s[%d].%s", g.Name, i, fl)
				f.Values[key] = r.PostFormValue(key)
			}
		}
	}
	if r.PostFormValue("more") != "" {
		// A row more, nothing saved yet.
		u.render(r, http.StatusOK, "report_new", pageData{Title: r.lang.T("report.new"), Nav: "reports", Body: p})
		return nil
	}
	rep, kept := reportFromForm(f, rows)
	if len(f.Errors) == 0 {
		rec, err := u.node.Records().AddReport(rep, false)
		if err == nil {
			return redirect(r, "/reports/"+rec.ID)
		}
		if !reportError(f, err, kept) {
			return err
		}
	}
	u.render(r, http.StatusBadRequest, "report_new", pageData{Title: r.lang.T("report.new"), Nav: "reports", Body: p})
	return nil
}

var (
	rowField  = regexp.MustCompile(`^([a-z_]+)\[(\d+)\]\.(.+)$`)
	listEntry = regexp.MustCompile(`^([a-z_.]+)\[\d+\]$`)
)

// reportError files a problem the services found with a report next to
// the input it came from: a row's field (the services count rows without
// the blank ones, kept maps them back), a list's entry (its text box), a
// part as a whole, or a single field; anything else above the form.
func reportError(f *form, err error, kept map[string][]int) bool {
	var fe *model.FieldError
	if !errors.As(err, &fe) {
		return f.userError(err)
	}
	key := fe.Field
	if m := rowField.FindStringSubmatch(key); m != nil {
		i, _ := strconv.Atoi(m[2])
		if rows := kept[m[1]]; i < len(rows) {
			key = fmt.Sprintf("%s[%d].%s", m[1], rows[i], m[3])
		}
	} else if m := listEntry.FindStringSubmatch(key); m != nil {
		key = m[1]
	}
	_, isInput := f.Values[key]
	isPart := slices.ContainsFunc(reportGroups, func(g reportGroup) bool { return g.Name == key })
	if !isInput && !isPart {
		key = "form"
	}
	f.Errors[key] = err.Error()
	return true
}

// reportFromForm reads a report from the form; rows are the form rows of
// each part. It files the problems only the form can have (a count that
// is not a number, a yes/no that is neither) and returns, by part, which
// form row each of the report's entries came from.
func reportFromForm(f *form, rows map[string]int) (model.Report, map[string][]int) {
	rep := model.Report{
		Committee:          model.Committee{Name: f.V("committee"), Kind: f.V("committee.kind"), Services: splitList(f.V("committee.services"), ",")},
		MeetingDate:        strings.TrimSpace(f.V("date")),
		Service:            f.V("service"),
		Barriers:           splitList(f.V("barriers"), "\n"),
		PlannedChanges:     splitList(f.V("planned_changes"), "\n"),
		DataShared:         f.V("data_shared"),
		FeedbackManagement: f.V("feedback_to_management"),
		FollowUps:          splitList(f.V("follow_ups"), "\n"),
	}
	kept := map[string][]int{}
	for _, g := range reportGroups {
		for i := range rows[g.Name] {
			v := func(fl string) string { return strings.TrimSpace(f.V(fmt.Sprintf("%s[%d].%s", g.Name, i, fl))) }
			blank := true
			for _, fl := range g.Fields {
				if v(fl) != "" && !(g.Name == "issues_raised" && fl == "status") {
					blank = false
				}
			}
			if blank {
				continue
			}
			kept[g.Name] = append(kept[g.Name], i)
			key := func(fl string) string { return fmt.Sprintf("%s[%d].%s", g.Name, i, fl) }
			switch g.Name {
			case "attendance":
				n, err := strconv.Atoi(v("count"))
				if err != nil {
					f.Errors[key("count")] = fmt.Sprintf("%s: %q is not a whole number: give how many came, e.g. 9", key("count"), v("count"))
				}
				rep.Attendance = append(rep.Attendance, model.Attendance{Role: v("role"), Count: n})
			case "issues_raised":
				rep.IssuesRaised = append(rep.IssuesRaised, model.Issue{Description: v("description"), Category: v("category"), Item: v("item"), SuggestedFix: v("suggested_fix"), Status: v("status")})
			case "clinical_review":
				rep.ClinicalReview = append(rep.ClinicalReview, model.ClinicalFinding{Finding: v("finding"), CharterDisplayed: yesNoInput(f, key("charter_displayed"))})
			case "commodities_review":
				rep.CommoditiesReview = append(rep.CommoditiesReview, model.CommodityReview{Item: v("item"), RightTypes: yesNoInput(f, key("right_types")), Enough: yesNoInput(f, key("enough")), Note: v("note")})
			case "management_contacts":
				rep.ManagementContacts = append(rep.ManagementContacts, model.ManagementContact{Date: v("date"), Form: v("form"), RoleMet: v("role_met"), Issues: v("issues"), Commitments: v("commitments")})
			}
		}
	}
	return rep, kept
}

// yesNoInput reads a yes / no / not said choice.
func yesNoInput(f *form, key string) *bool {
	switch v := f.V(key); v {
	case "":
		return nil
	case "yes", "no":
		b := v == "yes"
		return &b
	default:
		f.Errors[key] = fmt.Sprintf("%s: %q is not an answer: use yes, no or leave it empty", key, v)
		return nil
	}
}

// splitList splits a list typed one entry per line (or separated by sep),
// leaving out blank entries.
func splitList(s, sep string) []string {
	var out []string
	for _, e := range strings.Split(s, sep) {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

type reportRow struct {
	Record   records.Record
	Report   *model.Report
	Audience []string
}

type reportListPage struct {
	Filter  *form
	Reports []reportRow
	Export  exportButtons
}

func (u *UI) reportList(r *req) error {
	f := newForm()
	f.Values["origin"] = strings.TrimSpace(r.URL.Query().Get("origin"))
	p := reportListPage{Filter: f, Export: exportButtons{Kind: string(model.KindReport)}}
	code := http.StatusOK
	recs, err := u.node.Records().List(records.Query{Kind: model.KindReport, Origin: f.V("origin")})
	if err != nil {
		if !f.userError(err, "origin") {
			return err
		}
		code = http.StatusBadRequest
	}
	for _, rec := range recs {
		if rp, ok := rec.Body.(*model.Report); ok {
			p.Reports = append(p.Reports, reportRow{Record: rec, Report: rp, Audience: u.audienceWords(r.lang, rec.Audience, rec.Origin)})
		}
	}
	u.render(r, code, "reports", pageData{Title: r.lang.T("nav.reports"), Nav: "reports", Body: p})
	return nil
}

type reportPage struct {
	Record   records.Record
	Report   *model.Report
	Audience audienceView
}

func (u *UI) reportShow(r *req) error {
	rec, err := u.node.Records().Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	if rec.Kind != model.KindReport {
		return redirect(r, recordPath(rec))
	}
	return u.renderReport(r, http.StatusOK, rec, nil)
}

// renderReport draws a committee report, with aud a refused audience change.
func (u *UI) renderReport(r *req, code int, rec records.Record, aud *form) error {
	rp, ok := rec.Body.(*model.Report)
	if !ok {
		return u.showBodiless(r, code, rec, aud)
	}
	u.render(r, code, "report", pageData{Title: recordTitle(r.lang, rec), Nav: "reports", Body: reportPage{Record: rec, Report: rp, Audience: u.audience(r.lang, rec, aud)}})
	return nil
}
