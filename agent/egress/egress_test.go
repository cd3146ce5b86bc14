package egress

import (
	"bufio"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// fakeProxy accepts connections on loopback and hands each to behave.
type fakeProxy struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startFake(t *testing.T, behave func(c net.Conn)) *fakeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeProxy{ln: ln}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Go(func() {
				defer c.Close()
				behave(c)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *fakeProxy) url() string { return "http://" + f.ln.Addr().String() }

// echoTarget is a TCP echo server standing in for every destination.
func echoTarget(t *testing.T) string {
	t.Helper()
	f := startFake(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
	return f.ln.Addr().String()
}

// connectProxy is a minimal honest proxy: it checks Proxy-Authorization
// when wantAuth is set and tunnels every CONNECT to target.
func connectProxy(t *testing.T, target, wantAuth string, seen chan<- *http.Request) *fakeProxy {
	return startFake(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if seen != nil {
			seen <- req
		}
		if req.Method != http.MethodConnect {
			_, _ = io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
			return
		}
		if wantAuth != "" && req.Header.Get("Proxy-Authorization") != wantAuth {
			_, _ = io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\n\r\n")
			return
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
			return
		}
		defer up.Close()
		_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		go func() { _, _ = io.Copy(up, br); up.(*net.TCPConn).CloseWrite() }()
		_, _ = io.Copy(c, up)
	})
}

func newEgress(t *testing.T, cfg Config) *Egress {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// roundTrip sends a line through c and expects it echoed.
func roundTrip(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo through the tunnel: %q, %v", line, err)
	}
}

const (
	user = "site-agent"
	pass = "s3cret-Pa55"
)

var basic = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))

func TestTunnelThroughProxyWithBasicCredentials(t *testing.T) {
	target := echoTarget(t)
	seen := make(chan *http.Request, 4)
	p := connectProxy(t, target, basic, seen)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"credentials in the URL", Config{Proxy: httpproxy.Config{HTTPSProxy: "http://" + user + ":" + pass + "@" + p.ln.Addr().String()}}},
		{"credentials in the config", Config{Proxy: httpproxy.Config{HTTPSProxy: p.url()}, Username: user, Password: pass}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEgress(t, tc.cfg)
			c, err := e.DialContext(context.Background(), "https", "tcp", "signal.example:443")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			req := <-seen
			if req.Host != "signal.example:443" || req.Header.Get("Proxy-Authorization") != basic {
				t.Errorf("CONNECT %s with %q", req.Host, req.Header.Get("Proxy-Authorization"))
			}
			roundTrip(t, c)
			if s := e.String(); strings.Contains(s, pass) || !strings.Contains(s, "with Basic credentials") {
				t.Errorf("String() = %q", s)
			}
			if got := e.Route("wss://signal.example/v1/agent"); got != "via proxy "+p.ln.Addr().String() {
				t.Errorf("Route = %q", got)
			}
		})
	}
}

func TestRouteFollowsEnvironmentConvention(t *testing.T) {
	e := newEgress(t, Config{Proxy: httpproxy.Config{
		HTTPSProxy: "proxy.corp:3128", // bare host:port means http://
		HTTPProxy:  "http://web.corp:8080",
		NoProxy:    "internal.corp,10.0.0.0/8",
	}})
	for _, tc := range []struct{ url, want string }{
		{"https://porthole.example.com", "via proxy proxy.corp:3128"},
		{"wss://porthole.example.com/v1/agent", "via proxy proxy.corp:3128"},
		{"ws://porthole.example.com:443/v1/agent", "via proxy web.corp:8080"},
		{"http://porthole.example.com", "via proxy web.corp:8080"},
		{"https://app.internal.corp", "direct"},
		{"https://10.1.2.3:8443", "direct"},
		{"https://127.0.0.1:8443", "direct"}, // loopback never uses a proxy
		{"https://localhost", "direct"},
	} {
		if got := e.Route(tc.url); got != tc.want {
			t.Errorf("Route(%s) = %q, want %q", tc.url, got, tc.want)
		}
	}
	if got := Direct().Route("https://porthole.example.com"); got != "direct" {
		t.Errorf("Direct().Route = %q", got)
	}
}

func TestDirectDestinationsSkipTheProxy(t *testing.T) {
	target := echoTarget(t)
	var dialed []string
	var mu sync.Mutex
	e := newEgress(t, Config{
		Proxy: httpproxy.Config{HTTPSProxy: "http://proxy.invalid:3128", NoProxy: "near.example"},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dialed = append(dialed, addr)
			mu.Unlock()
			var d net.Dialer
			return d.DialContext(ctx, network, target)
		},
	})
	c, err := e.DialContext(context.Background(), "https", "tcp", "near.example:443")
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	c.Close()
	if len(dialed) != 1 || dialed[0] != "near.example:443" {
		t.Errorf("dialed %v, want the destination itself", dialed)
	}
}

