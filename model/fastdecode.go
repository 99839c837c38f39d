package model

import (
	"unicode/utf16"
	"unicode/utf8"
)

// decodePayload decodes a payload exactly as DecodeStrict(b, &p) would:
// the same bytes are accepted and refused, and an accepted payload decodes
// to the same value.
//
// It first tries fastPayload, a scanner for the payloads Seal writes
// (encoding/json.Marshal of a Payload): keys spelled exactly as the struct
// tags, each at most once and without escapes; string values plain or
// with escapes other than \u of a UTF-16 surrogate; integers without
// fraction or exponent. That scanner never refuses anything. Whatever it is
// not sure of (an escaped key, a surrogate escape, a duplicate or unknown
// key, a key differing only in case, null, a number it does not parse
// itself, any syntax error) it
// hands back, and DecodeStrict gives the verdict and the value. So the fast
// path can only be wrong by accepting something DecodeStrict refuses or by
// decoding differently, which FuzzPayloadDecodeMatches checks for any
// bytes, seeded with real envelopes.
//
// Why not a library: faster JSON decoders resolve for this module
// (goccy/go-json, segmentio/encoding, json-iterator, sonic, fastjson), but
// none promises encoding/json's exact acceptance (case folding of keys,
// duplicate keys, invalid UTF-8 and escapes, depth limits), so any of them
// would need the same accept-or-hand-back wrapper and the same
// differential fuzzing, and the wrapper is most of the work. They were
// not benchmarked here; this scanner decodes a benchmark-sized payload in
// 2-4 µs against encoding/json's 15-19 (BenchmarkPayloadDecode).
func decodePayload(b []byte, p *Payload) error {
	if q, ok := fastPayload(b); ok {
		*p = q
		return nil
	}
	*p = Payload{}
	return DecodeStrict(b, p)
}

// The payload's fields, as bits for spotting a key seen twice.
const (
	fID = 1 << iota
	fKind
	fSchema
	fOrigin
	fAuthor
	fVersion
	fHLC
	fAudience
	fDeleted
	fWithdrawn
	fKeep
	fPrev
	fLanguage
	fBody
)

// maxFastDepth bounds the nesting fastPayload follows inside a body; deeper
// bodies go to encoding/json (whose own limit is 10,000).
const maxFastDepth = 512

