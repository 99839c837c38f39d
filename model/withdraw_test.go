package model

import (
	"errors"
	"slices"
	"testing"
)

func TestAudienceUnionAndCovers(t *testing.T) {
	a := func(s ...string) Audience { return Audience(s) }
	if got := a("network:b", "region:eeca").Union(a("network:a", "network:b")); !slices.Equal(got, a("network:a", "network:b", "region:eeca")) {
		t.Errorf("union: %v", got)
	}
	if got := a("private").Union(a("private")); !got.IsPrivate() {
		t.Errorf("union of private: %v", got)
	}
	if got := a("members").Union(a("private")); !slices.Equal(got, a("members")) {
		t.Errorf("union with private: %v", got)
	}
	for _, c := range []struct {
		a, b Audience
		want bool
	}{
		{a("members"), a("network:x", "region:r"), true},
		{a("network:x", "region:r"), a("network:x"), true},
		{a("network:x"), a("network:x", "region:r"), false},
		{a("network:x"), a("members"), false},
		{a("private"), a("private"), true},
		{a("private"), a("network:x"), false},
		{a("network:x"), a("private"), true},
	} {
		if got := c.a.Covers(c.b); got != c.want {
			t.Errorf("%v covers %v: %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestWithdrawnVersions(t *testing.T) {
	open := func(p Payload) error {
		env, err := Seal(testKey, p)
		if err != nil {
			return err
		}
		_, err = env.Open()
		return err
	}
	w := testPayload()
	w.Version, w.Body, w.Audience = 3, nil, Audience{AudienceMembers}
	w.Withdrawn, w.Keep = true, Audience{"network:inpud"}
	if err := open(w); err != nil {
		t.Fatalf("a withdrawn version: %v", err)
	}
	for name, change := range map[string]func(*Payload){
		"withdrawn and deleted":   func(p *Payload) { p.Deleted = true },
		"withdrawn without keep":  func(p *Payload) { p.Keep = nil },
		"keep without withdrawal": func(p *Payload) { p.Withdrawn = false },
		"a bad keep":              func(p *Payload) { p.Keep = Audience{"everyone"} },
	} {
		p := w
		change(&p)
		if err := open(p); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	withBody := w
	withBody.Body = testPayload().Body
	if err := withBody.ValidateBody(nil, true); !errors.Is(err, ErrMalformed) {
		t.Errorf("a withdrawn version with a body: %v", err)
	}

	in := Reader{Network: "inpud", Member: true}
	out := Reader{Network: "vnpud", Member: true}
	origin := Reader{Network: "tanpud", Member: true}
	if w.TakesBackFrom(in) || !w.TakesBackFrom(out) || w.TakesBackFrom(origin) {
		t.Error("a withdrawal keeping inpud: takes back from vnpud only, never from its origin")
	}
	del := testPayload()
	del.Deleted, del.Body = true, nil
	if !del.TakesBackFrom(in) || del.TakesBackFrom(origin) {
		t.Error("a deletion takes back from every holder but the origin")
	}
	if p := testPayload(); p.TakesBackFrom(out) {
		t.Error("an ordinary version takes nothing back")
	}
}
