package proto

import (
	"encoding/json"
	"net/http"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
)

// The tunnel protocol, carried on WebRTC data channels.
//
// A data channel carries one exchange at a time and is then reused for the
// next, like an HTTP/1.1 keep-alive connection. Each data-channel message is
// one frame:
//
//	+--------+------------------------------+
//	| type   | payload                      |
//	| 1 byte | 0 … MaxFramePayload bytes    |
//	+--------+------------------------------+
//
// An exchange has two directions, each a sequence
//
//	open-or-head  Data*  (End | Abort)
//
// client → agent: FrameRequest (HTTP) or FrameTCPOpen (TCP) (or FrameWSOpen
// for a WebSocket, see websocket.go, or FrameSSHOpen for a terminal, see
// ssh.go), then body or
// stream bytes as FrameData, then FrameEnd. agent → client: FrameResponse
// (HTTP) or FrameTCPOpened (TCP), then FrameData, then FrameEnd. A side that
// wants to stop early sends FrameAbort (with a coded error) in its own
// direction; a side that receives FrameAbort ends its own direction with
// FrameAbort too if it has not ended it yet. A refusal is a FrameAbort in
// place of the response head. The exchange is over, and the channel idle
// again, once both directions have ended; frames of one exchange can
// therefore never leak into the next. For TCP, FrameEnd is a half-close: the
// sender will send no more, but keeps reading.
//
// Cancelling after one's own direction ended: a client whose request
// direction already ended (FrameEnd) may still send one FrameAbort to mean
// "stop sending me the response". The agent then ends its own direction
// with FrameAbort if it is still open, or ignores the stray abort if the
// exchange is already over; it cannot be mistaken for part of the next
// exchange, which always starts with a head frame. Otherwise neither side
// sends anything after its own final frame.

// FrameType is the first byte of every tunnel frame.
type FrameType byte

// Tunnel frame types.
const (
	FrameRequest   FrameType = 0x01 // JSON RequestHead, opens an HTTP exchange
	FrameResponse  FrameType = 0x02 // JSON ResponseHead
	FrameTCPOpen   FrameType = 0x03 // JSON TCPOpen, opens a TCP exchange
	FrameTCPOpened FrameType = 0x04 // empty: the agent connected to the device
	FrameData      FrameType = 0x10 // raw body or stream bytes, 1 … MaxChunk
	FrameEnd       FrameType = 0x11 // empty: this direction is complete
	FrameAbort     FrameType = 0x12 // JSON Error: this direction ended abnormally
)

func (t FrameType) String() string {
	switch t {
	case FrameRequest:
		return "request"
	case FrameResponse:
		return "response"
	case FrameTCPOpen:
		return "tcp-open"
	case FrameTCPOpened:
		return "tcp-opened"
	case FrameData:
		return "data"
	case FrameEnd:
		return "end"
	case FrameAbort:
		return "abort"
	case FrameWSOpen:
		return "ws-open"
	case FrameWSOpened:
		return "ws-opened"
	case FrameWSMessage:
		return "ws-message"
	case FrameWSClose:
		return "ws-close"
	case FrameSSHOpen:
		return "ssh-open"
	case FrameSSHOpened:
		return "ssh-opened"
	case FrameSSHResize:
		return "ssh-resize"
	}
	return "unknown"
}

// Tunnel limits. MaxChunk keeps data-channel messages small enough that
// SCTP interleaves streams fairly; MaxFrame is what a receiver must be able
// to read in one call and what peers advertise as SCTP max message size.
const (
	MaxChunk        = 16 << 10
	MaxHead         = 32 << 10
	MaxFramePayload = MaxHead
	MaxFrame        = 1 + MaxFramePayload
	MaxHeaders      = 128  // header fields in one head
	MaxTarget       = 8192 // request-target length
)

// Frame is one decoded tunnel frame. Payload aliases the buffer it was parsed
// from.
type Frame struct {
	Type    FrameType
	Payload []byte
}

// AppendFrame appends the encoding of a frame to dst.
func AppendFrame(dst []byte, t FrameType, payload []byte) []byte {
	dst = append(dst, byte(t))
	return append(dst, payload...)
}

