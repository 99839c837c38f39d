package model

import (
	"fmt"
	"regexp"
	"slices"
)

// Levels a network can have in the federation.
var Levels = []string{"global", "regional", "national", "local"}

// Profile is what a network says about itself: its slug (the short name
// every record's origin carries), name, level and place. The node keeps its
// own in its data dir; the registry holds every member's, and an invite
// carries the new network's.
type Profile struct {
	Slug    string `json:"slug"`
	Name    string `json:"name"`
	Level   string `json:"level"`
	Country string `json:"country,omitempty"` // ISO 3166-1 alpha-2, e.g. "TZ"
	Region  string `json:"region,omitempty"`  // e.g. "eeca", "asia"
	Parent  string `json:"parent,omitempty"`  // slug of the network it belongs under, if any
}

var countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)

// Validate checks a profile, one sentence naming the field per problem.
func (p Profile) Validate() error {
	if p.Slug == "" {
		return &FieldError{Field: "network", Msg: "is required: a short name for the network, e.g. tanpud"}
	}
	if !ValidSlug(p.Slug) {
		return &FieldError{Field: "network", Msg: fmt.Sprintf("%q is not a network slug: use lower-case letters, digits and '-', e.g. tanpud", truncate(p.Slug, 40))}
	}
	if err := checkText("name", p.Name, LimitShort, true); err != nil {
		return err
	}
	if !slices.Contains(Levels, p.Level) {
		return &FieldError{Field: "level", Msg: fmt.Sprintf("%q is not a level: use global, regional, national or local", truncate(p.Level, 40))}
	}
	if p.Country != "" && !countryPattern.MatchString(p.Country) {
		return &FieldError{Field: "country", Msg: fmt.Sprintf("%q is not a country code: use the two capital letters of ISO 3166-1, e.g. TZ", truncate(p.Country, 40))}
	}
	if p.Region != "" && !ValidSlug(p.Region) {
		return &FieldError{Field: "region", Msg: fmt.Sprintf("%q is not a region name: use lower-case letters, digits and '-', e.g. eeca", truncate(p.Region, 40))}
	}
	if p.Parent != "" && !ValidSlug(p.Parent) {
		return &FieldError{Field: "parent", Msg: fmt.Sprintf("%q is not a network slug: use lower-case letters, digits and '-', e.g. inpud", truncate(p.Parent, 40))}
	}
	if p.Parent == p.Slug {
		return &FieldError{Field: "parent", Msg: "a network cannot be its own parent"}
	}
	return nil
}
