package model

import (
	"fmt"
	"strings"
)

// PriorityKind keeps apart the three kinds the training manual asks for on
// Day 3: changes needed, positive achievements and community actions.
type PriorityKind string

// The priority kinds.
const (
	PriorityChange      PriorityKind = "change-needed"
	PriorityAchievement PriorityKind = "positive-achievement"
	PriorityAction      PriorityKind = "community-action"
)

// ParsePriorityKind accepts the full names and the short forms the CLI uses:
// change, achievement, action.
func ParsePriorityKind(s string) (PriorityKind, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "change", "change-needed":
		return PriorityChange, nil
	case "achievement", "positive-achievement":
		return PriorityAchievement, nil
	case "action", "community-action":
		return PriorityAction, nil
	}
	return "", &FieldError{Field: "kind", Msg: fmt.Sprintf("%q is not a priority kind: use change (a change needed), achievement (a positive achievement) or action (a community action)", truncate(s, 40))}
}

// Short is the CLI's short form of the kind.
func (k PriorityKind) Short() string {
	switch k {
	case PriorityChange:
		return "change"
	case PriorityAchievement:
		return "achievement"
	case PriorityAction:
		return "action"
	}
	return string(k)
}

// Action is one step of "the way forward": who does it (by role) and when.
type Action struct {
	Description string `json:"description"`
	OwnerRole   string `json:"owner_role,omitempty"`
	Timeframe   string `json:"timeframe,omitempty"`
}

// Priority is one priority for change, placed on the importance ×
// achievability board (higher = more important, further right = more
// achievable within the horizon).
type Priority struct {
	Kind          PriorityKind `json:"kind"`
	Title         string       `json:"title"`
	Area          string       `json:"area,omitempty"` // e.g. harm reduction, drug-law reform, empowerment
	Importance    int          `json:"importance"`     // 1–5
	Achievability int          `json:"achievability"`  // 1–5
	HorizonYears  string       `json:"horizon_years,omitempty"`
	Selected      bool         `json:"selected,omitempty"`
	Rank          int          `json:"rank,omitempty"`
	Target        string       `json:"target,omitempty"` // who can make the change
	Ask           string       `json:"ask,omitempty"`    // the exact ask
	TalkingPoints string       `json:"talking_points,omitempty"`
	Actions       []Action     `json:"actions,omitempty"`
	Evidence      []string     `json:"evidence,omitempty"` // ids of audits or other records
	Status        string       `json:"status,omitempty"`
}

var priorityStatus = []string{"proposed", "selected", "in-progress", "achieved", "dropped"}

// DefaultHorizon is the training manual's horizon for "achievable".
const DefaultHorizon = "3-5"

// TopRight reports whether the priority sits in the board's top-right
// quadrant: important and achievable, where the manual says to focus.
func (p Priority) TopRight() bool { return p.Importance >= 4 && p.Achievability >= 4 }

// Validate checks every field of a priority.
func (p Priority) Validate(allowIdentifiers bool) error {
	c := textCheck{allowIdentifiers: allowIdentifiers}
	switch p.Kind {
	case PriorityChange, PriorityAchievement, PriorityAction:
	default:
		c.fail("kind", fmt.Sprintf("%q is not a priority kind: use change, achievement or action", truncate(string(p.Kind), 40)))
	}
	c.text("title", p.Title, LimitTitle, true)
	c.text("area", p.Area, LimitShort, false)
	if p.Importance < 1 || p.Importance > 5 {
		c.fail("importance", fmt.Sprintf("%d is out of range: use a whole number from 1 (least important) to 5 (most important)", p.Importance))
	}
	if p.Achievability < 1 || p.Achievability > 5 {
		c.fail("achievability", fmt.Sprintf("%d is out of range: use a whole number from 1 (hardest to achieve) to 5 (most achievable)", p.Achievability))
	}
	c.text("horizon_years", p.HorizonYears, 20, false)
	if p.Rank < 0 || p.Rank > 1000 {
		c.fail("rank", "must be between 0 (unranked) and 1000")
	}
	c.text("target", p.Target, LimitShort, false)
	c.text("ask", p.Ask, LimitNote, false)
	c.text("talking_points", p.TalkingPoints, LimitLong, false)
	if len(p.Actions) > LimitList {
		c.fail("actions", fmt.Sprintf("has %d entries; at most %d are allowed", len(p.Actions), LimitList))
	}
	for i, a := range p.Actions {
		f := fmt.Sprintf("actions[%d]", i)
		c.text(f+".description", a.Description, LimitNote, true)
		c.text(f+".owner_role", a.OwnerRole, LimitShort, false)
		c.text(f+".timeframe", a.Timeframe, LimitShort, false)
	}
	if len(p.Evidence) > LimitList {
		c.fail("evidence", fmt.Sprintf("has %d entries; at most %d are allowed", len(p.Evidence), LimitList))
	}
	for i, id := range p.Evidence {
		if c.err == nil && ValidateID(id) != nil {
			c.fail(fmt.Sprintf("evidence[%d]", i), fmt.Sprintf("%q is not a record id", truncate(id, 40)))
		}
	}
	c.oneOf("status", p.Status, priorityStatus)
	return c.err
}