// fastPayload decodes b if it is a payload of the plain form described at
// decodePayload; ok is false for anything else, whether valid or not.
func fastPayload(b []byte) (p Payload, ok bool) {
	if !utf8.Valid(b) {
		return Payload{}, false
	}
	s := scanner{b: b}
	s.ws()
	if !s.byte('{') {
		return Payload{}, false
	}
	seen := 0
	s.ws()
	if !s.byte('}') {
		for {
			s.ws()
			key, ok := s.plainString()
			if !ok {
				return Payload{}, false
			}
			s.ws()
			if !s.byte(':') {
				return Payload{}, false
			}
			s.ws()
			var bit int
			switch string(key) {
			case "id":
				bit = fID
				p.ID, ok = s.str()
			case "kind":
				bit = fKind
				var k string
				k, ok = s.str()
				p.Kind = Kind(k)
			case "schema":
				bit = fSchema
				var n uint64
				var neg bool
				n, neg, ok = s.integer()
				// int on 64-bit platforms: at most 18 digits were read, so
				// it fits either way.
				p.Schema = int(n)
				if neg {
					p.Schema = -p.Schema
				}
			case "origin":
				bit = fOrigin
				p.Origin, ok = s.str()
			case "author":
				bit = fAuthor
				p.Author, ok = s.str()
			case "version":
				bit = fVersion
				var neg bool
				p.Version, neg, ok = s.integer()
				ok = ok && !neg
			case "hlc":
				bit = fHLC
				var n uint64
				var neg bool
				n, neg, ok = s.integer()
				ok = ok && !neg
				p.HLC = HLC(n)
			case "audience":
				bit = fAudience
				p.Audience, ok = s.strings()
			case "deleted":
				bit = fDeleted
				p.Deleted, ok = s.boolean()
			case "withdrawn":
				bit = fWithdrawn
				p.Withdrawn, ok = s.boolean()
			case "keep":
				bit = fKeep
				p.Keep, ok = s.strings()
			case "prev":
				bit = fPrev
				p.Prev, ok = s.str()
			case "language":
				bit = fLanguage
				p.Language, ok = s.str()
			case "body":
				bit = fBody
				start := s.i
				ok = s.value(0) && s.b[start] != 'n' // null: leave it to encoding/json
				if ok {
					// encoding/json's RawMessage copies the value's bytes,
					// without the whitespace around it.
					p.Body = append([]byte(nil), s.b[start:s.i]...)
				}
			default:
				// Unknown, or a key encoding/json would match without
				// regard to case: its verdict, not ours.
				return Payload{}, false
			}
			if !ok || seen&bit != 0 {
				return Payload{}, false
			}
			seen |= bit
			s.ws()
			if s.byte('}') {
				break
			}
			if !s.byte(',') {
				return Payload{}, false
			}
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return Payload{}, false
	}
	return p, true
}

// scanner reads JSON from b at i. Its methods return false for anything
// they do not handle, leaving the verdict to encoding/json.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) byte(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// plainString reads a string without escapes or control characters and
// returns its content (aliasing b). The input is valid UTF-8, so such a
// string's content is exactly what encoding/json would decode.
func (s *scanner) plainString() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// str reads a string value. Besides plain strings it decodes the escapes
// json.Marshal writes (\" \\ \n \r \t, \u003c and the like for <, >, &,
// and the rest of \/ \b \f \uXXXX) exactly as encoding/json does; a
// \u escape of a UTF-16 surrogate, which encoding/json pairs up or
// replaces with U+FFFD, is handed back.
func (s *scanner) str() (string, bool) {
	start := s.i
	if b, ok := s.plainString(); ok {
		return string(b), true
	}
	s.i = start
	if !s.byte('"') {
		return "", false
	}
	out := make([]byte, 0, 64)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		s.i++
		if s.i >= len(s.b) {
			return "", false
		}
		e := s.b[s.i]
		s.i++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if len(s.b)-s.i < 4 {
				return "", false
			}
			var r rune
			for _, h := range s.b[s.i : s.i+4] {
				switch {
				case h >= '0' && h <= '9':
					r = r<<4 | rune(h-'0')
				case h >= 'a' && h <= 'f':
					r = r<<4 | rune(h-'a'+10)
				case h >= 'A' && h <= 'F':
					r = r<<4 | rune(h-'A'+10)
				default:
					return "", false
				}
			}
			s.i += 4
			if utf16.IsSurrogate(r) {
				return "", false
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return "", false
}

// strings reads an array of plain strings. "[]" gives an empty, non-nil
// slice, as encoding/json does.
func (s *scanner) strings() ([]string, bool) {
	if !s.byte('[') {
		return nil, false
	}
	out := []string{}
	s.ws()
	if s.byte(']') {
		return out, true
	}
	for {
		s.ws()
		v, ok := s.str()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		s.ws()
		if s.byte(']') {
			return out, true
		}
		if !s.byte(',') {
			return nil, false
		}
	}
}

func (s *scanner) boolean() (bool, bool) {
	rest := s.b[s.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		s.i += 4
		return true, s.endOfLiteral()
	case len(rest) >= 5 && string(rest[:5]) == "false":
		s.i += 5
		return false, s.endOfLiteral()
	}
	return false, false
}

// endOfLiteral reports whether the literal or number just read is not
// followed by more of one (as in "truex" or "12a").
func (s *scanner) endOfLiteral() bool {
	if s.i == len(s.b) {
		return true
	}
	switch s.b[s.i] {
	case ' ', '\t', '\n', '\r', ',', '}', ']':
		return true
	}
	return false
}

// integer reads -?(0|[1-9][0-9]*) with at most 18 digits, so that it fits
// int64 and uint64 alike; a fraction, an exponent or more digits are left
// to encoding/json.
func (s *scanner) integer() (n uint64, neg bool, ok bool) {
	neg = s.byte('-')
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		n = n*10 + uint64(s.b[s.i]-'0')
		s.i++
		if s.i-start > 18 {
			return 0, false, false
		}
	}
	digits := s.i - start
	if digits == 0 || (digits > 1 && s.b[start] == '0') {
		return 0, false, false
	}
	return n, neg, s.endOfLiteral()
}

// value skips one JSON value of any kind, checking its syntax as strictly
// as encoding/json does (strings may hold escapes here, as they are not
// decoded, only checked).
func (s *scanner) value(depth int) bool {
	if s.i >= len(s.b) || depth > maxFastDepth {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		s.i++
		s.ws()
		if s.byte('}') {
			return true
		}
		for {
			s.ws()
			if !s.rawString() {
				return false
			}
			s.ws()
			if !s.byte(':') {
				return false
			}
			s.ws()
			if !s.value(depth + 1) {
				return false
			}
			s.ws()
			if s.byte('}') {
				return true
			}
			if !s.byte(',') {
				return false
			}
		}
	case c == '[':
		s.i++
		s.ws()
		if s.byte(']') {
			return true
		}
		for {
			s.ws()
			if !s.value(depth + 1) {
				return false
			}
			s.ws()
			if s.byte(']') {
				return true
			}
			if !s.byte(',') {
				return false
			}
		}
	case c == '"':
		return s.rawString()
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return s.endOfLiteral()
}

// rawString checks a string, escapes included: \" \\ \/ \b \f \n \r \t
// and \u with four hex digits; no control characters.
func (s *scanner) rawString() bool {
	if !s.byte('"') {
		return false
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			s.i++
			if s.i >= len(s.b) {
				return false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				if len(s.b)-s.i < 4 {
					return false
				}
				for _, h := range s.b[s.i : s.i+4] {
					if !isHex(h) {
						return false
					}
				}
				s.i += 4
			default:
				return false
			}
		default:
			s.i++
		}
	}
	return false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// number checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *scanner) number() bool {
	s.byte('-')
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.digits() == 0:
		return false
	}
	if s.byte('.') && s.digits() == 0 {
		return false
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if !s.byte('+') {
			s.byte('-')
		}
		if s.digits() == 0 {
			return false
		}
	}
	return s.endOfLiteral()
}

