package model

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Audience says who may receive a record. The zero value, and the single
// entry "private", mean the record never leaves its network's nodes in clear.
// Other entries: "members" (every member network), "network:SLUG" and
// "region:NAME"; a record goes to anyone any entry admits.
type Audience []string

// Audience entries.
const (
	AudiencePrivate = "private"
	AudienceMembers = "members"
)

var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidSlug reports whether s can name a network: lower-case letters,
// digits and '-', starting with a letter or digit, at most 63 characters.
func ValidSlug(s string) bool { return slugPattern.MatchString(s) }

// ParseAudience reads the comma-separated form users type, e.g.
// "network:inpud,region:eeca". It returns the entries sorted and without
// duplicates.
func ParseAudience(s string) (Audience, error) {
	var a Audience
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		a = append(a, part)
	}
	if len(a) == 0 {
		return nil, &FieldError{Field: "audience", Msg: "is empty: use private, members, network:SLUG or region:NAME, separated by commas"}
	}
	a = a.normalise()
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a Audience) normalise() Audience {
	out := append(Audience(nil), a...)
	sort.Strings(out)
	j := 0
	for i, s := range out {
		if i > 0 && s == out[j-1] {
			continue
		}
		out[j] = s
		j++
	}
	return out[:j]
}

// Validate checks every entry and that "private" stands alone.
func (a Audience) Validate() error {
	if len(a) > 32 {
		return &FieldError{Field: "audience", Msg: fmt.Sprintf("has %d entries; at most 32 are allowed", len(a))}
	}
	for _, e := range a {
		switch {
		case e == AudiencePrivate:
			if len(a) > 1 {
				return &FieldError{Field: "audience", Msg: "private cannot be combined with other entries: a record is either private or shared"}
			}
		case e == AudienceMembers:
		case strings.HasPrefix(e, "network:"):
			if !ValidSlug(strings.TrimPrefix(e, "network:")) {
				return &FieldError{Field: "audience", Msg: fmt.Sprintf("%q does not name a network: use network:SLUG with a slug of lower-case letters, digits and '-'", e)}
			}
		case strings.HasPrefix(e, "region:"):
			if !ValidSlug(strings.TrimPrefix(e, "region:")) {
				return &FieldError{Field: "audience", Msg: fmt.Sprintf("%q does not name a region: use region:NAME with lower-case letters, digits and '-'", e)}
			}
		default:
			return &FieldError{Field: "audience", Msg: fmt.Sprintf("%q is not an audience: use private, members, network:SLUG or region:NAME", e)}
		}
	}
	return nil
}

// IsPrivate reports whether the record stays with its own network.
func (a Audience) IsPrivate() bool {
	return len(a) == 0 || (len(a) == 1 && a[0] == AudiencePrivate)
}

// String is the comma-separated form; "private" for the zero value.
func (a Audience) String() string {
	if a.IsPrivate() {
		return AudiencePrivate
	}
	return strings.Join(a, ",")
}

// Reader describes a network that might receive a record.
type Reader struct {
	Network string // slug
	Region  string // region name, may be empty
	Member  bool   // an active member of the federation
}

// Admits reports whether the audience lets reader r receive the record.
// The origin network always holds its own records; that is not decided here.
func (a Audience) Admits(r Reader) bool {
	if a.IsPrivate() || !r.Member {
		return false
	}
	for _, e := range a {
		switch {
		case e == AudienceMembers:
			return true
		case e == "network:"+r.Network:
			return true
		case r.Region != "" && e == "region:"+r.Region:
			return true
		}
	}
	return false
}

// Union is every reader a or b admits, as one audience ("private" if
// neither admits anyone).
func (a Audience) Union(b Audience) Audience {
	var out Audience
	for _, e := range append(append(Audience(nil), a...), b...) {
		if e != AudiencePrivate {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return Audience{AudiencePrivate}
	}
	return out.normalise()
}

// Covers reports whether a admits every reader b admits, judged from the
// entries alone: members covers everything, and otherwise each of b's
// entries must be one of a's. (network:x is not taken as covered by
// region:r even where x is in r: regions change, and a false "no" only
// costs a withdrawal that every holder still in the audience ignores.)
func (a Audience) Covers(b Audience) bool {
	if b.IsPrivate() {
		return true
	}
	if slices.Contains(a, AudienceMembers) {
		return true
	}
	for _, e := range b {
		if !slices.Contains(a, e) {
			return false
		}
	}
	return true
}
