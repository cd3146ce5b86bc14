package authn

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// ValidVerifier reports whether v is an RFC 7636 code verifier: 43 to 128
// characters of [A-Za-z0-9-._~].
func ValidVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for _, c := range []byte(v) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// ValidChallenge reports whether c can be an S256 challenge: 43 base64url
// characters without padding.
func ValidChallenge(c string) bool {
	b, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil && len(b) == sha256.Size
}

// S256 returns the S256 code challenge of verifier.
func S256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// VerifyPKCE reports whether verifier answers the S256 challenge.
func VerifyPKCE(challenge, verifier string) bool {
	return ValidVerifier(verifier) && subtle.ConstantTimeCompare([]byte(S256(verifier)), []byte(challenge)) == 1
}
