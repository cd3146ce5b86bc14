// Package deviceproxy is the agent's HTTP and TCP access to one declared
// device: a sibling of httputil.ReverseProxy that only ever reaches the
// configured address and ports.
//
// A Proxy holds what all sessions share (the transport, the pinned
// address); a SessionProxy, from Proxy.Session, holds what belongs to one
// technician session: the device's cookies and the technician's
// credentials for the device.
//
// The request path (request.go), top to bottom: requests arrive from the
// tunnel in origin form ("/path?query") and go to scheme://Host:port of the
// configuration with the configured Host header; Origin and Referer on the
// client's own origin (WithClientOrigin) are rewritten to the device's
// origin (device CSRF checks compare them), foreign ones pass unchanged, and
// a state-changing request without an Origin (not from a web page) gets the
// device's, as a browser on the device's own origin would send; the session's cookie jar is merged with the
// Cookie header the page sent; credentials are applied to the device's
// Basic or Digest challenges; gzip and deflate are offered; a body of
// unknown length is spooled to learn it; no X-Forwarded-* headers are added
// (the technician's address never reaches the device).
//
// The response path (response.go): redirects are never followed, and a
// Location on the device's own origin becomes a path; Set-Cookie goes into
// the jar, never further, and the non-HttpOnly cookies are handed to the
// tunnel to be mirrored by the browser; gzip and deflate bodies are decoded;
// the device's CORS, HSTS, frame-blocking and reporting headers are
// dropped and the session's policy (DeviceCSP, nosniff, same-origin
// referrers) is set.
// Bodies stream both ways with pooled 16 KiB buffers.
//
// A host name is resolved once, at the first connection, and the address
// is pinned for the Proxy's lifetime, so a second lookup cannot send the
// agent elsewhere (DNS rebinding).
package deviceproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/porthole-dev/porthole/agent/bufpool"
	"github.com/porthole-dev/porthole/agent/tlscompat"
	"github.com/porthole-dev/porthole/proto"
)

// Device is one declared device as the agent's configuration gives it.
type Device struct {
	ID     string
	Scheme string // "http" or "https"; "" means http
	// Host is the configured host name or IP address (no port).
	Host string
	// HTTPPort is the device's web port (tunnel port 0); 0 means the
	// scheme's default.
	HTTPPort int
	// NoWeb says the device has no web page (an SSH- or VNC-only box):
	// tunnel port 0 is refused and HTTPPort is ignored.
	NoWeb bool
	// Ports are further declared ports, for HTTP or TCP. HTTPPort is
	// always allowed.
	Ports []int
	// HostHeader is sent as Host (and used for Origin); "" means Host
	// with the port when it is not the scheme's default.
	HostHeader string
	// InsecureSkipVerify accepts any TLS certificate from the device
	// (self-signed embedded web servers).
	InsecureSkipVerify bool
	// VerifyConnection, if set, is tls.Config.VerifyConnection towards
	// the device: the agent's certificate pin (agent/deviceid).
	VerifyConnection func(tls.ConnectionState) error
	// VerifyConn, if set, is called with every new connection to the
	// device before a byte is sent on it (the agent checks the device's
	// MAC address in the neighbour table the connection just confirmed);
	// an error closes the connection and refuses the exchange.
	VerifyConn func(net.Conn) error
	// Control, if set, is the dialer's ControlContext for every
	// connection to the device: the agent's scope check (agent/scope) on
	// the address actually dialled, so a device adopted from signaling
	// cannot be pointed outside the site's scope at the last moment.
	Control func(ctx context.Context, network, address string, c syscall.RawConn) error
	// UploadSpoolLimit bounds a request body of unknown length that the
	// agent spools to learn its length before sending it to the device
	// (see spool.go): 0 means DefaultUploadSpoolLimit; a negative value
	// never spools and streams such bodies chunked.
	UploadSpoolLimit int64
	// SpoolDir is where spooled bodies go; "" means os.TempDir().
	SpoolDir string
	// HTTPSPort is the device's https port when its web port speaks http
	// (a declared port): a device that sends the browser there (upgrade.go)
	// is followed to it. 0 means 443 when 443 is declared.
	HTTPSPort int
	// Names are further host names the device calls itself in its pages
	// (its hostname, its mDNS name "npi4000.local"): URLs naming them are
	// rewritten to the client's origin like those naming Host and
	// HostHeader (rewrite.go).
	Names []string
	// TLSStart, if set, gives the rung of the legacy TLS ladder
	// (agent/tlscompat) connections to port start at: what the agent
	// remembers of the device. Nil starts at Modern.
	TLSStart func(port int) tlscompat.Level
	// OnTLS, if set, is called when a connection to port needed another
	// rung than it started at, with what that rung means (nil: modern).
	OnTLS func(port int, level tlscompat.Level, legacy *proto.LegacyTLS)
	// VerifyPort, if set, gives the VerifyConnection for a port other
	// than the web port reached over https (a device's https twin, see
	// upgrade.go): the daemon pins it at first use. Nil, or a nil
	// function, verifies such ports as the web port.
	VerifyPort func(port int) func(tls.ConnectionState) error
}

