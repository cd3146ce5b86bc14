// Package authn holds signaling's credential primitives: argon2id password
// hashes, RFC 6238 TOTP with single-use steps, recovery codes, random bearer
// secrets stored by hash, and the PKCE S256 check. It does no I/O.
package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters (RFC 9106's second recommended option, with less
// memory: 64 MiB, 3 passes).
type Params struct {
	Time    uint32
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultParams are used by HashPassword.
var DefaultParams = Params{Time: 3, Memory: 64 << 10, Threads: 2}

// FastParams are for tests only: cheap to compute, still argon2id.
var FastParams = Params{Time: 1, Memory: 64, Threads: 1}

// Password limits.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 256 // bytes; argon2 itself has no limit, our bodies do
)

// ErrWeakPassword is returned for passwords outside the limits.
var ErrWeakPassword = errors.New("password must be 10 to 256 characters")

// CheckPasswordPolicy reports whether pw may be set as a password.
func CheckPasswordPolicy(pw string) error {
	if utf8.RuneCountInString(pw) < MinPasswordLen || len(pw) > MaxPasswordLen {
		return ErrWeakPassword
	}
	return nil
}

// HashPassword returns an argon2id PHC string for pw.
func HashPassword(pw string, p Params) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// VerifyPassword reports whether pw matches the PHC string hash. A
// malformed hash never matches.
func VerifyPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil ||
		p.Time == 0 || p.Threads == 0 || p.Memory > 1<<22 || p.Time > 16 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// DummyHash is verified against when a login names no user, so that an
// unknown user costs as much time as a wrong password.
func DummyHash(p Params) string { return HashPassword("porthole-dummy-password", p) }

// NewSecret returns a random bearer secret (256 bits, base64url) and the hex
// SHA-256 under which it is stored.
func NewSecret() (secret, hash string) {
	b := make([]byte, 32)
	rand.Read(b)
	secret = base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret)
}

// HashSecret returns the hex SHA-256 of a bearer secret, the form in which
// secrets are stored and looked up. Secrets are random and 256 bits long,
// so a fast hash is enough.
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// NewID returns a random identifier of 26 lower-case base32 characters.
func NewID() string { return strings.ToLower(rand.Text()) }