// ParseFrame decodes one data-channel message, checking the type and the
// size rules of that type. The payload aliases msg.
func ParseFrame(msg []byte) (Frame, error) {
	if len(msg) == 0 {
		return Frame{}, Errorf(CodeBadMessage, "empty tunnel frame")
	}
	if len(msg) > MaxFrame {
		return Frame{}, Errorf(CodeTooLarge, "tunnel frame is %d bytes, limit %d", len(msg), MaxFrame)
	}
	f := Frame{Type: FrameType(msg[0]), Payload: msg[1:]}
	switch f.Type {
	case FrameRequest, FrameResponse, FrameTCPOpen, FrameAbort, FrameWSOpen, FrameWSOpened, FrameSSHOpen, FrameSSHOpened, FrameSSHResize:
		if len(f.Payload) == 0 {
			return Frame{}, Errorf(CodeBadMessage, "%s frame without payload", f.Type)
		}
	case FrameData:
		if len(f.Payload) == 0 || len(f.Payload) > MaxChunk {
			return Frame{}, Errorf(CodeBadMessage, "data frame of %d bytes, want 1 to %d", len(f.Payload), MaxChunk)
		}
	case FrameWSMessage:
		if len(f.Payload) == 0 || len(f.Payload) > 1+MaxChunk {
			return Frame{}, Errorf(CodeBadMessage, "websocket message frame of %d bytes, want 1 to %d", len(f.Payload), 1+MaxChunk)
		}
	case FrameWSClose:
		// An empty payload is a close without a code.
	case FrameTCPOpened, FrameEnd:
		if len(f.Payload) != 0 {
			return Frame{}, Errorf(CodeBadMessage, "%s frame with payload", f.Type)
		}
	default:
		return Frame{}, Errorf(CodeBadMessage, "unknown tunnel frame type 0x%02x", msg[0])
	}
	return f, nil
}

// RequestHead opens an HTTP exchange. Target is the origin-form request
// target ("/path?query"); the agent chooses the device address and Host
// itself, never from the request.
type RequestHead struct {
	Method        string      `json:"method"`
	Target        string      `json:"target"`
	Header        http.Header `json:"header,omitempty"`
	ContentLength int64       `json:"contentLength"`  // -1 unknown, 0 no body
	Port          int         `json:"port,omitempty"` // 0: the device's web port
	// ClientOrigin is the origin the technician's client serves the
	// device's pages on (the session's device origin for the browser, the
	// listener's own http://host:port for `porthole http`). The agent
	// turns an Origin or Referer on exactly this origin into the device's
	// own; any other Origin reaches the device unchanged, so the device's
	// own CSRF check still sees a foreign page for what it is.
	// The agent also rewrites the device's own absolute URLs in text
	// responses to it; "" leaves them.
	ClientOrigin string `json:"clientOrigin,omitempty"`
}

// ResponseHead answers a RequestHead.
type ResponseHead struct {
	Status int         `json:"status"`
	Header http.Header `json:"header,omitempty"`
	// Cookies the browser side may mirror into its own store (never
	// HttpOnly ones, which stay in the agent's jar): "name=value" pairs.
	Cookies []string `json:"cookies,omitempty"`
	// DeletedCookies names the cookies the response deleted (expired or
	// Max-Age ≤ 0) that the browser side may hold in its own store: the
	// mirrored ones and those the page set itself, never HttpOnly ones of
	// the agent's jar. The browser deletes them from its store too.
	DeletedCookies []string `json:"deletedCookies,omitempty"`
	// TLS is set when the response came over a connection that needed
	// legacy TLS (see LegacyTLS), so the session can say so.
	TLS *LegacyTLS `json:"tls,omitempty"`
}

// TCPOpen opens a TCP exchange to a declared port of the session's device.
type TCPOpen struct {
	Port int `json:"port"`
	// ViewOnly asks the agent to pass only what a VNC viewer needs to
	// watch (agent/rfbfilter): no key, pointer or clipboard reaches the
	// device, whatever the browser side sends after it.
	ViewOnly bool `json:"viewOnly,omitempty"`
}

