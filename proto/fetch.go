package proto

import (
	"regexp"
	"strings"
	"time"
)

// The signaling fallback: HTTP exchanges carried over the agent's own
// signaling connection.
//
// A browser sends some requests of the device's page to the device
// origin's server instead of its service worker: synchronous
// XMLHttpRequest, /favicon.ico, a hard reload, anything before the worker
// controls the page or after it is gone. Signaling carries each of them to
// the session's agent with these messages (session in the envelope), and
// the agent serves it exactly as it serves a tunnel request: the same
// device proxy, rules, grant expiry and access log, the entry marked
// ViaSignaling.
//
// An exchange has an ID, unique within its session and chosen by
// signaling, and two directions, each a sequence
//
//	head  fetch.data*  (fetch.end | fetch.abort)
//
// signaling → agent: fetch.request, then the request body, then fetch.end.
// agent → signaling: fetch.response, then the response body, then
// fetch.end. Either side may end its own direction early with fetch.abort
// (a coded error); a side that receives an abort aborts its own direction
// too if it is still open. The agent refuses a request with a fetch.abort
// in place of the response head. Signaling may send one fetch.abort after
// its fetch.end to mean "stop sending me the response" (the browser went
// away). Messages for an exchange that is over are ignored.
//
// Flow control: a sender may have at most FetchWindow fetch.data messages
// of one direction that the receiver has not yet credited. The receiver
// sends fetch.credit {n} as it hands chunks on (to the device, or to the
// browser), so a slow browser slows the agent's reads from the device
// instead of filling signaling's queues, and nothing makes signaling drop
// the agent's connection. A sender that overruns the window has its
// exchange aborted.
//
// Versioning: an agent announces the version of this protocol it speaks in
// Hello.Fetch. Signaling sends fetch messages only to agents that announced
// FetchVersion or later, and tells the technician that an older agent must
// be updated.

// Fetch message types.
const (
	TypeFetchRequest  MsgType = "fetch.request"  // signaling → agent: FetchRequest
	TypeFetchResponse MsgType = "fetch.response" // agent → signaling: FetchResponse
	TypeFetchData     MsgType = "fetch.data"     // both: FetchData
	TypeFetchEnd      MsgType = "fetch.end"      // both: FetchEnd
	TypeFetchAbort    MsgType = "fetch.abort"    // both: FetchAbort
	TypeFetchCredit   MsgType = "fetch.credit"   // both: FetchCredit
)

// Limits of the fallback.
const (
	// FetchVersion is the fallback protocol version described here.
	FetchVersion = 1
	// MaxFetchBody bounds a request body carried by the fallback; larger
	// ones are refused with 413 before anything reaches the agent.
	MaxFetchBody = 1 << 20
	// FetchChunk is the largest body chunk in one fetch.data (the tunnel's
	// chunk size): base64 in JSON keeps a message well under
	// MaxSignalMessage.
	FetchChunk = MaxChunk
	// FetchWindow is how many chunks of one direction may be in flight
	// without credit: 128 KiB per exchange.
	FetchWindow = 8
	// MaxFetchesPerSession caps the exchanges a session may have in flight
	// at once; more are refused with rate_limited (a browser opens six
	// connections per host at most, and a synchronous XHR one at a time).
	MaxFetchesPerSession = 8
	// FetchHeadTimeout bounds the wait for the response head.
	FetchHeadTimeout = 60 * time.Second
	// FetchIdleTimeout bounds the wait for the next message of an
	// exchange once it started, in either direction (a body chunk, an
	// end, a credit).
	FetchIdleTimeout = 60 * time.Second
	// MaxTicket bounds a ticket's length.
	MaxTicket = 64
)

// Paths on a session's device origin. Nothing under PathPrefix reaches the
// device; everything else the server gets there is carried by the
// fallback.
// (PathRelayFrame is the shell's relay frame; the shell asks for
// PathRelayFrame?t=<SessionReady.RelayTicket> itself, an opaque request,
// and redeeming the ticket sets DeviceCookie.)
const PathPrefix = "/__t/"

// DeviceCookie is the cookie of a session's device origin that proves a
// request comes from the technician's browser: set HttpOnly, Secure,
// SameSite=Strict by signaling when the shell redeems its relay ticket,
// and checked on every fallback request. Signaling never passes
// it, or any cookie named with DeviceCookiePrefix, to the agent.
const (
	DeviceCookie       = "__Host-porthole-device"
	DeviceCookiePrefix = "__Host-porthole-"
)

