package main

import (
	"context"
	"io"
	"log/slog"
)

// newLogger is the CLI's log: warnings of Porthole's own packages on
// stderr, and nothing of the libraries beneath them (pion logs dozens of
// warnings on an ordinary connect: candidates that cannot reach each
// other, sockets closed at the end). --verbose shows everything, pion
// included, at debug level.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	if verbose {
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{} // a terminal needs no timestamps
		}
		return a
	}})
	return slog.New(libraryFilter{Handler: h})
}

// libraryKeys are the attributes internal/pionslog puts on every logger it
// hands to a library; a logger carrying one is silenced.
var libraryKeys = map[string]bool{"pion": true, "component": true}

// libraryFilter drops every record of a logger derived with a library
// attribute.
type libraryFilter struct {
	slog.Handler
	silent bool
}

func (h libraryFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.silent && h.Handler.Enabled(ctx, l)
}

func (h libraryFilter) WithAttrs(attrs []slog.Attr) slog.Handler {
	for _, a := range attrs {
		if libraryKeys[a.Key] {
			return libraryFilter{Handler: h.Handler, silent: true}
		}
	}
	return libraryFilter{Handler: h.Handler.WithAttrs(attrs), silent: h.silent}
}

func (h libraryFilter) WithGroup(name string) slog.Handler {
	return libraryFilter{Handler: h.Handler.WithGroup(name), silent: h.silent}
}
