package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
)

//go:embed messages/*.json
var messageFS embed.FS

// fallback is the language every catalogue falls back to, key by key. Its
// catalogue is complete: a test checks every key the pages use.
const fallback = "en"

// catalogues maps a language tag to its messages, key → text. Texts may
// hold fmt verbs for the arguments a page passes.
type catalogues map[string]map[string]string

func loadCatalogues() (catalogues, error) {
	files, err := messageFS.ReadDir("messages")
	if err != nil {
		return nil, err
	}
	out := catalogues{}
	for _, f := range files {
		b, err := messageFS.ReadFile(path.Join("messages", f.Name()))
		if err != nil {
			return nil, err
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("message catalogue %s: %w", f.Name(), err)
		}
		out[strings.TrimSuffix(f.Name(), ".json")] = m
	}
	if _, ok := out[fallback]; !ok {
		return nil, fmt.Errorf("no %s message catalogue", fallback)
	}
	return out, nil
}

// languages lists the tags there are catalogues for, sorted.
func (c catalogues) languages() []string {
	var out []string
	for l := range c {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// pick returns the language to use: the chosen one if there is a
// catalogue for it, else the node's default, else English.
func (c catalogues) pick(chosen, def string) string {
	for _, l := range []string{chosen, def} {
		if _, ok := c[l]; ok && l != "" {
			return l
		}
	}
	return fallback
}

// Lang is the interface text in one language.
type Lang struct {
	Tag string
	c   catalogues
}

// T returns the text for key, formatted with args; English when this
// language has no text for it yet, and the key itself if English has none
// (a test keeps that from happening).
func (l Lang) T(key string, args ...any) string {
	s, ok := l.c[l.Tag][key]
	if !ok {
		if s, ok = l.c[fallback][key]; !ok {
			return key
		}
	}
	if len(args) == 0 {
		return s
	}
	return fmt.Sprintf(s, args...)
}

// Name is the language's own name, for the language switch.
func (l Lang) Name(tag string) string {
	if s, ok := l.c[tag]["language.name"]; ok {
		return s
	}
	return tag
}
