// Package records turns what a member network records (a new audit, an
// answer, a priority moved on the board, a committee report, a deletion)
// into signed versions of records, and reads them back as views.
//
// It is the only writer of the node's own records: every change becomes a
// new envelope with the next version number, the hash of the version it
// follows and a hybrid-logical-clock reading, signed by the node's key and
// stored durably before the call returns. Nothing is ever edited in place,
// so the full history of every record is kept.
package records

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	stdsync "sync"
	"time"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/store"
)

// Store is what the service needs of the record store.
type Store interface {
	Put(envs ...model.Envelope) (store.PutResult, error)
	Get(id string) (store.Stored, error)
	History(id string) ([]store.Stored, error)
	Events(id string) ([]store.Event, error)
	List(q store.Query) ([]store.Stored, error)
	MaxHLC() model.HLC
}

// Config says who writes and how.
type Config struct {
	Network   string             // slug of this node's network: the origin of every record it writes
	Author    string             // this node's peer ID
	Key       ed25519.PrivateKey // signs every version
	Language  string             // language tag of new records, e.g. "en"
	Templates model.TemplateFinder
	// KeyOf returns the public key of an author peer ID, to verify imports.
	KeyOf func(author string) (ed25519.PublicKey, error)
	// Now is the clock; tests inject one.
	Now func() time.Time
	// MaxClockAhead is how far ahead of this node's clock a version may be
	// dated before it is refused.
	MaxClockAhead time.Duration
}

// Errors callers branch on.
var (
	ErrNotFound  = errors.New("no record with that id")
	ErrNotOwn    = errors.New("record belongs to another network")
	ErrDeleted   = errors.New("record has been deleted")
	ErrWrongKind = errors.New("record is of another kind")
)

// Service writes and reads records.
type Service struct {
	cfg   Config
	st    Store
	mu    stdsync.Mutex // serialises writes: read current, build next version, store
	clock model.HLC     // guarded by mu
}

// New returns a service writing to st. The clock resumes after the latest
// version the store holds, so versions stay ordered across restarts.
func New(cfg Config, st Store) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Language == "" {
		cfg.Language = "en"
	}
	if cfg.MaxClockAhead == 0 {
		cfg.MaxClockAhead = 10 * time.Minute
	}
	return &Service{cfg: cfg, st: st, clock: st.MaxHLC()}
}

// Record is one version of a record as people read it.
type Record struct {
	ID       string     `json:"id"`
	Kind     model.Kind `json:"kind"`
	Origin   string     `json:"origin"`
	Own      bool       `json:"own"` // written by this node's network
	Author   string     `json:"author"`
	Version  uint64     `json:"version"`
	Updated  time.Time  `json:"updated"`
	Audience string     `json:"audience"`
	Deleted  bool       `json:"deleted,omitempty"`
	// Withdrawn: this version took the record back from readers its new
	// audience leaves out; Keep is who may still hold it.
	Withdrawn bool   `json:"withdrawn,omitempty"`
	Keep      string `json:"keep,omitempty"`
	// TakenBack: the origin took this version's body back from this node;
	// only its header is left, and TakenBackBy is the hash of the signed
	// version that took it back.
	TakenBack   bool                 `json:"taken_back,omitempty"`
	TakenBackBy string               `json:"taken_back_by,omitempty"`
	Hash        string               `json:"hash"`
	Prev        string               `json:"prev,omitempty"`
	Language    string               `json:"language,omitempty"`
	Seq         uint64               `json:"seq"`
	Body        any                  `json:"body,omitempty"`
	Scores      []model.SectionScore `json:"scores,omitempty"` // audits: per section
	// Fork, in a history only: this version and others held follow the
	// same version, or share its number (store.Marks). Both are kept; the
	// current one is the winner by model.Wins, and a new version resolves
	// the fork.
	Fork *store.Fork `json:"fork,omitempty"`
	// BrokenChain, in a history only: the node holds versions with the
	// number before this one's, and this one follows none of them.
	BrokenChain bool `json:"broken_chain,omitempty"`
	// Events, in a history only and only on its last entry (the current
	// version): what this node noticed about the record's chain as
	// versions arrived, oldest first, at most store.MaxEvents: rolled-back
	// versions it refused, and forks and broken chains it stored, each
	// with the peer that delivered it and when.
	Events []store.Event `json:"events,omitempty"`
}

