package registry

import (
	"errors"
	"fmt"
)

// Sentinels a refused command wraps, so callers can branch with errors.Is.
// The error's text is one sentence for the person who proposed the command.
var (
	// ErrUnauthorised: the proposer may not make this change (a stranger, a
	// node of a suspended or retired network, a revoked key, a member asking
	// for a steward's change, a wrong invite secret).
	ErrUnauthorised = errors.New("not authorised")
	// ErrBadSignature: the signature does not verify against the proposer's
	// key, or the proposer is not an Ed25519 peer ID.
	ErrBadSignature = errors.New("bad signature")
	// ErrInvalidCommand: the command is malformed or its arguments break a
	// rule (a bad slug, an unknown kind, unknown fields, too many addresses).
	ErrInvalidCommand = errors.New("invalid command")
	// ErrNotFound: the command names a network, node key, invite or template
	// the registry does not hold.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the command is well formed but the registry's current
	// state forbids it (slug taken, invite already used, the last steward,
	// the same template version twice, a replayed command).
	ErrConflict = errors.New("conflict")
	// ErrAlreadyApplied: this very signed command was applied before (its
	// hash is in Seen). It is a conflict too (errors.Is ErrConflict); a
	// proposer whose first answer was lost on the way knows by it that
	// the command took effect.
	ErrAlreadyApplied = fmt.Errorf("%w: already applied", ErrConflict)
	// ErrExpired: an invite past its expiry, or a command issued too long
	// before (or after) the time the log gives it.
	ErrExpired = errors.New("expired")
)

// cmdError is a refusal: a sentence for people, the sentinel for code and,
// when there is one, the underlying error (e.g. a *model.FieldError).
type cmdError struct {
	kind  error
	msg   string
	cause error
}

func (e *cmdError) Error() string { return e.msg }

func (e *cmdError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

func refuse(kind error, format string, args ...any) error {
	return &cmdError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func refuseCause(kind, cause error, format string, args ...any) error {
	return &cmdError{kind: kind, msg: fmt.Sprintf(format, args...), cause: cause}
}
