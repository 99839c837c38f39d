package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	stdsync "sync"
	"time"
)

// Bounds on what the UI keeps in memory: a code nobody uses, or a session
// nobody ends, cannot grow the node without limit.
const (
	maxCodes    = 32
	maxSessions = 256
)

// errCodeInvalid is why a login code was refused: unknown, used or expired
// (the page does not say which, so a guess learns nothing).
var errCodeInvalid = errors.New("this login link has been used or has expired")

type session struct {
	csrf     string
	lastSeen time.Time
}

// sessions holds the login codes handed out and the open sessions. It
// starts no goroutine: expired entries go when the maps are touched.
type sessions struct {
	ttl  time.Duration // of a login code
	idle time.Duration // of a session without requests
	now  func() time.Time

	mu    stdsync.Mutex
	codes map[string]time.Time // code → expiry; guarded by mu
	open  map[string]*session  // session id → session; guarded by mu
}

func newSessions(ttl, idle time.Duration, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, idle: idle, now: now, codes: map[string]time.Time{}, open: map[string]*session{}}
}

// random returns n random bytes, URL-safe base64 encoded.
func random(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// newCode hands out a one-time login code.
func (s *sessions) newCode() (string, time.Time, error) {
	code, err := random(32)
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(now)
	if len(s.codes) >= maxCodes {
		return "", time.Time{}, errors.New("too many login links are waiting to be used; wait two minutes and run cairn ui again")
	}
	exp := now.Add(s.ttl)
	s.codes[code] = exp
	return code, exp, nil
}

// login spends a code and opens a session, returning its id.
func (s *sessions) login(code string) (string, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(now)
	exp, ok := s.codes[code]
	if !ok || code == "" {
		return "", errCodeInvalid
	}
	delete(s.codes, code) // once only, even if it has just expired
	if !now.Before(exp) {
		return "", errCodeInvalid
	}
	if len(s.open) >= maxSessions {
		s.dropOldestLocked()
	}
	id, err := random(32)
	if err != nil {
		return "", err
	}
	csrf, err := random(32)
	if err != nil {
		return "", err
	}
	s.open[id] = &session{csrf: csrf, lastSeen: now}
	return id, nil
}

// get returns the session's CSRF token if the session is open, and marks
// it used now.
func (s *sessions) get(id string) (csrf string, ok bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.open[id]
	if !ok {
		return "", false
	}
	if now.Sub(se.lastSeen) > s.idle {
		delete(s.open, id)
		return "", false
	}
	se.lastSeen = now
	return se.csrf, true
}

func (s *sessions) logout(id string) {
	s.mu.Lock()
	delete(s.open, id)
	s.mu.Unlock()
}

func (s *sessions) pruneLocked(now time.Time) {
	for c, exp := range s.codes {
		if !now.Before(exp) {
			delete(s.codes, c)
		}
	}
	for id, se := range s.open {
		if now.Sub(se.lastSeen) > s.idle {
			delete(s.open, id)
		}
	}
}

func (s *sessions) dropOldestLocked() {
	var oldest string
	var at time.Time
	for id, se := range s.open {
		if oldest == "" || se.lastSeen.Before(at) {
			oldest, at = id, se.lastSeen
		}
	}
	delete(s.open, oldest)
}

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
