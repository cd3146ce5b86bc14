// Package pionslog adapts slog to pion's logging.LoggerFactory.
package pionslog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// Factory is a logging.LoggerFactory writing to Log. Each scope's logger
// carries the attribute ScopeKey=ScopePrefix+scope. pion's Trace goes to
// slog.LevelDebug-4, its Debug to DebugLevel, its Info to slog.LevelDebug
// (pion's Info is chatty and per-connection or per-packet), Warn and Error
// keep their level. A nil Log discards everything.
type Factory struct {
	Log         *slog.Logger
	ScopeKey    string
	ScopePrefix string
	DebugLevel  slog.Level
}

// NewLogger implements logging.LoggerFactory.
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	if f.Log == nil {
		return leveled{debug: f.DebugLevel}
	}
	return leveled{log: f.Log.With(f.ScopeKey, f.ScopePrefix+scope), debug: f.DebugLevel}
}

type leveled struct {
	log   *slog.Logger
	debug slog.Level
}

var _ logging.LeveledLogger = leveled{}

func (l leveled) emit(level slog.Level, msg string) {
	if l.log == nil || !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, msg)
}

func (l leveled) emitf(level slog.Level, format string, args ...any) {
	if l.log == nil || !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
}

func (l leveled) Trace(msg string)                  { l.emit(slog.LevelDebug-4, msg) }
func (l leveled) Tracef(format string, args ...any) { l.emitf(slog.LevelDebug-4, format, args...) }
func (l leveled) Debug(msg string)                  { l.emit(l.debug, msg) }
func (l leveled) Debugf(format string, args ...any) { l.emitf(l.debug, format, args...) }
func (l leveled) Info(msg string)                   { l.emit(slog.LevelDebug, msg) }
func (l leveled) Infof(format string, args ...any)  { l.emitf(slog.LevelDebug, format, args...) }
func (l leveled) Warn(msg string)                   { l.emit(slog.LevelWarn, msg) }
func (l leveled) Warnf(format string, args ...any)  { l.emitf(slog.LevelWarn, format, args...) }
func (l leveled) Error(msg string)                  { l.emit(slog.LevelError, msg) }
func (l leveled) Errorf(format string, args ...any) { l.emitf(slog.LevelError, format, args...) }
