package raftnet

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"slices"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// HCLog adapts l to the hclog.Logger that hashicorp/raft logs to. Each
// hclog level maps to its slog counterpart (trace to debug), lowered to
// at most ceiling: New passes slog.LevelDebug so the transport's routine
// complaints (a peer gone, a stream reset) stay out of normal logs; the
// registry can pass slog.LevelError to keep raft's own levels. The hclog
// level is kept as the attribute "raft_level".
func HCLog(l *slog.Logger, ceiling slog.Level) hclog.Logger {
	return &hclogAdapter{l: l, ceiling: ceiling}
}

type hclogAdapter struct {
	l       *slog.Logger
	ceiling slog.Level
	name    string
	implied []any
}

func (a *hclogAdapter) level(lv hclog.Level) slog.Level {
	var s slog.Level
	switch lv {
	case hclog.Trace, hclog.Debug, hclog.NoLevel, hclog.DefaultLevel:
		s = slog.LevelDebug
	case hclog.Info:
		s = slog.LevelInfo
	case hclog.Warn:
		s = slog.LevelWarn
	default:
		s = slog.LevelError
	}
	return min(s, a.ceiling)
}

func (a *hclogAdapter) Log(lv hclog.Level, msg string, args ...any) {
	s := a.level(lv)
	if routine(msg, args) {
		s = slog.LevelDebug
	}
	ctx := context.Background()
	if !a.l.Enabled(ctx, s) {
		return
	}
	if a.name != "" {
		msg = a.name + ": " + msg
	}
	a.l.Log(ctx, s, msg, slices.Concat(args, []any{"raft_level", lv.String()})...)
}

// routine reports whether raft logs as an error what is routine: a
// snapshot asked for (the registry asks for one when it stops) when nothing
// was applied since the last one. Every node printed it at every stop.
func routine(msg string, args []any) bool {
	if msg != "failed to take snapshot" {
		return false
	}
	for _, v := range args {
		if err, ok := v.(error); ok && errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return true
		}
	}
	return false
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) enabled(lv hclog.Level) bool {
	return a.l.Enabled(context.Background(), a.level(lv))
}

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.implied }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	b := *a
	b.l = a.l.With(args...)
	b.implied = slices.Concat(a.implied, args)
	return &b
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	b := *a
	if b.name != "" {
		b.name += "." + name
	} else {
		b.name = name
	}
	return &b
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	b := *a
	b.name = name
	return &b
}

// SetLevel does nothing: the slog handler decides what is shown.
func (a *hclogAdapter) SetLevel(hclog.Level) {}

func (a *hclogAdapter) GetLevel() hclog.Level {
	switch {
	case a.IsDebug():
		return hclog.Debug
	case a.IsInfo():
		return hclog.Info
	case a.IsWarn():
		return hclog.Warn
	case a.IsError():
		return hclog.Error
	}
	return hclog.Off
}

func (a *hclogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(a.l.Handler(), min(slog.LevelInfo, a.ceiling))
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(opts).Writer()
}
