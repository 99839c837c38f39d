package federation

import "github.com/inpud/cairn/model"

// strictUnmarshal decodes invite codes and join requests, which come from
// outside: unknown fields and trailing data are refused.
func strictUnmarshal(b []byte, v any) error { return model.DecodeStrict(b, v) }

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
