package model

import "fmt"

// Committee describes a community committee attached to a service.
type Committee struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind,omitempty"`     // e.g. community advisory board, client committee
	Services []string `json:"services,omitempty"` // services the committee covers
}

// Attendance counts who came, by role only.
type Attendance struct {
	Role  string `json:"role"`
	Count int    `json:"count"`
}

// Issue is one issue the committee raised.
type Issue struct {
	Description  string `json:"description"`
	Category     string `json:"category,omitempty"`
	Item         string `json:"item,omitempty"` // a checklist item id it relates to
	SuggestedFix string `json:"suggested_fix,omitempty"`
	Status       string `json:"status,omitempty"` // open / raised / resolved
}

// ClinicalFinding is one finding of the committee's review of clinical services.
type ClinicalFinding struct {
	Finding          string `json:"finding"`
	CharterDisplayed *bool  `json:"charter_displayed,omitempty"`
}

// CommodityReview is one commodity checked: the right types and sizes, and enough.
type CommodityReview struct {
	Item       string `json:"item"` // e.g. "insulin syringes 1 ml"
	RightTypes *bool  `json:"right_types,omitempty"`
	Enough     *bool  `json:"enough,omitempty"`
	Note       string `json:"note,omitempty"`
}

// ManagementContact is one meeting, visit or letter to service management.
type ManagementContact struct {
	Date        string `json:"date,omitempty"`
	Form        string `json:"form,omitempty"` // meeting / letter / visit
	RoleMet     string `json:"role_met,omitempty"`
	Issues      string `json:"issues,omitempty"`
	Commitments string `json:"commitments,omitempty"`
}

// Report is a community committee's report of one meeting (DOMAIN §4).
type Report struct {
	Committee          Committee           `json:"committee"`
	MeetingDate        string              `json:"meeting_date"` // YYYY-MM-DD
	Service            string              `json:"service"`      // the service reviewed
	Attendance         []Attendance        `json:"attendance,omitempty"`
	IssuesRaised       []Issue             `json:"issues_raised,omitempty"`
	ClinicalReview     []ClinicalFinding   `json:"clinical_review,omitempty"`
	CommoditiesReview  []CommodityReview   `json:"commodities_review,omitempty"`
	Barriers           []string            `json:"barriers,omitempty"`
	PlannedChanges     []string            `json:"planned_changes,omitempty"`
	DataShared         string              `json:"data_shared,omitempty"`
	FeedbackManagement string              `json:"feedback_to_management,omitempty"`
	ManagementContacts []ManagementContact `json:"management_contacts,omitempty"`
	FollowUps          []string            `json:"follow_ups,omitempty"`
}

var issueStatus = []string{"open", "raised", "resolved"}

// Validate checks every field of a committee report.
func (r Report) Validate(allowIdentifiers bool) error {
	c := textCheck{allowIdentifiers: allowIdentifiers}
	c.text("committee", r.Committee.Name, LimitShort, true)
	c.text("committee.kind", r.Committee.Kind, LimitShort, false)
	c.list("committee.services", r.Committee.Services, LimitShort)
	if c.err == nil && r.MeetingDate == "" {
		c.fail("date", "is required: the meeting date as YYYY-MM-DD")
	}
	if c.err == nil {
		if _, err := ParseDate(r.MeetingDate); err != nil {
			c.fail("date", fmt.Sprintf("%q is not a date: use YYYY-MM-DD, e.g. 2026-03-31", truncate(r.MeetingDate, 40)))
		}
	}
	c.text("service", r.Service, LimitShort, true)
	c.count("attendance", len(r.Attendance))
	for i, a := range r.Attendance {
		f := fmt.Sprintf("attendance[%d]", i)
		c.text(f+".role", a.Role, LimitShort, true)
		if a.Count < 0 || a.Count > 100000 {
			c.fail(f+".count", "must be between 0 and 100000")
		}
	}
	c.count("issues_raised", len(r.IssuesRaised))
	for i, is := range r.IssuesRaised {
		f := fmt.Sprintf("issues_raised[%d]", i)
		c.text(f+".description", is.Description, LimitNote, true)
		c.text(f+".category", is.Category, LimitShort, false)
		c.text(f+".item", is.Item, 32, false)
		c.text(f+".suggested_fix", is.SuggestedFix, LimitNote, false)
		c.oneOf(f+".status", is.Status, issueStatus)
	}
	c.count("clinical_review", len(r.ClinicalReview))
	for i, f := range r.ClinicalReview {
		c.text(fmt.Sprintf("clinical_review[%d].finding", i), f.Finding, LimitNote, true)
	}
	c.count("commodities_review", len(r.CommoditiesReview))
	for i, cr := range r.CommoditiesReview {
		f := fmt.Sprintf("commodities_review[%d]", i)
		c.text(f+".item", cr.Item, LimitShort, true)
		c.text(f+".note", cr.Note, LimitNote, false)
	}
	c.list("barriers", r.Barriers, LimitNote)
	c.list("planned_changes", r.PlannedChanges, LimitNote)
	c.text("data_shared", r.DataShared, LimitNote, false)
	c.text("feedback_to_management", r.FeedbackManagement, LimitLong, false)
	c.count("management_contacts", len(r.ManagementContacts))
	for i, m := range r.ManagementContacts {
		f := fmt.Sprintf("management_contacts[%d]", i)
		c.date(f+".date", m.Date)
		c.text(f+".form", m.Form, LimitShort, false)
		c.text(f+".role_met", m.RoleMet, LimitShort, false)
		c.text(f+".issues", m.Issues, LimitNote, false)
		c.text(f+".commitments", m.Commitments, LimitNote, false)
	}
	c.list("follow_ups", r.FollowUps, LimitNote)
	return c.err
}

func (c *textCheck) count(field string, n int) {
	if c.err == nil && n > LimitList {
		c.err = &FieldError{Field: field, Msg: fmt.Sprintf("has %d entries; at most %d are allowed", n, LimitList)}
	}
}
