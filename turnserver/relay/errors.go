package relay

import "errors"

// Sentinel errors of package relay. Compare with errors.Is.
var (
	// ErrInvalidConfig is wrapped by New for every configuration mistake.
	ErrInvalidConfig = errors.New("relay: invalid config")
	// ErrAlreadyRunning is returned by a second call to Run.
	ErrAlreadyRunning = errors.New("relay: Run called twice")
	// ErrShuttingDown refuses new relay sockets once Run is stopping.
	ErrShuttingDown = errors.New("relay: shutting down")
	// ErrTCPRelayUnsupported: TCP allocations (RFC 6062) are not offered.
	ErrTCPRelayUnsupported = errors.New("relay: TCP allocations are not supported")
	// ErrPortOutsideRange refuses a requested relay port outside
	// Config.RelayPortMin..RelayPortMax.
	ErrPortOutsideRange = errors.New("relay: requested port outside the relay port range")
)
