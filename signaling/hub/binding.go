package hub

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// Who may speak for a session. A session token is a bearer credential; on
// its own it is no proof of being the technician's session window. So:
//
//   - Binding. The browser shell binds its token once, right after it got
//     it, to a secret only the shell origin's HttpOnly cookie holds
//     (proto.BindCookie; the server sets it, the hub keeps its SHA-256).
//     From then on the token opens the session only with that cookie: a
//     token copied out of the browser is useless. Browsers (requests with
//     an Origin) must bind; only the token POST /v1/sessions returned to an
//     API caller (the CLI, a test) may connect unbound, and only without an
//     Origin (not from a web page).
//   - One client. The first client to join holds the session for its
//     lifetime. Another connection is refused while the holder is live or
//     in its grace period (a reload), unless it is the holder itself: the
//     same token and the same binding. The holder's connection is never
//     replaced by anything else. (Agents keep newest-wins: agents.go.)

// ClientAuth is what the server proved about a client connection.
type ClientAuth struct {
	// TokenHash is the SHA-256 of the session token it presented (zero
	// for ServeClient's callers).
	TokenHash [32]byte
	// BindHash is the SHA-256 of the proto.BindCookie it presented, zero
	// without one.
	BindHash [32]byte
	// Browser says the request came with an Origin header: a web page.
	Browser bool
}

// same reports whether a and b are the same window: the same token and
// the same binding.
func (a ClientAuth) same(b ClientAuth) bool {
	return subtle.ConstantTimeCompare(a.TokenHash[:], b.TokenHash[:]) == 1 &&
		subtle.ConstantTimeCompare(a.BindHash[:], b.BindHash[:]) == 1
}

// Refusals of the binding and one-client rules.
var (
	ErrSessionInUse = &proto.Error{Code: proto.CodeSessionInUse,
		Message: "This session is already open in another window. Use that window, or end the session there and open the device again."}
	ErrTokenBound = &proto.Error{Code: proto.CodeUnauthorized,
		Message: "this session token is bound to the window that obtained it"}
	ErrBindFirst = &proto.Error{Code: proto.CodeUnauthorized,
		Message: "a browser must bind its session token (POST " + proto.PathSessionBind + " on the session window's origin) before it connects"}
	ErrAlreadyBound = &proto.Error{Code: proto.CodeForbidden, Message: "this session token is already bound"}
)

// admitLocked applies the binding and one-client rules to a client that
// says hello on s.
func (h *Hub) admitLocked(s *session, a ClientAuth) *proto.Error {
	if want, bound := s.bound[a.TokenHash]; bound {
		if subtle.ConstantTimeCompare(want[:], a.BindHash[:]) != 1 {
			return ErrTokenBound
		}
	} else if a.TokenHash != [32]byte{} && (a.Browser || a.TokenHash != s.tokenHash) {
		// A browser, or a token issued to a browser (OAuth), unbound.
		return ErrBindFirst
	}
	if s.held && !s.holder.same(a) {
		return ErrSessionInUse
	}
	return nil
}

// BindToken binds the token whose SHA-256 is tokenHash, which must open
// session id, to the secret whose SHA-256 is bindHash. A token is bound
// once (ErrAlreadyBound), and not while another window holds the session
// (ErrSessionInUse); ErrNoSession if id is not live or the token is not
// one of its own.
func (h *Hub) BindToken(id string, tokenHash, bindHash [32]byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[id]
	if s == nil || s.state != stateReady || !h.opt.Now().Before(s.expires) || h.tokens[tokenHash] != s {
		return ErrNoSession
	}
	if h.draining {
		return ErrDraining // its state is being handed over as it was
	}
	if _, ok := s.bound[tokenHash]; ok {
		return ErrAlreadyBound
	}
	// Not while another window holds the session; nor while a client that
	// is no browser window holds it with this very token (an API caller):
	// binding would lock it out, or hand its session to whoever bound.
	if s.held && (s.holder.TokenHash != tokenHash || s.holder.BindHash == [32]byte{}) {
		s.log.Info("token binding refused: another client holds the session")
		return ErrSessionInUse
	}
	if s.bound == nil {
		s.bound = make(map[[32]byte][32]byte, 1)
	}
	s.bound[tokenHash] = bindHash
	s.log.Info("session token bound to its window")
	return nil
}

// relayTicket is one SessionReady.RelayTicket handed out.
type relayTicket struct {
	hash    [32]byte
	expires time.Time
}

// maxRelayTickets bounds the unused tickets a session keeps: each client
// hello adds one, and a client that reconnects in a loop must not grow it.
const maxRelayTickets = 4

// newRelayTicketLocked mints a relay ticket for s and keeps its hash.
func (h *Hub) newRelayTicketLocked(s *session) string {
	var b [16]byte
	rand.Read(b[:])
	t := base64.RawURLEncoding.EncodeToString(b[:])
	if len(s.tickets) >= maxRelayTickets {
		s.tickets = append(s.tickets[:0], s.tickets[1:]...)
	}
	s.tickets = append(s.tickets, relayTicket{hash: sha256.Sum256([]byte(t)), expires: h.opt.Now().Add(proto.RelayTicketTTL)})
	return t
}

// ConsumeRelayTicket reports whether ticket is an unused, unexpired relay
// ticket of live session id, and burns it. (The relay frame's server side,
// which checks it and sets the device origin's cookie, is the seam for the
// server fallback: see signaling/server, serveDeviceHost.)
func (h *Hub) ConsumeRelayTicket(id, ticket string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[id]
	if s == nil || s.state != stateReady || ticket == "" {
		return false
	}
	want := sha256.Sum256([]byte(ticket))
	now := h.opt.Now()
	for i, t := range s.tickets {
		if subtle.ConstantTimeCompare(t.hash[:], want[:]) == 1 {
			s.tickets = append(s.tickets[:i], s.tickets[i+1:]...)
			return now.Before(t.expires)
		}
	}
	return false
}
