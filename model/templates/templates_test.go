package templates

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/inpud/cairn/model"
)

var update = flag.Bool("update", false, "rewrite testdata/item-ids.txt from the built-in templates")

// The item counts of the guide's twelve "What to check for" lists, checked
// against the printed guide.
var wantCounts = []struct {
	id    string
	items int
}{
	{"iduit-bg/1", 8},
	{"iduit-bg/2", 13},
	{"iduit-bg/3", 8},
	{"iduit-bg/3.1", 7},
	{"iduit-bg/3.2", 14},
	{"iduit-bg/3.3", 8},
	{"iduit-bg/3.4", 9},
	{"iduit-bg/3.5", 8},
	{"iduit-bg/3.6", 9},
	{"iduit-bg/3.7", 5},
	{"iduit-bg/3.8", 6},
	{"iduit-bg/3.9", 6},
}

func TestBuiltinCounts(t *testing.T) {
	all := Builtin()
	if len(all) != 13 {
		t.Fatalf("Builtin() returned %d templates, want 13 (12 checklists and the combined one)", len(all))
	}
	total := 0
	for i, w := range wantCounts {
		got := all[i]
		if got.ID != w.id {
			t.Errorf("template %d is %s, want %s (guide order)", i, got.ID, w.id)
			continue
		}
		if len(got.Sections) != 1 {
			t.Errorf("%s has %d sections, want 1", got.ID, len(got.Sections))
		}
		if n := got.ItemCount(); n != w.items {
			t.Errorf("%s has %d items, want %d", got.ID, n, w.items)
		}
		total += got.ItemCount()
	}
	if total != 101 {
		t.Errorf("the 12 checklists have %d items in all, want 101", total)
	}
	c := all[12]
	if c.ID != "iduit-bg" || c.Title != "IDUIT Brief Guide: What to check for (all checklists)" {
		t.Errorf("combined template is %q %q", c.ID, c.Title)
	}
	if len(c.Sections) != 12 || c.ItemCount() != 101 {
		t.Errorf("combined template has %d sections and %d items, want 12 and 101", len(c.Sections), c.ItemCount())
	}
	for i, s := range c.Sections {
		if want := all[i].Sections[0]; s.ID != want.ID || s.Title != want.Title || len(s.Items) != len(want.Items) {
			t.Errorf("combined section %d is %s %q, want %s %q", i, s.ID, s.Title, want.ID, want.Title)
		}
	}
}

func TestBuiltinValid(t *testing.T) {
	all := Builtin()
	seen := map[string]string{}
	for _, tpl := range all {
		if err := tpl.Validate(); err != nil {
			t.Errorf("%s: %v", tpl.Ref(), err)
		}
		if tpl.Version != "2017" || tpl.Language != "en" || tpl.Source != all[0].Source || tpl.Source == "" {
			t.Errorf("%s: version %q, language %q, source %q", tpl.ID, tpl.Version, tpl.Language, tpl.Source)
		}
		if tpl.ID == CombinedID {
			continue
		}
		s := tpl.Sections[0]
		if tpl.ID != "iduit-bg/"+s.ID || tpl.Title != s.Title || s.Ref == "" {
			t.Errorf("%s: section %s %q ref %q does not match the template", tpl.ID, s.ID, s.Title, s.Ref)
		}
		prefix := s.ID + "."
		if s.ID == "3" {
			prefix = "3.0."
		}
		for n, it := range s.Items {
			if want := fmt.Sprintf("%s%d", prefix, n+1); it.ID != want {
				t.Errorf("%s: item %d has id %s, want %s", tpl.ID, n+1, it.ID, want)
			}
			if other, ok := seen[it.ID]; ok {
				t.Errorf("item id %s is in both %s and %s", it.ID, other, tpl.ID)
			}
			seen[it.ID] = tpl.ID
		}
	}
	if len(seen) != 101 {
		t.Errorf("%d distinct item ids over the guide, want 101", len(seen))
	}
}

// TestItemIDsGolden pins every item id: answers are stored by them, so an
// accidental change must fail here. Run with -update after a deliberate
// addition (never a renumbering).
func TestItemIDsGolden(t *testing.T) {
	var b strings.Builder
	for _, tpl := range Builtin() {
		for _, s := range tpl.Sections {
			for _, it := range s.Items {
				fmt.Fprintf(&b, "%s %s\n", tpl.ID, it.ID)
			}
		}
	}
	got := b.String()
	golden := filepath.Join("testdata", "item-ids.txt")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestItemIDsGolden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("item ids differ from %s; ids are stored with answers and must not change.\ngot:\n%s", golden, got)
	}
}

