package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func parseAll(t *testing.T, files [][]byte, idx ...int) []Share {
	t.Helper()
	var out []Share
	for _, i := range idx {
		s, err := ParseShare(files[i])
		if err != nil {
			t.Fatalf("share %d: %v", i+1, err)
		}
		s.Name = fmt.Sprintf("share-%d.txt", i+1)
		out = append(out, s)
	}
	return out
}

func TestSplitCombineEveryThreeOfFive(t *testing.T) {
	secret := []byte("node key and archive key, 64 bytes or so, any length goes here")
	files, err := Split(secret, owner, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 5 {
		t.Fatalf("%d files, want 5", len(files))
	}
	for i, f := range files {
		if !strings.HasPrefix(string(f), "cairn key share, version 1\n") || KindOf(f) != KindShare {
			t.Fatalf("share %d does not name its format:\n%s", i+1, f)
		}
		s := parseAll(t, files, i)[0]
		if s.Index != i+1 || s.Threshold != 3 || s.Shares != 5 || s.Owner != owner || len(s.Set) != 16 {
			t.Fatalf("share %d reads as %+v", i+1, s)
		}
	}
	n := 0
	for a := 0; a < 5; a++ {
		for b := a + 1; b < 5; b++ {
			for c := b + 1; c < 5; c++ {
				o, got, err := Combine(parseAll(t, files, c, a, b))
				if err != nil {
					t.Fatalf("shares %d,%d,%d: %v", a+1, b+1, c+1, err)
				}
				if o != owner || !bytes.Equal(got, secret) {
					t.Fatalf("shares %d,%d,%d give %+v %q", a+1, b+1, c+1, o, got)
				}
				n++
			}
		}
	}
	if n != 10 {
		t.Fatalf("tried %d subsets, want 10", n)
	}
	if _, got, err := Combine(parseAll(t, files, 0, 1, 2, 3, 4)); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("all five shares: %q, %v", got, err)
	}
}

func TestTooFewShares(t *testing.T) {
	files, err := Split([]byte("secret"), owner, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Combine(parseAll(t, files, 0, 4))
	if !errors.Is(err, ErrTooFewShares) || !strings.Contains(err.Error(), "3 different shares") || !strings.Contains(err.Error(), "only 2 given") {
		t.Fatalf("Combine of 2 of 3: %v", err)
	}
	if _, _, err := Combine(nil); !errors.Is(err, ErrTooFewShares) {
		t.Fatalf("Combine of none: %v", err)
	}
}

func TestDuplicateShare(t *testing.T) {
	files, err := Split([]byte("secret"), owner, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	shares := parseAll(t, files, 1, 1)
	shares[1].Name = "copy-of-share-2.txt"
	_, _, err = Combine(shares)
	if !errors.Is(err, ErrDuplicateShare) || !strings.Contains(err.Error(), "copy-of-share-2.txt") {
		t.Fatalf("Combine of one share twice: %v", err)
	}
}

func TestMixedSets(t *testing.T) {
	a, err := Split([]byte("secret"), owner, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Split([]byte("secret"), owner, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	shares := append(parseAll(t, a, 0), parseAll(t, b, 1)...)
	shares[1].Name = "other-set.txt"
	_, _, err = Combine(shares)
	if !errors.Is(err, ErrMixedSets) || !strings.Contains(err.Error(), "other-set.txt") {
		t.Fatalf("Combine of two sets: %v", err)
	}
}

func TestDamagedShare(t *testing.T) {
	files, err := Split([]byte("secret"), owner, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	f := string(files[0])
	lines := strings.Split(f, "\n")
	hi := len(lines) - 3
	// Changes that keep a valid checksum: someone edits the share and
	// recomputes it. The commitment catches those.
	resum := func(header string) string {
		p := parsed{magic: shareMagic, header: header}
		return shareMagic + "\n" + header + "\nchecksum " + checksum(p) + "\n"
	}
	value := strings.Index(lines[hi], `"value":"`) + len(`"value":"`)
	flipped := []byte(lines[hi])
	if flipped[value] == 'A' {
		flipped[value] = 'B'
	} else {
		flipped[value] = 'A'
	}
	cases := map[string]string{
		"cut short":                          f[:len(f)/2],
		"checksum removed":                   strings.Join(lines[:hi+1], "\n"),
		"header edited":                      strings.Replace(f, `"network":"tanpud"`, `"network":"anpud"`, 1),
		"value changed, checksum redone":     resum(string(flipped)),
		"index changed, checksum redone":     resum(strings.Replace(lines[hi], `"index":1`, `"index":2`, 1)),
		"threshold changed, checksum redone": resum(strings.Replace(lines[hi], `"threshold":2`, `"threshold":3`, 1)),
	}
	for name, c := range cases {
		if c == f {
			t.Fatalf("%s: nothing changed", name)
		}
		if _, err := ParseShare([]byte(c)); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: ParseShare = %v, want ErrDamaged", name, err)
		}
	}
	// Both shares edited alike (network renamed, checksums redone) pass
	// the per-share checks, but the sealed key no longer opens.
	var edited []Share
	for i := range files {
		l := strings.Split(string(files[i]), "\n")
		h := strings.Replace(l[len(l)-3], `"network":"tanpud"`, `"network":"anpud"`, 1)
		s, err := ParseShare([]byte(resum(h)))
		if err != nil {
			t.Fatalf("share %d edited alike: %v", i+1, err)
		}
		edited = append(edited, s)
	}
	if _, _, err := Combine(edited); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Combine of shares whose header was renamed: %v, want ErrDamaged", err)
	}
	if _, err := ParseShare([]byte(resum(lines[hi]))); err != nil {
		t.Fatalf("an untouched share, rewritten: %v", err)
	}
}

func TestShareCounts(t *testing.T) {
	for _, c := range []struct {
		n, k int
		ok   bool
	}{{2, 2, true}, {255, 2, true}, {255, 255, true}, {1, 1, false}, {5, 1, false}, {3, 4, false}, {256, 3, false}, {0, 0, false}} {
		_, err := Split([]byte("s"), owner, c.n, c.k)
		if (err == nil) != c.ok {
			t.Errorf("Split %d of %d: %v, want ok=%v", c.k, c.n, err, c.ok)
		}
	}
}

func TestSharesHoldNoKeyInClear(t *testing.T) {
	secret := bytes.Repeat([]byte{0xA5, 0x5A, 0x3C}, 22)
	files, err := Split(secret, owner, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		if bytes.Contains(f, secret[:8]) {
			t.Errorf("share %d contains the secret", i+1)
		}
	}
}
