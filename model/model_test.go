package model

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var (
	testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	testKey = ed25519.NewKeyFromSeed(make([]byte, 32))
)

func testPayload() Payload {
	return Payload{
		ID: NewID(testNow, nil), Kind: KindPriority, Origin: "tanpud", Author: "12D3KooWtest",
		Version: 1, HLC: MakeHLC(testNow.UnixMilli(), 0), Audience: Audience{AudiencePrivate},
		Body: json.RawMessage(`{"kind":"change-needed","title":"Naloxone in pharmacies","importance":5,"achievability":4}`),
	}
}

func TestSealOpenVerify(t *testing.T) {
	p := testPayload()
	env, err := Seal(testKey, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Verify(testKey.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("verify own envelope: %v", err)
	}
	got, err := env.Open()
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != p.ID || got.Version != 1 || got.Schema != SchemaVersion || string(got.Body) != string(p.Body) {
		t.Fatalf("open gave %+v", got)
	}
	// Storage encoding round-trips to the same bytes.
	b, _ := env.MarshalBinary()
	var back Envelope
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if string(back.Payload) != string(env.Payload) || string(back.Sig) != string(env.Sig) || back.Hash() != env.Hash() {
		t.Fatal("binary round trip changed the envelope")
	}
}

func TestVerifyRejectsTampering(t *testing.T) {
	env, _ := Seal(testKey, testPayload())
	pub := testKey.Public().(ed25519.PublicKey)
	tampered := Envelope{Payload: []byte(strings.Replace(string(env.Payload), "Naloxone", "Nalaxone", 1)), Sig: env.Sig}
	if err := tampered.Verify(pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered payload verified: %v", err)
	}
	other := ed25519.NewKeyFromSeed([]byte(strings.Repeat("x", 32)))
	if err := env.Verify(other.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong key verified: %v", err)
	}
	if err := (Envelope{Payload: env.Payload}).Verify(pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("missing signature verified: %v", err)
	}
}

func TestOpenRejectsMalformed(t *testing.T) {
	good, _ := Seal(testKey, testPayload())
	cases := map[string]string{
		"unknown field":  strings.Replace(string(good.Payload), `"kind"`, `"colour":1,"kind"`, 1),
		"trailing data":  string(good.Payload) + `{}`,
		"not json":       `{"id":`,
		"unknown schema": strings.Replace(string(good.Payload), `"schema":1`, `"schema":99`, 1),
		"unknown kind":   strings.Replace(string(good.Payload), `"kind":"priority"`, `"kind":"diary"`, 1),
		"bad id":         strings.Replace(string(good.Payload), good.mustID(), "not-an-id", 1),
		"bad audience":   strings.Replace(string(good.Payload), `["private"]`, `["everyone"]`, 1),
		"no version":     strings.Replace(string(good.Payload), `"version":1`, `"version":0`, 1),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := (Envelope{Payload: []byte(payload)}).Open(); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Open(%s) = %v, want ErrMalformed", payload, err)
			}
		})
	}
}

func (e Envelope) mustID() string {
	var p struct{ ID string }
	json.Unmarshal(e.Payload, &p)
	return p.ID
}

func TestWinsIsDeterministic(t *testing.T) {
	a, b := testPayload(), testPayload()
	b.ID = a.ID
	b.Version = 2
	if !Wins(b, a, "1", "2") || Wins(a, b, "2", "1") {
		t.Fatal("higher version must win")
	}
	b.Version = 1
	b.HLC = a.HLC + 1
	if !Wins(b, a, "1", "2") {
		t.Fatal("later HLC must win at equal version")
	}
	b.HLC = a.HLC
	b.Author = "12D3KooWzzz"
	if !Wins(b, a, "1", "2") || Wins(a, b, "2", "1") {
		t.Fatal("greater author must win at equal version and HLC")
	}
	b.Author = a.Author
	if !Wins(a, b, "2", "1") || Wins(b, a, "1", "2") {
		t.Fatal("greater hash must break the last tie")
	}
}

