package model

import (
	"encoding/json"
	"fmt"
)

// TemplateFinder looks up a checklist template by its versioned reference.
type TemplateFinder func(ref string) (Template, bool)

// DecodeBody decodes a payload body strictly into its kind's type
// (*Audit, *Priority or *Report).
func DecodeBody(kind Kind, raw json.RawMessage) (any, error) {
	var v any
	switch kind {
	case KindAudit:
		v = &Audit{}
	case KindPriority:
		v = &Priority{}
	case KindReport:
		v = &Report{}
	default:
		return nil, fmt.Errorf("%w: unknown kind %q", ErrMalformed, kind)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: a %s needs a body", ErrMalformed, kind)
	}
	var err error
	if a, ok := v.(*Audit); ok {
		// Exactly DecodeStrict, with a fast path (fastdecode.go).
		err = decodeAudit(raw, a)
	} else {
		err = DecodeStrict(raw, v)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s body: %v", ErrMalformed, kind, err)
	}
	return v, nil
}

// ValidateBody decodes and validates a payload's body. Tombstones and
// withdrawals carry no body. Records received from elsewhere are checked with allowIdentifiers
// set: whether free text may carry one was the author's decision, and
// refusing it here would only lose data the author chose to keep.
func (p Payload) ValidateBody(find TemplateFinder, allowIdentifiers bool) error {
	_, err := p.CheckBody(find, allowIdentifiers)
	return err
}

// CheckBody is ValidateBody, and also returns the decoded body (as
// DecodeBody does; nil for a version that carries none) so a caller need
// not decode it again.
func (p Payload) CheckBody(find TemplateFinder, allowIdentifiers bool) (any, error) {
	if p.Retracts() {
		if len(p.Body) != 0 {
			return nil, fmt.Errorf("%w: a deleted or withdrawn version carries no body", ErrMalformed)
		}
		return nil, nil
	}
	v, err := DecodeBody(p.Kind, p.Body)
	if err != nil {
		return nil, err
	}
	switch b := v.(type) {
	case *Audit:
		t, ok := find(b.Template)
		if !ok {
			return nil, &FieldError{Field: "template", Msg: fmt.Sprintf("%q is not a template this node knows (cairn template list shows them)", truncate(b.Template, 60))}
		}
		err = b.Validate(t, allowIdentifiers)
	case *Priority:
		err = b.Validate(allowIdentifiers)
	case *Report:
		err = b.Validate(allowIdentifiers)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}