// DeviceCSP is the policy every device response carries in the browser,
// in addition to the device's own (browsers enforce each policy, so the
// device's can only narrow it), whichever path it took: the agent sets it
// (agent/deviceproxy), the worker checks it (web/session/headers.js
// DEVICE_CSP, kept equal by a test), and signaling sets it on the
// fallback's answers. Device pages rely on inline scripts, styles and
// eval, so those stay allowed; any other origin is refused: no remote
// scripts, no exfiltration by fetch, forms or <base>, and only the session
// window may frame the page.
const DeviceCSP = "default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'self'; frame-ancestors 'self'; " +
	"object-src 'none'"

// Paths an access-log entry can have taken (AccessEntry.Via).
const (
	ViaWebRTC    = "webrtc"    // the service worker, over a data channel
	ViaSignaling = "signaling" // the fallback, over the agent's signaling connection
)

// FetchRequest is the body of fetch.request: the head of a request, in the
// tunnel's own shape, and its exchange ID.
type FetchRequest struct {
	ID uint64 `json:"id"`
	RequestHead
}

// FetchResponse is the body of fetch.response.
type FetchResponse struct {
	ID uint64 `json:"id"`
	ResponseHead
}

// FetchData is the body of fetch.data: 1 to FetchChunk body bytes
// (base64 in JSON).
type FetchData struct {
	ID   uint64 `json:"id"`
	Data []byte `json:"data"`
}

// FetchEnd is the body of fetch.end: the sender's direction is complete.
type FetchEnd struct {
	ID uint64 `json:"id"`
}

// FetchAbort is the body of fetch.abort: the sender's direction ended
// abnormally, with a coded error.
type FetchAbort struct {
	ID uint64 `json:"id"`
	Error
}

// FetchCredit is the body of fetch.credit: the sender consumed N more
// chunks of the receiver's direction.
type FetchCredit struct {
	ID uint64 `json:"id"`
	N  int    `json:"n"`
}

func checkFetchID(typ MsgType, id uint64) error {
	if id == 0 {
		return Errorf(CodeBadMessage, "%s: exchange id starts at 1", typ)
	}
	return nil
}

// Validate checks a request head: the tunnel's rules, and the fallback's
// body limit.
func (r *FetchRequest) Validate() error {
	if err := checkFetchID(TypeFetchRequest, r.ID); err != nil {
		return err
	}
	if r.ContentLength > MaxFetchBody {
		return Errorf(CodeTooLarge, "fetch.request: body of %d bytes, limit %d", r.ContentLength, MaxFetchBody)
	}
	return r.RequestHead.Validate()
}

// Validate checks a response head.
func (r *FetchResponse) Validate() error {
	if err := checkFetchID(TypeFetchResponse, r.ID); err != nil {
		return err
	}
	return r.ResponseHead.Validate()
}

// Validate checks a body chunk.
func (d *FetchData) Validate() error {
	if err := checkFetchID(TypeFetchData, d.ID); err != nil {
		return err
	}
	if len(d.Data) == 0 || len(d.Data) > FetchChunk {
		return Errorf(CodeBadMessage, "fetch.data: %d bytes, want 1 to %d", len(d.Data), FetchChunk)
	}
	return nil
}

// Validate checks an end.
func (e *FetchEnd) Validate() error { return checkFetchID(TypeFetchEnd, e.ID) }

// Validate checks an abort. Unlike the tunnel's abort frame, an unknown
// code is refused: both ends are built from this package.
func (a *FetchAbort) Validate() error {
	if err := checkFetchID(TypeFetchAbort, a.ID); err != nil {
		return err
	}
	return a.Error.Validate()
}

// Validate checks a credit.
func (c *FetchCredit) Validate() error {
	if err := checkFetchID(TypeFetchCredit, c.ID); err != nil {
		return err
	}
	if c.N < 1 || c.N > FetchWindow {
		return Errorf(CodeBadMessage, "fetch.credit: n must be 1 to %d", FetchWindow)
	}
	return nil
}

// IsFetch reports whether t is one of the fallback's message types.
func IsFetch(t MsgType) bool {
	switch t {
	case TypeFetchRequest, TypeFetchResponse, TypeFetchData, TypeFetchEnd, TypeFetchAbort, TypeFetchCredit:
		return true
	}
	return false
}

var ticketPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)

// ValidTicket reports whether s has the shape of a relay ticket (base64url,
// 16 to MaxTicket characters).
func ValidTicket(s string) bool { return ticketPattern.MatchString(s) }

// IsPortholeCookie reports whether a cookie name is one of signaling's own
// on a session origin, which never reach the device (browsers compare
// cookie-name prefixes case-insensitively).
func IsPortholeCookie(name string) bool {
	return len(name) >= len(DeviceCookiePrefix) && strings.EqualFold(name[:len(DeviceCookiePrefix)], DeviceCookiePrefix)
}
