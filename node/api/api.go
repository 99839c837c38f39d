// Package api is the node's local HTTP JSON API. It listens on a loopback
// address only, and every /v1 request must carry the bearer token kept in
// the data dir (mode 0600): the CLI and the web interface use nothing else
// to talk to a running node. /healthz and /metrics need no token; they
// carry no records.
//
// Errors come back as {"error": "...", "field": "..."} with 400 for bad
// input (the sentence says what was wrong and what is allowed), 401 for a
// missing or wrong token, 404 for an unknown record, 409 for a change the
// record's state does not allow, and 500 for failures of the node.
package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
)

// Node is what the API needs of the node itself.
type Node interface {
	Status() (any, error)
	Templates() []model.Template
	Template(ref string) (model.Template, bool)
	Records() *records.Service
}

// Config configures the API handler.
type Config struct {
	Token   string
	Logger  *slog.Logger
	Metrics *prometheus.Registry
	// MaxBody bounds a JSON request body; imports have their own bound.
	MaxBody int64
	// MaxImport bounds an import request body.
	MaxImport int64
	// UI is the web interface (node/web), served under "/" when set; its
	// login codes come from POST /v1/ui/login-code.
	UI UI
}

// UI is the web interface as the API mounts it.
type UI interface {
	http.Handler
	// LoginCode hands out a one-time code for the page /login?code=CODE.
	LoginCode() (code string, expires time.Time, err error)
}

// Limits on request bodies.
const (
	DefaultMaxBody   = 4 << 20
	DefaultMaxImport = 1 << 30
)

type server struct {
	cfg      Config
	node     Node
	rec      *records.Service
	requests *prometheus.CounterVec
	writes   *prometheus.CounterVec
}

// New returns the API handler.
func New(cfg Config, n Node) http.Handler {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxImport == 0 {
		cfg.MaxImport = DefaultMaxImport
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	s := &server{cfg: cfg, node: n, rec: n.Records()}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_api_requests_total", Help: "Local API requests, by route and status code."}, []string{"route", "code"})
	s.writes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_records_written_total", Help: "Record versions this node signed and stored, by kind."}, []string{"kind"})
	cfg.Metrics.MustRegister(s.requests, s.writes, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{}))
	v1 := func(pattern string, h func(http.ResponseWriter, *http.Request) error) {
		route := pattern
		mux.Handle(pattern, s.auth(route, h))
	}
	v1("GET /v1/status", s.status)
	v1("GET /v1/templates", s.templates)
	v1("GET /v1/templates/{ref...}", s.template)
	v1("GET /v1/records", s.list)
	v1("GET /v1/records/{id}", s.get)
	v1("GET /v1/records/{id}/history", s.history)
	v1("GET /v1/records/{id}/holders", s.holders)
	v1("DELETE /v1/records/{id}", s.delete)
	v1("POST /v1/records/{id}/audience", s.share)
	v1("POST /v1/audits", s.newAudit)
	v1("POST /v1/audits/{id}/answers", s.answers)
	v1("POST /v1/priorities", s.addPriority)
	v1("PATCH /v1/priorities/{id}", s.updatePriority)
	v1("POST /v1/reports", s.addReport)
	v1("GET /v1/export", s.export)
	v1("POST /v1/import", s.importRecords)
	s.routesFederation(v1)
	s.routesCustody(v1)
	s.routesBundles(v1)
	s.routesHandover(v1)
	if cfg.UI == nil {
		return mux
	}
	// The web interface gets every path the API does not own, so the API
	// answers its own paths exactly as without it (405 for a wrong method).
	v1("POST /v1/ui/login-code", s.loginCode)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; strings.HasPrefix(p, "/v1/") || p == "/healthz" || p == "/metrics" {
			mux.ServeHTTP(w, r)
			return
		}
		cfg.UI.ServeHTTP(w, r)
	})
}

// statusWriter remembers the status code for the request counter.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *server) auth(route string, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() { s.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc() }()
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) != 1 {
			writeJSON(sw, http.StatusUnauthorized, errorBody{Error: "missing or wrong API token: the CLI reads it from api.token in the node's data dir"})
			return
		}
		if err := h(sw, r); err != nil {
			s.fail(sw, r, err)
		}
	})
}

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// fail maps an error to a status code and one sentence.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *model.FieldError
	var he *httpError
	switch {
	case errors.As(err, &he):
		writeJSON(w, he.code, errorBody{Error: he.msg})
	case errors.As(err, &fe):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error(), Field: fe.Field})
	case errors.Is(err, model.ErrInvalid):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
	case errors.Is(err, records.ErrNotFound):
		writeJSON(w, http.StatusNotFound, errorBody{Error: err.Error()})
	case errors.Is(err, records.ErrNotOwn), errors.Is(err, records.ErrDeleted), errors.Is(err, records.ErrWrongKind):
		writeJSON(w, http.StatusConflict, errorBody{Error: err.Error()})
	default:
		s.cfg.Logger.Error("API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "the node could not do this: " + err.Error()})
	}
}

type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// decode reads a JSON request body strictly: valid UTF-8, known fields
// only, one value, within the size limit.
func (s *server) decode(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBody+1))
	if err != nil {
		return badRequest("could not read the request: %v", err)
	}
	if int64(len(b)) > s.cfg.MaxBody {
		return badRequest("the request is larger than %d bytes", s.cfg.MaxBody)
	}
	if !utf8.Valid(b) {
		return badRequest("the request contains text that is not valid UTF-8")
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("the request is not valid JSON for this call: %v", err)
	}
	if dec.More() {
		return badRequest("the request has more than one JSON value")
	}
	return nil
}

