// Package egress is how the agent and the technician's CLI leave their
// network: directly, or through an HTTP proxy with CONNECT, which is the
// only way out at many customer sites (hospitals, banks, most offices).
//
// One Egress serves every outbound TCP connection of a process: the
// enrollment and certificate-renewal HTTPS requests, the signaling
// WebSocket and TURN over TCP or TLS for the session's media (pion's ICE
// proxy dialer). Which destinations go through the proxy follows Go's
// environment convention (HTTPS_PROXY, HTTP_PROXY, NO_PROXY, as
// golang.org/x/net/http/httpproxy and net/http.ProxyFromEnvironment read
// them), but the values arrive in Config: main reads the environment or the
// configuration file, this package never does.
//
// Every connection through the proxy is a CONNECT tunnel, also for a plain
// http:// destination (development signaling), so one code path carries
// everything and a proxy that allows CONNECT to 443 is all a site needs.
// The CONNECT exchange is bounded in time and size; a proxy that answers
// with something other than HTTP, hangs, or closes the connection gets a
// clear *Error naming the proxy and its answer. Credentials are never part
// of an error or a log line: whatever the proxy sends back is redacted
// before it is quoted.
//
// golang.org/x/net/proxy has no HTTP CONNECT dialer (golang/go#19504, open
// since 2017), pion's own ice-proxy example writes its CONNECT by hand, and
// no well-kept module offers one with context, deadlines and a bounded
// answer (the candidates are unmaintained forks of one 2016 gist, or a
// method of a whole MITM proxy server), so the CONNECT exchange is written
// here on net/http's own request writer and response parser. socks5://
// proxies use golang.org/x/net/proxy.
package egress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http/httpproxy"
	"golang.org/x/net/proxy"
)

// DefaultTimeout bounds connecting to the proxy and its answer to CONNECT.
const DefaultTimeout = 10 * time.Second

// maxAnswer bounds the proxy's answer to CONNECT (status line and
// headers); a proxy that sends more is cut off.
const maxAnswer = 16 << 10

// DialFunc makes a TCP connection.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Config configures an Egress. The zero value goes direct everywhere.
type Config struct {
	// Proxy holds the proxy settings in the form of the environment
	// convention: HTTPSProxy for https:// and wss:// destinations (and
	// TURN), HTTPProxy for http:// and ws://, NoProxy the exceptions
	// (comma-separated host names, domain suffixes, IP addresses and
	// CIDR ranges; "*" for all). Loopback destinations never use a proxy.
	// A proxy is an http://, https:// or socks5:// URL, optionally with
	// user:password@ (Basic credentials).
	Proxy httpproxy.Config
	// Username and Password are Basic credentials for the proxy; they
	// take the place of any in the proxy URLs.
	Username, Password string
	// RootCAs verify an https:// proxy's certificate; nil means the
	// system's roots.
	RootCAs *x509.CertPool
	// Timeout bounds reaching the proxy and its answer to CONNECT
	// (default DefaultTimeout).
	Timeout time.Duration
	// Dial makes the TCP connections, to the proxy or direct; nil means a
	// net.Dialer. Tests pass their own.
	Dial DialFunc
	// AuthHint is added to the error when the proxy asks for credentials
	// (407): where this program takes them from, e.g. "set proxy.username
	// and proxy.passwordFile in the agent's configuration".
	AuthHint string
}

// Egress decides, per destination, whether to go direct or through the
// proxy, and dials accordingly. It is safe for concurrent use.
type Egress struct {
	cfg      Config
	proxyFor func(*url.URL) (*url.URL, error)
	auth     string   // Proxy-Authorization value, "" without credentials
	secrets  []string // strings that must never appear in an error
}

// Direct is an Egress without a proxy.
func Direct() *Egress {
	e, _ := New(Config{})
	return e
}

// New validates cfg. It does no I/O.
func New(cfg Config) (*Egress, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	e := &Egress{cfg: cfg}
	var user *url.Userinfo
	for _, v := range []*string{&cfg.Proxy.HTTPSProxy, &cfg.Proxy.HTTPProxy} {
		if *v == "" {
			continue
		}
		u, err := parseProxy(*v)
		if err != nil {
			return nil, err
		}
		if u.User != nil && user == nil {
			user = u.User
		}
		// The URLs this package hands around carry no credentials.
		u.User = nil
		*v = u.String()
	}
	e.cfg.Proxy = cfg.Proxy
	if cfg.Username != "" || cfg.Password != "" {
		user = url.UserPassword(cfg.Username, cfg.Password)
	}
	e.cfg.Username, e.cfg.Password = "", ""
	if user != nil {
		pass, _ := user.Password()
		raw := user.Username() + ":" + pass
		e.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(raw))
		for _, s := range []string{base64.StdEncoding.EncodeToString([]byte(raw)), raw, pass, url.QueryEscape(pass), url.PathEscape(pass)} {
			if len(s) >= 3 { // too short to redact without mangling everything else
				e.secrets = append(e.secrets, s)
			}
		}
	}
	e.proxyFor = e.cfg.Proxy.ProxyFunc()
	return e, nil
}

