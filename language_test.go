package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestWordsMatter checks code, docs and interface text for words that cast
// people who use drugs as sick, deviant or criminal (DOMAIN §7, "Words
// Matter!"). Quoting a source that uses one is the only exception, and it
// is not needed so far.
func TestWordsMatter(t *testing.T) {
	banned := regexp.MustCompile(`(?i)\b(addicts?|addiction|drug abusers?|substance abuse|junkies?|clean needles?|dirty needles?|clean syringes?|dirty syringes?|hard[- ]to[- ]reach)\b`)
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "bin" || d.Name() == "data" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || path == "language_test.go" {
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".yaml", ".yml", ".txt", ".html", ".json":
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "regexp.MustCompile") {
				continue // a test's own list of the words to refuse
			}
			if m := banned.FindString(line); m != "" {
				t.Errorf("%s:%d uses %q; see DOMAIN §7 for the words to use instead", path, i+1, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