func TestAudience(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{"private", "private", ""},
		{"members", "members", ""},
		{"network:inpud, region:eeca", "network:inpud,region:eeca", ""},
		{"region:eeca,network:inpud,network:inpud", "network:inpud,region:eeca", ""},
		{"private,members", "", "private cannot be combined"},
		{"network:", "", "does not name a network"},
		{"network:INPUD", "", "does not name a network"},
		{"everyone", "", "is not an audience"},
		{" , ", "", "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, err := ParseAudience(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("ParseAudience(%q) = %v, want error containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || a.String() != tt.want {
				t.Fatalf("ParseAudience(%q) = %q, %v; want %q", tt.in, a, err, tt.want)
			}
		})
	}
	inpud := Reader{Network: "inpud", Region: "global", Member: true}
	eeca := Reader{Network: "enpud", Region: "eeca", Member: true}
	stranger := Reader{Network: "enpud", Region: "eeca", Member: false}
	admits := []struct {
		aud  Audience
		r    Reader
		want bool
	}{
		{nil, inpud, false},
		{Audience{"private"}, inpud, false},
		{Audience{"members"}, inpud, true},
		{Audience{"members"}, stranger, false},
		{Audience{"network:inpud"}, inpud, true},
		{Audience{"network:inpud"}, eeca, false},
		{Audience{"network:inpud", "region:eeca"}, eeca, true},
	}
	for _, tt := range admits {
		if got := tt.aud.Admits(tt.r); got != tt.want {
			t.Errorf("%v.Admits(%+v) = %v, want %v", tt.aud, tt.r, got, tt.want)
		}
	}
}

func TestHLC(t *testing.T) {
	h := MakeHLC(testNow.UnixMilli(), 0)
	if h.Time() != testNow || h.Millis() != testNow.UnixMilli() {
		t.Fatalf("HLC time = %v", h.Time())
	}
	// The clock steps back an hour: readings still increase.
	n1 := h.Next(testNow.Add(-time.Hour))
	n2 := n1.Next(testNow.Add(-time.Hour))
	if !n1.After(h) || !n2.After(n1) {
		t.Fatalf("readings must increase when the wall clock steps back: %d %d %d", h, n1, n2)
	}
	if got := h.Next(testNow.Add(time.Second)); got != MakeHLC(testNow.Add(time.Second).UnixMilli(), 0) {
		t.Fatalf("Next follows the wall clock when it is ahead: %d", got)
	}
	if h.Observe(h+5) != h+5 || (h+5).Observe(h) != h+5 {
		t.Fatal("Observe keeps the later reading")
	}
	if err := MakeHLC(testNow.Add(11*time.Minute).UnixMilli(), 0).CheckDrift(testNow, 10*time.Minute); !errors.Is(err, ErrFuture) {
		t.Fatalf("11 minutes ahead with a 10 minute margin: %v", err)
	}
	if err := MakeHLC(testNow.Add(9*time.Minute).UnixMilli(), 0).CheckDrift(testNow, 10*time.Minute); err != nil {
		t.Fatalf("9 minutes ahead with a 10 minute margin: %v", err)
	}
	if err := MakeHLC(testNow.AddDate(-1, 0, 0).UnixMilli(), 0).CheckDrift(testNow, 10*time.Minute); err != nil {
		t.Fatalf("the past is never too far ahead: %v", err)
	}
	if err := MakeHLC(testNow.AddDate(10, 0, 0).UnixMilli(), 0).CheckDrift(testNow, 10*time.Minute); !errors.Is(err, ErrFuture) {
		t.Fatalf("ten years ahead: %v", err)
	}
	// Ten years back is before Cairn existed: refused as malformed.
	err := MakeHLC(testNow.AddDate(-10, 0, 0).UnixMilli(), 0).CheckDrift(testNow, 10*time.Minute)
	if !errors.Is(err, ErrImplausibleTime) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("ten years back: %v", err)
	}
	if err := MakeHLC(TimestampFloor.UnixMilli(), 0).CheckDrift(testNow, 10*time.Minute); err != nil {
		t.Fatalf("dated at the floor: %v", err)
	}
}

