package federation

import (
	"context"
	"log/slog"
	"strings"
	stdsync "sync"
	"time"
)

// quietHandler passes a log record on at most once per window for the same
// message about the same peer. Raft retries an unreachable member's node
// every few hundred milliseconds and logs each failure; one offline member
// would otherwise write thousands of lines an hour. The next record that
// passes says how many were held back.
type quietHandler struct {
	next   slog.Handler
	window time.Duration
	now    func() time.Time
	state  *quietState
}

type quietState struct {
	mu   stdsync.Mutex
	seen map[string]quietEntry
}

type quietEntry struct {
	last       time.Time
	suppressed int
}

// maxQuietKeys bounds the memory the handler keeps.
const maxQuietKeys = 4096

func newQuietHandler(next slog.Handler, window time.Duration) *quietHandler {
	return &quietHandler{next: next, window: window, now: time.Now, state: &quietState{seen: map[string]quietEntry{}}}
}

func (h *quietHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *quietHandler) Handle(ctx context.Context, r slog.Record) error {
	var key strings.Builder
	key.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "error" && a.Key != "err" && a.Value.Kind() == slog.KindString {
			key.WriteString("\x00" + a.Value.String())
		}
		return true
	})
	now := h.now()
	h.state.mu.Lock()
	e, ok := h.state.seen[key.String()]
	if ok && now.Sub(e.last) < h.window {
		e.suppressed++
		h.state.seen[key.String()] = e
		h.state.mu.Unlock()
		return nil
	}
	if len(h.state.seen) >= maxQuietKeys {
		clear(h.state.seen)
	}
	h.state.seen[key.String()] = quietEntry{last: now}
	h.state.mu.Unlock()
	if e.suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeats_held_back", e.suppressed))
	}
	return h.next.Handle(ctx, r)
}

func (h *quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &quietHandler{next: h.next.WithAttrs(as), window: h.window, now: h.now, state: h.state}
}

func (h *quietHandler) WithGroup(name string) slog.Handler {
	return &quietHandler{next: h.next.WithGroup(name), window: h.window, now: h.now, state: h.state}
}
