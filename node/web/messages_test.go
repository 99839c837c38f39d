package web

import (
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/registry"
)

// TestCataloguesCoverEveryKey: every key the pages and handlers use has
// English text; the other catalogues hold no stray keys, take the same
// arguments as English, and have at least the navigation and the five
// answers.
func TestCataloguesCoverEveryKey(t *testing.T) {
	c, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	literal := regexp.MustCompile(`\.T[ (]"([a-z0-9._-]+)"`)
	dynamic := map[string][]string{
		"answer.%s":      {"yes", "partly", "no", "unknown", "na"},
		"kind.%s":        {"audit", "priority", "committee-report"},
		"level.%s":       model.Levels,
		"method.%s":      {"visit", "group", "survey", "committee", "documents"},
		"pkind.%s":       {"change-needed", "positive-achievement", "community-action"},
		"subjectkind.%s": {"service", "programme", "jurisdiction", "community"},
		"issue.%s":       {"open", "raised", "resolved"},
		"role.%s":        {string(registry.RoleSteward), string(registry.RoleMember)},
		"status.%s":      {string(registry.StatusActive), string(registry.StatusSuspended), string(registry.StatusRetired)},
	}
	printf := regexp.MustCompile(`printf "([a-z.]+%s)"`)
	var sources []string
	tpls, _ := fs.Glob(templateFS, "templates/*.html")
	for _, f := range tpls {
		b, _ := fs.ReadFile(templateFS, f)
		sources = append(sources, string(b))
	}
	gos, _ := fs.Glob(os.DirFS("."), "*.go")
	for _, f := range gos {
		if !strings.HasSuffix(f, "_test.go") {
			b, _ := os.ReadFile(f)
			sources = append(sources, string(b))
		}
	}
	for _, src := range sources {
		for _, m := range literal.FindAllStringSubmatch(src, -1) {
			used[m[1]] = true
		}
		for _, m := range printf.FindAllStringSubmatch(src, -1) {
			vals, ok := dynamic[m[1]]
			if !ok {
				t.Errorf("key pattern %q is not listed in this test", m[1])
			}
			for _, v := range vals {
				used[strings.Replace(m[1], "%s", v, 1)] = true
			}
		}
	}
	if len(used) < 100 {
		t.Fatalf("found only %d keys in use; the pattern is wrong", len(used))
	}
	for k := range used {
		if _, ok := c[fallback][k]; !ok {
			t.Errorf("en.json has no text for %q", k)
		}
	}
	verbs := regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z%]`)
	for lang, m := range c {
		for k, v := range m {
			en, ok := c[fallback][k]
			if !ok {
				t.Errorf("%s.json: %q is not a key English has", lang, k)
				continue
			}
			if got, want := verbs.FindAllString(v, -1), verbs.FindAllString(en, -1); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("%s.json: %q takes %v, English %v", lang, k, got, want)
			}
		}
		for _, k := range []string{"nav.overview", "nav.audits", "nav.priorities", "nav.language", "nav.logout", "answer.yes", "answer.partly", "answer.no", "answer.unknown", "answer.na", "language.name"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s.json lacks %q", lang, k)
			}
		}
	}
	for _, l := range []string{"en", "fr", "es", "ru"} {
		if _, ok := c[l]; !ok {
			t.Errorf("no %s catalogue", l)
		}
	}
}