func TestItemTexts(t *testing.T) {
	tests := []struct{ ref, item, text string }{
		{"iduit-bg/1", "1.1", "People who use drugs should be actively involved in planning and implementing health, legal and social services including work as legal advocates"},
		// Split over two columns in the source.
		{"iduit-bg/3.2", "3.2.7", "Tapering doses should never be done without careful thought and discussion with service providers of additional support that may be needed"},
		{"iduit-bg/3.2", "3.2.8", "A range of OST medicines such as methadone, buprenorphine and diacetylmorphine (medical heroin) should be offered for clients to choose from"},
		{"iduit-bg/3.5", "3.5.5", "Naloxone should be available in pharmacies"},
		{"iduit-bg/3", "3.0.5", "Services should be non-discriminatory: All clients should be treated fairly regardless of age, sex, sexual orientation, gender identity, ethnicity, religion, class, occupation and drug use status"},
		{"iduit-bg", "3.9.6", "Harm reduction services should provide support, counselling and referral for victims of gender-based violence"},
	}
	for _, tc := range tests {
		tpl, ok := Lookup(tc.ref)
		if !ok {
			t.Fatalf("Lookup(%q) found nothing", tc.ref)
		}
		it, _, ok := tpl.Item(tc.item)
		if !ok {
			t.Errorf("%s has no item %s", tc.ref, tc.item)
			continue
		}
		if it.Text != tc.text {
			t.Errorf("%s item %s:\n got %q\nwant %q", tc.ref, tc.item, it.Text, tc.text)
		}
	}
}

// TestTextClean checks the transcription left no extraction debris: no
// doubled or stray spaces, no footnote digits glued to words, no hyphen
// left before a joined line break, and every item a "should" statement.
func TestTextClean(t *testing.T) {
	debris := regexp.MustCompile(`  |^\s|\s$|\n|[a-z][0-9]\b|- |■|•`)
	for _, tpl := range Builtin() {
		for _, s := range tpl.Sections {
			for _, it := range s.Items {
				if m := debris.FindString(it.Text); m != "" {
					t.Errorf("%s: text contains %q: %q", it.ID, m, it.Text)
				}
				if !strings.Contains(it.Text, "should") {
					t.Errorf("%s: not a should statement: %q", it.ID, it.Text)
				}
			}
		}
	}
}

