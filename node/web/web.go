package web

import (
	"embed"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/federation"
	"github.com/inpud/cairn/node/records"
)

// Node is what the web interface needs of the node: the same services the
// JSON API uses.
type Node interface {
	Profile() model.Profile
	Records() *records.Service
	Templates() []model.Template
	Template(ref string) (model.Template, bool)
}

// Federated is a node in a federation registry (optional: found by type
// assertion, as in the API).
type Federated interface {
	Federation() *federation.Registry
}

// Syncing is a node that replicates with member nodes (optional).
// SyncStatus returns the value the API's /v1/sync/status serves.
type Syncing interface {
	SyncStatus() (any, error)
}

// Config configures the web interface. Zero fields take the defaults.
type Config struct {
	// Language is the node's default interface language (its --language).
	Language string
	// CodeTTL is how long a login code works (once).
	CodeTTL time.Duration
	// SessionIdle ends a session after this long without a request.
	SessionIdle time.Duration
	Logger      *slog.Logger
	// Now is the clock; tests inject one.
	Now func() time.Time
}

// Defaults.
const (
	DefaultCodeTTL     = 2 * time.Minute
	DefaultSessionIdle = 12 * time.Hour
)

// Cookie names.
const (
	sessionCookie  = "cairn_session"
	languageCookie = "cairn_lang"
)

//go:embed static
var staticFS embed.FS

// UI is the web interface's handler.
type UI struct {
	cfg   Config
	node  Node
	msgs  catalogues
	pages pages
	sess  *sessions
	mux   *http.ServeMux
}

// New returns the web interface of node n.
func New(cfg Config, n Node) (*UI, error) {
	if cfg.Language == "" {
		cfg.Language = fallback
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = DefaultCodeTTL
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = DefaultSessionIdle
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	msgs, err := loadCatalogues()
	if err != nil {
		return nil, err
	}
	ps, err := parsePages()
	if err != nil {
		return nil, err
	}
	u := &UI{cfg: cfg, node: n, msgs: msgs, pages: ps, sess: newSessions(cfg.CodeTTL, cfg.SessionIdle, cfg.Now), mux: http.NewServeMux()}
	u.routes()
	return u, nil
}

// LoginCode hands out a one-time login code for the page /login?code=CODE,
// and when it stops working.
func (u *UI) LoginCode() (string, time.Time, error) { return u.sess.newCode() }

func (u *UI) routes() {
	u.mux.Handle("GET /static/", http.FileServerFS(staticFS))
	u.mux.HandleFunc("GET /login", u.login)
	page := func(pattern string, h handler) { u.mux.Handle(pattern, u.session(h)) }
	page("POST /logout", u.logout)
	page("POST /language", u.setLanguage)
	page("GET /{$}", u.overview)
	page("GET /audits", u.auditList)
	page("GET /audits/new", u.auditNewForm)
	page("POST /audits", u.auditCreate)
	page("GET /audits/{id}", u.auditShow)
	page("POST /audits/{id}/answers", u.auditAnswer)
	page("GET /priorities", u.priorityBoard)
	page("POST /priorities", u.priorityAdd)
	page("GET /priorities/{id}", u.priorityShow)
	page("POST /priorities/{id}/move", u.priorityMove)
	page("GET /reports", u.reportList)
	page("GET /reports/new", u.reportNewForm)
	page("POST /reports", u.reportCreate)
	page("GET /reports/{id}", u.reportShow)
	page("GET /members", u.membersPage)
	page("GET /export", u.export)
	page("GET /records/{id}", u.recordShow)
	page("POST /records/{id}/audience", u.audienceChange)
}

// ServeHTTP answers only requests addressed to this machine by name or
// loopback address (a web page elsewhere cannot reach the node through a
// DNS name pointed at 127.0.0.1), and sets headers that keep pages out of
// caches, frames and other sites' scripts.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !loopbackHost(r.Host) {
		http.Error(w, "The Cairn web interface answers only on this computer's own address, e.g. http://127.0.0.1:7410/", http.StatusMisdirectedRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		h.Set("Cache-Control", "no-store")
	}
	u.mux.ServeHTTP(w, r)
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// req is one request with its session, language and CSRF token.
type req struct {
	*http.Request
	w    http.ResponseWriter
	lang Lang
	csrf string
	sid  string
}

type handler func(*req) error

// session runs h for a request with an open session; a form must also
// carry the session's CSRF token.
func (u *UI) session(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq := &req{Request: r, w: w, lang: u.lang(r)}
		c, err := r.Cookie(sessionCookie)
		if err == nil {
			rq.sid = c.Value
			rq.csrf, _ = u.sess.get(c.Value)
		}
		if rq.csrf == "" {
			if wantsJSON(r) {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": rq.lang.T("login.needed")})
				return
			}
			u.render(rq, http.StatusUnauthorized, "login", pageData{Title: rq.lang.T("login.title"), Body: map[string]string{"Message": rq.lang.T("login.needed")}})
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if err := r.ParseForm(); err != nil {
				http.Error(w, rq.lang.T("error.form"), http.StatusBadRequest)
				return
			}
			if !sameToken(r.PostFormValue("csrf"), rq.csrf) {
				if wantsJSON(r) {
					writeJSON(w, http.StatusForbidden, map[string]string{"error": rq.lang.T("error.csrf")})
					return
				}
				http.Error(w, rq.lang.T("error.csrf"), http.StatusForbidden)
				return
			}
		}
		if err := h(rq); err != nil {
			u.fail(rq, err)
		}
	})
}

