package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/inpud/cairn/model"
)

//go:embed iduit-bg/*.yaml
var files embed.FS

// The built-in files, one checklist each, in the order of the guide. Every
// file under iduit-bg/ must be listed here (checked when they are loaded).
var guideOrder = []string{"1", "2", "3", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "3.9"}

// CombinedID is the id of the built-in template that holds all twelve
// checklists as its sections.
const CombinedID = "iduit-bg"

const combinedTitle = "IDUIT Brief Guide: What to check for (all checklists)"

// parseError is what Parse returns: a one-sentence message for the user,
// wrapping model.ErrInvalid (the input is at fault) and the underlying
// decoder or validation error.
type parseError struct {
	msg string
	err error
}

func (e *parseError) Error() string { return e.msg }

func (e *parseError) Unwrap() []error {
	if e.err == nil {
		return []error{model.ErrInvalid}
	}
	return []error{model.ErrInvalid, e.err}
}

func invalid(err error, format string, args ...any) error {
	return &parseError{msg: fmt.Sprintf(format, args...), err: err}
}

// Parse reads one template from YAML and validates it. Decoding is strict:
// unknown fields, a second YAML document, empty input and text that is not
// UTF-8 are refused. The error says in one sentence what is wrong (it is
// shown to users who publish their own template file); it wraps
// model.ErrInvalid and the underlying error, so errors.Is and errors.As
// reach both.
func Parse(data []byte) (model.Template, error) {
	var t model.Template
	if len(data) > model.LimitPayload {
		return t, invalid(nil, "the template file is %d bytes long; at most %d bytes are allowed", len(data), model.LimitPayload)
	}
	if !utf8.Valid(data) {
		line, col := firstInvalidUTF8(data)
		return t, invalid(nil, "the template file is not valid UTF-8 text (line %d, column %d); save it as UTF-8", line, col)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return t, invalid(nil, "the template file is empty; it needs id, version, title, language, source and sections")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		if errors.Is(err, io.EOF) {
			return model.Template{}, invalid(err, "the template file is empty (it holds only comments); it needs id, version, title, language, source and sections")
		}
		return model.Template{}, decodeError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return model.Template{}, decodeError(err)
	default:
		return model.Template{}, invalid(nil, "the template file holds more than one YAML document (another starts at line %d); put each template in a file of its own", extra.Line)
	}
	if err := t.Validate(); err != nil {
		name := "the template"
		if t.ID != "" && utf8.ValidString(t.ID) && len(t.ID) <= 64 {
			name = "template " + strconv.Quote(t.ID)
		}
		return model.Template{}, invalid(err, "%s is not valid: %v", name, err)
	}
	return t, nil
}

var unknownField = regexp.MustCompile(`^line (\d+): field (.*) not found in type model\.(Template|Section|Item)$`)

// allowedFields lists, for each type, the fields a template file may use.
var allowedFields = map[string]string{
	"Template": "a template may have only id, version, title, language, source and sections",
	"Section":  "a section may have only id, title, ref and items",
	"Item":     "an item may have only id, text and scope",
}

// decodeError turns a yaml.v3 error, which may span several lines, into one
// sentence naming the first problem and its line.
func decodeError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return invalid(err, "the template file is not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	first := te.Errors[0]
	more := ""
	if n := len(te.Errors) - 1; n == 1 {
		more = " (and 1 more problem)"
	} else if n > 1 {
		more = fmt.Sprintf(" (and %d more problems)", n)
	}
	if m := unknownField.FindStringSubmatch(first); m != nil {
		return invalid(err, "line %s: unknown field %q; %s%s", m[1], m[2], allowedFields[m[3]], more)
	}
	if m := wrongKind.FindStringSubmatch(first); m != nil {
		kind, ok := yamlKinds[m[2]]
		if !ok {
			kind = "a " + m[2] + " value"
		}
		target := m[3]
		for _, r := range goTypeNames {
			target = strings.ReplaceAll(target, r[0], r[1])
		}
		return invalid(err, "line %s: found %s where %s belongs%s", m[1], kind, target, more)
	}
	return invalid(err, "the template file has a problem at %s%s", first, more)
}

var wrongKind = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) (?:`.*` )?into (.+)$")

// yamlKinds names YAML node kinds the way a user editing a file sees them.
var yamlKinds = map[string]string{
	"seq": "a list", "map": "a mapping (key: value lines)", "str": "text", "int": "a number",
	"float": "a number", "bool": "true or false", "null": "nothing", "timestamp": "a date",
	"binary": "binary data",
}

