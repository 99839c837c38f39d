package model

import (
	"fmt"
	"regexp"
	"strings"
)

// Scope says what an audit item is about: one service, a jurisdiction's
// law and policy, or the community itself (DOMAIN §2).
type Scope string

// The scopes an item may have.
const (
	ScopeService      Scope = "service"
	ScopeJurisdiction Scope = "jurisdiction"
	ScopeCommunity    Scope = "community"
)

// Template is one versioned checklist an audit is recorded against. Its
// sections and item ids are stable across versions and translations: an
// answer is keyed by item id, never by text, so it survives corrections.
type Template struct {
	ID       string    `json:"id" yaml:"id"`           // e.g. "iduit-bg/3.2"
	Version  string    `json:"version" yaml:"version"` // e.g. "2017"
	Title    string    `json:"title" yaml:"title"`
	Language string    `json:"language" yaml:"language"` // BCP 47, e.g. "en"
	Source   string    `json:"source" yaml:"source"`     // where the text was transcribed from
	Sections []Section `json:"sections" yaml:"sections"`
}

// Section is one checklist of a template, e.g. §3.2 Opioid substitution treatment.
type Section struct {
	ID    string `json:"id" yaml:"id"` // e.g. "3.2"
	Title string `json:"title" yaml:"title"`
	Ref   string `json:"ref,omitempty" yaml:"ref,omitempty"` // where it sits in the source, e.g. "§3.2"
	Items []Item `json:"items" yaml:"items"`
}

// Item is one "should" statement of a checklist.
type Item struct {
	ID    string `json:"id" yaml:"id"` // e.g. "3.2.4"; unique within a template
	Text  string `json:"text" yaml:"text"`
	Scope Scope  `json:"scope" yaml:"scope"`
}

// Ref is the versioned reference an audit carries: "iduit-bg/3.2@2017".
func (t Template) Ref() string { return t.ID + "@" + t.Version }

// Item finds an item and the section holding it.
func (t Template) Item(id string) (Item, Section, bool) {
	for _, s := range t.Sections {
		for _, it := range s.Items {
			if it.ID == id {
				return it, s, true
			}
		}
	}
	return Item{}, Section{}, false
}

// ItemCount is the number of items over all sections.
func (t Template) ItemCount() int {
	n := 0
	for _, s := range t.Sections {
		n += len(s.Items)
	}
	return n
}

var (
	templateIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9.-]*)?$`)
	elementIDPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,31}$`)
	versionPattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,31}$`)
)

// Validate checks that a template is well formed: ids in the allowed form,
// every section and item id unique, every item with text and a known scope.
func (t Template) Validate() error {
	if !templateIDPattern.MatchString(t.ID) || len(t.ID) > 64 {
		return &FieldError{Field: "template.id", Msg: fmt.Sprintf("%q is not a template id: use lower-case letters, digits, '-' and '.', with at most one '/', e.g. iduit-bg/3.2", t.ID)}
	}
	if !versionPattern.MatchString(t.Version) {
		return &FieldError{Field: "template.version", Msg: fmt.Sprintf("%q is not a version: use letters, digits, '-' and '.', e.g. 2017", t.Version)}
	}
	if err := checkText("template.title", t.Title, LimitTitle, true); err != nil {
		return err
	}
	if t.Language == "" {
		return &FieldError{Field: "template.language", Msg: "is required (a language tag such as en, fr, es or ru)"}
	}
	if len(t.Sections) == 0 {
		return &FieldError{Field: "template.sections", Msg: "a template needs at least one section"}
	}
	sections := map[string]bool{}
	items := map[string]bool{}
	for i, s := range t.Sections {
		f := fmt.Sprintf("template.sections[%d]", i)
		if !elementIDPattern.MatchString(s.ID) {
			return &FieldError{Field: f + ".id", Msg: fmt.Sprintf("%q is not a section id: use lower-case letters, digits, '-' and '.'", s.ID)}
		}
		if sections[s.ID] {
			return &FieldError{Field: f + ".id", Msg: fmt.Sprintf("section %q appears twice", s.ID)}
		}
		sections[s.ID] = true
		if err := checkText(f+".title", s.Title, LimitTitle, true); err != nil {
			return err
		}
		if len(s.Items) == 0 {
			return &FieldError{Field: f + ".items", Msg: fmt.Sprintf("section %q has no items", s.ID)}
		}
		for j, it := range s.Items {
			g := fmt.Sprintf("%s.items[%d]", f, j)
			if !elementIDPattern.MatchString(it.ID) {
				return &FieldError{Field: g + ".id", Msg: fmt.Sprintf("%q is not an item id: use lower-case letters, digits, '-' and '.'", it.ID)}
			}
			if items[it.ID] {
				return &FieldError{Field: g + ".id", Msg: fmt.Sprintf("item %q appears twice", it.ID)}
			}
			items[it.ID] = true
			if err := checkText(g+".text", it.Text, LimitNote, true); err != nil {
				return err
			}
			switch it.Scope {
			case ScopeService, ScopeJurisdiction, ScopeCommunity:
			default:
				return &FieldError{Field: g + ".scope", Msg: fmt.Sprintf("%q is not a scope: use service, jurisdiction or community", it.Scope)}
			}
		}
	}
	return nil
}

// CompatibleWith reports whether t may follow prev as a later version of the
// same template: every item id of prev must still exist (so no recorded
// answer loses its item). New items and new wording are allowed.
func (t Template) CompatibleWith(prev Template) error {
	if t.ID != prev.ID {
		return fmt.Errorf("template %s is not a version of %s", t.ID, prev.ID)
	}
	var missing []string
	for _, s := range prev.Sections {
		for _, it := range s.Items {
			if _, _, ok := t.Item(it.ID); !ok {
				missing = append(missing, it.ID)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("template %s version %s drops item ids of version %s (%s): keep every earlier item id so recorded answers stay valid", t.ID, t.Version, prev.Version, strings.Join(missing, ", "))
	}
	return nil
}