// parseProxy parses a proxy setting as httpproxy does (a bare host:port
// means http://), but refuses what httpproxy would silently ignore, with
// an error that does not quote the setting (it may hold a password).
func parseProxy(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		if u2, err2 := url.Parse("http://" + s); err2 == nil && u2.Host != "" {
			u, err = u2, nil
		}
	}
	if err != nil || u.Host == "" {
		return nil, errors.New("proxy setting is not a URL (want http://host:port)")
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Errorf("proxy %s: scheme %q not supported (http, https or socks5)", u.Host, u.Scheme)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443", "socks5": "1080", "socks5h": "1080"}[u.Scheme])
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("proxy %s: a proxy URL has no path", u.Host)
	}
	u.Path, u.RawQuery, u.Fragment = "", "", ""
	return u, nil
}

// Enabled reports whether any proxy is configured.
func (e *Egress) Enabled() bool {
	return e.cfg.Proxy.HTTPSProxy != "" || e.cfg.Proxy.HTTPProxy != ""
}

// String describes the configuration for a log line, without credentials:
// "direct", or "https via http://10.0.0.1:3128, http via …, except …".
func (e *Egress) String() string {
	if !e.Enabled() {
		return "direct"
	}
	var parts []string
	if p := e.cfg.Proxy.HTTPSProxy; p != "" {
		parts = append(parts, "https via "+p)
	}
	if p := e.cfg.Proxy.HTTPProxy; p != "" {
		parts = append(parts, "http via "+p)
	}
	if e.auth != "" {
		parts = append(parts, "with Basic credentials")
	}
	if n := e.cfg.Proxy.NoProxy; n != "" {
		parts = append(parts, "not for "+n)
	}
	return strings.Join(parts, ", ")
}

// ProxyFor returns the proxy (without credentials) that connections to
// addr (host:port) for scheme (http, https, ws, wss; TURN uses https) go
// through, or nil for a direct connection.
func (e *Egress) ProxyFor(scheme, addr string) (*url.URL, error) {
	switch scheme {
	case "ws":
		scheme = "http"
	case "wss", "turns", "turn", "":
		scheme = "https"
	}
	p, err := e.proxyFor(&url.URL{Scheme: scheme, Host: addr})
	if err != nil || p == nil {
		return nil, err
	}
	c := *p
	c.User = nil
	return &c, nil
}

// Route says how a connection to rawURL's host leaves: "direct" or "via
// proxy HOST:PORT", for logs and the agent's health report.
func (e *Egress) Route(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "direct"
	}
	p, err := e.ProxyFor(u.Scheme, canonicalAddr(u))
	if err != nil || p == nil {
		return "direct"
	}
	return "via proxy " + p.Host
}

func canonicalAddr(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "443"
	if u.Scheme == "http" || u.Scheme == "ws" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// DialerFor returns a dial function for destinations of scheme: direct
// or through the proxy, as ProxyFor decides per address. It fits
// http.Transport.DialContext and websocket.Dialer.NetDialContext for a
// client that talks to one kind of URL.
func (e *Egress) DialerFor(scheme string) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return e.DialContext(ctx, scheme, network, addr)
	}
}

// DialContext connects to addr for scheme, directly or through the proxy.
func (e *Egress) DialContext(ctx context.Context, scheme, network, addr string) (net.Conn, error) {
	p, err := e.ProxyFor(scheme, addr)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return e.cfg.Dial(ctx, network, addr)
	}
	return e.dialProxy(ctx, p, network, addr)
}