func (s *Service) view(st store.Stored) Record {
	p := st.Payload
	r := Record{
		ID: p.ID, Kind: p.Kind, Origin: p.Origin, Own: p.Origin == s.cfg.Network, Author: p.Author,
		Version: p.Version, Updated: p.HLC.Time(), Audience: p.Audience.String(), Deleted: p.Deleted,
		Hash: st.Hash, Prev: p.Prev, Language: p.Language, Seq: st.Seq,
		Withdrawn: p.Withdrawn, TakenBack: st.TakenBack, TakenBackBy: st.TakenBackBy,
	}
	if p.Withdrawn {
		r.Keep = p.Keep.String()
	}
	if p.Retracts() || st.TakenBack {
		return r
	}
	body, err := model.DecodeBody(p.Kind, p.Body)
	if err != nil {
		// Stored versions were validated on the way in; show the raw body
		// rather than hide the record if a later schema reads it differently.
		r.Body = p.Body
		return r
	}
	r.Body = body
	if a, ok := body.(*model.Audit); ok {
		if t, ok := s.cfg.Templates(a.Template); ok {
			r.Scores = a.Scores(t)
		}
	}
	return r
}

// Get returns the current version of a record.
func (s *Service) Get(id string) (Record, error) {
	st, err := s.get(id)
	if err != nil {
		return Record{}, err
	}
	return s.view(st), nil
}