// TestMisbehavingProxies: a proxy that answers garbage, hangs, closes
// mid-answer, refuses, asks for credentials or floods headers gets a
// bounded wait and an error that names the proxy and its answer.
func TestMisbehavingProxies(t *testing.T) {
	readRequest := func(c net.Conn) { _, _ = http.ReadRequest(bufio.NewReader(c)) }
	for _, tc := range []struct {
		name   string
		behave func(c net.Conn)
		kind   error
		says   []string
	}{
		{"garbage", func(c net.Conn) { readRequest(c); _, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n") }, ErrBadAnswer,
			[]string{"not HTTP", `"SSH-2.0-OpenSSH_9.2"`}},
		{"binary", func(c net.Conn) { readRequest(c); _, _ = c.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x2a, 0xff, '\n'}) }, ErrBadAnswer,
			[]string{"not HTTP"}},
		{"hangs", func(c net.Conn) { readRequest(c); _, _ = io.Copy(io.Discard, c) }, ErrTimeout,
			[]string{"did not answer in time"}},
		{"hangs before reading", func(c net.Conn) { time.Sleep(2 * time.Second) }, ErrTimeout,
			[]string{"did not answer in time"}},
		{"closes mid-answer", func(c net.Conn) { readRequest(c); _, _ = io.WriteString(c, "HTTP/1.1 200 Conn") }, ErrClosed,
			[]string{"closed the connection"}},
		{"closes at once", func(c net.Conn) { readRequest(c) }, ErrClosed, []string{"closed the connection"}},
		{"refuses", func(c net.Conn) {
			readRequest(c)
			_, _ = io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden")
		}, ErrRefused, []string{`"403 Forbidden"`}},
		{"asks for credentials", func(c net.Conn) {
			readRequest(c)
			_, _ = io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"Corp\"\r\n\r\n")
		}, ErrAuth, []string{"407 Proxy Authentication Required", `Basic realm=\"Corp\"`, "none are configured: set proxy.username"}},
		{"floods headers", func(c net.Conn) {
			readRequest(c)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			for range 4000 {
				if _, err := io.WriteString(c, "X-Filler: aaaaaaaaaaaaaaaaaaaa\r\n"); err != nil {
					return
				}
			}
		}, ErrBadAnswer, []string{"not HTTP"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startFake(t, tc.behave)
			e := newEgress(t, Config{Proxy: httpproxy.Config{HTTPSProxy: p.url()}, Timeout: 400 * time.Millisecond,
				AuthHint: "set proxy.username and proxy.passwordFile"})
			start := time.Now()
			c, err := e.DialContext(context.Background(), "https", "tcp", "relay.example:443")
			took := time.Since(start)
			if err == nil {
				c.Close()
				t.Fatal("dial succeeded")
			}
			if took > 2*time.Second {
				t.Errorf("took %s; the wait must be bounded by the timeout", took)
			}
			var pe *Error
			if !errors.As(err, &pe) || !errors.Is(err, tc.kind) {
				t.Fatalf("error %v (%T), want kind %v", err, err, tc.kind)
			}
			msg := err.Error()
			t.Log(msg)
			for _, s := range append([]string{"proxy " + p.ln.Addr().String(), "relay.example:443"}, tc.says...) {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not say %q", msg, s)
				}
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		e := newEgress(t, Config{Proxy: httpproxy.Config{HTTPSProxy: "http://" + addr}})
		_, err := e.DialContext(context.Background(), "https", "tcp", "relay.example:443")
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "cannot reach the proxy") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		p := startFake(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
		e := newEgress(t, Config{Proxy: httpproxy.Config{HTTPSProxy: p.url()}, Timeout: time.Minute})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := e.DialContext(ctx, "https", "tcp", "relay.example:443")
		if err == nil || time.Since(start) > 5*time.Second {
			t.Fatalf("err = %v after %s", err, time.Since(start))
		}
	})
}