func (s *scanner) digits() int {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

// object reads an object whose keys are plain strings, calling field for
// each key with the scanner at its value; field reads the value and
// returns false to hand the whole input back.
func (s *scanner) object(field func(key []byte) bool) bool {
	if !s.byte('{') {
		return false
	}
	s.ws()
	if s.byte('}') {
		return true
	}
	for {
		s.ws()
		key, ok := s.plainString()
		if !ok {
			return false
		}
		s.ws()
		if !s.byte(':') {
			return false
		}
		s.ws()
		if !field(key) {
			return false
		}
		s.ws()
		if s.byte('}') {
			return true
		}
		if !s.byte(',') {
			return false
		}
	}
}

// once marks bit in seen, and reports false if it was set already (a key
// seen twice, which encoding/json merges by rules of its own: hand back).
func once(seen *int, bit int) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// decodeAudit decodes an audit body exactly as DecodeStrict(b, a) would,
// by the same scheme as decodePayload: a fast path for the plain form
// json.Marshal writes, everything else to DecodeStrict.
// FuzzAuditDecodeMatches checks it.
func decodeAudit(b []byte, a *Audit) error {
	if v, ok := fastAudit(b); ok {
		*a = v
		return nil
	}
	*a = Audit{}
	return DecodeStrict(b, a)
}

func fastAudit(b []byte) (a Audit, ok bool) {
	if !utf8.Valid(b) {
		return Audit{}, false
	}
	s := scanner{b: b}
	s.ws()
	seen := 0
	ok = s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "template":
			a.Template, ok = s.str()
			return ok && once(&seen, 1<<0)
		case "subject":
			return s.subject(&a.Subject) && once(&seen, 1<<1)
		case "place":
			a.Place, ok = s.str()
			return ok && once(&seen, 1<<2)
		case "period":
			a.Period, ok = s.str()
			return ok && once(&seen, 1<<3)
		case "conducted_on":
			a.ConductedOn, ok = s.str()
			return ok && once(&seen, 1<<4)
		case "method":
			a.Method, ok = s.str()
			return ok && once(&seen, 1<<5)
		case "auditors":
			return s.auditors(&a.Auditors) && once(&seen, 1<<6)
		case "answers":
			a.Answers, ok = s.answers()
			return ok && once(&seen, 1<<7)
		case "summary":
			return s.summary(&a.Summary) && once(&seen, 1<<8)
		case "status":
			a.Status, ok = s.str()
			return ok && once(&seen, 1<<9)
		}
		return false
	})
	s.ws()
	if !ok || s.i != len(s.b) {
		return Audit{}, false
	}
	return a, true
}

