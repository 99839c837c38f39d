package model

import (
	"crypto/rand"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/oklog/ulid/v2"
)

// HLC is a hybrid logical clock reading: wall-clock milliseconds in the high
// 48 bits and a logical counter in the low 16. It orders versions causally
// even when clocks disagree a little, and encodes as one JSON number.
type HLC uint64

// MakeHLC builds a reading from wall milliseconds and a counter.
func MakeHLC(ms int64, counter uint16) HLC { return HLC(uint64(ms)<<16 | uint64(counter)) }

// Millis is the wall-clock part.
func (h HLC) Millis() int64 { return int64(uint64(h) >> 16) }

// Time is the wall-clock part as a time.
func (h HLC) Time() time.Time { return time.UnixMilli(h.Millis()).UTC() }

// After reports whether h is later than o.
func (h HLC) After(o HLC) bool { return h > o }

// Next returns the reading for a new local event at wall time now, given
// the last reading this node issued or saw. The result is always later than
// last, so versions a node writes are ordered even if its clock steps back.
func (h HLC) Next(now time.Time) HLC {
	wall := MakeHLC(now.UnixMilli(), 0)
	if wall > h {
		return wall
	}
	return h + 1
}

// Observe folds a remote reading into the local clock: the result is the
// later of the two, so the next local event orders after what was seen.
func (h HLC) Observe(remote HLC) HLC {
	if remote > h {
		return remote
	}
	return h
}

// CheckDrift refuses a reading more than maxAhead ahead of now: otherwise a
// node with a fast (or dishonest) clock would win every tie-break. It also
// refuses one dated before TimestampFloor (CheckFloor).
func (h HLC) CheckDrift(now time.Time, maxAhead time.Duration) error {
	if err := h.CheckFloor(); err != nil {
		return err
	}
	if ahead := h.Time().Sub(now); ahead > maxAhead {
		return fmt.Errorf("%w: dated %s, %s ahead (at most %s allowed)", ErrFuture, h.Time().Format(time.RFC3339), ahead.Round(time.Second), maxAhead)
	}
	return nil
}

var idPattern = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

// NewID returns a new record id: a ULID, time-sortable and unique across
// the federation without coordination.
func NewID(now time.Time, entropy io.Reader) string {
	if entropy == nil {
		entropy = rand.Reader
	}
	return ulid.MustNew(ulid.Timestamp(now), entropy).String()
}

// ValidateID checks that s has the form of a record id.
func ValidateID(s string) error {
	if !idPattern.MatchString(s) {
		return &FieldError{Field: "id", Msg: fmt.Sprintf("%q is not a record id: ids are 26 characters of 0-9 and A-Z, as printed by cairn", truncate(s, 40))}
	}
	return nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
