package model

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// fuzzSeeds are payloads of every form Seal writes (an audit like the sync
// benchmark's, a priority, a withdrawal, a deletion), and hand-made ones
// at the corners where encoding/json has rules of its own.
func fuzzSeeds(t testing.TB) [][]byte {
	audit, err := json.Marshal(Audit{
		Template: "iduit-bg/3.2@2017", Subject: Subject{Name: "City NSP drop-in \u00e9\u4e2d", Kind: "service"},
		Place: "Sofia", Period: "2026-Q3", Method: "visit", Status: "final",
		Auditors: Auditors{Organisation: "Peer network", Role: "peer", Count: 3},
		Answers: map[string]ItemAnswer{
			"1.1": {Answer: AnswerYes, Note: "needles \"and\" <syringes> & pipes\n", Evidence: "observation"},
			"1.2": {Answer: AnswerPartly, PriorityProblem: true},
			"1.3": {Answer: AnswerNA},
		},
		Summary: AuditSummary{GoingWell: []string{"a", "b"}, ToChange: []string{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	base := testPayload()
	var out [][]byte
	for _, p := range []Payload{
		base,
		{ID: base.ID, Kind: KindAudit, Schema: 1, Origin: "inpud", Author: "12D3KooWorigin", Version: 7, HLC: MakeHLC(testNow.UnixMilli(), 65535),
			Audience: Audience{"members", "network:x", "region:eeca"}, Prev: "ab12", Language: "bg", Body: audit},
		{ID: base.ID, Kind: KindReport, Origin: "x", Author: "y", Version: 2, HLC: 1, Audience: Audience{"members"}, Withdrawn: true, Keep: Audience{"network:x"}},
		{ID: base.ID, Kind: KindReport, Origin: "x", Author: "y", Version: 3, HLC: 2, Audience: Audience{"members"}, Deleted: true},
	} {
		env, err := Seal(testKey, p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, env.Payload)
	}
	for _, s := range []string{
		`{}`, ` {} `, `{"id":"a","id":"b"}`, `{"ID":"a"}`, `{"Id":"a","id":"b"}`, `{"iD":"a"}`,
		`{"audience":["a"],"audience":["b","c"]}`, `{"audience":["a","b"],"audience":["c"]}`, `{"keep":null}`,
		`{"body":null}`, `{"body": 1.5e3 }`, `{"body":"x\u00e9"}`, `{"body":[1,{"a":[]}]}`, `{"body":{"a":1,"a":2}}`,
		`{"schema":1.0}`, `{"schema":-0}`, `{"schema":1e0}`, `{"version":-1}`, `{"version":18446744073709551615}`,
		`{"version":18446744073709551616}`, `{"hlc":01}`, `{"schema":99999999999999999999}`, `{"deleted":null}`,
		`{"deleted":true,"deleted":false}`, `{"id":"\u0041"}`, `{"id":"a\"b"}`, "{\"id\":\"\xff\"}", `{"x":1}`,
		`{"kind":"audit"} {}`, `{"kind":"audit"}  ` + "\n", `{"body":{}}x`, `{"body":tru}`, `{"body":[1,]}`,
		`{"body":"\ud800"}`, `{"body":"\x"}`, `{"body":-}`, `{"body":01}`, `{"body":1.}`, `{"body":1e}`,
		"{\"body\":\"a\tb\"}", `{"id":"a\u003cb\n\"\/\u00e9\\"}`, `{"id":"\uD83D\uDE00"}`, `{"id":"\ud800"}`, `{"origin":"\u0000\b\f\r\t"}`,
		`{"audience":["\u0041",""]}`, `{"prev":"\x"}`, `{"prev":"\u12"}`, `{"language":"\uFFFD\uffff"}`, `{"language":"ǅ"}`, `{"ſchema":1}`, "{\"\u212aind\":\"audit\"}", "{\"\u212aeep\":[\"members\"]}", `{"kınd":"audit"}`, `{"body":[[[[[[[[]]]]]]]]}`,
	} {
		out = append(out, []byte(s))
	}
	return out
}

// FuzzPayloadDecodeMatches: for any bytes, decodePayload (the fast path
// with its hand-back) and DecodeStrict agree on accept or refuse, and on
// the decoded payload when both accept; and whatever the fast path itself
// accepts, DecodeStrict accepts with the same result.
func FuzzPayloadDecodeMatches(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkPayloadDecode(t, b)
	})
}

func checkPayloadDecode(t *testing.T, b []byte) {
	t.Helper()
	var want, got Payload
	werr := DecodeStrict(b, &want)
	gerr := decodePayload(b, &got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: DecodeStrict says %v, decodePayload says %v", b, werr, gerr)
	}
	if werr == nil && !reflect.DeepEqual(want, got) {
		t.Fatalf("%q: DecodeStrict gives\n%#v\ndecodePayload gives\n%#v", b, want, got)
	}
	if fast, ok := fastPayload(b); ok {
		if werr != nil {
			t.Fatalf("%q: the fast path accepted what DecodeStrict refuses (%v)", b, werr)
		}
		if !reflect.DeepEqual(want, fast) {
			t.Fatalf("%q: DecodeStrict gives\n%#v\nthe fast path gives\n%#v", b, want, fast)
		}
	}
}

// TestPayloadDecodeSeeds runs the differential check on the seeds, and
// shows that the fast path itself takes every payload Seal writes (else
// it would be correct but no faster).
func TestPayloadDecodeSeeds(t *testing.T) {
	seeds := fuzzSeeds(t)
	for i, b := range seeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkPayloadDecode(t, b) })
	}
	for _, b := range seeds[:4] {
		if _, ok := fastPayload(b); !ok {
			t.Errorf("the fast path hands back a payload Seal wrote: %s", b)
		}
	}
}

