package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// loginFrom signs in as name with pw from the loopback address from (any
// of 127/8 is this machine), so tests can play several places at once. It
// returns the status and the Retry-After header.
func (e *authEnv) loginFrom(from, name, pw string) (int, string) {
	e.t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext}}
	defer c.CloseIdleConnections()
	b, _ := json.Marshal(&proto.Login{Username: name, Password: pw})
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+proto.PathLogin, bytes.NewReader(b))
	for k, v := range sameOrigin() {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// TestLoginLockoutIsNotADenialOfService: an attacker guessing user-a's
// password from five other places exhausts the account's budget for unknown
// sources, yet user-a still signs in from the place they signed in from
// before. A new place waits for the window; each attacking place is slowed
// by a backoff that doubles with each failure. Time is the injected clock.
func TestLoginLockoutIsNotADenialOfService(t *testing.T) {
	e := newAuthEnv(t, nil) // defaults: 3 free per pair, 10 per account from unknown sources, 20 per source
	const home, attacker, newPlace = "127.0.0.2", "127.0.0.3", "127.0.0.99"
	if st, _ := e.loginFrom(home, "user-a", password); st != http.StatusOK {
		t.Fatalf("user-a from home = %d", st)
	}

	// One attacking place: 3 free failures, then waits of 1 s, 2 s, 4 s.
	for i := range 3 {
		if st, _ := e.loginFrom(attacker, "user-a", "guess!"+string(rune('a'+i))); st != http.StatusUnauthorized {
			t.Fatalf("guess %d = %d, want 401", i, st)
		}
	}
	for _, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		st, ra := e.loginFrom(attacker, "user-a", "guess!x")
		if st != http.StatusTooManyRequests || ra != fmtSecs(wait) {
			t.Fatalf("guess during the backoff = %d Retry-After %q, want 429 and %s", st, ra, fmtSecs(wait))
		}
		e.clock.Add(wait - time.Millisecond)
		if st, _ := e.loginFrom(attacker, "user-a", "guess!x"); st != http.StatusTooManyRequests {
			t.Fatalf("guess just before the wait ends = %d, want 429", st)
		}
		e.clock.Add(time.Millisecond)
		if st, _ := e.loginFrom(attacker, "user-a", "guess!x"); st != http.StatusUnauthorized {
			t.Fatalf("guess after a %v wait = %d, want 401 (tried, wrong)", wait, st)
		}
	}
	// Four more places, a failure each: 10 failures from unknown sources.
	for i := range 4 {
		if st, _ := e.loginFrom("127.0.1."+string(rune('1'+i)), "user-a", "guess!"); st != http.StatusUnauthorized {
			t.Fatalf("guess = %d", st)
		}
	}
	// The account is closed to unknown places now, even with the password...
	if st, ra := e.loginFrom(newPlace, "user-a", password); st != http.StatusTooManyRequests || ra == "" {
		t.Fatalf("user-a from a new place during the attack = %d (Retry-After %q), want 429", st, ra)
	}
	// ... but not to the place user-a signed in from before.
	if st, _ := e.loginFrom(home, "user-a", password); st != http.StatusOK {
		t.Fatalf("user-a from home during the attack = %d, want 200", st)
	}
	// Another account is not affected from a clean place.
	if st, _ := e.loginFrom(newPlace, "user-b", password); st != http.StatusOK {
		t.Fatalf("user-b from a new place = %d, want 200", st)
	}
	e.waitLog("login throttled")
	e.clock.Add(15*time.Minute + time.Second)
	if st, _ := e.loginFrom(newPlace, "user-a", password); st != http.StatusOK {
		t.Fatalf("user-a from a new place after the window = %d, want 200", st)
	}
}

func fmtSecs(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }

func TestSourceGroupsIPv6By64(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not an address":       "not an address",
	} {
		if got := source(in); got != want {
			t.Errorf("source(%q) = %q, want %q", in, got, want)
		}
	}
}
