package model

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on text, in characters (runes). They keep one record small enough to
// sync cheaply over poor links and bound what a hostile peer can make a node
// store. configs/cairn.example.yaml and the README list them.
const (
	LimitShort   = 200   // names, places, periods, areas, slugs of things
	LimitTitle   = 300   // titles
	LimitNote    = 2000  // one note, one issue, one ask
	LimitLong    = 10000 // talking points and other long text
	LimitList    = 100   // entries in any list (issues raised, follow-ups…)
	LimitPayload = 1 << 20
)

// ErrInvalid is wrapped by every validation error, so callers can tell bad
// input (the user's to fix) from failures of the node.
var ErrInvalid = errors.New("invalid input")

// ErrIdentifier is wrapped when free text looks like a personal identifier.
var ErrIdentifier = errors.New("looks like a personal identifier")

// FieldError names the field that is wrong and says what is allowed.
type FieldError struct {
	Field string
	Msg   string
	Err   error // optional sentinel, e.g. ErrIdentifier
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap lets errors.Is find ErrInvalid and any sentinel the error carries.
func (e *FieldError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

// checkText refuses invalid UTF-8, control characters other than newline
// and tab, and text longer than max runes.
func checkText(field, s string, max int, required bool) error {
	if !utf8.ValidString(s) {
		return &FieldError{Field: field, Msg: "is not valid UTF-8 text"}
	}
	if required && strings.TrimSpace(s) == "" {
		return &FieldError{Field: field, Msg: "is required"}
	}
	if n := utf8.RuneCountInString(s); n > max {
		return &FieldError{Field: field, Msg: fmt.Sprintf("is %d characters long; at most %d are allowed", n, max)}
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return &FieldError{Field: field, Msg: fmt.Sprintf("contains the control character %U; only printable text, new lines and tabs are allowed", r)}
		}
	}
	return nil
}

var (
	emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)
	// A phone number: an optional +, then at least 7 digits, possibly
	// separated by spaces, dots, dashes or brackets.
	phonePattern = regexp.MustCompile(`\+?\(?\d[\d\s().-]{5,}\d`)
)

// identifierWhy is the explanation users see when free text is refused.
const identifierWhy = "Cairn keeps no personal identifiers, because drug use is criminalised almost everywhere and a seized or shared record must not lead to anyone; describe people by role only (pass --allow-identifiers if this is not about a person, e.g. a service's public phone line)"

// checkIdentifiers refuses text that looks like an e-mail address or a phone
// number. Dates and years do not count as phone numbers.
func checkIdentifiers(field, s string) error {
	if m := emailPattern.FindString(s); m != "" {
		return &FieldError{Field: field, Msg: fmt.Sprintf("contains what looks like an e-mail address (%s); %s", m, identifierWhy), Err: ErrIdentifier}
	}
	for _, m := range phonePattern.FindAllString(s, -1) {
		digits := 0
		for _, r := range m {
			if r >= '0' && r <= '9' {
				digits++
			}
		}
		if digits >= 7 && !looksLikeDateOrRange(m) {
			return &FieldError{Field: field, Msg: fmt.Sprintf("contains what looks like a phone number (%s); %s", strings.TrimSpace(m), identifierWhy), Err: ErrIdentifier}
		}
	}
	return nil
}

var dateLike = regexp.MustCompile(`^\(?\d{4}[-./]\d{1,2}([-./]\d{1,2})?\)?$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$|^\d{4}\s*[-–]\s*\d{4}$`)

func looksLikeDateOrRange(s string) bool {
	return dateLike.MatchString(strings.TrimSpace(s))
}

// textCheck gathers the checks for one record's free text, so each body's
// Validate reads as a list of fields.
type textCheck struct {
	allowIdentifiers bool
	err              error
}

func (c *textCheck) text(field, s string, max int, required bool) {
	if c.err != nil {
		return
	}
	if err := checkText(field, s, max, required); err != nil {
		c.err = err
		return
	}
	if !c.allowIdentifiers {
		c.err = checkIdentifiers(field, s)
	}
}

func (c *textCheck) list(field string, xs []string, max int) {
	if c.err != nil {
		return
	}
	if len(xs) > LimitList {
		c.err = &FieldError{Field: field, Msg: fmt.Sprintf("has %d entries; at most %d are allowed", len(xs), LimitList)}
		return
	}
	for i, s := range xs {
		c.text(fmt.Sprintf("%s[%d]", field, i), s, max, true)
	}
}

func (c *textCheck) fail(field, msg string) {
	if c.err == nil {
		c.err = &FieldError{Field: field, Msg: msg}
	}
}

func (c *textCheck) oneOf(field, s string, allowed []string) {
	if c.err != nil || s == "" {
		return
	}
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	c.err = &FieldError{Field: field, Msg: fmt.Sprintf("%q is not allowed: use %s", truncate(s, 40), strings.Join(allowed, ", "))}
}

// date checks an optional YYYY-MM-DD date.
func (c *textCheck) date(field, s string) {
	if c.err != nil || s == "" {
		return
	}
	if _, err := ParseDate(s); err != nil {
		c.err = &FieldError{Field: field, Msg: fmt.Sprintf("%q is not a date: use YYYY-MM-DD, e.g. 2026-03-31", truncate(s, 40))}
	}
}

// ParseDate reads a calendar date in the form YYYY-MM-DD.
func ParseDate(s string) (time.Time, error) {
	return time.Parse(time.DateOnly, s)
}

// TimestampFloor is the earliest date a version may carry: Cairn did not
// exist before it, so no honest node can have signed a version dated
// earlier. A version dated before it is refused on receive and on import
// (HLC.CheckDrift, via ErrImplausibleTime) as malformed. This is the "ten
// years back" rule: the future is bounded by the receiver's clock
// (Config.MaxClockAhead), the past by this fixed floor, so a forged or
// broken clock cannot date a version anywhere outside [floor, now+margin].
// Backdating by a revoked key within that window is stopped separately,
// by the key's revocation cutoff.
var TimestampFloor = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// ErrImplausibleTime is wrapped (with ErrMalformed) by HLC.CheckDrift for
// a version dated before TimestampFloor.
var ErrImplausibleTime = errors.New("timestamp before Cairn existed")

// CheckFloor refuses a reading dated before TimestampFloor.
func (h HLC) CheckFloor() error {
	if h.Time().Before(TimestampFloor) {
		return fmt.Errorf("%w: %w: dated %s, before %s, the earliest date a Cairn version can carry",
			ErrMalformed, ErrImplausibleTime, h.Time().Format(time.RFC3339), TimestampFloor.Format(time.DateOnly))
	}
	return nil
}
