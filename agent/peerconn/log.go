package peerconn

import (
	"log/slog"

	"github.com/pion/logging"

	"github.com/porthole-dev/porthole/internal/pionslog"
)

// loggerFactory adapts slog to pion's logging interfaces. pion's trace and
// debug lines go to Debug, its info lines to Debug too (they are chatty and
// per-connection), warnings and errors keep their level.
type loggerFactory struct{ log *slog.Logger }

func (f loggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionslog.Factory{Log: f.log, ScopeKey: "pion", DebugLevel: slog.LevelDebug}.NewLogger(scope)
}
