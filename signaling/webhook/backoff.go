package webhook

import "time"

// Backoff returns the wait after the attempt-th failed attempt (1-based):
// base doubled for every attempt after the first, capped at limit, then
// with "equal jitter": half of it fixed and the other half scaled by
// jitter in [0, 1), so that endpoints failing together are not retried in
// lockstep.
func Backoff(attempt int, base, limit time.Duration, jitter float64) time.Duration {
	d := base
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	jitter = min(max(jitter, 0), 1)
	return d/2 + time.Duration(jitter*float64(d/2))
}