// No words that stigmatise people who use drugs, anywhere in the data: item
// text, titles or the comments of the embedded files.
func TestNoStigmatisingWords(t *testing.T) {
	bad := regexp.MustCompile(`(?i)\b(addicts?|abusers?|junkies|junkie|clean|dirty)\b`)
	for _, tpl := range Builtin() {
		for _, text := range []string{tpl.Title, tpl.Source} {
			if m := bad.FindString(text); m != "" {
				t.Errorf("%s: %q in %q", tpl.ID, m, text)
			}
		}
		for _, s := range tpl.Sections {
			if m := bad.FindString(s.Title); m != "" {
				t.Errorf("%s section %s title: %q", tpl.ID, s.ID, m)
			}
			for _, it := range s.Items {
				if m := bad.FindString(it.Text); m != "" {
					t.Errorf("%s item %s: %q in %q", tpl.ID, it.ID, m, it.Text)
				}
			}
		}
	}
	for _, id := range guideOrder {
		data, err := files.ReadFile("iduit-bg/" + id + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		if m := bad.Find(data); m != nil {
			t.Errorf("iduit-bg/%s.yaml contains %q", id, m)
		}
	}
}

func TestBuiltinReturnsCopies(t *testing.T) {
	a := Builtin()
	a[0].Title = "changed"
	a[0].Sections[0].Title = "changed"
	a[0].Sections[0].Items[0].Text = "changed"
	a[12].Sections[0].Items[0].Text = "changed"
	l, _ := Lookup("iduit-bg/1")
	l.Sections[0].Items[1].Text = "changed"
	for _, b := range [][]model.Template{Builtin(), {mustLookup(t, "iduit-bg/1"), mustLookup(t, "iduit-bg")}} {
		for _, tpl := range b {
			if tpl.Title == "changed" || tpl.Sections[0].Title == "changed" ||
				tpl.Sections[0].Items[0].Text == "changed" || tpl.Sections[0].Items[1].Text == "changed" {
				t.Fatalf("a caller's change reached the shared templates: %s", tpl.ID)
			}
		}
	}
}

func mustLookup(t *testing.T, ref string) model.Template {
	t.Helper()
	tpl, ok := Lookup(ref)
	if !ok {
		t.Fatalf("Lookup(%q) found nothing", ref)
	}
	return tpl
}

func TestLookup(t *testing.T) {
	for _, ref := range []string{"iduit-bg/3.2", "iduit-bg/3.2@2017"} {
		tpl := mustLookup(t, ref)
		if tpl.Ref() != "iduit-bg/3.2@2017" || tpl.Title != "Opioid substitution treatment" || tpl.ItemCount() != 14 {
			t.Errorf("Lookup(%q) = %s %q with %d items", ref, tpl.Ref(), tpl.Title, tpl.ItemCount())
		}
	}
	if tpl := mustLookup(t, "iduit-bg@2017"); tpl.ItemCount() != 101 {
		t.Errorf("combined template has %d items", tpl.ItemCount())
	}
	if tpl := mustLookup(t, "iduit-bg/3"); tpl.Sections[0].Items[0].ID != "3.0.1" {
		t.Errorf("iduit-bg/3 starts with item %s", tpl.Sections[0].Items[0].ID)
	}
	for _, ref := range []string{"", "iduit-bg/4", "iduit-bg/3.10", "iduit-bg/3.2@2016", "iduit-bg/3.2@", "IDUIT-BG/3.2", "iduit-bg/3.2@2017@2017", "@2017"} {
		if _, ok := Lookup(ref); ok {
			t.Errorf("Lookup(%q) found a template", ref)
		}
	}
}

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool
	}{
		{"2017", "2024", true},
		{"2024", "2017", false},
		{"2017", "2017", false},
		{"2017", "2017.1", true},
		{"2017.2", "2017.10", true},
		{"9", "10", true},
		{"2017-a", "2017-b", true},
	} {
		if got := versionLess(tc.a, tc.b); got != tc.less {
			t.Errorf("versionLess(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

const validDoc = `id: org/check
version: "1"
title: A checklist
language: en
source: written by us
sections:
  - id: a
    title: Section A
    items:
      - id: a.1
        text: Services should be free of charge
        scope: service
      - id: a.2
        text: Naloxone should be available in pharmacies
        scope: jurisdiction
`

func TestParseValid(t *testing.T) {
	tpl, err := Parse([]byte(validDoc))
	if err != nil {
		t.Fatal(err)
	}
	if tpl.Ref() != "org/check@1" || tpl.ItemCount() != 2 || tpl.Sections[0].Items[1].Scope != model.ScopeJurisdiction {
		t.Errorf("parsed %+v", tpl)
	}
	for _, id := range guideOrder {
		data, err := files.ReadFile("iduit-bg/" + id + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(data); err != nil {
			t.Errorf("iduit-bg/%s.yaml: %v", id, err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // each must appear in the message
	}{
		{"unknown field", strings.Replace(validDoc, "scope: service", "scope: service\n        colour: red", 1),
			[]string{"line 13", `unknown field "colour"`, "id, text and scope"}},
		{"unknown template field", "author: me\n" + validDoc,
			[]string{"line 1", `unknown field "author"`, "a template may have only"}},
		{"misspelt field", strings.Replace(validDoc, "sections:", "section:", 1),
			[]string{`unknown field "section"`}},
		{"duplicate item id", strings.Replace(validDoc, "id: a.2", "id: a.1", 1),
			[]string{`template "org/check" is not valid`, `item "a.1" appears twice`}},
		{"missing scope", strings.Replace(validDoc, "        scope: jurisdiction\n", "", 1),
			[]string{"items[1].scope", "is not a scope", "service, jurisdiction or community"}},
		{"unknown scope", strings.Replace(validDoc, "scope: jurisdiction", "scope: country", 1),
			[]string{`"country" is not a scope`}},
		{"invalid UTF-8", strings.Replace(validDoc, "free of charge", "free of \xffcharge", 1),
			[]string{"not valid UTF-8", "line 11"}},
		{"empty", "", []string{"empty"}},
		{"only space", " \n\t\n", []string{"empty"}},
		{"only comments", "# a template\n# nothing yet\n", []string{"empty"}},
		{"second document", validDoc + "---\n" + validDoc, []string{"more than one YAML document", "line 16"}},
		{"not YAML", "id: [unclosed\n", []string{"not valid YAML"}},
		{"not a mapping", "- a\n- b\n", []string{"line 1: found a list where a template"}},
		{"list for text", strings.Replace(validDoc, "title: A checklist", "title: [a, b]", 1), []string{"line 3: found a list where text belongs"}},
		{"duplicate key", "id: a\nid: b\n", []string{`"id" already defined`}},
		{"no sections", "id: a\nversion: \"1\"\ntitle: T\nlanguage: en\n", []string{"sections"}},
		{"bad id", strings.Replace(validDoc, "id: org/check", "id: Org Check", 1), []string{"template.id", "not a template id"}},
		{"too large", validDoc + "# " + strings.Repeat("x", model.LimitPayload) + "\n", []string{"bytes long", "at most"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tpl, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", tpl)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("message spans several lines: %q", msg)
			}
			if !errors.Is(err, model.ErrInvalid) {
				t.Errorf("error does not wrap model.ErrInvalid: %v", err)
			}
			if tpl.ID != "" || tpl.Sections != nil {
				t.Errorf("Parse returned a template with its error: %+v", tpl)
			}
		})
	}
}

func TestParseWrapsFieldError(t *testing.T) {
	_, err := Parse([]byte(strings.Replace(validDoc, "id: a.2", "id: a.1", 1)))
	var fe *model.FieldError
	if !errors.As(err, &fe) || fe.Field != "template.sections[0].items[1].id" {
		t.Fatalf("want a wrapped *model.FieldError naming the item, got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, id := range guideOrder {
		data, err := files.ReadFile("iduit-bg/" + id + ".yaml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(validDoc))
	f.Add([]byte(validDoc + "---\n" + validDoc))
	f.Add([]byte("a: &a [*a, *a]\nb: *a\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		tpl, err := Parse(data)
		if err != nil {
			if !errors.Is(err, model.ErrInvalid) {
				t.Fatalf("error does not wrap model.ErrInvalid: %v", err)
			}
			return
		}
		if err := tpl.Validate(); err != nil {
			t.Fatalf("Parse accepted a template that fails Validate: %v", err)
		}
	})
}