// goTypeNames names the decoded types the way the file format describes them.
var goTypeNames = [][2]string{
	{"[]model.Section", "a list of sections"},
	{"[]model.Item", "a list of items"},
	{"model.Template", "a template (a mapping with id, version, title, language, source and sections)"},
	{"model.Section", "a section (a mapping with id, title, ref and items)"},
	{"model.Item", "an item (a mapping with id, text and scope)"},
	{"model.Scope", "a scope (service, jurisdiction or community)"},
	{"string", "text"},
}

// firstInvalidUTF8 finds the line and column (in bytes, from 1) of the first
// byte that is not valid UTF-8.
func firstInvalidUTF8(data []byte) (line, col int) {
	line, col = 1, 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 {
			return line, col
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col += size
		}
		data = data[size:]
	}
	return line, col
}

var (
	loadOnce sync.Once
	builtin  []model.Template
)

// load parses the embedded files once. They are compiled in, so an error
// here is a bug in this package and panics (the tests catch it first).
func load() {
	loadOnce.Do(func() {
		names, err := fs.Glob(files, "iduit-bg/*.yaml")
		if err != nil {
			panic(err)
		}
		listed := map[string]bool{}
		for _, id := range guideOrder {
			listed["iduit-bg/"+id+".yaml"] = true
		}
		for _, n := range names {
			if !listed[n] {
				panic(fmt.Sprintf("templates: embedded file %s is not in guideOrder", n))
			}
		}
		var out []model.Template
		combined := model.Template{ID: CombinedID, Title: combinedTitle}
		for _, id := range guideOrder {
			name := "iduit-bg/" + id + ".yaml"
			data, err := files.ReadFile(name)
			if err != nil {
				panic(fmt.Sprintf("templates: %s: %v", name, err))
			}
			t, err := Parse(data)
			if err != nil {
				panic(fmt.Sprintf("templates: %s: %v", name, err))
			}
			if t.ID != CombinedID+"/"+id || len(t.Sections) != 1 || t.Sections[0].ID != id {
				panic(fmt.Sprintf("templates: %s must hold template %s/%s with the one section %s", name, CombinedID, id, id))
			}
			if combined.Version == "" {
				combined.Version, combined.Language, combined.Source = t.Version, t.Language, t.Source
			} else if t.Version != combined.Version || t.Language != combined.Language || t.Source != combined.Source {
				panic(fmt.Sprintf("templates: %s: version, language and source must match the other checklists", name))
			}
			combined.Sections = append(combined.Sections, copyTemplate(t).Sections...)
			out = append(out, t)
		}
		if err := combined.Validate(); err != nil {
			panic(fmt.Sprintf("templates: combined template: %v", err))
		}
		builtin = append(out, combined)
	})
}

// copyTemplate returns t with its own Sections and Items slices, so changes
// to the copy do not reach the original.
func copyTemplate(t model.Template) model.Template {
	secs := make([]model.Section, len(t.Sections))
	for i, s := range t.Sections {
		s.Items = append([]model.Item(nil), s.Items...)
		secs[i] = s
	}
	t.Sections = secs
	return t
}

// Builtin returns the built-in templates: the twelve IDUIT Brief Guide
// checklists in the order of the guide (iduit-bg/1, iduit-bg/2, iduit-bg/3,
// iduit-bg/3.1 … iduit-bg/3.9), then the combined template iduit-bg holding
// all twelve as its sections. The result is a fresh copy on every call.
func Builtin() []model.Template {
	load()
	out := make([]model.Template, len(builtin))
	for i, t := range builtin {
		out[i] = copyTemplate(t)
	}
	return out
}

// Lookup finds a built-in template by reference: "iduit-bg/3.2" gives the
// latest version, "iduit-bg/3.2@2017" that exact version.
func Lookup(ref string) (model.Template, bool) {
	load()
	id, version, pinned := strings.Cut(ref, "@")
	var found *model.Template
	for i := range builtin {
		t := &builtin[i]
		if t.ID != id {
			continue
		}
		if pinned {
			if t.Version == version {
				return copyTemplate(*t), true
			}
			continue
		}
		if found == nil || versionLess(found.Version, t.Version) {
			found = t
		}
	}
	if found == nil {
		return model.Template{}, false
	}
	return copyTemplate(*found), true
}

// versionLess orders versions such as "2017", "2017.1" and "2024": runs of
// digits compare as numbers, everything else byte by byte.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