// TestCredentialsNeverInErrors plays a hostile proxy that sends our own
// request back — Proxy-Authorization line first — as its "answer", and
// checks that no form of the password reaches the error.
func TestCredentialsNeverInErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		behave func(c net.Conn, req []string)
	}{
		{"echoes the credential line as its status line", func(c net.Conn, req []string) {
			for _, l := range req {
				if strings.HasPrefix(l, "Proxy-Authorization") {
					_, _ = io.WriteString(c, l+"\r\n")
				}
			}
		}},
		{"quotes the credential as its reason phrase", func(c net.Conn, req []string) {
			for _, l := range req {
				if v, ok := strings.CutPrefix(l, "Proxy-Authorization: Basic "); ok {
					raw, _ := base64.StdEncoding.DecodeString(v)
					_, _ = io.WriteString(c, "HTTP/1.1 407 bad "+v+" "+string(raw)+"\r\n\r\n")
				}
			}
		}},
		{"quotes it in a refusal", func(c net.Conn, req []string) {
			_, _ = io.WriteString(c, "HTTP/1.1 403 no "+pass+" here\r\n\r\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startFake(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				var lines []string
				for {
					l, err := br.ReadString('\n')
					l = strings.TrimRight(l, "\r\n")
					if err != nil || l == "" {
						break
					}
					lines = append(lines, l)
				}
				tc.behave(c, lines)
			})
			e := newEgress(t, Config{Proxy: httpproxy.Config{HTTPSProxy: "http://" + user + ":" + pass + "@" + p.ln.Addr().String()},
				Timeout: time.Second})
			_, err := e.DialContext(context.Background(), "https", "tcp", "relay.example:443")
			if err == nil {
				t.Fatal("dial succeeded")
			}
			msg := err.Error()
			t.Log(msg)
			for _, secret := range []string{pass, base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))} {
				if strings.Contains(msg, secret) {
					t.Fatalf("the error shows a credential: %s", msg)
				}
			}
			if !strings.Contains(msg, "[redacted]") {
				t.Errorf("expected the quoted answer with the credential redacted: %s", msg)
			}
		})
	}
}

func TestBadProxySettingsAreRefusedWithoutQuotingThem(t *testing.T) {
	for _, s := range []string{"ftp://u:" + pass + "@proxy:21", "http://u:" + pass + "@proxy:3128/some/path", "http://u:" + pass + "@[::1"} {
		_, err := New(Config{Proxy: httpproxy.Config{HTTPSProxy: s}})
		if err == nil {
			t.Errorf("%s accepted", s)
			continue
		}
		if strings.Contains(err.Error(), pass) {
			t.Errorf("error quotes the password: %v", err)
		}
	}
	e := newEgress(t, Config{Proxy: httpproxy.Config{HTTPSProxy: "https://proxy.corp"}})
	if p, _ := e.ProxyFor("https", "x.example:443"); p == nil || p.Host != "proxy.corp:443" {
		t.Errorf("https proxy without port: %v", p)
	}
}

func TestEarlyBytesAfterTheAnswerStayInTheTunnel(t *testing.T) {
	p := startFake(t, func(c net.Conn) {
		_, _ = http.ReadRequest(bufio.NewReader(c))
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nhello from the far end\n")
	})
	e := newEgress(t, Config{Proxy: httpproxy.Config{HTTPSProxy: p.url()}})
	c, err := e.DialContext(context.Background(), "https", "tcp", "relay.example:443")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if line != "hello from the far end\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	if _, ok := c.LocalAddr().(*net.TCPAddr); !ok {
		t.Errorf("LocalAddr is %T; pion's relay gathering needs *net.TCPAddr", c.LocalAddr())
	}
}

func TestTunnelFamilyMustMatch(t *testing.T) {
	target := echoTarget(t)
	p := connectProxy(t, target, "", nil)
	e := newEgress(t, Config{Proxy: httpproxy.Config{HTTPSProxy: p.url()}})
	for _, tc := range []struct {
		network, addr string
		ok            bool
	}{
		{"tcp4", "203.0.113.30:443", true},
		{"tcp6", "203.0.113.30:443", false},
		{"tcp4", "relay.example:443", true},
		{"tcp6", "relay.example:443", false},
		{"tcp6", "[2001:db8::1]:443", true},
		{"udp", "203.0.113.30:443", false},
	} {
		c, err := e.DialContext(context.Background(), "https", tc.network, tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("%s %s: err %v, want ok=%v", tc.network, tc.addr, err, tc.ok)
		}
		if c != nil {
			c.Close()
		}
	}
}

func TestExplainCertificateNamesTheInspectingProxy(t *testing.T) {
	cert := &x509.Certificate{Issuer: pkix.Name{CommonName: "Corp Inspection CA"}}
	base := fmt.Errorf("tls: %w", x509.UnknownAuthorityError{Cert: cert})
	err := ExplainCertificate(base, "via proxy 10.0.0.1:3128", "give the proxy's CA with --ca-file")
	if !errors.Is(err, ErrInspected) {
		t.Fatalf("not marked as inspected: %v", err)
	}
	for _, s := range []string{"Corp Inspection CA", "proxy 10.0.0.1:3128 seems to inspect TLS", "--ca-file"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not say %q", err, s)
		}
	}
	if err := ExplainCertificate(base, "direct", "give its CA"); errors.Is(err, ErrInspected) || !strings.Contains(err.Error(), "give its CA") {
		t.Errorf("direct: %v", err)
	}
	other := errors.New("connection refused")
	if ExplainCertificate(other, "via proxy x:1", "") != other {
		t.Error("an unrelated error was rewritten")
	}
}
