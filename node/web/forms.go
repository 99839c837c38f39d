package web

import (
	"errors"
	"slices"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
)

// userError reports whether err is the person's to fix (bad input, or a
// change the record's state does not allow) and, if so, files its message
// (the services' own sentence, as the CLI prints it) under its field when
// the form has that field, else under "form".
func (f *form) userError(err error, fields ...string) bool {
	var fe *model.FieldError
	switch {
	case errors.As(err, &fe):
		if slices.Contains(fields, fe.Field) {
			f.Errors[fe.Field] = err.Error()
		} else {
			f.Errors["form"] = err.Error()
		}
	case errors.Is(err, model.ErrInvalid), errors.Is(err, records.ErrNotOwn), errors.Is(err, records.ErrDeleted), errors.Is(err, records.ErrWrongKind):
		f.Errors["form"] = err.Error()
	default:
		return false
	}
	return true
}