// Timeouts towards the device.
const (
	DialTimeout           = 10 * time.Second
	TLSHandshakeTimeout   = 10 * time.Second
	ResponseHeaderTimeout = 60 * time.Second
	IdleConnTimeout       = 30 * time.Second
	MaxResponseHeaderSize = proto.MaxHead
)

// MaxIdleConnsPerHost is how many idle connections to the device are kept
// for reuse: as many as the browser session has requests in flight (its
// pool of data channels, web/session/tunnel.js MAX_CHANNELS), so that a
// page's burst of requests finds its connections again next time. With 8
// kept, every load of the bench's 40-subresource page opened 3–4 new
// connections to the device (directly, Chromium opened 0.2): on a device
// reached over TLS, a handshake each.
const MaxIdleConnsPerHost = 16

// StatusClientClosedRequest is sent (to nobody in practice) when the
// technician cancelled the request; nginx's 499.
const StatusClientClosedRequest = 499

// Proxy reaches one device. It is safe for concurrent use by many
// sessions.
type Proxy struct {
	d         Device
	log       *slog.Logger
	transport *http.Transport
	pool      httputil.BufferPool
	shared    *SessionProxy // behind Handler

	pinMu sync.Mutex
	pin   netip.Addr

	wsWritePool *sync.Pool // gorilla write buffers of device WebSockets

	tlsMu    sync.Mutex
	tlsLevel map[int]tlscompat.Level // rung per port, once known
	schemes  map[int]string          // ports learned to speak https
}

