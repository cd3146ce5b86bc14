// Package credential mints and parses TURN REST API ephemeral credentials
// (draft-uberti-behave-turn-rest-00), the format coturn, pion/turn and
// browsers' RTCIceServer all understand:
//
//	username = "<expiry unix seconds>:<session>"
//	password = base64(HMAC-SHA1(secret, username))
//
// The relay and whoever mints credentials (signaling) share only the secret.
// The package uses the standard library alone, so the minting side does not
// have to import the relay.
package credential

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what the TURN REST API and RFC 8489 long-term credentials use.
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxSessionLen bounds the session part of a username; STUN's USERNAME
// attribute holds at most 513 bytes and nothing legitimate comes near it.
const MaxSessionLen = 128

// ErrMalformed is returned (wrapped) by Parse for a username that is not
// "<expiry>:<session>".
var ErrMalformed = errors.New("credential: malformed username")

// Generate returns the TURN username and password for session, valid until
// expiry (rounded down to the second).
func Generate(secret []byte, session string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + session
	return username, Password(secret, username)
}

// Password returns base64(HMAC-SHA1(secret, username)).
func Password(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username)) // hash.Hash.Write never fails
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Parse splits a username into its expiry and session. It checks the shape
// only; whether the expiry is acceptable is the caller's decision.
func Parse(username string) (expiry time.Time, session string, err error) {
	ts, session, ok := strings.Cut(username, ":")
	if !ok || session == "" || len(session) > MaxSessionLen {
		return time.Time{}, "", fmt.Errorf("%w: want <expiry>:<session>", ErrMalformed)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, "", fmt.Errorf("%w: expiry %q is not positive unix seconds", ErrMalformed, ts)
	}
	return time.Unix(sec, 0), session, nil
}