func (s *scanner) subject(v *Subject) bool {
	seen := 0
	return s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "name":
			v.Name, ok = s.str()
			return ok && once(&seen, 1<<0)
		case "kind":
			v.Kind, ok = s.str()
			return ok && once(&seen, 1<<1)
		case "operator_type":
			v.OperatorType, ok = s.str()
			return ok && once(&seen, 1<<2)
		case "delivery_mode":
			v.DeliveryMode, ok = s.str()
			return ok && once(&seen, 1<<3)
		}
		return false
	})
}

func (s *scanner) auditors(v *Auditors) bool {
	seen := 0
	return s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "organisation":
			v.Organisation, ok = s.str()
			return ok && once(&seen, 1<<0)
		case "role":
			v.Role, ok = s.str()
			return ok && once(&seen, 1<<1)
		case "count":
			n, neg, ok := s.integer()
			v.Count = int(n)
			if neg {
				v.Count = -v.Count
			}
			return ok && once(&seen, 1<<2)
		}
		return false
	})
}

func (s *scanner) summary(v *AuditSummary) bool {
	seen := 0
	return s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "going_well":
			v.GoingWell, ok = s.strings()
			return ok && once(&seen, 1<<0)
		case "to_change":
			v.ToChange, ok = s.strings()
			return ok && once(&seen, 1<<1)
		case "community_actions":
			v.CommunityActions, ok = s.strings()
			return ok && once(&seen, 1<<2)
		}
		return false
	})
}

// answers reads the answers map; "{}" gives an empty, non-nil map, as
// encoding/json does. A key given twice is handed back.
func (s *scanner) answers() (map[string]ItemAnswer, bool) {
	m := map[string]ItemAnswer{}
	ok := s.object(func(key []byte) bool {
		if _, dup := m[string(key)]; dup {
			return false
		}
		var it ItemAnswer
		seen := 0
		if !s.object(func(key []byte) bool {
			var ok bool
			switch string(key) {
			case "answer":
				var a string
				a, ok = s.str()
				it.Answer = Answer(a)
				return ok && once(&seen, 1<<0)
			case "note":
				it.Note, ok = s.str()
				return ok && once(&seen, 1<<1)
			case "evidence":
				it.Evidence, ok = s.str()
				return ok && once(&seen, 1<<2)
			case "priority_problem":
				it.PriorityProblem, ok = s.boolean()
				return ok && once(&seen, 1<<3)
			}
			return false
		}) {
			return false
		}
		m[string(key)] = it
		return true
	})
	return m, ok
}
