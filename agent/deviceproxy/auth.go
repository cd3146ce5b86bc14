package deviceproxy

import (
	"crypto/md5" //nolint:gosec // RFC 7616 Digest still uses MD5 on most devices
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"sync"
)

// CredentialsHeader carries the technician's credentials for a device that
// answered 401 with a Basic or Digest challenge. The session shell asks for
// them once (in its own dialog, never in the device's frame) and sends them
// with one request as base64("user:password"); the agent removes the header,
// keeps the credentials for the rest of the session (per port) and answers
// the device's challenges with them. The browser side drops this header
// from every request the device's page makes, so only the shell can set it.
const CredentialsHeader = "X-Porthole-Credentials"

// authState is what one session knows about one port's HTTP
// authentication: the technician's credentials, and the last challenge the
// device sent.
type authState struct {
	mu        sync.Mutex
	user      string
	pass      string
	have      bool
	challenge *challenge // last Basic or Digest challenge seen, nil before any
	nc        uint32     // Digest nonce count for challenge.nonce
}

// challenge is one parsed WWW-Authenticate challenge.
type challenge struct {
	scheme string // "basic" or "digest"
	params map[string]string
}

// setCredentials takes a CredentialsHeader value; false if malformed.
func (a *authState) setCredentials(v string) bool {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil || len(raw) > 1024 {
		return false
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || strings.ContainsAny(string(raw), "\r\n\x00") {
		return false
	}
	a.mu.Lock()
	a.user, a.pass, a.have = user, pass, true
	a.mu.Unlock()
	return true
}

// authorize returns the Authorization value for req under the known
// challenge, or "" when the session has no credentials yet.
func (a *authState) authorize(method, uri string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.have {
		return ""
	}
	if a.challenge != nil && a.challenge.scheme == "digest" {
		a.nc++
		return digestAuthorization(a.challenge.params, a.user, a.pass, method, uri, a.nc, newCnonce())
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(a.user+":"+a.pass))
}

// observe records the challenge of a 401 and reports whether a request
// that carried our Authorization is worth repeating at once: a Digest
// challenge that is stale, or that replaces the Basic we guessed.
func (a *authState) observe(h http.Header, sent string) (retry bool) {
	c := pickChallenge(h.Values("Www-Authenticate"))
	if c == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	prev := a.challenge
	a.challenge = c
	a.nc = 0
	if !a.have {
		return false
	}
	if sent == "" {
		return true // credentials arrived, but this request went without
	}
	if c.scheme == "digest" && (strings.EqualFold(c.params["stale"], "true") || prev == nil || prev.scheme != "digest") {
		return true
	}
	// The device refused the credentials themselves: forget them, so that
	// the shell asks again.
	a.user, a.pass, a.have = "", "", false
	return false
}

// pickChallenge returns the first Digest challenge (with an algorithm we
// can compute), else the first Basic one, from WWW-Authenticate values.
func pickChallenge(values []string) *challenge {
	var basic *challenge
	for _, v := range values {
		for _, c := range parseChallenges(v) {
			switch c.scheme {
			case "digest":
				if digestHash(c.params["algorithm"]) != nil {
					return c
				}
			case "basic":
				if basic == nil {
					basic = c
				}
			}
		}
	}
	return basic
}

// parseChallenges parses one WWW-Authenticate value (RFC 9110 11.6.1):
// challenges separated by commas, each a scheme followed by auth-params.
func parseChallenges(v string) []*challenge {
	var out []*challenge
	var cur *challenge
	s := v
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return out
		}
		tok := s[:tokenLen(s)]
		if tok == "" {
			return out // garbage: stop rather than guess
		}
		rest := strings.TrimLeft(s[len(tok):], " \t")
		if strings.HasPrefix(rest, "=") && cur != nil && !strings.HasPrefix(rest, "==") {
			// auth-param of the current challenge
			rest = strings.TrimLeft(rest[1:], " \t")
			var val string
			if strings.HasPrefix(rest, `"`) {
				var b strings.Builder
				i := 1
				for ; i < len(rest) && rest[i] != '"'; i++ {
					if rest[i] == '\\' && i+1 < len(rest) {
						i++
					}
					b.WriteByte(rest[i])
				}
				val = b.String()
				if i < len(rest) {
					i++
				}
				rest = rest[i:]
			} else {
				n := tokenLen(rest)
				val, rest = rest[:n], rest[n:]
			}
			if len(cur.params) < 32 {
				cur.params[strings.ToLower(tok)] = val
			}
			s = rest
			continue
		}
		// A new challenge; a token68 after the scheme is skipped.
		cur = &challenge{scheme: strings.ToLower(tok), params: map[string]string{}}
		out = append(out, cur)
		s = rest
		if n := token68Len(s); n > 0 && !strings.HasPrefix(strings.TrimLeft(s[n:], " \t"), "=") && !strings.Contains(s[:n], ",") {
			if rest2 := strings.TrimLeft(s[n:], " \t"); rest2 == "" || rest2[0] == ',' {
				s = rest2
			}
		}
		if len(out) > 8 {
			return out
		}
	}
}

func tokenLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return i
		}
	}
	return len(s)
}

func token68Len(s string) int {
	i := 0
	for i < len(s) && (isAlnum(s[i]) || strings.IndexByte("-._~+/", s[i]) >= 0) {
		i++
	}
	for i < len(s) && s[i] == '=' {
		i++
	}
	return i
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// digestHash returns the hash constructor for a Digest algorithm, nil if
// unsupported.
func digestHash(alg string) func() hash.Hash {
	switch strings.ToUpper(strings.TrimSuffix(strings.ToLower(alg), "-sess")) {
	case "", "MD5":
		return md5.New
	case "SHA-256":
		return sha256.New
	}
	return nil
}

func hexHash(h func() hash.Hash, s string) string {
	x := h()
	_, _ = io.WriteString(x, s)
	return hex.EncodeToString(x.Sum(nil))
}

func newCnonce() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// digestAuthorization computes an RFC 7616 Authorization value (qop=auth
// when offered, else the RFC 2069 form).
func digestAuthorization(p map[string]string, user, pass, method, uri string, nc uint32, cnonce string) string {
	alg := p["algorithm"]
	h := digestHash(alg)
	if h == nil {
		return ""
	}
	realm, nonce := p["realm"], p["nonce"]
	ha1 := hexHash(h, user+":"+realm+":"+pass)
	if strings.HasSuffix(strings.ToLower(alg), "-sess") {
		ha1 = hexHash(h, ha1+":"+nonce+":"+cnonce)
	}
	ha2 := hexHash(h, method+":"+uri)
	qop := ""
	for q := range strings.SplitSeq(p["qop"], ",") {
		if strings.TrimSpace(q) == "auth" {
			qop = "auth"
		}
	}
	ncs := fmt.Sprintf("%08x", nc)
	var resp string
	if qop != "" {
		resp = hexHash(h, ha1+":"+nonce+":"+ncs+":"+cnonce+":"+qop+":"+ha2)
	} else {
		resp = hexHash(h, ha1+":"+nonce+":"+ha2)
	}
	q := func(s string) string { return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"` }
	var b strings.Builder
	fmt.Fprintf(&b, "Digest username=%s, realm=%s, nonce=%s, uri=%s", q(user), q(realm), q(nonce), q(uri))
	if alg != "" {
		fmt.Fprintf(&b, ", algorithm=%s", alg)
	}
	fmt.Fprintf(&b, ", response=%s", q(resp))
	if qop != "" {
		fmt.Fprintf(&b, ", qop=%s, nc=%s, cnonce=%s", qop, ncs, q(cnonce))
	}
	if o, ok := p["opaque"]; ok {
		fmt.Fprintf(&b, ", opaque=%s", q(o))
	}
	return b.String()
}
