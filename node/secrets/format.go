package secrets

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The first lines that name the two formats. A file starting with
// magicPrefix but another version was made by a newer Cairn.
const (
	backupMagic = "cairn key backup, version 1"
	shareMagic  = "cairn key share, version 1"
	magicPrefix = "cairn key "
)

// Errors callers branch on. Each says what is wrong in words a person can
// act on; callers add which file.
var (
	// ErrWrongPassphrase: the passphrase does not open the backup.
	ErrWrongPassphrase = errors.New("the passphrase does not open this backup; check it and try again (it is case-sensitive)")
	// ErrDamaged: the file was cut short, changed or damaged.
	ErrDamaged = errors.New("the file is damaged, cut short or has been changed; use another copy")
	// ErrNotBackup: the file is not a Cairn key backup or share at all.
	ErrNotBackup = errors.New(`the file is not a Cairn key backup or key share (its first line should be "cairn key backup, version 1" or "cairn key share, version 1")`)
	// ErrNewerVersion: the file was made by a newer Cairn.
	ErrNewerVersion = errors.New("the file was made by a newer version of Cairn; open it with that version")
	// ErrIsShare: a share was given where a passphrase backup was expected.
	ErrIsShare = errors.New("the file is a key share, not a passphrase backup; give it with the other shares")
	// ErrIsBackup: a passphrase backup was given where a share was expected.
	ErrIsBackup = errors.New("the file is a passphrase backup, not a key share; open it on its own")
)

// Owner says whose secret a file holds. It is written in clear so a person
// can tell whose backup it is without opening it, and it is authenticated.
type Owner struct {
	Network string    `json:"network"`
	PeerID  string    `json:"peer_id"`
	Created time.Time `json:"created"`
}

// Kind tells a sealed backup from a share by its first line.
type Kind int

// The kinds of file.
const (
	KindUnknown Kind = iota
	KindBackup
	KindShare
)

// KindOf says what kind of file b is, from its first line.
func KindOf(b []byte) Kind {
	first, _, _ := strings.Cut(string(b), "\n")
	switch strings.TrimSuffix(first, "\r") {
	case backupMagic:
		return KindBackup
	case shareMagic:
		return KindShare
	}
	return KindUnknown
}

// parsed is a file split into its parts: the first line, the header line
// and the lines after it, comment lines left out.
type parsed struct {
	magic, header string
	rest          []string
}

// parse splits a file whose first line must be magic.
func parse(b []byte, magic string) (parsed, error) {
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	var lines []string
	for i, l := range strings.Split(text, "\n") {
		if i > 0 && (strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "") {
			continue
		}
		lines = append(lines, l)
	}
	first := lines[0]
	if first != magic {
		switch {
		case first == shareMagic:
			return parsed{}, ErrIsShare
		case first == backupMagic:
			return parsed{}, ErrIsBackup
		case strings.HasPrefix(first, magicPrefix) && strings.Contains(first, "version"):
			return parsed{}, ErrNewerVersion
		case len(b) == 0:
			return parsed{}, fmt.Errorf("%w (the file is empty)", ErrDamaged)
		}
		return parsed{}, ErrNotBackup
	}
	if len(lines) < 3 {
		return parsed{}, ErrDamaged
	}
	return parsed{magic: first, header: lines[1], rest: lines[2:]}, nil
}

// signed is what the AEAD or the checksum covers: the first line and the
// header line exactly as written.
func (p parsed) signed() []byte { return []byte(p.magic + "\n" + p.header + "\n") }
