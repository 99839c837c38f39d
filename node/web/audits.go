package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
)

type auditRow struct {
	Record   records.Record
	Audit    *model.Audit
	Answered int
	Items    int
	Audience []string
}

type auditListPage struct {
	Templates []model.Template
	Filter    *form
	Audits    []auditRow
}

func (u *UI) templates() []model.Template {
	ts := u.node.Templates()
	sort.SliceStable(ts, func(i, j int) bool { return ts[i].ID < ts[j].ID })
	return ts
}

func (u *UI) auditList(r *req) error {
	q := r.URL.Query()
	f := newForm()
	f.Values["template"], f.Values["origin"] = q.Get("template"), strings.TrimSpace(q.Get("origin"))
	p := auditListPage{Templates: u.templates(), Filter: f}
	code := http.StatusOK
	recs, err := u.node.Records().List(records.Query{Kind: model.KindAudit, Template: f.V("template"), Origin: f.V("origin")})
	if err != nil {
		if !f.userError(err, "template", "origin") {
			return err
		}
		code = http.StatusBadRequest
	}
	for _, rec := range recs {
		a, ok := rec.Body.(*model.Audit)
		if !ok {
			continue
		}
		row := auditRow{Record: rec, Audit: a, Answered: len(a.Answers), Audience: u.audienceWords(r.lang, rec.Audience, rec.Origin)}
		if t, ok := u.node.Template(a.Template); ok {
			row.Items = t.ItemCount()
		}
		p.Audits = append(p.Audits, row)
	}
	u.render(r, code, "audits", pageData{Title: r.lang.T("nav.audits"), Nav: "audits", Body: p})
	return nil
}

type auditNewPage struct {
	Templates []model.Template
	Form      *form
}

var auditFields = []string{"template", "subject", "subject.kind", "place", "period", "conducted_on", "method"}

func (u *UI) auditNewForm(r *req) error {
	f := newForm()
	f.Values["template"] = r.URL.Query().Get("template")
	u.render(r, http.StatusOK, "audit_new", pageData{Title: r.lang.T("audit.new"), Nav: "audits", Body: auditNewPage{Templates: u.templates(), Form: f}})
	return nil
}

func (u *UI) auditCreate(r *req) error {
	f := newForm()
	for _, k := range auditFields {
		f.Values[k] = r.PostFormValue(k)
	}
	rec, err := u.node.Records().CreateAudit(records.NewAudit{
		Template: f.V("template"), Subject: model.Subject{Name: f.V("subject"), Kind: f.V("subject.kind")},
		Place: f.V("place"), Period: f.V("period"), ConductedOn: f.V("conducted_on"), Method: f.V("method"),
	})
	if err != nil {
		if !f.userError(err, auditFields...) {
			return err
		}
		u.render(r, http.StatusBadRequest, "audit_new", pageData{Title: r.lang.T("audit.new"), Nav: "audits", Body: auditNewPage{Templates: u.templates(), Form: f}})
		return nil
	}
	return redirect(r, "/audits/"+rec.ID)
}

type itemView struct {
	ID, Text, Scope string
	Answer          string
	Note            string
	Error           string
}

type sectionView struct {
	ID, Title, Ref string
	Items          []itemView
}

type auditPage struct {
	Record   records.Record
	Audit    *model.Audit
	Template model.Template
	Sections []sectionView
	Scores   []model.SectionScore
	Form     *form
	Audience audienceView
}

func (u *UI) auditShow(r *req) error {
	rec, err := u.node.Records().Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	if rec.Kind != model.KindAudit {
		return redirect(r, recordPath(rec))
	}
	return u.renderAudit(r, http.StatusOK, rec, nil, nil)
}

// renderAudit draws an audit's checklist. answers holds a refused answer
// form (kept as typed), aud a refused audience change.
func (u *UI) renderAudit(r *req, code int, rec records.Record, answers, aud *form) error {
	a, ok := rec.Body.(*model.Audit)
	if !ok {
		return u.showBodiless(r, code, rec, aud)
	}
	t, ok := u.node.Template(a.Template)
	if !ok {
		return errors.New("this audit's template " + a.Template + " is not known to this node")
	}
	if answers == nil {
		answers = newForm()
	}
	p := auditPage{Record: rec, Audit: a, Template: t, Scores: rec.Scores, Form: answers, Audience: u.audience(r.lang, rec, aud)}
	for _, s := range t.Sections {
		sv := sectionView{ID: s.ID, Title: s.Title, Ref: s.Ref}
		for _, it := range s.Items {
			iv := itemView{ID: it.ID, Text: it.Text, Scope: string(it.Scope)}
			if cur, ok := a.Answers[it.ID]; ok {
				iv.Answer, iv.Note = string(cur.Answer), cur.Note
			}
			if v, typed := answers.Values["answer."+it.ID]; typed {
				iv.Answer, iv.Note = v, answers.Values["note."+it.ID]
			}
			iv.Error = answers.Errors[it.ID]
			sv.Items = append(sv.Items, iv)
		}
		p.Sections = append(p.Sections, sv)
	}
	u.render(r, code, "audit", pageData{Title: a.Subject.Name, Nav: "audits", Body: p})
	return nil
}