func TestIDs(t *testing.T) {
	a, b := NewID(testNow, nil), NewID(testNow.Add(time.Millisecond), nil)
	if err := ValidateID(a); err != nil {
		t.Fatal(err)
	}
	if a >= b {
		t.Fatalf("ids must sort by time: %s >= %s", a, b)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("I", 26), a + "X"} {
		if ValidateID(bad) == nil {
			t.Errorf("ValidateID(%q) accepted", bad)
		}
	}
}

func TestTextChecks(t *testing.T) {
	tests := []struct {
		name, text, wantErr string
		allow               bool
	}{
		{"plain", "Staff were respectful", "", false},
		{"newlines and tabs", "line one\n\tline two", "", false},
		{"date is no phone", "Visited on 2026-03-31 and 31/03/2026", "", false},
		{"year range is no phone", "Strategy 2021-2026", "", false},
		{"email", "ask maria@example.org", "e-mail address", false},
		{"phone", "call +255 712 345 678", "phone number", false},
		{"phone allowed", "the service's line +255 712 345 678", "", true},
		{"control char", "bad\x07bell", "control character", false},
		{"invalid utf-8", "bad \xff byte", "not valid UTF-8", false},
		{"too long", strings.Repeat("a", LimitShort+1), "at most 200", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := textCheck{allowIdentifiers: tt.allow}
			c.text("place", tt.text, LimitShort, false)
			if tt.wantErr == "" {
				if c.err != nil {
					t.Fatalf("refused: %v", c.err)
				}
				return
			}
			if c.err == nil || !strings.Contains(c.err.Error(), tt.wantErr) || !strings.HasPrefix(c.err.Error(), "place: ") {
				t.Fatalf("got %v, want an error naming the field and containing %q", c.err, tt.wantErr)
			}
		})
	}
	c := textCheck{}
	c.text("note", "call 0712 345 678", LimitNote, false)
	if !errors.Is(c.err, ErrIdentifier) || !strings.Contains(c.err.Error(), "keeps no personal identifiers") {
		t.Fatalf("identifier refusal must explain why: %v", c.err)
	}
}

func testTemplate() Template {
	return Template{
		ID: "iduit-bg/3.1", Version: "2017", Title: "NSP", Language: "en",
		Sections: []Section{{ID: "3.1", Title: "NSP", Items: []Item{
			{ID: "3.1.1", Text: "a", Scope: ScopeService}, {ID: "3.1.2", Text: "b", Scope: ScopeService},
			{ID: "3.1.3", Text: "c", Scope: ScopeService}, {ID: "3.1.4", Text: "d", Scope: ScopeService},
			{ID: "3.1.5", Text: "e", Scope: ScopeService},
		}}},
	}
}

func TestAuditScores(t *testing.T) {
	tm := testTemplate()
	a := Audit{Template: tm.Ref(), Subject: Subject{Name: "drop-in"}, Place: "Dar es Salaam", Period: "2026", Answers: map[string]ItemAnswer{
		"3.1.1": {Answer: AnswerYes}, "3.1.2": {Answer: AnswerPartly}, "3.1.3": {Answer: AnswerNo},
		"3.1.4": {Answer: AnswerNA}, "3.1.5": {Answer: AnswerUnknown},
	}}
	if err := a.Validate(tm, false); err != nil {
		t.Fatal(err)
	}
	s := a.Scores(tm)
	if len(s) != 1 || s[0].Scored != 3 || s[0].Answered != 5 || s[0].Items != 5 || s[0].Score != 0.5 {
		t.Fatalf("scores = %+v; want (1 + 0.5 + 0) / 3 = 0.5 over 3 scored items", s)
	}
	a.Answers["9.9"] = ItemAnswer{Answer: AnswerYes}
	if err := a.Validate(tm, false); err == nil || !strings.Contains(err.Error(), `"9.9" is not an item`) {
		t.Fatalf("unknown item: %v", err)
	}
	delete(a.Answers, "9.9")
	a.Answers["3.1.1"] = ItemAnswer{Answer: "maybe"}
	if err := a.Validate(tm, false); err == nil || !strings.Contains(err.Error(), "use yes, partly, no, unknown or na") {
		t.Fatalf("bad answer: %v", err)
	}
}

