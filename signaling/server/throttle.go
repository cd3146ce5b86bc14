package server

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// Sign-in throttling (password, second factor, and the password check of
// account changes) follows OWASP's Authentication Cheat Sheet ("account
// lockout" can be abused to lock users out; throttle instead) and NIST SP
// 800-63B §5.2.2 (rate limiting, with delays that grow after each failure and
// trust in sources the subscriber signed in from before). An attacker
// elsewhere cannot lock out a user who signs in from their usual place:
//
//   - Each (account, source) pair gets MaxPairFailures free failures, then
//     must wait before each further try: 1 s, 2 s, 4 s, … up to LoginWindow.
//   - Each source gets MaxAddressFailures failures per LoginWindow across all
//     accounts (password spraying).
//   - Each account gets MaxAccountFailures failures per LoginWindow from
//     sources it has never signed in from; past that, only its known sources
//     may try. A source becomes known with a complete sign-in (password and
//     second factor) and stays known for knownSourceTTL.
//
// A source is the client's IP address, or its /64 for IPv6 (one host can
// own a whole /64). Counters live in the store (Attempt), so they hold
// across restarts and cluster nodes.

// knownSourceTTL is how long a source stays known after a sign-in from it.
const knownSourceTTL = 30 * 24 * time.Hour

// source groups a client address into the unit throttling counts.
func source(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

type throttleKeys struct{ pair, cool, addr, account, known string }

func keysFor(name, addr string) throttleKeys {
	src := source(addr)
	pair := name + "|" + src
	return throttleKeys{
		pair:    "login:pair:" + pair,
		cool:    "login:cool:" + pair,
		addr:    "login:addr:" + src,
		account: "login:user:" + name,
		known:   "login:known:" + pair,
	}
}

// backoff is the wait after the nth failure of a pair past its free ones.
func (s *Server) backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := time.Second << min(n-1, 30)
	return min(d, s.cfg.LoginWindow)
}

// throttled reports whether a sign-in step for name from addr must wait,
// and for about how long.
func (s *Server) throttled(ctx context.Context, name, addr string) (time.Duration, bool) {
	k := keysFor(name, addr)
	if n, _ := s.store.Attempts(ctx, k.cool); n > 0 {
		fails, _ := s.store.Attempts(ctx, k.pair)
		return s.backoff(fails + 1 - s.cfg.MaxPairFailures), true
	}
	if n, _ := s.store.Attempts(ctx, k.addr); n >= s.cfg.MaxAddressFailures {
		return s.cfg.LoginWindow, true
	}
	if known, _ := s.store.Attempts(ctx, k.known); known == 0 {
		if n, _ := s.store.Attempts(ctx, k.account); n >= s.cfg.MaxAccountFailures {
			return s.cfg.LoginWindow, true
		}
	}
	return 0, false
}

// failed counts a failed step for name from addr.
func (s *Server) failed(ctx context.Context, name, addr string) {
	k := keysFor(name, addr)
	window := s.cfg.LoginWindow
	if n, err := s.store.Attempt(ctx, k.pair, window); err == nil && n >= s.cfg.MaxPairFailures {
		_, _ = s.store.Attempt(ctx, k.cool, s.backoff(n+1-s.cfg.MaxPairFailures))
	}
	_, _ = s.store.Attempt(ctx, k.addr, window)
	if known, _ := s.store.Attempts(ctx, k.known); known == 0 {
		_, _ = s.store.Attempt(ctx, k.account, window)
	}
}

// signedIn forgets the pair's failures and makes addr a known source of
// name. The account's count of failures from unknown sources stays: a
// sign-in elsewhere does not give an attacker more guesses.
func (s *Server) signedIn(ctx context.Context, name, addr string) {
	k := keysFor(name, addr)
	_ = s.store.ResetAttempts(ctx, k.pair)
	_ = s.store.ResetAttempts(ctx, k.cool)
	_, _ = s.store.Attempt(ctx, k.known, knownSourceTTL)
}

// writeThrottled answers 429 with Retry-After.
func writeThrottled(w http.ResponseWriter, wait time.Duration) {
	secs := max(int((wait+time.Second-1)/time.Second), 1)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, proto.Errorf(proto.CodeRateLimited,
		"too many failed attempts; try again in %s", fmt.Sprint(time.Duration(secs)*time.Second)))
}
