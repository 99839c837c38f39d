package model

import "testing"

func TestDecodeStrictTrailing(t *testing.T) {
	type v struct {
		A int `json:"a"`
	}
	for in, ok := range map[string]bool{
		`{"a":1}`:          true,
		"{\"a\":1} \t\r\n": true,
		`{"a":1}{}`:        false,
		`{"a":1} x`:        false,
		`{"a":1}]`:         false,
		`{"a":1} 2`:        false,
		`{"a":1,"b":2}`:    false, // unknown field
		`{"a":1`:           false,
	} {
		var x v
		if err := DecodeStrict([]byte(in), &x); (err == nil) != ok {
			t.Errorf("DecodeStrict(%q): %v; want ok %v", in, err, ok)
		}
	}
}
