package model

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Kind is the kind of a record.
type Kind string

// The record kinds (DOMAIN §2–4).
const (
	KindAudit    Kind = "audit"
	KindPriority Kind = "priority"
	KindReport   Kind = "committee-report"
)

// Kinds lists every record kind in display order.
var Kinds = []Kind{KindAudit, KindPriority, KindReport}

// ParseKind accepts a kind's name, and "report" for committee-report.
func ParseKind(s string) (Kind, error) {
	switch s {
	case "audit", "audits":
		return KindAudit, nil
	case "priority", "priorities":
		return KindPriority, nil
	case "committee-report", "report", "reports":
		return KindReport, nil
	}
	return "", &FieldError{Field: "kind", Msg: fmt.Sprintf("%q is not a record kind: use audit, priority or report", s)}
}

// SchemaVersion is the payload schema this code writes. Readers refuse
// versions they do not know instead of guessing.
const SchemaVersion = 1

// Payload is what the author signs: one version of one record. It is
// encoded once, by Seal, and from then on only the signed bytes travel and
// are stored; nobody re-encodes a payload, so verification never depends on
// a canonical encoding.
type Payload struct {
	ID       string   `json:"id"`
	Kind     Kind     `json:"kind"`
	Schema   int      `json:"schema"`
	Origin   string   `json:"origin"`  // slug of the network that owns the record
	Author   string   `json:"author"`  // peer ID of the node that signed this version
	Version  uint64   `json:"version"` // 1 for the first version, +1 for each after
	HLC      HLC      `json:"hlc"`
	Audience Audience `json:"audience"`
	Deleted  bool     `json:"deleted,omitempty"`
	// Withdrawn marks a version with no body that takes the record back
	// from readers its new audience leaves out: it goes to everyone the
	// old audience admitted (Audience), and every holder that Keep does
	// not admit drops the bodies of the versions before it, keeping this
	// signed version as the reason. The origin writes it when it narrows
	// a record's audience, followed by the full version for Keep.
	Withdrawn bool            `json:"withdrawn,omitempty"`
	Keep      Audience        `json:"keep,omitempty"` // who may still hold the body; only with Withdrawn
	Prev      string          `json:"prev,omitempty"` // hash of the version this one follows
	Language  string          `json:"language,omitempty"`
	Body      json.RawMessage `json:"body,omitempty"`
}

// Envelope is the signed, immutable bytes of one version of a record.
type Envelope struct {
	Payload []byte // exactly the bytes that were signed
	Sig     []byte // Ed25519 signature over Payload
}

// Hash identifies this version: hex SHA-256 over the payload bytes. (Ed25519
// signatures are deterministic, so the payload alone names a version.)
func (e Envelope) Hash() string {
	sum := sha256.Sum256(e.Payload)
	return hex.EncodeToString(sum[:])
}

// Errors an envelope check can return; callers count rejections by them.
var (
	ErrBadSignature = errors.New("signature does not match the payload and author key")
	ErrMalformed    = errors.New("malformed envelope")
	ErrTooLarge     = errors.New("envelope too large")
	ErrFuture       = errors.New("timestamp too far ahead of this node's clock")
)

// Seal encodes p, signs the bytes with key and returns the envelope.
func Seal(key ed25519.PrivateKey, p Payload) (Envelope, error) {
	if p.Schema == 0 {
		p.Schema = SchemaVersion
	}
	b, err := json.Marshal(p)
	if err != nil {
		return Envelope{}, fmt.Errorf("encode record %s: %w", p.ID, err)
	}
	if len(b) > LimitPayload {
		return Envelope{}, fmt.Errorf("record %s is %d bytes encoded; at most %d are allowed: %w", p.ID, len(b), LimitPayload, ErrTooLarge)
	}
	return Envelope{Payload: b, Sig: ed25519.Sign(key, b)}, nil
}

// Verify checks the signature against the author's public key, under the
// ZIP-215 rules every envelope check uses, one at a time or in batches
// (VerifyBatch; see verify.go).
func (e Envelope) Verify(pub ed25519.PublicKey) error {
	if !verifySig(pub, e.Payload, e.Sig) {
		return ErrBadSignature
	}
	return nil
}