// HTTPClient returns a client whose connections leave as DialerFor(scheme)
// says, with tlsConf for https (nil: the system's roots), and timeout for
// each request.
func (e *Egress) HTTPClient(scheme string, tlsConf *tls.Config, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the dialer decides; see the package comment
	tr.DialContext = e.DialerFor(scheme)
	if tlsConf != nil {
		tr.TLSClientConfig = tlsConf
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// dialProxy opens a tunnel to addr through proxy p.
func (e *Egress) dialProxy(ctx context.Context, p *url.URL, network, addr string) (net.Conn, error) {
	// A tunnel carries what the proxy resolves; a family the caller
	// asked for explicitly must match an IP destination, or pion would
	// open the same relay allocation twice (tcp4 and tcp6).
	if err := familyMatches(network, addr); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	if p.Scheme == "socks5" || p.Scheme == "socks5h" {
		return e.dialSOCKS(ctx, p, addr)
	}
	fail := func(kind error, status int, answer string, cause error) error {
		return &Error{Proxy: p.Host, Target: addr, Kind: kind, Status: status, Answer: e.redact(answer), cause: e.redactErr(cause), hint: e.hintFor(kind)}
	}
	raw, err := e.cfg.Dial(ctx, "tcp", p.Host)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fail(ErrTimeout, 0, "", fmt.Errorf("not connected within %s", e.cfg.Timeout))
		}
		return nil, fail(ErrUnreachable, 0, "", err)
	}
	// The deadline bounds every read and write of the exchange; ctx
	// cancellation cuts it short too.
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	conn := raw
	if p.Scheme == "https" {
		tc := tls.Client(raw, &tls.Config{ServerName: p.Hostname(), RootCAs: e.cfg.RootCAs, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fail(ErrTLS, 0, "", err)
		}
		conn = tc
	}
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: addr},
		Host:   addr,
		Header: http.Header{"User-Agent": {"porthole"}},
	}
	if e.auth != "" {
		req.Header.Set("Proxy-Authorization", e.auth)
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fail(classify(ctx, err), 0, "", err)
	}
	// What the proxy said, kept (bounded) to quote in an error.
	var said bytes.Buffer
	lr := &io.LimitedReader{R: io.TeeReader(conn, &capped{&said, 256}), N: maxAnswer}
	br := bufio.NewReader(lr)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		kind, said := classify(ctx, err), firstLine(said.String())
		switch {
		case lr.N <= 0:
			kind, said = ErrBadAnswer, fmt.Sprintf("%s… and more than %d bytes of headers", said, maxAnswer)
		case kind == ErrTimeout:
			err = fmt.Errorf("no complete answer within %s", e.cfg.Timeout)
		}
		return nil, fail(kind, 0, said, err)
	}
	if resp.StatusCode/100 != 2 {
		conn.Close()
		answer := resp.Status
		if a := resp.Header.Get("Proxy-Authenticate"); a != "" && resp.StatusCode == http.StatusProxyAuthRequired {
			answer += " (Proxy-Authenticate: " + a + ")"
		}
		kind := ErrRefused
		if resp.StatusCode == http.StatusProxyAuthRequired {
			kind = ErrAuth
		}
		return nil, fail(kind, resp.StatusCode, answer, nil)
	}
	stop()
	_ = raw.SetDeadline(time.Time{})
	if n := br.Buffered(); n > 0 {
		// The far end spoke first and the parser read past the answer:
		// those bytes belong to the tunnel.
		early, _ := br.Peek(n)
		return &tunnelConn{Conn: conn, r: io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)}, nil
	}
	return conn, nil
}

func (e *Egress) dialSOCKS(ctx context.Context, p *url.URL, addr string) (net.Conn, error) {
	var auth *proxy.Auth
	if e.auth != "" {
		raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(e.auth, "Basic "))
		u, pw, _ := strings.Cut(string(raw), ":")
		auth = &proxy.Auth{User: u, Password: pw}
	}
	d, err := proxy.SOCKS5("tcp", p.Host, auth, dialerFunc(e.cfg.Dial))
	if err != nil {
		return nil, &Error{Proxy: p.Host, Target: addr, Kind: ErrUnreachable, cause: e.redactErr(err)}
	}
	c, err := d.(proxy.ContextDialer).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &Error{Proxy: p.Host, Target: addr, Kind: classify(ctx, err), cause: e.redactErr(err)}
	}
	return c, nil
}

type dialerFunc DialFunc

func (f dialerFunc) Dial(network, addr string) (net.Conn, error) {
	return f(context.Background(), network, addr)
}

func (f dialerFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

func familyMatches(network, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("egress: address %q: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case network == "tcp":
	case network != "tcp4" && network != "tcp6":
		return fmt.Errorf("egress: network %q cannot go through a proxy", network)
	case err != nil:
		if network == "tcp6" {
			return errors.New("egress: a proxy tunnel to a host name is opened once, over tcp4")
		}
	case ip.Unmap().Is4() != (network == "tcp4"):
		return fmt.Errorf("egress: %s is not a %s address", host, network)
	}
	return nil
}

// classify names why an exchange with the proxy failed.
func classify(ctx context.Context, err error) error {
	var ne net.Error
	switch {
	case ctx.Err() != nil, errors.As(err, &ne) && ne.Timeout():
		return ErrTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return ErrClosed
	}
	return ErrBadAnswer
}

// firstLine is the start of what the proxy sent, for an error message.
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return s
}

// redact removes every credential from s.
func (e *Egress) redact(s string) string {
	for _, sec := range e.secrets {
		s = strings.ReplaceAll(s, sec, "[redacted]")
	}
	return s
}

func (e *Egress) redactErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := e.redact(msg); red != msg {
		return errors.New(red)
	}
	return err
}

func (e *Egress) hintFor(kind error) string {
	switch kind {
	case ErrAuth:
		if e.auth != "" {
			return "the proxy refused the credentials given; check them"
		}
		h := "the proxy wants credentials and none are configured"
		if e.cfg.AuthHint != "" {
			h += ": " + e.cfg.AuthHint
		}
		return h
	case ErrTLS:
		return "check the proxy's certificate, or give its CA"
	}
	return ""
}

// capped writes at most n bytes into b and drops the rest.
type capped struct {
	b *bytes.Buffer
	n int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.n - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// tunnelConn is a tunnel whose first bytes were read with the answer.
type tunnelConn struct {
	net.Conn
	r io.Reader
}

func (c *tunnelConn) Read(p []byte) (int, error) { return c.r.Read(p) }