func BenchmarkPayloadDecode(b *testing.B) {
	payload := fuzzSeeds(b)[1]
	b.Run("DecodeStrict", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for range b.N {
			var p Payload
			if err := DecodeStrict(payload, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodePayload", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for range b.N {
			var p Payload
			if err := decodePayload(payload, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// auditSeeds are audit bodies as json.Marshal writes them, and hand-made
// ones at encoding/json's corners.
func auditSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, a := range []Audit{
		{Template: "iduit-bg/3.2@2017", Subject: Subject{Name: "OAT clinic 7", Kind: "service"}, Place: "Region 3", Period: "2026", Status: "final",
			Answers: map[string]ItemAnswer{"1.1": {Answer: AnswerYes, Note: "observed during the visit; staff asked"}, "1.2": {Answer: AnswerNo, Note: "observed during the visit; staff asked"}}},
		{Template: "t/1", Subject: Subject{Name: "n \u00e9 \"q\"", Kind: "programme", OperatorType: "NGO", DeliveryMode: "outreach"}, Place: "p", Period: "q",
			ConductedOn: "2026-01-02", Method: "group", Auditors: Auditors{Organisation: "o", Role: "r", Count: 12},
			Answers: map[string]ItemAnswer{"a": {Answer: AnswerNA, Evidence: "survey", PriorityProblem: true}},
			Summary: AuditSummary{GoingWell: []string{"x"}, ToChange: []string{"y", "z"}, CommunityActions: []string{}}},
		{},
	} {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	for _, s := range []string{
		`{"answers":{}}`, `{"answers":null}`, `{"answers":{"a":{"answer":"yes"},"a":{"note":"n"}}}`, `{"Answers":{}}`,
		`{"subject":{"name":"a"},"subject":{"kind":"b"}}`, `{"subject":null}`, `{"summary":{"going_well":null}}`,
		`{"auditors":{"count":-3}}`, `{"auditors":{"count":1.0}}`, `{"auditors":{"count":9999999999999999999}}`,
		`{"answers":{"a":{"answer":"yes","priority_problem":true,"priority_problem":false}}}`, `{"answers":{"\u0061":{}}}`,
		`{"answers":{"a":{"ANSWER":"yes"}}}`, `{"answers":{"a":{}}} x`, `{"answers":{"a":{"note":"x \u003c \u0026 \"q\"\n"}}}`, `{"place":"\udc00"}`, `{"template":"ſ"}`, "{\"\u017fummary\":{}}", "{\"answers\":{\"a\":{\"\u212a\":1}}}", `{"summary":{"to_change":["a",]}}`,
	} {
		out = append(out, []byte(s))
	}
	return out
}

// FuzzAuditDecodeMatches is FuzzPayloadDecodeMatches for audit bodies.
func FuzzAuditDecodeMatches(f *testing.F) {
	for _, s := range auditSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkAuditDecode(t, b)
	})
}

func checkAuditDecode(t *testing.T, b []byte) {
	t.Helper()
	var want, got Audit
	werr := DecodeStrict(b, &want)
	gerr := decodeAudit(b, &got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: DecodeStrict says %v, decodeAudit says %v", b, werr, gerr)
	}
	if werr == nil && !reflect.DeepEqual(want, got) {
		t.Fatalf("%q: DecodeStrict gives\n%#v\ndecodeAudit gives\n%#v", b, want, got)
	}
	if fast, ok := fastAudit(b); ok {
		if werr != nil {
			t.Fatalf("%q: the fast path accepted what DecodeStrict refuses (%v)", b, werr)
		}
		if !reflect.DeepEqual(want, fast) {
			t.Fatalf("%q: DecodeStrict gives\n%#v\nthe fast path gives\n%#v", b, want, fast)
		}
	}
}

func TestAuditDecodeSeeds(t *testing.T) {
	seeds := auditSeeds(t)
	for i, b := range seeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkAuditDecode(t, b) })
	}
	for _, b := range seeds[:3] {
		if _, ok := fastAudit(b); !ok {
			t.Errorf("the fast path hands back an audit json.Marshal wrote: %s", b)
		}
	}
}

func BenchmarkAuditDecode(b *testing.B) {
	body := auditSeeds(b)[0]
	b.Run("DecodeStrict", func(b *testing.B) {
		for range b.N {
			var a Audit
			if err := DecodeStrict(body, &a); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodeAudit", func(b *testing.B) {
		for range b.N {
			var a Audit
			if err := decodeAudit(body, &a); err != nil {
				b.Fatal(err)
			}
		}
	})
}
