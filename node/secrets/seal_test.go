package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// testParams keep Argon2id cheap in tests; DefaultParams is tested once.
var testParams = Params{Time: 1, MemoryKiB: 64, Threads: 1}

var owner = Owner{Network: "tanpud", PeerID: "12D3KooWExamplePeer", Created: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}

var pass = []byte("correct horse battery staple")

func TestSealOpenRoundTrip(t *testing.T) {
	secret := []byte("the node key and the archive key")
	file, err := Seal(secret, owner, pass, testParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(file), "cairn key backup, version 1\n") {
		t.Fatalf("first line should name the format:\n%s", file)
	}
	if KindOf(file) != KindBackup {
		t.Fatalf("KindOf = %v, want KindBackup", KindOf(file))
	}
	got, err := Inspect(file)
	if err != nil || got != owner {
		t.Fatalf("Inspect = %+v, %v; want %+v", got, err, owner)
	}
	o, plain, err := Open(file, pass)
	if err != nil {
		t.Fatal(err)
	}
	if o != owner || !bytes.Equal(plain, secret) {
		t.Fatalf("Open = %+v %q, want %+v %q", o, plain, owner, secret)
	}
}

func TestSealWithDefaultParams(t *testing.T) {
	file, err := Seal([]byte("k"), owner, pass, DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(file), `"argon2":{"time":3,"memory_kib":131072,"threads":2}`) {
		t.Fatalf("header should name the default parameters:\n%s", file)
	}
	if _, plain, err := Open(file, pass); err != nil || string(plain) != "k" {
		t.Fatalf("Open = %q, %v", plain, err)
	}
}

func TestWrongPassphrase(t *testing.T) {
	file, err := Seal([]byte("secret"), owner, pass, testParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", "correct horse battery stapl", "Correct horse battery staple"} {
		if _, _, err := Open(file, []byte(p)); !errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("Open with %q: %v, want ErrWrongPassphrase", p, err)
		}
	}
}

func TestTruncatedOrTamperedBackup(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 100)
	file, err := Seal(secret, owner, pass, testParams)
	if err != nil {
		t.Fatal(err)
	}
	// Every cut past the first line is damage; a cut in the first line
	// makes a file that is no backup at all.
	for n := len(backupMagic) + 1; n < len(file)-1; n += 7 {
		_, _, err := Open(file[:n], pass)
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("Open of the first %d of %d bytes: %v, want ErrDamaged", n, len(file), err)
		}
	}
	lines := strings.Split(string(file), "\n")
	hi := len(lines) - 3 // the header line
	ci := len(lines) - 2 // the ciphertext line
	ct, _ := base64.StdEncoding.DecodeString(lines[ci])
	ct[len(ct)/2] ^= 1
	changes := map[string]func([]string){
		"ciphertext bit": func(l []string) { l[ci] = base64.StdEncoding.EncodeToString(ct) },
		"network in the header": func(l []string) {
			l[hi] = strings.Replace(l[hi], `"network":"tanpud"`, `"network":"anpud"`, 1)
		},
		"peer ID in the header": func(l []string) {
			l[hi] = strings.Replace(l[hi], owner.PeerID, "12D3KooWAnotherPeer", 1)
		},
		"not base64":      func(l []string) { l[ci] = "!!" + l[ci] },
		"header not JSON": func(l []string) { l[hi] = l[hi][1:] },
		"huge memory cost": func(l []string) {
			l[hi] = strings.Replace(l[hi], `"memory_kib":64`, `"memory_kib":4294967295`, 1)
		},
		"extra line": func(l []string) { l[ci] += "\nAAAA" },
	}
	for name, change := range changes {
		l := append([]string(nil), lines...)
		change(l)
		if strings.Join(l, "\n") == string(file) {
			t.Fatalf("%s: the change changed nothing", name)
		}
		if _, _, err := Open([]byte(strings.Join(l, "\n")), pass); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: Open = %v, want ErrDamaged", name, err)
		}
	}
}

func TestNotABackup(t *testing.T) {
	shares, err := Split([]byte("x"), owner, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		file []byte
		want error
	}{
		"text":        {[]byte("hello\nworld\n"), ErrNotBackup},
		"empty":       {nil, ErrDamaged},
		"share":       {shares[0], ErrIsShare},
		"new version": {[]byte("cairn key backup, version 2\n{}\nAAAA\n"), ErrNewerVersion},
	}
	for name, c := range cases {
		if _, _, err := Open(c.file, pass); !errors.Is(err, c.want) {
			t.Errorf("%s: Open = %v, want %v", name, err, c.want)
		}
	}
}

func TestBackupHoldsNoKeyInClear(t *testing.T) {
	secret := bytes.Repeat([]byte{0xA5, 0x5A, 0x3C}, 22)
	file, err := Seal(secret, owner, pass, testParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range [][]byte{secret, secret[:8], pass, []byte(base64.StdEncoding.EncodeToString(secret)[:12]), []byte(hex.EncodeToString(secret[:8]))} {
		if bytes.Contains(file, f) {
			t.Errorf("backup file contains %q", f)
		}
	}
}

func TestCheckNewPassphrase(t *testing.T) {
	for p, ok := range map[string]bool{"short": false, "elevenchars": false, "twelve chars": true, "ñandú ñandú ñ": true, "ñandúñandú": false} {
		if err := CheckNewPassphrase([]byte(p)); (err == nil) != ok {
			t.Errorf("CheckNewPassphrase(%q) = %v, want ok=%v", p, err, ok)
		}
	}
}
