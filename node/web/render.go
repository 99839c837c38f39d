package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/inpud/cairn/model"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages holds one parsed template set per page: the layout, the shared
// partials and the page's own file.
type pages map[string]*template.Template

var funcs = template.FuncMap{
	"answers": func() []model.Answer {
		return []model.Answer{model.AnswerYes, model.AnswerPartly, model.AnswerNo, model.AnswerUnknown, model.AnswerNA}
	},
	"add":  func(a, b int) int { return a + b },
	"pct":  func(f float64) int { return int(f*100 + 0.5) },
	"barw": func(f float64) int { return int(f*200 + 0.5) },
	"seq": func(from, to int) []int {
		var out []int
		if from <= to {
			for i := from; i <= to; i++ {
				out = append(out, i)
			}
		} else {
			for i := from; i >= to; i-- {
				out = append(out, i)
			}
		}
		return out
	},
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
	"list":  func(xs ...string) []string { return xs },
	"eq1":   func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) },
	"short": func(s string) string { return strings.TrimPrefix(s, "committee-") },
	"shortid": func(s string) string {
		if len(s) > 12 {
			return "…" + s[len(s)-8:]
		}
		return s
	},
	"deref": func(b *bool) bool { return b != nil && *b },
	"row":   func(group string, i int, field string) string { return fmt.Sprintf("%s[%d].%s", group, i, field) },
}

func parsePages() (pages, error) {
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	shared := []string{"templates/layout.html", "templates/partials.html"}
	out := pages{}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(f, "templates/"), ".html")
		if name == "layout" || name == "partials" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, append(shared, f)...)
		if err != nil {
			return nil, fmt.Errorf("web page %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// pageData is what every page gets.
type pageData struct {
	L         Lang
	Languages []string
	CSRF      string
	Title     string
	Nav       string // the navigation entry to mark current
	Path      string // this page, to come back to after switching language
	Network   model.Profile
	Body      any
}

// form is a form's input and the problems with it, by field: a page shows
// each problem next to its field and keeps what was typed.
type form struct {
	Values map[string]string
	Errors map[string]string
}

func newForm() *form { return &form{Values: map[string]string{}, Errors: map[string]string{}} }

// V is a value typed into the form.
func (f *form) V(key string) string { return f.Values[key] }

// E is the problem with a field, if any.
func (f *form) E(key string) string { return f.Errors[key] }

func (u *UI) render(r *req, code int, page string, d pageData) {
	t, ok := u.pages[page]
	if !ok {
		http.Error(r.w, "no page "+page, http.StatusInternalServerError)
		return
	}
	d.L, d.CSRF, d.Languages, d.Network = r.lang, r.csrf, u.msgs.languages(), u.node.Profile()
	d.Path = r.URL.RequestURI()
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", d); err != nil {
		u.cfg.Logger.Error("render web page", "page", page, "err", err)
		http.Error(r.w, "could not draw the page "+page+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	r.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	r.w.WriteHeader(code)
	r.w.Write(buf.Bytes())
}

// renderFragment draws one named template of a page (for fetch answers).
func (u *UI) renderFragment(r *req, page, name string, d pageData) (string, error) {
	d.L, d.CSRF = r.lang, r.csrf
	var buf bytes.Buffer
	if err := u.pages[page].ExecuteTemplate(&buf, name, d); err != nil {
		return "", err
	}
	return buf.String(), nil
}
