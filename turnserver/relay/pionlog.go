package relay

import (
	"log/slog"

	"github.com/pion/logging"

	"github.com/porthole-dev/porthole/internal/pionslog"
)

// pionLoggerFactory routes pion's leveled logger into slog. pion logs at Info
// for per-packet events ("No Permission or Channel exists …", "permission
// denied …"), which would let any client flood the operator's log, so pion's
// Info becomes slog Debug; our own refusal lines are logged at Info with the
// session attached.
type pionLoggerFactory struct{ log *slog.Logger }

func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionslog.Factory{Log: f.log, ScopeKey: "component", ScopePrefix: "pion/", DebugLevel: slog.LevelDebug - 2}.NewLogger(scope)
}