func (s *Service) get(id string) (store.Stored, error) {
	if err := model.ValidateID(id); err != nil {
		return store.Stored{}, err
	}
	st, err := s.st.Get(id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Stored{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return st, err
}

// History returns every version held of a record, oldest first.
func (s *Service) History(id string) ([]Record, error) {
	if err := model.ValidateID(id); err != nil {
		return nil, err
	}
	hs, err := s.st.History(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	if len(hs) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	evs, err := s.st.Events(id)
	if err != nil {
		return nil, err
	}
	marks := store.Marks(hs)
	out := make([]Record, len(hs))
	for i, h := range hs {
		out[i] = s.view(h)
		out[i].Fork, out[i].BrokenChain = marks[i].Fork, marks[i].BrokenChain
	}
	out[len(out)-1].Events = evs
	return out, nil
}

// Query selects records to list.
type Query = store.Query

// List returns the current versions matching q, newest first.
func (s *Service) List(q Query) ([]Record, error) {
	if q.Origin != "" && !model.ValidSlug(q.Origin) {
		return nil, &model.FieldError{Field: "origin", Msg: fmt.Sprintf("%q is not a network slug: use lower-case letters, digits and '-'", q.Origin)}
	}
	if q.Template != "" {
		if _, ok := s.cfg.Templates(q.Template); !ok {
			return nil, &model.FieldError{Field: "template", Msg: fmt.Sprintf("%q is not a template this node knows (cairn template list shows them)", q.Template)}
		}
	}
	sts, err := s.st.List(q)
	if err != nil {
		return nil, err
	}
	out := make([]Record, len(sts))
	for i, st := range sts {
		out[i] = s.view(st)
	}
	return out, nil
}

// NewAudit is what starting an audit takes.
type NewAudit struct {
	Template         string         `json:"template"` // id or versioned ref
	Subject          model.Subject  `json:"subject"`
	Place            string         `json:"place"`
	Period           string         `json:"period"`
	ConductedOn      string         `json:"conducted_on,omitempty"`
	Method           string         `json:"method,omitempty"`
	Auditors         model.Auditors `json:"auditors,omitempty"`
	AllowIdentifiers bool           `json:"allow_identifiers,omitempty"`
}

// CreateAudit starts an audit against a template, with no answers yet.
func (s *Service) CreateAudit(in NewAudit) (Record, error) {
	t, ok := s.cfg.Templates(in.Template)
	if !ok {
		return Record{}, &model.FieldError{Field: "template", Msg: fmt.Sprintf("%q is not a template this node knows (cairn template list shows them)", in.Template)}
	}
	a := model.Audit{
		Template: t.Ref(), Subject: in.Subject, Place: in.Place, Period: in.Period,
		ConductedOn: in.ConductedOn, Method: in.Method, Auditors: in.Auditors, Status: "draft",
	}
	if err := a.Validate(t, in.AllowIdentifiers); err != nil {
		return Record{}, err
	}
	return s.create(model.KindAudit, a)
}

// AnswerInput is one answer to one checklist item. Line, when set, is
// where it came from in a file, so errors can name it.
type AnswerInput struct {
	Item            string `json:"item"`
	Answer          string `json:"answer"`
	Note            string `json:"note,omitempty"`
	Evidence        string `json:"evidence,omitempty"`
	PriorityProblem bool   `json:"priority_problem,omitempty"`
	Line            int    `json:"line,omitempty"`
}

// wrap names the input line of an answer that came from a file.
func (a AnswerInput) wrap(err error) error {
	if a.Line > 0 {
		return fmt.Errorf("line %d: %w", a.Line, err)
	}
	return err
}

// Answer records answers to items of an audit: all of them or, if any is
// wrong, none.
func (s *Service) Answer(id string, answers []AnswerInput, allowIdentifiers bool) (Record, error) {
	if len(answers) == 0 {
		return Record{}, &model.FieldError{Field: "answers", Msg: "no answers given"}
	}
	return s.update(id, model.KindAudit, func(body any) (any, error) {
		a := body.(*model.Audit)
		t, ok := s.cfg.Templates(a.Template)
		if !ok {
			return nil, fmt.Errorf("audit %s uses template %s, which this node no longer knows", id, a.Template)
		}
		if a.Answers == nil {
			a.Answers = map[string]model.ItemAnswer{}
		}
		seen := map[string]AnswerInput{}
		for _, in := range answers {
			if _, _, ok := t.Item(in.Item); !ok {
				return nil, in.wrap(&model.FieldError{Field: "item", Msg: fmt.Sprintf("%q is not an item of template %s (cairn template show %s lists them)", in.Item, t.Ref(), t.ID)})
			}
			if first, dup := seen[in.Item]; dup {
				return nil, in.wrap(&model.FieldError{Field: "item", Msg: fmt.Sprintf("item %s is answered twice (first on line %d)", in.Item, first.Line)})
			}
			seen[in.Item] = in
			v, err := model.ParseAnswer(in.Answer)
			if err != nil {
				return nil, in.wrap(&model.FieldError{Field: "answer", Msg: fmt.Sprintf("item %s: %q is not an answer: use yes, partly, no, unknown or na (not applicable)", in.Item, in.Answer)})
			}
			ans := model.ItemAnswer{Answer: v, Note: in.Note, Evidence: in.Evidence, PriorityProblem: in.PriorityProblem}
			probe := model.Audit{Template: a.Template, Subject: a.Subject, Place: a.Place, Period: a.Period, Answers: map[string]model.ItemAnswer{in.Item: ans}}
			if err := probe.Validate(t, allowIdentifiers); err != nil {
				return nil, in.wrap(err)
			}
			a.Answers[in.Item] = ans
		}
		return a, a.Validate(t, allowIdentifiers)
	})
}

// AddPriority records a new priority.
func (s *Service) AddPriority(p model.Priority, allowIdentifiers bool) (Record, error) {
	if p.HorizonYears == "" {
		p.HorizonYears = model.DefaultHorizon
	}
	if err := p.Validate(allowIdentifiers); err != nil {
		return Record{}, err
	}
	return s.create(model.KindPriority, p)
}

// PriorityPatch changes the fields that are set.
type PriorityPatch struct {
	Kind             *string `json:"kind,omitempty"`
	Title            *string `json:"title,omitempty"`
	Area             *string `json:"area,omitempty"`
	Importance       *int    `json:"importance,omitempty"`
	Achievability    *int    `json:"achievability,omitempty"`
	HorizonYears     *string `json:"horizon_years,omitempty"`
	Selected         *bool   `json:"selected,omitempty"`
	Rank             *int    `json:"rank,omitempty"`
	Target           *string `json:"target,omitempty"`
	Ask              *string `json:"ask,omitempty"`
	TalkingPoints    *string `json:"talking_points,omitempty"`
	Status           *string `json:"status,omitempty"`
	AllowIdentifiers bool    `json:"allow_identifiers,omitempty"`
}

// UpdatePriority writes a new version of a priority with the patch applied.
func (s *Service) UpdatePriority(id string, patch PriorityPatch) (Record, error) {
	return s.update(id, model.KindPriority, func(body any) (any, error) {
		p := body.(*model.Priority)
		if patch.Kind != nil {
			k, err := model.ParsePriorityKind(*patch.Kind)
			if err != nil {
				return nil, err
			}
			p.Kind = k
		}
		set(&p.Title, patch.Title)
		set(&p.Area, patch.Area)
		set(&p.Importance, patch.Importance)
		set(&p.Achievability, patch.Achievability)
		set(&p.HorizonYears, patch.HorizonYears)
		set(&p.Selected, patch.Selected)
		set(&p.Rank, patch.Rank)
		set(&p.Target, patch.Target)
		set(&p.Ask, patch.Ask)
		set(&p.TalkingPoints, patch.TalkingPoints)
		set(&p.Status, patch.Status)
		return p, p.Validate(patch.AllowIdentifiers)
	})
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// AddReport records a committee report.
func (s *Service) AddReport(r model.Report, allowIdentifiers bool) (Record, error) {
	if err := r.Validate(allowIdentifiers); err != nil {
		return Record{}, err
	}
	return s.create(model.KindReport, r)
}

// Delete writes a tombstone: the record disappears from lists, its history stays.
func (s *Service) Delete(id string) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.currentOwn(id)
	if err != nil {
		return Record{}, err
	}
	if cur.Payload.Deleted {
		return Record{}, fmt.Errorf("%w: %s was deleted in version %d", ErrDeleted, id, cur.Payload.Version)
	}
	return s.writeLocked(cur.Payload.Kind, id, &cur, nil, cur.Payload.Audience, true)
}

// Share writes a new version with another audience. If the new audience
// leaves out readers the old one admitted, a withdrawn version comes
// first (model.Payload.Withdrawn), so that their nodes drop the body.
func (s *Service) Share(id string, aud model.Audience) (Record, error) {
	if err := aud.Validate(); err != nil {
		return Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.currentOwn(id)
	if err != nil {
		return Record{}, err
	}
	if cur.Payload.Deleted {
		return Record{}, fmt.Errorf("%w: %s", ErrDeleted, id)
	}
	if aud.Covers(cur.Payload.Audience) {
		return s.writeLocked(cur.Payload.Kind, id, &cur, json.RawMessage(cur.Payload.Body), aud, false)
	}
	// Narrowing: first a withdrawn version, without the body, to everyone
	// the old audience admitted, telling those the new one leaves out to
	// drop the body; then the full version for the new audience. Both go
	// to disk in one write, and sync carries them in feed order.
	kind := cur.Payload.Kind
	w, err := s.sealLocked(model.Payload{ID: id, Kind: kind, Audience: cur.Payload.Audience.Union(aud), Withdrawn: true, Keep: aud}, &cur, nil)
	if err != nil {
		return Record{}, err
	}
	wp, err := w.Open()
	if err != nil {
		return Record{}, err
	}
	full, err := s.sealLocked(model.Payload{ID: id, Kind: kind, Audience: aud}, &store.Stored{Envelope: w, Payload: wp, Hash: w.Hash()}, json.RawMessage(cur.Payload.Body))
	if err != nil {
		return Record{}, err
	}
	return s.putLocked(w, full)
}

func (s *Service) create(kind model.Kind, body any) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := model.NewID(s.cfg.Now(), nil)
	return s.writeLocked(kind, id, nil, body, model.Audience{model.AudiencePrivate}, false)
}

// update applies change to the current body of an own record of the given kind.
func (s *Service) update(id string, kind model.Kind, change func(body any) (any, error)) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.currentOwn(id)
	if err != nil {
		return Record{}, err
	}
	if cur.Payload.Kind != kind {
		return Record{}, fmt.Errorf("%w: %s is a %s, not a %s", ErrWrongKind, id, cur.Payload.Kind, kind)
	}
	if cur.Payload.Deleted {
		return Record{}, fmt.Errorf("%w: %s", ErrDeleted, id)
	}
	body, err := model.DecodeBody(kind, cur.Payload.Body)
	if err != nil {
		return Record{}, fmt.Errorf("read record %s: %w", id, err)
	}
	next, err := change(body)
	if err != nil {
		return Record{}, err
	}
	return s.writeLocked(kind, id, &cur, next, cur.Payload.Audience, false)
}

func (s *Service) currentOwn(id string) (store.Stored, error) {
	cur, err := s.get(id)
	if err != nil {
		return cur, err
	}
	if cur.Payload.Origin != s.cfg.Network {
		return cur, fmt.Errorf("%w: %s belongs to %s; only its own network can change it", ErrNotOwn, id, cur.Payload.Origin)
	}
	return cur, nil
}

// writeLocked signs and stores the next version. s.mu must be held.
func (s *Service) writeLocked(kind model.Kind, id string, prev *store.Stored, body any, aud model.Audience, deleted bool) (Record, error) {
	env, err := s.sealLocked(model.Payload{ID: id, Kind: kind, Audience: aud, Deleted: deleted}, prev, body)
	if err != nil {
		return Record{}, err
	}
	return s.putLocked(env)
}

// sealLocked fills in p's origin, author, version, time and body as the
// version after prev (nil: the first), signs it and advances the clock.
// s.mu must be held.
func (s *Service) sealLocked(p model.Payload, prev *store.Stored, body any) (model.Envelope, error) {
	p.Schema, p.Origin, p.Author = model.SchemaVersion, s.cfg.Network, s.cfg.Author
	p.Version, p.Language = 1, s.cfg.Language
	if prev != nil {
		p.Version = prev.Payload.Version + 1
		p.Prev = prev.Hash
		if prev.Payload.Language != "" {
			p.Language = prev.Payload.Language
		}
	}
	if body != nil {
		raw, ok := body.(json.RawMessage)
		if !ok {
			var err error
			if raw, err = json.Marshal(body); err != nil {
				return model.Envelope{}, fmt.Errorf("encode %s %s: %w", p.Kind, p.ID, err)
			}
		}
		p.Body = raw
	}
	next := s.clock.Next(s.cfg.Now())
	if prev != nil {
		next = next.Observe(prev.Payload.HLC + 1)
	}
	p.HLC = next
	env, err := model.Seal(s.cfg.Key, p)
	if err != nil {
		return model.Envelope{}, err
	}
	s.clock = next
	return env, nil
}

// putLocked stores versions sealed together in one durable write and
// returns the last. s.mu must be held.
func (s *Service) putLocked(envs ...model.Envelope) (Record, error) {
	res, err := s.st.Put(envs...)
	if err != nil {
		p, _ := envs[0].Open()
		return Record{}, fmt.Errorf("store %s %s: %w", p.Kind, p.ID, err)
	}
	if len(res.Stored) != len(envs) {
		return Record{}, errors.New("store a new version: the store did not take it")
	}
	return s.view(res.Stored[len(res.Stored)-1]), nil
}

// Rejection names an envelope an import refused, and why.
type Rejection struct {
	Line   int    `json:"line"`
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason"`
}

// ImportResult counts what an import did.
type ImportResult struct {
	Imported int         `json:"imported"`
	Skipped  int         `json:"skipped"` // already held
	Rejected []Rejection `json:"rejected"`
}

// Check verifies one envelope as a receiver must: well formed, signed by
// its author, dated no further ahead than allowed, with a valid body.
func (s *Service) Check(env model.Envelope) (model.Payload, error) {
	p, err := env.Open()
	if err != nil {
		return p, err
	}
	_, err = s.CheckOpened(env, p)
	return p, err
}

// CheckOpened is Check for an envelope the caller has opened already: p
// must be what env.Open() returned without error. It returns the decoded
// body (model.DecodeBody's; nil for a version without one). It is safe to
// call from several goroutines at once.
func (s *Service) CheckOpened(env model.Envelope, p model.Payload) (body any, err error) {
	pub, err := s.cfg.KeyOf(p.Author)
	if err != nil {
		return nil, fmt.Errorf("author %s: %w", p.Author, err)
	}
	if err := env.Verify(pub); err != nil {
		return nil, err
	}
	return s.CheckSigned(p)
}

// CheckSigned is CheckOpened for a payload whose envelope's signature the
// caller has verified already, against the key KeyOf gives for p.Author
// and with the same rule (model.VerifyBatch): the clock drift and the body.
func (s *Service) CheckSigned(p model.Payload) (body any, err error) {
	if err := p.HLC.CheckDrift(s.cfg.Now(), s.cfg.MaxClockAhead); err != nil {
		return nil, err
	}
	return p.CheckBody(s.cfg.Templates, true)
}

// Verify checks envelopes as a receiver must (see Check) and splits them
// into the good ones and the rejected, each rejection naming its line.
func (s *Service) Verify(envs []model.Envelope, lines []int) (good []model.Envelope, rejected []Rejection) {
	good = make([]model.Envelope, 0, len(envs))
	for i, env := range envs {
		p, err := s.Check(env)
		if err != nil {
			rejected = append(rejected, Rejection{Line: lines[i], ID: p.ID, Reason: err.Error()})
			continue
		}
		good = append(good, env)
	}
	return good, rejected
}

// Import stores envelopes that passed Verify, in durable batches.
// Envelopes already held are skipped, so importing a file twice changes
// nothing. It returns how many were new and how many were already held.
func (s *Service) Import(good []model.Envelope) (imported, skipped int, err error) {
	var maxHLC model.HLC
	for len(good) > 0 {
		n := min(len(good), store.MaxBatch)
		pr, err := s.st.Put(good[:n]...)
		if err != nil {
			return imported, skipped, fmt.Errorf("store imported records: %w", err)
		}
		for _, st := range pr.Stored {
			maxHLC = maxHLC.Observe(st.Payload.HLC)
		}
		imported += len(pr.Stored)
		skipped += pr.Duplicates
		good = good[n:]
	}
	s.mu.Lock()
	s.clock = s.clock.Observe(maxHLC)
	s.mu.Unlock()
	return imported, skipped, nil
}

// ExportAll calls fn with every version of every record held that matches
// kind (all kinds when empty), oldest version first within a record.
func (s *Service) ExportAll(kind model.Kind, fn func(store.Stored) error) error {
	kinds := model.Kinds
	if kind != "" {
		kinds = []model.Kind{kind}
	}
	for _, k := range kinds {
		cur, err := s.st.List(store.Query{Kind: k, IncludeDeleted: true})
		if err != nil {
			return err
		}
		for i := len(cur) - 1; i >= 0; i-- {
			hs, err := s.st.History(cur[i].Payload.ID)
			if err != nil {
				return err
			}
			for _, h := range hs {
				if err := fn(h); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// ShortKind is how a kind is named on the command line.
func ShortKind(k model.Kind) string {
	return strings.TrimPrefix(string(k), "committee-")
}
