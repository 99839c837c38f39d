package web

import (
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
	"github.com/inpud/cairn/node/registry"
)

// audienceView is a record's audience in words, and the form to change it
// (shown only on the origin network's node: only it can change it).
type audienceView struct {
	RecordID string
	Own      bool
	Words    []string
	Current  string
	Networks []choice // member networks to pick from
	Regions  []choice
	Form     *form
}

type choice struct {
	Value, Label string
	Checked      bool
}

// members returns the member networks the registry lists (none when the
// node belongs to no federation).
func (u *UI) members() []registry.Network {
	f, ok := u.node.(Federated)
	if !ok || f.Federation() == nil {
		return nil
	}
	var out []registry.Network
	f.Federation().View(func(s *registry.State) { out = s.NetworkList() })
	sort.Slice(out, func(i, j int) bool { return out[i].Slug < out[j].Slug })
	return out
}

// audienceWords says who may receive a record of network origin.
func (u *UI) audienceWords(l Lang, aud, origin string) []string {
	self := u.node.Profile()
	names := map[string]string{self.Slug: self.Name}
	for _, n := range u.members() {
		names[n.Slug] = n.Name
	}
	name := func(slug string) string {
		if n := names[slug]; n != "" && n != slug {
			return n + " (" + slug + ")"
		}
		return slug
	}
	var out []string
	for _, e := range strings.Split(aud, ",") {
		switch {
		case e == "" || e == model.AudiencePrivate:
			out = append(out, l.T("audience.private", name(origin)))
		case e == model.AudienceMembers:
			out = append(out, l.T("audience.members"))
		case strings.HasPrefix(e, "network:"):
			out = append(out, l.T("audience.network", name(strings.TrimPrefix(e, "network:"))))
		case strings.HasPrefix(e, "region:"):
			out = append(out, l.T("audience.region", strings.TrimPrefix(e, "region:")))
		default:
			out = append(out, e)
		}
	}
	return out
}

// audience builds the audience section of a record's page. f carries
// what was typed when a change was refused.
func (u *UI) audience(l Lang, rec records.Record, f *form) audienceView {
	v := audienceView{RecordID: rec.ID, Own: rec.Own, Words: u.audienceWords(l, rec.Audience, rec.Origin), Current: rec.Audience, Form: f}
	if f == nil {
		v.Form = newForm()
		mode, other := "chosen", []string{}
		switch rec.Audience {
		case model.AudiencePrivate:
			mode = "private"
		case model.AudienceMembers:
			mode = "members"
		}
		v.Form.Values["mode"] = mode
		for _, e := range strings.Split(rec.Audience, ",") {
			if !strings.HasPrefix(e, "network:") && !strings.HasPrefix(e, "region:") && mode == "chosen" {
				other = append(other, e)
			}
			v.Form.Values["entry:"+e] = "on"
		}
		v.Form.Values["other"] = strings.Join(other, ",")
	}
	regions := map[string]bool{}
	for _, n := range u.members() {
		if n.Slug != rec.Origin {
			v.Networks = append(v.Networks, choice{Value: "network:" + n.Slug, Label: n.Name + " (" + n.Slug + ")", Checked: v.Form.Values["entry:network:"+n.Slug] == "on"})
		}
		if n.Region != "" {
			regions[n.Region] = true
		}
	}
	for r := range regions {
		v.Regions = append(v.Regions, choice{Value: "region:" + r, Label: r, Checked: v.Form.Values["entry:region:"+r] == "on"})
	}
	sort.Slice(v.Regions, func(i, j int) bool { return v.Regions[i].Value < v.Regions[j].Value })
	return v
}

// audienceInput turns the audience form into the text `cairn share
// --audience` takes: private, members, or the chosen networks and
// regions plus whatever was typed under "other".
func audienceInput(r *req, f *form) string {
	mode := r.PostFormValue("mode")
	f.Values["mode"] = mode
	f.Values["other"] = r.PostFormValue("other")
	switch mode {
	case "private":
		return model.AudiencePrivate
	case "members":
		return model.AudienceMembers
	}
	entries := slices.Clone(r.PostForm["entry"])
	for _, e := range entries {
		f.Values["entry:"+e] = "on"
	}
	if o := strings.TrimSpace(f.Values["other"]); o != "" {
		entries = append(entries, o)
	}
	return strings.Join(entries, ",")
}

func (u *UI) audienceChange(r *req) error {
	id := r.PathValue("id")
	rec, err := u.node.Records().Get(id)
	if err != nil {
		return err
	}
	f := newForm()
	aud, err := model.ParseAudience(audienceInput(r, f))
	if err == nil {
		_, err = u.node.Records().Share(id, aud)
	}
	if err != nil {
		if !f.userError(err, "audience") {
			return err
		}
		return u.showRecord(r, http.StatusBadRequest, rec, f)
	}
	return redirect(r, recordPath(rec)+"#audience")
}

// recordPath is the page of a record.
func recordPath(rec records.Record) string {
	switch rec.Kind {
	case model.KindAudit:
		return "/audits/" + rec.ID
	case model.KindPriority:
		return "/priorities/" + rec.ID
	case model.KindReport:
		return "/reports/" + rec.ID
	}
	return "/records/" + rec.ID
}

// showRecord draws a record's page, with f the refused audience change.
func (u *UI) showRecord(r *req, code int, rec records.Record, f *form) error {
	switch rec.Kind {
	case model.KindAudit:
		return u.renderAudit(r, code, rec, nil, f)
	case model.KindPriority:
		return u.renderPriority(r, code, rec, nil, f)
	case model.KindReport:
		return u.renderReport(r, code, rec, f)
	}
	u.render(r, code, "record", pageData{Title: recordTitle(r.lang, rec), Body: recordPage{Record: rec, Title: recordTitle(r.lang, rec), Audience: u.audience(r.lang, rec, f)}})
	return nil
}

type recordPage struct {
	Record   records.Record
	Title    string
	Audience audienceView
}

func (u *UI) recordShow(r *req) error {
	rec, err := u.node.Records().Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	if rec.Kind != model.KindReport {
		return redirect(r, recordPath(rec))
	}
	return u.showRecord(r, http.StatusOK, rec, nil)
}

// recordTitle names a record in a line.
func recordTitle(l Lang, rec records.Record) string {
	switch b := rec.Body.(type) {
	case *model.Audit:
		return b.Subject.Name + " — " + b.Place + ", " + b.Period
	case *model.Priority:
		return b.Title
	case *model.Report:
		return b.Committee.Name + " — " + b.MeetingDate
	}
	if rec.Deleted {
		return l.T("record.deleted")
	}
	return rec.ID
}