func (s *server) status(w http.ResponseWriter, r *http.Request) error {
	st, err := s.node.Status()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// TemplateSummary is one line of the template list.
type TemplateSummary struct {
	ID       string `json:"id"`
	Version  string `json:"version"`
	Ref      string `json:"ref"`
	Title    string `json:"title"`
	Language string `json:"language"`
	Sections int    `json:"sections"`
	Items    int    `json:"items"`
}

func (s *server) templates(w http.ResponseWriter, r *http.Request) error {
	ts := s.node.Templates()
	out := make([]TemplateSummary, len(ts))
	for i, t := range ts {
		out[i] = TemplateSummary{ID: t.ID, Version: t.Version, Ref: t.Ref(), Title: t.Title, Language: t.Language, Sections: len(t.Sections), Items: t.ItemCount()}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) template(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("ref")
	t, ok := s.node.Template(ref)
	if !ok {
		return &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("no template %q: cairn template list shows the templates this node knows", ref)}
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *server) list(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var query records.Query
	if k := q.Get("kind"); k != "" {
		kind, err := model.ParseKind(k)
		if err != nil {
			return err
		}
		query.Kind = kind
	}
	query.Origin = q.Get("origin")
	query.Template = q.Get("template")
	query.IncludeDeleted = q.Get("deleted") == "true"
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return badRequest("limit %q is not a whole number of records", l)
		}
		query.Limit = n
	}
	recs, err := s.rec.List(query)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, recs)
	return nil
}

func (s *server) get(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.rec.Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec)
	return nil
}

func (s *server) history(w http.ResponseWriter, r *http.Request) error {
	hs, err := s.rec.History(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, hs)
	return nil
}

func (s *server) written(w http.ResponseWriter, code int, rec records.Record, err error) error {
	if err != nil {
		return err
	}
	s.writes.WithLabelValues(string(rec.Kind)).Inc()
	writeJSON(w, code, rec)
	return nil
}

func (s *server) delete(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.rec.Delete(r.PathValue("id"))
	return s.written(w, http.StatusOK, rec, err)
}

// AudienceRequest changes who may receive a record.
type AudienceRequest struct {
	Audience string `json:"audience"`
}

func (s *server) share(w http.ResponseWriter, r *http.Request) error {
	var req AudienceRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	aud, err := model.ParseAudience(req.Audience)
	if err != nil {
		return err
	}
	rec, err := s.rec.Share(r.PathValue("id"), aud)
	return s.written(w, http.StatusOK, rec, err)
}

func (s *server) newAudit(w http.ResponseWriter, r *http.Request) error {
	var req records.NewAudit
	if err := s.decode(r, &req); err != nil {
		return err
	}
	rec, err := s.rec.CreateAudit(req)
	return s.written(w, http.StatusCreated, rec, err)
}

// AnswersRequest records answers to audit items, all or none.
type AnswersRequest struct {
	Answers          []records.AnswerInput `json:"answers"`
	AllowIdentifiers bool                  `json:"allow_identifiers,omitempty"`
}

func (s *server) answers(w http.ResponseWriter, r *http.Request) error {
	var req AnswersRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	rec, err := s.rec.Answer(r.PathValue("id"), req.Answers, req.AllowIdentifiers)
	return s.written(w, http.StatusOK, rec, err)
}

// PriorityRequest adds a priority. Kind takes the short forms too.
type PriorityRequest struct {
	model.Priority
	Kind             string `json:"kind"`
	AllowIdentifiers bool   `json:"allow_identifiers,omitempty"`
}

func (s *server) addPriority(w http.ResponseWriter, r *http.Request) error {
	var req PriorityRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	k, err := model.ParsePriorityKind(req.Kind)
	if err != nil {
		return err
	}
	req.Priority.Kind = k
	rec, err := s.rec.AddPriority(req.Priority, req.AllowIdentifiers)
	return s.written(w, http.StatusCreated, rec, err)
}

func (s *server) updatePriority(w http.ResponseWriter, r *http.Request) error {
	var req records.PriorityPatch
	if err := s.decode(r, &req); err != nil {
		return err
	}
	rec, err := s.rec.UpdatePriority(r.PathValue("id"), req)
	return s.written(w, http.StatusOK, rec, err)
}

// ReportRequest adds a committee report.
type ReportRequest struct {
	model.Report
	AllowIdentifiers bool `json:"allow_identifiers,omitempty"`
}

func (s *server) addReport(w http.ResponseWriter, r *http.Request) error {
	var req ReportRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	rec, err := s.rec.AddReport(req.Report, req.AllowIdentifiers)
	return s.written(w, http.StatusCreated, rec, err)
}

// LoginCodeResponse is a one-time login link for the web interface.
type LoginCodeResponse struct {
	ID      string    `json:"id"` // a digest of the code, to tell codes apart in logs
	Code    string    `json:"code"`
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

func (s *server) loginCode(w http.ResponseWriter, r *http.Request) error {
	code, exp, err := s.cfg.UI.LoginCode()
	if err != nil {
		return &httpError{code: http.StatusServiceUnavailable, msg: err.Error()}
	}
	sum := sha256.Sum256([]byte(code))
	writeJSON(w, http.StatusCreated, LoginCodeResponse{ID: hex.EncodeToString(sum[:8]), Code: code, URL: "http://" + r.Host + "/login?code=" + code, Expires: exp.UTC()})
	return nil
}