// Open decodes the payload strictly: invalid UTF-8, unknown fields,
// trailing data, an unknown schema or a missing id, kind or origin are
// refused.
//
// Invalid UTF-8 is refused before decoding because encoding/json would
// silently turn each invalid byte into U+FFFD: the payload would then say
// something other than its signed bytes do, and two envelopes with
// different bytes (and hashes) would open to the same text.
func (e Envelope) Open() (Payload, error) {
	var p Payload
	if len(e.Payload) > LimitPayload {
		return p, ErrTooLarge
	}
	if !utf8.Valid(e.Payload) {
		return p, fmt.Errorf("%w: the payload is not valid UTF-8", ErrMalformed)
	}
	// decodePayload is DecodeStrict, exactly, with a fast path for the
	// payloads Seal writes (fastdecode.go).
	if err := decodePayload(e.Payload, &p); err != nil {
		return p, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if p.Schema != SchemaVersion {
		return p, fmt.Errorf("%w: schema %d is not one this node reads (it reads %d)", ErrMalformed, p.Schema, SchemaVersion)
	}
	if err := ValidateID(p.ID); err != nil {
		return p, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch p.Kind {
	case KindAudit, KindPriority, KindReport:
	default:
		return p, fmt.Errorf("%w: unknown kind %q", ErrMalformed, p.Kind)
	}
	if p.Origin == "" || p.Author == "" || p.Version == 0 {
		return p, fmt.Errorf("%w: origin, author and version are required", ErrMalformed)
	}
	if err := p.Audience.Validate(); err != nil {
		return p, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case p.Withdrawn && p.Deleted:
		return p, fmt.Errorf("%w: a version is either withdrawn or deleted, not both", ErrMalformed)
	case p.Withdrawn && len(p.Keep) == 0:
		return p, fmt.Errorf("%w: a withdrawn version names who keeps the record (keep)", ErrMalformed)
	case !p.Withdrawn && len(p.Keep) != 0:
		return p, fmt.Errorf("%w: only a withdrawn version names who keeps the record (keep)", ErrMalformed)
	}
	if err := p.Keep.Validate(); err != nil {
		return p, fmt.Errorf("%w: keep: %v", ErrMalformed, err)
	}
	return p, nil
}

// Retracts reports whether this version takes the record's body back from
// holders: a deletion takes it back from everyone, a withdrawal from
// everyone Keep does not admit. The origin network keeps its own history.
func (p Payload) Retracts() bool { return p.Deleted || p.Withdrawn }

// TakesBackFrom reports whether a holder described by r, of another
// network than the origin, must drop the bodies of the versions before p.
func (p Payload) TakesBackFrom(r Reader) bool {
	if !p.Retracts() || r.Network == p.Origin {
		return false
	}
	return p.Deleted || !p.Keep.Admits(r)
}

// DecodeStrict decodes one JSON value from b into v, refusing invalid
// UTF-8 (which encoding/json would silently replace with U+FFFD), unknown
// fields and trailing data: for anything that comes from outside.
func DecodeStrict(b []byte, v any) error {
	if !utf8.Valid(b) {
		return errors.New("the JSON is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	// Only JSON whitespace may follow (what Token's io.EOF means, without
	// the cost of reading a token).
	for _, c := range b[dec.InputOffset():] {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return errors.New("trailing data after the JSON value")
		}
	}
	return nil
}

// MarshalBinary encodes the envelope for storage: uvarint payload length,
// payload, signature.
func (e Envelope) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, binary.MaxVarintLen64+len(e.Payload)+len(e.Sig))
	b = binary.AppendUvarint(b, uint64(len(e.Payload)))
	b = append(b, e.Payload...)
	return append(b, e.Sig...), nil
}

// UnmarshalBinary is the inverse of MarshalBinary. It copies nothing: the
// envelope aliases b.
func (e *Envelope) UnmarshalBinary(b []byte) error {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) || n > LimitPayload {
		return fmt.Errorf("%w: bad payload length", ErrMalformed)
	}
	e.Payload = b[k : k+int(n)]
	e.Sig = b[k+int(n):]
	if len(e.Sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature is %d bytes, want %d", ErrMalformed, len(e.Sig), ed25519.SignatureSize)
	}
	return nil
}

// WireEnvelope is the JSON form of an envelope in exports and the API: the
// payload travels as base64 of the exact signed bytes.
type WireEnvelope struct {
	ID      string `json:"id"`
	Payload []byte `json:"payload"`
	Sig     []byte `json:"sig"`
}

// Wire returns the JSON form, with the record id alongside for readers.
func (e Envelope) Wire(id string) WireEnvelope {
	return WireEnvelope{ID: id, Payload: e.Payload, Sig: e.Sig}
}

// Envelope converts back from the JSON form.
func (w WireEnvelope) Envelope() Envelope { return Envelope{Payload: w.Payload, Sig: w.Sig} }

// Wins reports whether version a wins over b when both are versions of one
// record: higher version, then later HLC, then the greater author ID, then
// the greater hash. Every node picks the same winner without coordination.
func Wins(a, b Payload, aHash, bHash string) bool {
	if a.Version != b.Version {
		return a.Version > b.Version
	}
	if a.HLC != b.HLC {
		return a.HLC.After(b.HLC)
	}
	if a.Author != b.Author {
		return a.Author > b.Author
	}
	return aHash > bHash
}