// New validates d and builds its proxy. It does no I/O.
func New(d Device, logger *slog.Logger) (*Proxy, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch d.Scheme {
	case "":
		d.Scheme = "http"
	case "http", "https":
	default:
		return nil, fmt.Errorf("deviceproxy: device %s: scheme %q is not http or https", d.ID, d.Scheme)
	}
	if d.Host == "" || strings.ContainsAny(d.Host, "/?#@ \t\r\n") {
		return nil, fmt.Errorf("deviceproxy: device %s: invalid host %q", d.ID, d.Host)
	}
	if strings.HasPrefix(d.Host, "[") && strings.HasSuffix(d.Host, "]") {
		d.Host = d.Host[1 : len(d.Host)-1]
	}
	if _, _, err := net.SplitHostPort(d.Host); err == nil {
		return nil, fmt.Errorf("deviceproxy: device %s: host %q must not carry a port", d.ID, d.Host)
	}
	if d.HTTPPort == 0 || d.NoWeb {
		d.HTTPPort = defaultPort(d.Scheme)
	}
	ports := []int{d.HTTPPort}
	if d.NoWeb {
		ports = nil
	}
	for _, p := range d.Ports {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("deviceproxy: device %s: port %d out of range", d.ID, p)
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	if d.HTTPPort < 1 || d.HTTPPort > 65535 {
		return nil, fmt.Errorf("deviceproxy: device %s: HTTP port %d out of range", d.ID, d.HTTPPort)
	}
	d.Ports = ports
	if d.HTTPSPort == 0 && d.Scheme == "http" && slices.Contains(ports, 443) {
		d.HTTPSPort = 443
	}
	if d.HTTPSPort != 0 && !slices.Contains(ports, d.HTTPSPort) {
		return nil, fmt.Errorf("deviceproxy: device %s: https port %d is not declared", d.ID, d.HTTPSPort)
	}
	if d.HostHeader != "" && strings.ContainsAny(d.HostHeader, "/?#@ \t\r\n") {
		return nil, fmt.Errorf("deviceproxy: device %s: invalid host header %q", d.ID, d.HostHeader)
	}
	if d.UploadSpoolLimit == 0 {
		d.UploadSpoolLimit = DefaultUploadSpoolLimit
	}
	p := &Proxy{d: d, log: logger, pool: bufpool.New(), tlsLevel: map[int]tlscompat.Level{}, schemes: map[int]string{},
		wsWritePool: &sync.Pool{}}
	p.transport = &http.Transport{
		Proxy:       nil, // never a proxy from the environment
		DialContext: p.dialHTTP,
		// TLS goes through the legacy ladder (tls.go); the handshake
		// timeout is the dial context's.
		DialTLSContext:         p.dialTLSTimeout,
		TLSHandshakeTimeout:    TLSHandshakeTimeout,
		ResponseHeaderTimeout:  ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        IdleConnTimeout,
		MaxIdleConns:           2 * MaxIdleConnsPerHost, // the web port and an https twin
		MaxIdleConnsPerHost:    MaxIdleConnsPerHost,
		MaxResponseHeaderBytes: MaxResponseHeaderSize,
		// Compression is negotiated and decoded by the response path
		// (decode.go): a response built by a service worker is never
		// decoded by the browser.
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}
	p.shared = p.Session()
	return p, nil
}

func defaultPort(scheme string) int {
	if scheme == "https" {
		return 443
	}
	return 80
}

func tlsServerName(d Device) string {
	if d.HostHeader != "" {
		if h, _, err := net.SplitHostPort(d.HostHeader); err == nil {
			return h
		}
		return d.HostHeader
	}
	return d.Host
}

// dialTLSTimeout bounds dialTLS's handshakes (the Transport's
// TLSHandshakeTimeout does not apply to DialTLSContext).
func (p *Proxy) dialTLSTimeout(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, DialTimeout+TLSHandshakeTimeout)
	defer cancel()
	return p.dialTLS(ctx, network, addr)
}

// names are the device's own host names, lower case, IPv6 in brackets:
// its address, the Host it is reached by, and Device.Names.
func (p *Proxy) names() []string {
	var out []string
	add := func(h string) {
		h = strings.ToLower(strings.TrimSpace(h))
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		}
		h = strings.Trim(h, "[]")
		if h == "" {
			return
		}
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
		if !containsString(out, h) {
			out = append(out, h)
		}
	}
	add(p.d.Host)
	add(p.d.HostHeader)
	for _, n := range p.d.Names {
		add(n)
	}
	return out
}

// allowed reports whether port is declared.
func (p *Proxy) allowed(port int) bool { return slices.Contains(p.d.Ports, port) }

func (p *Proxy) refusePort(port int) error {
	p.log.Info("deviceproxy: undeclared port refused", "device", p.d.ID, "port", port)
	return proto.Errorf(proto.CodePortNotAllowed, "port %d is not declared for device %s", port, p.d.ID)
}

// hostHeaderFor is the Host sent to the device on port with scheme: the
// configured HostHeader on the web port; its name with this port on
// another.
func (p *Proxy) hostHeaderFor(scheme string, port int) string {
	if p.d.HostHeader != "" {
		if port == p.d.HTTPPort {
			return p.d.HostHeader
		}
		name := p.d.HostHeader
		if h, _, err := net.SplitHostPort(name); err == nil {
			name = h
		}
		if port == defaultPort(scheme) {
			return name
		}
		return net.JoinHostPort(strings.Trim(name, "[]"), strconv.Itoa(port))
	}
	if port == defaultPort(scheme) {
		if strings.Contains(p.d.Host, ":") {
			return "[" + p.d.Host + "]"
		}
		return p.d.Host
	}
	return net.JoinHostPort(p.d.Host, strconv.Itoa(port))
}

// Handler returns the handler for tunnelled HTTP requests to port (0: the
// web port) of one session that every caller of Handler shares: one cookie
// jar, one set of credentials. Give each technician session its own with
// Session. An undeclared port is refused with a *proto.Error of code
// port_not_allowed.
func (p *Proxy) Handler(port int) (http.Handler, error) { return p.shared.Handler(port) }

