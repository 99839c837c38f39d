package model

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Answer is the value recorded for one checklist item.
type Answer string

// The five answers (DESIGN §3). "na" is "not applicable": the item does not
// apply to this service and is left out of the score.
const (
	AnswerYes     Answer = "yes"
	AnswerPartly  Answer = "partly"
	AnswerNo      Answer = "no"
	AnswerUnknown Answer = "unknown"
	AnswerNA      Answer = "na"
)

// ParseAnswer accepts the five answers, and "n/a" or "not-applicable" for na.
func ParseAnswer(s string) (Answer, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes":
		return AnswerYes, nil
	case "partly":
		return AnswerPartly, nil
	case "no":
		return AnswerNo, nil
	case "unknown":
		return AnswerUnknown, nil
	case "na", "n/a", "not-applicable", "not applicable":
		return AnswerNA, nil
	}
	return "", &FieldError{Field: "answer", Msg: fmt.Sprintf("%q is not an answer: use yes, partly, no, unknown or na (not applicable)", truncate(s, 40))}
}

// Label is how an answer reads in a table.
func (a Answer) Label() string {
	if a == AnswerNA {
		return "not applicable"
	}
	return string(a)
}

// Evidence types for an answer (DOMAIN §2).
var evidenceTypes = []string{"observation", "document", "group-discussion", "survey", "interview", "other"}

// ItemAnswer is the community's answer to one checklist item.
type ItemAnswer struct {
	Answer          Answer `json:"answer"`
	Note            string `json:"note,omitempty"`     // de-identified
	Evidence        string `json:"evidence,omitempty"` // one of evidenceTypes
	PriorityProblem bool   `json:"priority_problem,omitempty"`
}

// Subject is what was audited.
type Subject struct {
	Name         string `json:"name"`                    // e.g. "City NSP drop-in"
	Kind         string `json:"kind,omitempty"`          // service / programme / jurisdiction / community
	OperatorType string `json:"operator_type,omitempty"` // e.g. government, NGO, community-led
	DeliveryMode string `json:"delivery_mode,omitempty"` // drop-in, outreach, pharmacy, OAT clinic…
}

// Auditors says who did the audit, by organisation and role only: no names.
type Auditors struct {
	Organisation string `json:"organisation,omitempty"`
	Role         string `json:"role,omitempty"`
	Count        int    `json:"count,omitempty"`
}

// AuditSummary is the training manual's "3 going well, 3 to change".
type AuditSummary struct {
	GoingWell        []string `json:"going_well,omitempty"`
	ToChange         []string `json:"to_change,omitempty"`
	CommunityActions []string `json:"community_actions,omitempty"`
}

// Audit is a community audit of a service against one checklist template.
type Audit struct {
	Template    string                `json:"template"` // versioned ref, e.g. "iduit-bg/3.2@2017"
	Subject     Subject               `json:"subject"`
	Place       string                `json:"place"` // coarse: country/area/city
	Period      string                `json:"period"`
	ConductedOn string                `json:"conducted_on,omitempty"` // YYYY-MM-DD
	Method      string                `json:"method,omitempty"`       // visit / group / survey / committee / documents
	Auditors    Auditors              `json:"auditors,omitempty"`
	Answers     map[string]ItemAnswer `json:"answers,omitempty"` // by item id
	Summary     AuditSummary          `json:"summary,omitempty"`
	Status      string                `json:"status,omitempty"` // draft / final
}

var (
	subjectKinds = []string{"service", "programme", "jurisdiction", "community"}
	auditMethods = []string{"visit", "group", "survey", "committee", "documents"}
	auditStatus  = []string{"draft", "final"}
)