func TestParseAnswer(t *testing.T) {
	for in, want := range map[string]Answer{"yes": AnswerYes, "Partly": AnswerPartly, "no": AnswerNo, "unknown": AnswerUnknown, "na": AnswerNA, "n/a": AnswerNA, "not-applicable": AnswerNA} {
		if got, err := ParseAnswer(in); err != nil || got != want {
			t.Errorf("ParseAnswer(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseAnswer("maybe"); err == nil {
		t.Error("maybe accepted")
	}
}

func TestPriorityValidate(t *testing.T) {
	ok := Priority{Kind: PriorityChange, Title: "Naloxone in pharmacies", Importance: 5, Achievability: 4}
	if err := ok.Validate(false); err != nil {
		t.Fatal(err)
	}
	if !ok.TopRight() {
		t.Error("5/4 is in the top-right quadrant")
	}
	for name, tc := range map[string]struct {
		p    Priority
		want string
	}{
		"importance 0":    {Priority{Kind: PriorityChange, Title: "x", Importance: 0, Achievability: 3}, "importance: 0 is out of range"},
		"achievability 6": {Priority{Kind: PriorityChange, Title: "x", Importance: 3, Achievability: 6}, "achievability: 6 is out of range"},
		"no title":        {Priority{Kind: PriorityChange, Importance: 3, Achievability: 3}, "title: is required"},
		"bad kind":        {Priority{Kind: "wish", Title: "x", Importance: 3, Achievability: 3}, "kind:"},
		"bad status":      {Priority{Kind: PriorityAction, Title: "x", Importance: 3, Achievability: 3, Status: "done"}, "status:"},
	} {
		if err := tc.p.Validate(false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	for in, want := range map[string]PriorityKind{"change": PriorityChange, "achievement": PriorityAchievement, "action": PriorityAction, "community-action": PriorityAction} {
		if got, err := ParsePriorityKind(in); err != nil || got != want {
			t.Errorf("ParsePriorityKind(%q) = %q, %v", in, got, err)
		}
	}
}

func TestReportValidate(t *testing.T) {
	r := Report{Committee: Committee{Name: "OAT clinic committee"}, MeetingDate: "2026-02-03", Service: "OAT clinic",
		IssuesRaised:      []Issue{{Description: "Doses too low", Status: "open"}},
		CommoditiesReview: []CommodityReview{{Item: "insulin syringes 1 ml"}}}
	if err := r.Validate(false); err != nil {
		t.Fatal(err)
	}
	bad := r
	bad.MeetingDate = "2026-02-30"
	if err := bad.Validate(false); err == nil || !strings.Contains(err.Error(), "date:") {
		t.Fatalf("bad date: %v", err)
	}
	bad = r
	bad.IssuesRaised = make([]Issue, LimitList+1)
	if err := bad.Validate(false); err == nil || !strings.Contains(err.Error(), "at most 100") {
		t.Fatalf("too many issues: %v", err)
	}
}

func TestTemplateCompatibility(t *testing.T) {
	v1 := testTemplate()
	v2 := testTemplate()
	v2.Version = "2027"
	v2.Sections[0].Items = append(v2.Sections[0].Items, Item{ID: "3.1.6", Text: "f", Scope: ScopeService})
	if err := v2.CompatibleWith(v1); err != nil {
		t.Fatalf("adding an item must be allowed: %v", err)
	}
	v3 := testTemplate()
	v3.Version = "2028"
	v3.Sections[0].Items = v3.Sections[0].Items[1:]
	if err := v3.CompatibleWith(v1); err == nil || !strings.Contains(err.Error(), "3.1.1") {
		t.Fatalf("dropping an item must be refused, naming it: %v", err)
	}
}

func TestValidateBody(t *testing.T) {
	find := func(ref string) (Template, bool) {
		tm := testTemplate()
		return tm, ref == tm.Ref()
	}
	p := testPayload()
	if err := p.ValidateBody(find, false); err != nil {
		t.Fatal(err)
	}
	p.Body = json.RawMessage(`{"kind":"change-needed","title":"x","importance":5,"achievability":4,"colour":"red"}`)
	if err := p.ValidateBody(find, false); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown body field: %v", err)
	}
	p.Deleted, p.Body = true, nil
	if err := p.ValidateBody(find, false); err != nil {
		t.Fatalf("tombstone: %v", err)
	}
}

// FuzzOpen: decoding arbitrary bytes never panics, and anything Open
// accepts re-opens to the same payload.
func FuzzOpen(f *testing.F) {
	env, _ := Seal(testKey, testPayload())
	f.Add(env.Payload)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"01M84ER6Z6X9PRPPN237Q29V6G","kind":"audit","schema":1,"origin":"x","author":"y","version":1,"hlc":1,"audience":["members"]}`))
	// Invalid UTF-8 in a string (0xff): encoding/json would read it as
	// U+FFFD, so Open must refuse it instead.
	f.Add([]byte("{\"id\":\"01M84ER6Z6X9PRPPN237Q29V6G\",\"kind\":\"audit\",\"schema\":1,\"origin\":\"x\xff\",\"author\":\"y\",\"version\":1,\"hlc\":1,\"audience\":[\"members\"]}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			if _, err := (Envelope{Payload: b}).Open(); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Open accepted invalid UTF-8: %v", err)
			}
			return
		}
		e := Envelope{Payload: b}
		p, err := e.Open()
		if err != nil {
			return
		}
		if p.Audience.Validate() != nil || ValidateID(p.ID) != nil {
			t.Fatalf("Open accepted an invalid payload: %+v", p)
		}
		var bin Envelope
		enc, _ := Envelope{Payload: b, Sig: make([]byte, ed25519.SignatureSize)}.MarshalBinary()
		if err := bin.UnmarshalBinary(enc); err != nil || string(bin.Payload) != string(b) {
			t.Fatalf("binary round trip failed: %v", err)
		}
	})
}

// FuzzParseAudience: parsing never panics, and what it accepts validates
// and prints back to itself.
func FuzzParseAudience(f *testing.F) {
	for _, s := range []string{"private", "members", "network:inpud,region:eeca", "network:", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAudience(s)
		if err != nil {
			return
		}
		if a.Validate() != nil {
			t.Fatalf("accepted %q but it does not validate", s)
		}
		b, err := ParseAudience(a.String())
		if err != nil || b.String() != a.String() {
			t.Fatalf("%q printed as %q, which parses to %q, %v", s, a.String(), b.String(), err)
		}
	})
}

// TestOpenRefusesInvalidUTF8: a correctly signed payload whose bytes are
// not valid UTF-8 is refused as malformed, not read as U+FFFD.
func TestOpenRefusesInvalidUTF8(t *testing.T) {
	env, err := Seal(testKey, testPayload())
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(env.Payload), `"origin":"`) + len(`"origin":"`)
	bad := append([]byte{}, env.Payload...)
	bad[i] = 0xff
	forged := Envelope{Payload: bad, Sig: ed25519.Sign(testKey, bad)}
	if err := forged.Verify(testKey.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("the forged envelope is signed: %v", err)
	}
	if _, err := forged.Open(); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("Open of a payload with invalid UTF-8: %v", err)
	}
	var v map[string]any
	if err := DecodeStrict(bad, &v); err == nil {
		t.Fatal("DecodeStrict accepted invalid UTF-8")
	}
}
