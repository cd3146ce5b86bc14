package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/porthole-dev/porthole/proto"
)

// credential is one configured secret, kept as its SHA-256 so every
// comparison has the same length and runs in constant time.
type credential struct {
	hash [32]byte
	id   string
}

// credentials turns a map into credentials; keyIsID says the map is
// ID → secret rather than secret → ID.
func credentials(m map[string]string, keyIsID bool) []credential {
	out := make([]credential, 0, len(m))
	for k, v := range m {
		id, secret := v, k
		if keyIsID {
			id, secret = k, v
		}
		out = append(out, credential{hash: sha256.Sum256([]byte(secret)), id: id})
	}
	return out
}

// lookup returns the ID whose secret is presented. It compares against
// every entry so the time taken does not depend on which one matches.
func lookup(creds []credential, presented string) (string, bool) {
	if presented == "" {
		return "", false
	}
	h := sha256.Sum256([]byte(presented))
	found := ""
	for i := range creds {
		if subtle.ConstantTimeCompare(h[:], creds[i].hash[:]) == 1 {
			found = creds[i].id
		}
	}
	return found, found != ""
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// sessionToken returns a session token from the Authorization header or,
// for browsers, from a porthole.token.<token> WebSocket subprotocol.
func sessionToken(r *http.Request) string {
	if tok := bearer(r); tok != "" {
		return tok
	}
	for _, p := range websocketProtocols(r) {
		if tok, ok := strings.CutPrefix(p, proto.SessionTokenProtocolPrefix); ok {
			return tok
		}
	}
	return ""
}

func websocketProtocols(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-Websocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// refuse logs a refused request.
func (s *Server) refuse(r *http.Request, why string, args ...any) {
	s.log.Info("request refused", append([]any{"why", why, "method", r.Method, "path", r.URL.Path,
		"remote", r.RemoteAddr, "origin", r.Header.Get("Origin")}, args...)...)
}