// Validate checks the audit against its template: every answered item must
// exist in it, and every text within its limit.
func (a Audit) Validate(t Template, allowIdentifiers bool) error {
	if a.Template != t.Ref() {
		return &FieldError{Field: "template", Msg: fmt.Sprintf("audit is recorded against %s, not %s", a.Template, t.Ref())}
	}
	c := textCheck{allowIdentifiers: allowIdentifiers}
	c.text("subject", a.Subject.Name, LimitShort, true)
	c.oneOf("subject.kind", a.Subject.Kind, subjectKinds)
	c.text("subject.operator_type", a.Subject.OperatorType, LimitShort, false)
	c.text("subject.delivery_mode", a.Subject.DeliveryMode, LimitShort, false)
	c.text("place", a.Place, LimitShort, true)
	c.text("period", a.Period, LimitShort, true)
	c.date("conducted_on", a.ConductedOn)
	c.oneOf("method", a.Method, auditMethods)
	c.text("auditors.organisation", a.Auditors.Organisation, LimitShort, false)
	c.text("auditors.role", a.Auditors.Role, LimitShort, false)
	if a.Auditors.Count < 0 || a.Auditors.Count > 10000 {
		c.fail("auditors.count", "must be between 0 and 10000")
	}
	c.list("summary.going_well", a.Summary.GoingWell, LimitNote)
	c.list("summary.to_change", a.Summary.ToChange, LimitNote)
	c.list("summary.community_actions", a.Summary.CommunityActions, LimitNote)
	c.oneOf("status", a.Status, auditStatus)
	if c.err != nil {
		return c.err
	}
	ids := make([]string, 0, len(a.Answers))
	for id := range a.Answers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		ans := a.Answers[id]
		if _, _, ok := t.Item(id); !ok {
			return &FieldError{Field: "item", Msg: fmt.Sprintf("%q is not an item of template %s (cairn template show %s lists them)", truncate(id, 40), t.Ref(), t.ID)}
		}
		if _, err := ParseAnswer(string(ans.Answer)); err != nil || ans.Answer != mustAnswer(ans.Answer) {
			return &FieldError{Field: "answers." + id, Msg: fmt.Sprintf("%q is not an answer: use yes, partly, no, unknown or na (not applicable)", truncate(string(ans.Answer), 40))}
		}
		// The checks do not depend on the field's name, so it is built only
		// for an answer that fails them: a valid audit's answers cost no
		// string building (this runs for every record a node receives).
		probe := textCheck{allowIdentifiers: c.allowIdentifiers}
		probe.text("", ans.Note, LimitNote, false)
		probe.oneOf("", ans.Evidence, evidenceTypes)
		if probe.err == nil {
			continue
		}
		c.text("answers."+id+".note", ans.Note, LimitNote, false)
		c.oneOf("answers."+id+".evidence", ans.Evidence, evidenceTypes)
		if c.err != nil {
			return c.err
		}
		return probe.err // not reached: the same checks failed above
	}
	return nil
}

func mustAnswer(a Answer) Answer {
	p, _ := ParseAnswer(string(a))
	return p
}

// SectionScore is one section's score: yes=1, partly=0.5, no=0, over the
// items answered yes, partly or no. Unknown and not-applicable items are left
// out, and so are unanswered ones.
type SectionScore struct {
	Section  string  `json:"section"`
	Title    string  `json:"title"`
	Items    int     `json:"items"`
	Answered int     `json:"answered"`
	Scored   int     `json:"scored"`          // items counted in the score
	Score    float64 `json:"score,omitempty"` // 0–1; meaningful when Scored > 0
}

// Scores computes the score of each section of t for this audit.
func (a Audit) Scores(t Template) []SectionScore {
	out := make([]SectionScore, 0, len(t.Sections))
	for _, s := range t.Sections {
		sc := SectionScore{Section: s.ID, Title: s.Title, Items: len(s.Items)}
		var sum float64
		for _, it := range s.Items {
			ans, ok := a.Answers[it.ID]
			if !ok {
				continue
			}
			sc.Answered++
			switch ans.Answer {
			case AnswerYes:
				sum++
				sc.Scored++
			case AnswerPartly:
				sum += 0.5
				sc.Scored++
			case AnswerNo:
				sc.Scored++
			}
		}
		if sc.Scored > 0 {
			sc.Score = sum / float64(sc.Scored)
		}
		out = append(out, sc)
	}
	return out
}

// TemplateRef returns the versioned template an audit payload was recorded
// against, or "" for other kinds or a body that does not name one. Stores use
// it to index audits by template.
func (p Payload) TemplateRef() string {
	if p.Kind != KindAudit || len(p.Body) == 0 {
		return ""
	}
	var b struct {
		Template string `json:"template"`
	}
	if json.Unmarshal(p.Body, &b) != nil {
		return ""
	}
	return b.Template
}