// errorHandler maps transport failures to 502, 504 or 499.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusBadGateway, "the device could not be reached"
	switch {
	case r.Context().Err() != nil && errors.Is(err, context.Canceled):
		status, msg = StatusClientClosedRequest, "request cancelled"
	case isTimeout(err):
		status, msg = http.StatusGatewayTimeout, "the device did not answer in time"
	}
	level := slog.LevelInfo
	if status == StatusClientClosedRequest {
		level = slog.LevelDebug
	}
	p.log.Log(r.Context(), level, "deviceproxy: request failed", "device", p.d.ID,
		"method", r.Method, "target", r.URL.RequestURI(), "status", status, "err", err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "porthole: %s (%d)\n", msg, status)
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// DialTCP connects to a declared port of the device. An undeclared port
// is refused with port_not_allowed; a failed connection is a *proto.Error
// with device_timeout or device_failed.
func (p *Proxy) DialTCP(ctx context.Context, port int) (net.Conn, error) {
	if !p.allowed(port) {
		return nil, p.refusePort(port)
	}
	conn, err := p.dial(ctx, port)
	var refused *proto.Error
	if errors.As(err, &refused) {
		return nil, err // the identity check's own refusal, already worded
	}
	if err != nil {
		code := proto.CodeDeviceFailed
		if isTimeout(err) {
			code = proto.CodeDeviceTimeout
		}
		p.log.Info("deviceproxy: tcp connection failed", "device", p.d.ID, "port", port, "err", err)
		return nil, proto.Errorf(code, "connect to device port %d: %s", port, dialCause(err))
	}
	return conn, nil
}

// dialCause says why a connection to the device failed without the
// device's address, which stays on the agent's side.
func dialCause(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (nothing listens on that port)"
	case isTimeout(err):
		return "no answer in time"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to the device"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	}
	return "the device could not be reached"
}

// dialHTTP is the Transport's dialer: it ignores the host in addr (always
// the configured one) and checks the port again.
func (p *Proxy) dialHTTP(ctx context.Context, network, addr string) (net.Conn, error) {
	_, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || !p.allowed(port) {
		return nil, p.refusePort(port)
	}
	return p.dial(ctx, port)
}

func (p *Proxy) dial(ctx context.Context, port int) (net.Conn, error) {
	ip, err := p.resolve(ctx)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}
	var refused error
	if c := p.d.Control; c != nil {
		d.ControlContext = func(ctx context.Context, network, address string, raw syscall.RawConn) error {
			refused = c(ctx, network, address, raw)
			return refused
		}
	}
	conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(ip, uint16(port)).String()) //nolint:gosec // port checked
	if refused != nil {
		p.log.Warn("deviceproxy: dial refused by the site's scope", "device", p.d.ID, "port", port, "err", refused)
		return nil, proto.Errorf(proto.CodeForbidden, "device %s: %v", p.d.ID, refused)
	}
	if err != nil {
		return nil, fmt.Errorf("dial device: %w", err)
	}
	if p.d.VerifyConn != nil {
		if err := p.d.VerifyConn(conn); err != nil {
			_ = conn.Close()
			p.log.Warn("deviceproxy: connection refused by the identity check", "device", p.d.ID, "port", port, "err", err)
			return nil, err
		}
	}
	return conn, nil
}

// resolve returns the device's address, resolving a host name once and
// pinning the answer.
func (p *Proxy) resolve(ctx context.Context) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(p.d.Host); err == nil {
		return ip.Unmap(), nil
	}
	p.pinMu.Lock()
	defer p.pinMu.Unlock()
	if p.pin.IsValid() {
		return p.pin, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", p.d.Host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolve device host: %w", err)
	}
	if len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("resolve device host %s: %w", p.d.Host, syscall.EHOSTUNREACH)
	}
	p.pin = ips[0].Unmap()
	p.log.Info("deviceproxy: device address pinned", "device", p.d.ID, "host", p.d.Host, "addr", p.pin)
	return p.pin, nil
}

// CloseIdleConnections closes idle connections to the device.
func (p *Proxy) CloseIdleConnections() { p.transport.CloseIdleConnections() }
