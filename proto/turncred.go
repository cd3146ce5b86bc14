package proto

import (
	"crypto/hmac"
	"crypto/sha1" // #nosec G505 -- HMAC-SHA1 is what the TURN REST API and pion/turn verify.
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TURN credentials follow the TURN REST API (draft-uberti-behave-turn-rest-00),
// the format coturn, pion/turn and browsers' RTCIceServer all understand:
//
//	username = "<expiry unix seconds>:<session>"
//	password = base64(HMAC-SHA1(secret, username))
//
// Signaling mints them and porthole-turn verifies them; the two share only
// the secret and this one definition.

// MaxTURNSessionLen bounds the session part of a TURN username.
const MaxTURNSessionLen = 128

// ErrTURNUsername reports a TURN username that is not "<expiry>:<session>".
var ErrTURNUsername = errors.New("malformed TURN username")

// MintTURN returns the TURN username and password for session, valid until
// expires. The expiry is rounded down to the second so a credential never
// outlives its session.
func MintTURN(secret []byte, session string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + session
	return username, TURNPassword(secret, username)
}

// TURNPassword is base64(HMAC-SHA1(secret, username)).
func TURNPassword(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username)) // hash.Hash.Write never fails
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ParseTURNUsername splits a TURN username into its expiry and session.
func ParseTURNUsername(username string) (expiry time.Time, session string, err error) {
	ts, session, ok := strings.Cut(username, ":")
	if !ok || session == "" || len(session) > MaxTURNSessionLen {
		return time.Time{}, "", fmt.Errorf("%w: want <expiry>:<session>", ErrTURNUsername)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, "", fmt.Errorf("%w: expiry %q is not positive unix seconds", ErrTURNUsername, ts)
	}
	return time.Unix(sec, 0), session, nil
}
