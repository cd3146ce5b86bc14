package proto

import (
	"net/http"
	"strings"
	"unicode/utf8"
)

// WebSockets the device's page opens are carried as a third kind of
// exchange on a tunnel channel (see the state machine in tunnel.go):
//
//	client → agent: FrameWSOpen  FrameWSMessage*  (FrameWSClose | FrameAbort)
//	agent → client: (FrameWSOpened | FrameAbort)  FrameWSMessage*  (FrameWSClose | FrameAbort)
//
// FrameWSOpen names a path and a declared port of the session's device,
// never a host: the agent opens the real WebSocket to the device itself
// (ws:// or wss:// as the port is reached), with the session's cookie jar
// and the device's own Origin. A refusal (undeclared port, the device
// answered without upgrading) is a FrameAbort in place of FrameWSOpened.
//
// A WebSocket message travels as one or more FrameWSMessage frames of one
// direction, in order: the first payload byte holds flags (WSBinary for a
// binary message, WSFinal on the message's last chunk), the rest is up to
// MaxChunk bytes of the message (possibly none: an empty message is one
// final frame with no data). Chunks of two messages never interleave
// within a direction. A receiver bounds a message to MaxWSMessage and
// closes with WSCloseTooBig beyond it.
//
// FrameWSClose carries the close code and reason and ends its sender's
// direction, as FrameEnd does for HTTP: after the device closed, the agent
// sends FrameWSClose; the client answers with its own (the closing
// handshake) and the exchange is over once both directions ended. A
// connection that broke without a closing handshake ends with FrameAbort
// (the page sees code 1006).
//
// Flow control is the data channel's, both ways: a sender stops while its
// channel's buffered amount is above its high-water mark, so a device that
// floods is slowed down to what the technician's side reads (the agent
// stops reading from the device's TCP connection), and a page that sends
// faster than the device reads sees bufferedAmount grow.

// WebSocket frame types.
const (
	FrameWSOpen    FrameType = 0x05 // JSON WSOpen, opens a WebSocket exchange
	FrameWSOpened  FrameType = 0x06 // JSON WSOpened: the device accepted the upgrade
	FrameWSMessage FrameType = 0x13 // flags byte, then a chunk of a message
	FrameWSClose   FrameType = 0x14 // JSON WSClose: this direction is complete
)

// FrameWSMessage flags.
const (
	WSBinary byte = 0x01 // a binary message (else text)
	WSFinal  byte = 0x02 // the message's last chunk
)

// WebSocket limits.
const (
	// MaxWSMessage bounds one message, in either direction: the browser
	// must hold a whole message to deliver it to the page.
	MaxWSMessage = 16 << 20
	// MaxWSProtocols bounds the subprotocols a page may offer.
	MaxWSProtocols = 32
	// MaxWSReason is RFC 6455's limit on a close reason (a control frame
	// of 125 bytes less the code).
	MaxWSReason = 123
)

// WebSocket close codes with a meaning for the tunnel (RFC 6455 7.4.1).
const (
	WSCloseNormal     = 1000
	WSCloseGoingAway  = 1001
	WSCloseProtocol   = 1002
	WSCloseNoStatus   = 1005 // no code in the close frame; never on the wire
	WSCloseAbnormal   = 1006 // no close frame at all; never on the wire
	WSCloseInvalid    = 1007
	WSClosePolicy     = 1008
	WSCloseTooBig     = 1009
	WSCloseInternal   = 1011
	WSCloseTLSFailure = 1015 // never on the wire
)

// WSOpen opens a WebSocket to the session's device.
type WSOpen struct {
	// Target is the origin-form path and query of the WebSocket URL.
	Target string `json:"target"`
	// Protocols are the subprotocols the page offered, in its order.
	Protocols []string `json:"protocols,omitempty"`
	// Header holds request fields to pass on (Cookie from the browser's
	// store, User-Agent, Accept-Language); the agent drops the handshake's
	// own fields and sets Host and Origin itself.
	Header http.Header `json:"header,omitempty"`
	// Port is a declared port of the device; 0 means its web port.
	Port int `json:"port,omitempty"`
	// ClientOrigin is the client's own origin, as in RequestHead.
	ClientOrigin string `json:"clientOrigin,omitempty"`
}

// WSOpened answers WSOpen once the device accepted the upgrade.
type WSOpened struct {
	// Protocol is the subprotocol the device chose, "" for none.
	Protocol string `json:"protocol,omitempty"`
	// Cookies and DeletedCookies are as in ResponseHead: what the
	// handshake's Set-Cookie changed that the browser side may mirror.
	Cookies        []string   `json:"cookies,omitempty"`
	DeletedCookies []string   `json:"deletedCookies,omitempty"`
	TLS            *LegacyTLS `json:"tls,omitempty"`
}