// EncodeHead marshals a head or abort payload and checks its size.
func EncodeHead(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, Errorf(CodeInternal, "encode head: %v", err)
	}
	if len(b) > MaxHead {
		return nil, Errorf(CodeTooLarge, "head is %d bytes, limit %d", len(b), MaxHead)
	}
	return b, nil
}

// decodeStrict decodes one tunnel payload with encoding/json/v2's reference
// implementation, which is strict where a wire decoder must be and
// encoding/json is not: invalid UTF-8, a lone surrogate escape, a repeated
// member name, a member in another case and an unknown member are errors,
// as is trailing data. It is also the hot path of every tunnelled request
// (a head each way), where v1's reflection plus CheckJSON's token walk cost
// a fifth of the technician's CPU per small GET. checkDepth bounds nesting
// first, as for every other decoder here.
func decodeStrict(b []byte, v any) error {
	if err := checkDepth(b, MaxJSONDepth); err != nil {
		return err
	}
	if err := jsonv2.Unmarshal(b, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return Errorf(CodeBadMessage, "malformed head: %v", err)
	}
	return nil
}

// DecodeRequestHead parses and validates a FrameRequest payload. It refuses
// what an HTTP/1.1 proxy must refuse: invalid methods, CONNECT, targets that
// are not origin-form, header injection, and conflicting framing headers.
func DecodeRequestHead(b []byte) (*RequestHead, error) {
	var h RequestHead
	if err := decodeStrict(b, &h); err != nil {
		return nil, err
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return &h, nil
}

// Validate checks a request head.
func (h *RequestHead) Validate() error {
	if h.Method == "" || len(h.Method) > 32 || !isToken(h.Method) {
		return Errorf(CodeBadRequest, "invalid method")
	}
	if h.Method == http.MethodConnect {
		return Errorf(CodeBadRequest, "CONNECT is not forwarded")
	}
	if len(h.Target) > MaxTarget {
		return Errorf(CodeTooLarge, "request target too long")
	}
	if !strings.HasPrefix(h.Target, "/") || strings.HasPrefix(h.Target, "//") {
		return Errorf(CodeBadRequest, "request target must be an absolute path")
	}
	for i := 0; i < len(h.Target); i++ {
		if c := h.Target[i]; c <= ' ' || c == 0x7f || c == '#' {
			return Errorf(CodeBadRequest, "request target contains a forbidden byte")
		}
	}
	if h.ContentLength < -1 {
		return Errorf(CodeBadRequest, "negative content length")
	}
	if h.Port < 0 || h.Port > 65535 {
		return Errorf(CodeBadRequest, "port out of range")
	}
	if h.ClientOrigin != "" && !ValidOrigin(h.ClientOrigin) {
		return Errorf(CodeBadRequest, "client origin must be scheme://host[:port]")
	}
	hdr, err := normalizeHeader(h.Header)
	if err != nil {
		return err
	}
	h.Header = hdr
	// Framing comes from the tunnel, not from these headers; a request that
	// carries both or several is an attempt at smuggling.
	if len(h.Header.Values("Content-Length")) > 1 {
		return Errorf(CodeBadRequest, "duplicate Content-Length")
	}
	if h.Header.Get("Transfer-Encoding") != "" && h.Header.Get("Content-Length") != "" {
		return Errorf(CodeBadRequest, "both Transfer-Encoding and Content-Length")
	}
	return nil
}

// DecodeResponseHead parses and validates a FrameResponse payload.
func DecodeResponseHead(b []byte) (*ResponseHead, error) {
	var h ResponseHead
	if err := decodeStrict(b, &h); err != nil {
		return nil, err
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return &h, nil
}

// Validate checks a response head and canonicalises its header keys.
func (h *ResponseHead) Validate() error {
	if h.Status < 100 || h.Status > 999 {
		return Errorf(CodeBadMessage, "status %d out of range", h.Status)
	}
	hdr, err := normalizeHeader(h.Header)
	if err != nil {
		return err
	}
	h.Header = hdr
	if len(h.Cookies) > MaxHeaders {
		return Errorf(CodeTooLarge, "too many cookies")
	}
	for _, c := range h.Cookies {
		if !validFieldValue(c) {
			return Errorf(CodeBadMessage, "invalid cookie")
		}
	}
	if len(h.DeletedCookies) > MaxHeaders {
		return Errorf(CodeTooLarge, "too many deleted cookies")
	}
	for _, c := range h.DeletedCookies {
		if c == "" || len(c) > 256 || !isToken(c) {
			return Errorf(CodeBadMessage, "invalid deleted cookie name")
		}
	}
	if err := h.TLS.Validate(); err != nil {
		return err
	}
	return nil
}

// DecodeTCPOpen parses and validates a FrameTCPOpen payload.
func DecodeTCPOpen(b []byte) (*TCPOpen, error) {
	var o TCPOpen
	if err := decodeStrict(b, &o); err != nil {
		return nil, err
	}
	if o.Port < 1 || o.Port > 65535 {
		return nil, Errorf(CodeBadRequest, "port %d out of range", o.Port)
	}
	return &o, nil
}

// DecodeAbort parses a FrameAbort payload. An abort with an unknown code is
// still an abort: it decodes as CodeInternal rather than failing.
func DecodeAbort(b []byte) *Error {
	var e Error
	if err := decodeStrict(b, &e); err != nil {
		return &Error{Code: CodeBadMessage, Message: "malformed abort"}
	}
	if !e.Code.Known() {
		e.Code = CodeInternal
	}
	if len(e.Message) > MaxText {
		e.Message = e.Message[:MaxText]
	}
	return &e
}

// normalizeHeader validates names and values and returns the header with
// canonical keys, merging fields that differ only in case so that checks on
// one spelling cannot be bypassed with another.
func normalizeHeader(h http.Header) (http.Header, error) {
	if h == nil {
		return nil, nil
	}
	out := make(http.Header, len(h))
	n := 0
	for k, vs := range h {
		if k == "" || !isToken(k) {
			return nil, Errorf(CodeBadRequest, "invalid header name %.40q", k)
		}
		ck := http.CanonicalHeaderKey(k)
		if _, dup := out[ck]; dup {
			// One field under two spellings ("content-length" and
			// "Content-Length"): the two ends could read it differently.
			return nil, Errorf(CodeBadMessage, "header %.40q is spelled twice", ck)
		}
		for _, v := range vs {
			n++
			if n > MaxHeaders {
				return nil, Errorf(CodeTooLarge, "over %d header fields", MaxHeaders)
			}
			if !validFieldValue(v) {
				return nil, Errorf(CodeBadRequest, "invalid value for header %.40q", k)
			}
			out[ck] = append(out[ck], v)
		}
	}
	return out, nil
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validFieldValue reports whether v may appear as a field value: no control
// bytes other than horizontal tab, so no CR or LF to inject headers with.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// MaxOrigin bounds a serialized origin.
const MaxOrigin = 256

// ValidOrigin reports whether s is a serialized http or https origin
// (RFC 6454): scheme "://" host [":" port], lower-case scheme, no path,
// user info, query or fragment, a host of letters, digits, '.', '-' or a
// bracketed IPv6 address.
func ValidOrigin(s string) bool {
	if len(s) > MaxOrigin {
		return false
	}
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "http://"); !ok {
			return false
		}
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		i := strings.IndexByte(rest, ']')
		if i < 0 {
			return false
		}
		for _, c := range rest[1:i] {
			if !(c == ':' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
		host, port = rest[:i+1], rest[i+1:]
		if port != "" {
			if port[0] != ':' {
				return false
			}
			port = port[1:]
			if port == "" {
				return false
			}
		}
	} else if h, p, found := strings.Cut(rest, ":"); found {
		host, port = h, p
		if port == "" {
			return false
		}
	}
	if host == "" || host == "[]" {
		return false
	}
	if !strings.HasPrefix(host, "[") {
		for i := 0; i < len(host); i++ {
			c := host[i]
			if !(c == '.' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return false
			}
		}
	}
	if len(port) > 5 {
		return false
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return true
}
