// Package logflag turns a --log-level flag value into the text logger on
// stderr the porthole daemons log to.
package logflag

import (
	"fmt"
	"log/slog"
	"os"
)

// New parses level (debug, info, warn, error, optionally with an offset such
// as "debug-4") and returns a text logger writing to stderr at that level.
func New(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