// WSClose ends one direction of a WebSocket exchange.
type WSClose struct {
	// Code is the close code; 0 means the closing frame carried none
	// (the page sees 1005).
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// DecodeWSOpen parses and validates a FrameWSOpen payload.
func DecodeWSOpen(b []byte) (*WSOpen, error) {
	var o WSOpen
	if err := decodeStrict(b, &o); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &o, nil
}

// Validate checks a WSOpen: an origin-form target, a port in range,
// subprotocols that are distinct tokens, valid header fields.
func (o *WSOpen) Validate() error {
	rh := RequestHead{Method: http.MethodGet, Target: o.Target, Header: o.Header, Port: o.Port, ClientOrigin: o.ClientOrigin}
	if err := rh.Validate(); err != nil {
		return err
	}
	o.Header = rh.Header
	if len(o.Protocols) > MaxWSProtocols {
		return Errorf(CodeTooLarge, "over %d subprotocols", MaxWSProtocols)
	}
	seen := make(map[string]bool, len(o.Protocols))
	for _, p := range o.Protocols {
		if p == "" || len(p) > 128 || !isToken(p) {
			return Errorf(CodeBadRequest, "invalid subprotocol %.40q", p)
		}
		if seen[p] {
			return Errorf(CodeBadRequest, "duplicate subprotocol %.40q", p)
		}
		seen[p] = true
	}
	return nil
}

// DecodeWSOpened parses and validates a FrameWSOpened payload.
func DecodeWSOpened(b []byte) (*WSOpened, error) {
	var o WSOpened
	if err := decodeStrict(b, &o); err != nil {
		return nil, err
	}
	if o.Protocol != "" && (len(o.Protocol) > 128 || !isToken(o.Protocol)) {
		return nil, Errorf(CodeBadMessage, "invalid subprotocol")
	}
	rh := ResponseHead{Status: http.StatusSwitchingProtocols, Cookies: o.Cookies, DeletedCookies: o.DeletedCookies, TLS: o.TLS}
	b2, err := EncodeHead(&rh)
	if err != nil {
		return nil, err
	}
	if _, err := DecodeResponseHead(b2); err != nil {
		return nil, err
	}
	return &o, nil
}

// DecodeWSClose parses and validates a FrameWSClose payload. An empty
// payload is a close without a code.
func DecodeWSClose(b []byte) (*WSClose, error) {
	var c WSClose
	if len(b) == 0 {
		return &c, nil
	}
	if err := decodeStrict(b, &c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks a close: a code that may appear in a close frame (or
// 0), and a UTF-8 reason of at most MaxWSReason bytes, which needs a code.
func (c *WSClose) Validate() error {
	if !ValidWSCloseCode(c.Code) && c.Code != 0 {
		return Errorf(CodeBadMessage, "close code %d may not be sent", c.Code)
	}
	if len(c.Reason) > MaxWSReason || !utf8.ValidString(c.Reason) {
		return Errorf(CodeBadMessage, "close reason too long or not UTF-8")
	}
	if c.Code == 0 && c.Reason != "" {
		return Errorf(CodeBadMessage, "close reason without a code")
	}
	return nil
}

// ValidWSCloseCode reports whether code may be sent in a close frame
// (RFC 6455 7.4: 1000–1003, 1007–1014, 3000–4999).
func ValidWSCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// WSChunk is one decoded FrameWSMessage.
type WSChunk struct {
	Binary bool
	Final  bool
	Data   []byte // aliases the frame's payload
}

// ParseWSMessage decodes a FrameWSMessage payload (already size-checked
// by ParseFrame).
func ParseWSMessage(payload []byte) (WSChunk, error) {
	if len(payload) == 0 {
		return WSChunk{}, Errorf(CodeBadMessage, "websocket message frame without flags")
	}
	fl := payload[0]
	if fl&^(WSBinary|WSFinal) != 0 {
		return WSChunk{}, Errorf(CodeBadMessage, "unknown websocket message flags 0x%02x", fl)
	}
	return WSChunk{Binary: fl&WSBinary != 0, Final: fl&WSFinal != 0, Data: payload[1:]}, nil
}

// AppendWSMessage appends a FrameWSMessage payload (flags and chunk) to dst.
func AppendWSMessage(dst []byte, binary, final bool, chunk []byte) []byte {
	var fl byte
	if binary {
		fl |= WSBinary
	}
	if final {
		fl |= WSFinal
	}
	dst = append(dst, fl)
	return append(dst, chunk...)
}

// WSAssembler checks the chunks of one direction's messages: consistent
// types within a message, and the MaxWSMessage bound (or a smaller one).
// Its zero value uses MaxWSMessage.
type WSAssembler struct {
	Limit int // 0: MaxWSMessage

	inMessage bool
	binary    bool
	size      int
}

// Add accounts for one chunk; it reports whether the chunk starts a new
// message. An error is a protocol violation (code bad_message) or a
// message over the limit (code too_large).
func (a *WSAssembler) Add(c WSChunk) (first bool, err error) {
	limit := a.Limit
	if limit <= 0 {
		limit = MaxWSMessage
	}
	if a.inMessage && c.Binary != a.binary {
		return false, Errorf(CodeBadMessage, "websocket message changed type mid-message")
	}
	first = !a.inMessage
	if first {
		a.binary, a.size = c.Binary, 0
	}
	a.size += len(c.Data)
	if a.size > limit {
		return first, Errorf(CodeTooLarge, "websocket message over %d bytes", limit)
	}
	a.inMessage = !c.Final
	return first, nil
}

// InMessage reports whether a message is partly received.
func (a *WSAssembler) InMessage() bool { return a.inMessage }

// wsHandshakeFields are request fields of the WebSocket handshake itself,
// which the agent sets and a WSOpen's header may not override.
var wsHandshakeFields = []string{
	"Host", "Origin", "Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version",
	"Sec-Websocket-Extensions", "Sec-Websocket-Protocol", "Sec-Websocket-Accept", "Content-Length",
	"Transfer-Encoding",
}

// WSForwardHeader returns the fields of a WSOpen's header that may be
// passed to the device: the handshake's own fields removed.
func WSForwardHeader(h http.Header) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	for _, k := range wsHandshakeFields {
		out.Del(k)
	}
	for k := range out {
		if strings.HasPrefix(k, "Sec-") || strings.HasPrefix(k, "Proxy-") {
			delete(out, k)
		}
	}
	return out
}
