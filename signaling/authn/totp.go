package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP: RFC 6238 with SHA-1, 6 digits, 30-second steps, and one step of
// clock skew accepted either side.
const (
	TOTPPeriod = 30
	TOTPSkew   = 1
)

// NewTOTPSecret returns a fresh base32 secret and its otpauth:// URL for
// authenticator apps.
func NewTOTPSecret(issuer, account string) (secret, url string, err error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: account, Period: TOTPPeriod,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, Rand: rand.Reader,
	})
	if err != nil {
		return "", "", err
	}
	return key.Secret(), key.URL(), nil
}

// TOTPCode returns the code for secret at t (for tests and enrolment
// checks).
func TOTPCode(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totp.ValidateOpts{Period: TOTPPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// CheckTOTP returns the time step at which code is valid for secret at now,
// within TOTPSkew steps either side, and only if that step is after
// lastStep: a code once accepted is never accepted again, nor any older one.
func CheckTOTP(secret, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	code = strings.TrimSpace(code)
	if len(code) != 6 {
		return 0, false
	}
	cur := now.Unix() / TOTPPeriod
	found := int64(0)
	for s := cur - TOTPSkew; s <= cur+TOTPSkew; s++ {
		want, err := TOTPCode(secret, time.Unix(s*TOTPPeriod, 0))
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && s > lastStep && found == 0 {
			found = s
		}
	}
	return found, found != 0
}

// NewRecoveryCodes returns n readable one-time codes (xxxxx-xxxxx) and
// their hashes for storage.
func NewRecoveryCodes(n int) (codes, hashes []string) {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for range n {
		b := make([]byte, 7)
		rand.Read(b)
		s := strings.ToLower(enc.EncodeToString(b))[:10]
		codes = append(codes, s[:5]+"-"+s[5:])
		hashes = append(hashes, HashRecoveryCode(s))
	}
	return codes, hashes
}

// HashRecoveryCode hashes a recovery code, ignoring case, spaces and dashes.
func HashRecoveryCode(code string) string {
	norm := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case 'A' <= r && r <= 'Z':
			return r + 'a' - 'A'
		}
		return r
	}, code)
	h := sha256.Sum256([]byte("porthole-recovery:" + norm))
	return hex.EncodeToString(h[:])
}
