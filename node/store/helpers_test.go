package store

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
)

// testKey returns a deterministic signing key, so a parent process and the
// child it re-executes agree on it.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("cairn store test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// testAuthor is the peer id written as Author for key name.
func testAuthor(name string) string { return "12D3KooWTest" + name }

// idAt returns a record id for time t with entropy derived from n, so ids
// are reproducible and sort by t.
func idAt(t time.Time, n uint64) string {
	var seed [8]byte
	binary.BigEndian.PutUint64(seed[:], n)
	sum := sha256.Sum256(seed[:])
	return model.NewID(t, &byteReader{b: sum[:]})
}

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// idGen hands out increasing ids, one millisecond apart.
type idGen struct {
	mu   sync.Mutex
	base time.Time
	n    uint64
}

func newIDGen(base time.Time) *idGen { return &idGen{base: base} }

func (g *idGen) next() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	return idAt(g.base.Add(time.Duration(g.n)*time.Millisecond), g.n)
}

// rec describes one version to seal.
type rec struct {
	id       string
	kind     model.Kind // default audit
	origin   string     // default "inpud"
	author   string     // key name; default "a"
	version  uint64     // default 1
	hlc      model.HLC  // default derived from version
	deleted  bool
	keep     model.Audience // a withdrawn version: who keeps the body
	template string         // audits: default "iduit-bg/3.2@2017"; "-" for no body
	size     int            // approximate payload size; default ~1500 bytes
	note     string         // varies the body
	unsigned bool           // dummy signature (unsignedRec)
	audience model.Audience // default members
	prev     string         // the hash of the version it follows
}

// sealRec signs r with the key of its author.
func sealRec(tb testing.TB, r rec) model.Envelope {
	tb.Helper()
	env, err := sealRecErr(r)
	if err != nil {
		tb.Fatal(err)
	}
	return env
}

// unsignedRec builds r's envelope with a dummy signature, for tests where
// only sizes and keys matter: the store decodes payloads but leaves
// signatures to its caller, and signing is slow under the race detector.
func unsignedRec(tb testing.TB, r rec) model.Envelope {
	tb.Helper()
	r.unsigned = true
	env, err := sealRecErr(r)
	if err != nil {
		tb.Fatal(err)
	}
	return env
}

func sealRecErr(r rec) (model.Envelope, error) {
	if r.kind == "" {
		r.kind = model.KindAudit
	}
	if r.origin == "" {
		r.origin = "inpud"
	}
	if r.author == "" {
		r.author = "a"
	}
	if r.version == 0 {
		r.version = 1
	}
	if r.hlc == 0 {
		r.hlc = model.MakeHLC(1_800_000_000_000+int64(r.version)*1000, 0)
	}
	if r.size == 0 {
		r.size = 1500
	}
	p := model.Payload{
		ID:       r.id,
		Kind:     r.kind,
		Origin:   r.origin,
		Author:   testAuthor(r.author),
		Version:  r.version,
		HLC:      r.hlc,
		Audience: r.audience,
		Deleted:  r.deleted,
		Prev:     r.prev,
	}
	if p.Audience == nil {
		p.Audience = model.Audience{"members"}
	}
	if r.keep != nil {
		p.Withdrawn, p.Keep = true, r.keep
	}
	if !r.deleted && r.keep == nil && r.template != "-" {
		p.Body = body(r, r.size-120)
	}
	if r.unsigned {
		p.Schema = model.SchemaVersion
		b, err := json.Marshal(p)
		return model.Envelope{Payload: b, Sig: make([]byte, ed25519.SignatureSize)}, err
	}
	return model.Seal(testKey(r.author), p)
}

// body builds an audit-like body of about n bytes.
func body(r rec, n int) json.RawMessage {
	pad := max(n-400, 0)
	if r.kind != model.KindAudit {
		b, _ := json.Marshal(map[string]any{
			"title": "Access to naloxone in " + r.origin + " " + r.note,
			"notes": strings.Repeat("community feedback ", pad/19+1)[:pad],
		})
		return b
	}
	tmpl := r.template
	if tmpl == "" {
		tmpl = "iduit-bg/3.2@2017"
	}
	a := model.Audit{
		Template: tmpl,
		Subject:  model.Subject{Name: "City OAT clinic " + r.note, Kind: "service"},
		Place:    "Country/Region/City",
		Period:   "2026-Q3",
		Method:   "group",
		Answers: map[string]model.ItemAnswer{
			"3.2.1": {Answer: model.AnswerYes},
			"3.2.2": {Answer: model.AnswerPartly, Note: "Take-home doses only after six months."},
			"3.2.3": {Answer: model.AnswerNo, Note: strings.Repeat("Peers report long waits at intake. ", pad/35+1)[:pad]},
		},
		Status: "final",
	}
	b, _ := json.Marshal(a)
	return b
}

// testConfig is DefaultConfig with GC off unless a test turns it on.
func testConfig() Config {
	c := DefaultConfig()
	c.GCInterval = 0
	return c
}

func openStore(tb testing.TB, dir string, cfg Config) *Store {
	tb.Helper()
	s, err := Open(dir, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func mustPut(tb testing.TB, s *Store, envs ...model.Envelope) PutResult {
	tb.Helper()
	res, err := s.Put(envs...)
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// checkStored checks that st is a well-formed, correctly signed version.
func checkStored(st Stored) error {
	if err := st.Envelope.Verify(testKey(strings.TrimPrefix(st.Payload.Author, "12D3KooWTest")).Public().(ed25519.PublicKey)); err != nil {
		return fmt.Errorf("record %s version %d: %w", st.Payload.ID, st.Payload.Version, err)
	}
	if st.Envelope.Hash() != st.Hash {
		return fmt.Errorf("record %s: hash %s does not match the envelope", st.Payload.ID, st.Hash)
	}
	p, err := st.Envelope.Open()
	if err != nil {
		return err
	}
	if p.ID != st.Payload.ID || p.Version != st.Payload.Version {
		return errors.New("payload does not match the envelope")
	}
	return nil
}

func ids(sts []Stored) []string {
	out := make([]string, len(sts))
	for i, st := range sts {
		out[i] = st.Payload.ID
	}
	return out
}