// showBodiless draws a record whose body this node does not hold (deleted,
// or taken back by its origin): its header and audience only.
func (u *UI) showBodiless(r *req, code int, rec records.Record, aud *form) error {
	u.render(r, code, "record", pageData{Title: recordTitle(r.lang, rec), Body: recordPage{Record: rec, Title: recordTitle(r.lang, rec), Audience: u.audience(r.lang, rec, aud)}})
	return nil
}

// auditAnswer records the answers a form sends: answer.ITEM and note.ITEM
// for one item (a fetch as the person answers) or for the whole checklist
// (the form without JavaScript). Unchanged items are left alone; the rest
// are recorded all together or, if one is wrong, none.
func (u *UI) auditAnswer(r *req) error {
	id := r.PathValue("id")
	rec, err := u.node.Records().Get(id)
	if err != nil {
		return err
	}
	a, _ := rec.Body.(*model.Audit)
	f := newForm()
	var sent []records.AnswerInput
	var items []string
	for key := range r.PostForm {
		item, ok := strings.CutPrefix(key, "answer.")
		if !ok {
			item, ok = strings.CutPrefix(key, "note.")
		}
		if ok && !slices.Contains(items, item) {
			items = append(items, item)
		}
	}
	sort.Strings(items)
	for _, item := range items {
		ans, note := r.PostFormValue("answer."+item), r.PostFormValue("note."+item)
		f.Values["answer."+item], f.Values["note."+item] = ans, note
		if a != nil {
			if cur, ok := a.Answers[item]; ok && string(cur.Answer) == ans && cur.Note == note {
				continue
			}
		}
		if ans == "" && note == "" {
			continue
		}
		sent = append(sent, records.AnswerInput{Item: item, Answer: ans, Note: note})
	}
	if len(sent) > 0 {
		rec, err = u.node.Records().Answer(id, sent, false)
	}
	if err != nil {
		item := failedItem(err, sent)
		if !f.userError(err) {
			return err
		}
		if item != "" && !u.hasItem(a, item) {
			item = ""
		}
		if item != "" {
			f.Errors[item] = f.Errors["form"]
			delete(f.Errors, "form")
		}
		if wantsJSON(r.Request) {
			writeJSON(r.w, http.StatusBadRequest, map[string]string{"error": err.Error(), "item": item})
			return nil
		}
		cur, gerr := u.node.Records().Get(id)
		if gerr != nil {
			return gerr
		}
		return u.renderAudit(r, http.StatusBadRequest, cur, f, nil)
	}
	if wantsJSON(r.Request) {
		scores, err := u.renderFragment(r, "audit", "scores", pageData{Body: auditPage{Scores: rec.Scores}})
		if err != nil {
			return err
		}
		writeJSON(r.w, http.StatusOK, map[string]any{"id": rec.ID, "version": rec.Version, "saved": len(sent), "scores": scores})
		return nil
	}
	anchor := ""
	if len(items) == 1 {
		anchor = "#item-" + url.PathEscape(items[0])
	}
	return redirect(r, "/audits/"+id+anchor)
}

// failedItem finds which of the sent answers an error is about: the
// services name the item in the field ("answers.ITEM.note") or the
// sentence ("item ITEM: …", `"ITEM" is not an item`).
func failedItem(err error, sent []records.AnswerInput) string {
	var fe *model.FieldError
	field := ""
	if errors.As(err, &fe) {
		field = fe.Field
	}
	msg := err.Error()
	for _, in := range sent {
		if strings.HasPrefix(field, "answers."+in.Item) || strings.Contains(msg, "item "+in.Item+":") || strings.Contains(msg, `"`+in.Item+`" is not an item`) {
			return in.Item
		}
	}
	if len(sent) == 1 {
		return sent[0].Item
	}
	return ""
}

// hasItem reports whether item is on the audit's checklist.
func (u *UI) hasItem(a *model.Audit, item string) bool {
	if a == nil {
		return false
	}
	t, ok := u.node.Template(a.Template)
	if !ok {
		return false
	}
	_, _, ok = t.Item(item)
	return ok
}