// lang is the person's chosen language, else the node's.
func (u *UI) lang(r *http.Request) Lang {
	chosen := ""
	if c, err := r.Cookie(languageCookie); err == nil {
		chosen = c.Value
	}
	return Lang{Tag: u.msgs.pick(chosen, u.cfg.Language), c: u.msgs}
}

// fail answers a request whose handler failed outside any form: an unknown
// record is 404, anything else a failure of the node.
func (u *UI) fail(r *req, err error) {
	code := http.StatusInternalServerError
	msg := r.lang.T("error.node", err.Error())
	switch {
	case errors.Is(err, records.ErrNotFound):
		code, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, model.ErrInvalid):
		code, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, errNotFound):
		code, msg = http.StatusNotFound, r.lang.T("error.notfound")
	default:
		u.cfg.Logger.Error("web interface request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if wantsJSON(r.Request) {
		writeJSON(r.w, code, map[string]string{"error": msg})
		return
	}
	u.render(r, code, "error", pageData{Title: r.lang.T("error.title"), Body: map[string]string{"Message": msg}})
}

var errNotFound = errors.New("no such page")

func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// redirect sends the browser on after a form (303: GET the next page).
func redirect(r *req, to string) error {
	http.Redirect(r.w, r.Request, to, http.StatusSeeOther)
	return nil
}

func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	rq := &req{Request: r, w: w, lang: u.lang(r)}
	id, err := u.sess.login(r.URL.Query().Get("code"))
	if err != nil {
		msg := rq.lang.T("login.invalid")
		if !errors.Is(err, errCodeInvalid) {
			msg = err.Error()
		}
		u.render(rq, http.StatusForbidden, "login", pageData{Title: rq.lang.T("login.title"), Body: map[string]string{"Message": msg}})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: int(u.cfg.SessionIdle / time.Second)})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (u *UI) logout(r *req) error {
	u.sess.logout(r.sid)
	http.SetCookie(r.w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	u.render(r, http.StatusOK, "login", pageData{Title: r.lang.T("login.title"), Body: map[string]string{"Message": r.lang.T("login.out")}})
	return nil
}

func (u *UI) setLanguage(r *req) error {
	tag := r.PostFormValue("language")
	if _, ok := u.msgs[tag]; !ok {
		return u.fail400(r, "language", r.lang.T("language.unknown", tag, strings.Join(u.msgs.languages(), ", ")))
	}
	http.SetCookie(r.w, &http.Cookie{Name: languageCookie, Value: tag, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: 365 * 24 * 3600})
	back := r.PostFormValue("back")
	if !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") {
		back = "/"
	}
	return redirect(r, back)
}

// fail400 shows a bad input that belongs to no form on the page.
func (u *UI) fail400(r *req, field, msg string) error {
	u.render(r, http.StatusBadRequest, "error", pageData{Title: r.lang.T("error.title"), Body: map[string]string{"Message": field + ": " + msg}})
	return nil
}
