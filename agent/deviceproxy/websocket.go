package deviceproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-dev/porthole/agent/tlscompat"
	"github.com/porthole-dev/porthole/internal/redact"
	"github.com/porthole-dev/porthole/proto"
)

// WebSocket handshake limits towards the device.
const (
	WebSocketHandshakeTimeout = 15 * time.Second
	// wsBufferSize is gorilla's read and write buffer per connection:
	// messages larger than it stream through (NextReader, NextWriter).
	wsBufferSize = 16 << 10
)

// DialWebSocket opens the real WebSocket a device page asked for
// (proto.WSOpen): to the session's device only, on a declared port (ws://
// or wss:// as the port's upstream is reached, through the legacy TLS
// ladder and pin), with the session's cookie jar merged with the page's
// cookies, the technician's credentials for the port, and the device's
// own Origin (devices check it against cross-site WebSocket hijacking).
// Set-Cookie of the handshake goes into the jar. The connection's read
// limit is proto.MaxWSMessage. A device that refuses the upgrade gives a
// *proto.Error of code device_failed naming its status.
func (s *SessionProxy) DialWebSocket(ctx context.Context, open *proto.WSOpen) (*websocket.Conn, *proto.WSOpened, error) {
	hh, err := s.Handler(open.Port)
	if err != nil {
		return nil, nil, err
	}
	h := hh.(*portHandler)
	u, err := url.ParseRequestURI(open.Target)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return nil, nil, proto.Errorf(proto.CodeBadRequest, "websocket target is not origin-form")
	}
	up := h.up.Load()
	wsURL := *up.target
	wsURL.Scheme = "ws"
	if up.scheme == "https" {
		wsURL.Scheme = "wss"
	}
	wsURL.Path, wsURL.RawPath, wsURL.RawQuery = u.Path, u.RawPath, u.RawQuery

	hdr := proto.WSForwardHeader(open.Header)
	hdr.Del(CredentialsHeader)
	hdr.Set("Host", up.host)
	hdr.Set("Origin", up.origin)
	page := strings.Join(hdr.Values("Cookie"), "; ")
	if c := s.jar.header(u.Path, page, time.Now()); c != "" {
		hdr.Set("Cookie", c)
	} else {
		hdr.Del("Cookie")
	}
	if hdr.Get("Authorization") == "" {
		if a := h.auth.authorize(http.MethodGet, u.RequestURI()); a != "" {
			hdr.Set("Authorization", a)
		}
	}
	d := websocket.Dialer{
		// The URL's host is the configured address; these dialers ignore
		// it anyway and check the port again.
		NetDialContext:    s.p.dialHTTP,
		NetDialTLSContext: s.p.dialTLSTimeout,
		Proxy:             nil,
		HandshakeTimeout:  WebSocketHandshakeTimeout,
		ReadBufferSize:    wsBufferSize,
		WriteBufferSize:   wsBufferSize,
		WriteBufferPool:   s.p.wsWritePool,
		Subprotocols:      open.Protocols,
	}
	conn, resp, err := d.DialContext(ctx, wsURL.String(), hdr)
	if resp != nil && resp.Body != nil {
		defer resp.Body.Close()
	}
	opened := &proto.WSOpened{}
	if resp != nil {
		opened.Cookies, opened.DeletedCookies = s.jar.store(resp.Cookies(), u.Path, time.Now())
	}
	if err != nil {
		if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
			if resp.StatusCode == http.StatusUnauthorized {
				h.auth.observe(resp.Header, hdr.Get("Authorization"))
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			h.log.Info("deviceproxy: device refused the WebSocket", "device", s.p.d.ID, "target", redact.Target(open.Target), "status", resp.StatusCode)
			return nil, nil, proto.Errorf(proto.CodeDeviceFailed, "the device refused the WebSocket to %s: HTTP %d", open.Target, resp.StatusCode)
		}
		code := proto.CodeDeviceFailed
		if isTimeout(err) {
			code = proto.CodeDeviceTimeout
		}
		h.log.Info("deviceproxy: websocket to the device failed", "device", s.p.d.ID, "target", redact.Target(open.Target), "err", err)
		return nil, nil, proto.Errorf(code, "websocket to the device: %v", err)
	}
	conn.SetReadLimit(proto.MaxWSMessage)
	opened.Protocol = conn.Subprotocol()
	if tc, ok := conn.NetConn().(*tls.Conn); ok {
		opened.TLS = tlscompat.Describe(tc.ConnectionState())
	}
	h.log.Debug("deviceproxy: websocket opened", "device", s.p.d.ID, "target", redact.Target(open.Target), "protocol", opened.Protocol)
	return conn, opened, nil
}

// DialWebSocket is DialWebSocket of the session behind Handler.
func (p *Proxy) DialWebSocket(ctx context.Context, open *proto.WSOpen) (*websocket.Conn, *proto.WSOpened, error) {
	return p.shared.DialWebSocket(ctx, open)
}
