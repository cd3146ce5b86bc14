package deviceproxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync/atomic"

	"github.com/porthole-dev/porthole/proto"
)

// SessionProxy is one technician session's access to the device: it
// shares the Proxy's transport and keeps the session's own cookie jar and
// credentials, which end with it (drop the SessionProxy with the session).
// It is safe for concurrent use.
type SessionProxy struct {
	p        *Proxy
	jar      *jar
	handlers map[int]*portHandler // by port; never modified after Session
}

// CookieMirror is implemented by a ResponseWriter that can hand cookies to
// the browser side without Set-Cookie (the tunnel puts them in
// proto.ResponseHead.Cookies). The response path calls it before the
// header is written, with the "name=value" pairs of the non-HttpOnly
// cookies the response set.
type CookieMirror interface {
	MirrorCookies(pairs []string)
}

// CookieDeleter is implemented by a ResponseWriter that can tell the
// browser side to delete cookies from its own store (the tunnel puts them
// in proto.ResponseHead.DeletedCookies). The response path calls it before
// the header is written, with the names of the cookies the response
// deleted that the browser may hold.
type CookieDeleter interface {
	DeleteCookies(names []string)
}

// LegacyTLSReporter is implemented by a ResponseWriter that can tell the
// session that the response came over legacy TLS (proto.ResponseHead.TLS).
type LegacyTLSReporter interface {
	ReportLegacyTLS(*proto.LegacyTLS)
}

// Session returns a new session on the device with an empty jar and no
// credentials.
func (p *Proxy) Session() *SessionProxy {
	s := &SessionProxy{
		p:        p,
		jar:      newJar(tlsServerName(p.d), p.d.Scheme == "https"),
		handlers: make(map[int]*portHandler, len(p.d.Ports)),
	}
	for _, port := range p.d.Ports {
		s.handlers[port] = s.newPortHandler(port)
	}
	return s
}

// Handler returns the session's handler for tunnelled HTTP requests to
// port (0: the web port). An undeclared port is refused with a
// *proto.Error of code port_not_allowed.
func (s *SessionProxy) Handler(port int) (http.Handler, error) {
	if port == 0 {
		if s.p.d.NoWeb {
			return nil, proto.Errorf(proto.CodePortNotAllowed, "device %s has no web page (it declares no web service)", s.p.d.ID)
		}
		port = s.p.d.HTTPPort
	}
	h, ok := s.handlers[port]
	if !ok {
		return nil, s.p.refusePort(port)
	}
	return h, nil
}

// DialTCP is the Proxy's DialTCP: TCP streams keep no session state.
func (s *SessionProxy) DialTCP(ctx context.Context, port int) (net.Conn, error) {
	return s.p.DialTCP(ctx, port)
}

// portHandler serves one session's requests to one port.
type portHandler struct {
	s    *SessionProxy
	p    *Proxy
	log  *slog.Logger
	port int // the declared port requests name (the tunnel's Port)
	auth *authState
	rp   *httputil.ReverseProxy

	// up is where the requests go: the port itself, or its https twin
	// once the device asked for https (upgrade.go). It only ever changes
	// from http to https, once.
	up atomic.Pointer[upstream]
}

// upstream is one scheme and port of the device.
type upstream struct {
	scheme string
	port   int
	target *url.URL
	host   string // Host header sent to the device
	origin string // scheme://host, what the device believes its origin is
}

func (p *Proxy) upstream(scheme string, port int) *upstream {
	host := p.hostHeaderFor(scheme, port)
	return &upstream{
		scheme: scheme,
		port:   port,
		target: &url.URL{Scheme: scheme, Host: net.JoinHostPort(p.d.Host, strconv.Itoa(port))},
		host:   host,
		origin: scheme + "://" + host,
	}
}

func (s *SessionProxy) newPortHandler(port int) *portHandler {
	p := s.p
	scheme := p.d.Scheme
	if port != p.d.HTTPPort {
		scheme = p.schemeOf(port)
	}
	h := &portHandler{
		s:    s,
		p:    p,
		log:  p.log,
		port: port,
		auth: &authState{},
	}
	h.up.Store(p.upstream(scheme, port))
	h.rp = &httputil.ReverseProxy{
		Rewrite:   h.rewrite,
		Transport: &authTransport{auth: h.auth, base: p.transport},
		// 0, not -1: the tunnel's response writer sends every Write at
		// once, and ReverseProxy flushes a stream (unknown length, event
		// stream) after each write on its own. -1 started a timer
		// goroutine per response to flush the head alone, ahead of its
		// body (issue 21: a packet and a goroutine per small GET).
		FlushInterval:  0,
		BufferPool:     p.pool,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		ErrorHandler:   p.errorHandler,
		ModifyResponse: h.modifyResponse,
	}
	return h
}
