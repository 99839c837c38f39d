package federation

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestQuietHandlerHoldsBackRepeats(t *testing.T) {
	var buf bytes.Buffer
	h := newQuietHandler(slog.NewTextHandler(&buf, nil), time.Minute)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return now }
	log := slog.New(h)
	for range 1000 {
		log.Warn("failed to heartbeat to", "peer", "12D3KooWA", "error", "dial refused")
		now = now.Add(100 * time.Millisecond)
	}
	log.Warn("failed to heartbeat to", "peer", "12D3KooWB", "error", "dial refused")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// 100 s of failures every 100 ms: one line at 0 s, one at 60 s (with the
	// count held back), and one for the other peer.
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[1], "repeats_held_back=599") || !strings.Contains(lines[2], "12D3KooWB") {
		t.Fatalf("lines:\n%s", buf.String())
	}
}
