package deviceproxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-dev/porthole/agent/deviceproxy"
	"github.com/porthole-dev/porthole/agent/scope"
	"github.com/porthole-dev/porthole/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, ps, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(ps)
	return p
}

func newProxy(t *testing.T, d deviceproxy.Device) *deviceproxy.Proxy {
	t.Helper()
	p, err := deviceproxy.New(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return p
}

// serve runs one tunnelled-style request (origin-form, no host) through h.
func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func originFormRequest(ctx context.Context, method, target string, hdr http.Header) *http.Request {
	req := httptest.NewRequestWithContext(ctx, method, target, nil)
	req.Host = ""
	req.URL.Host = ""
	req.URL.Scheme = ""
	req.RemoteAddr = "198.51.100.23:4444" // the technician: must not leak
	if hdr != nil {
		req.Header = hdr
	}
	return req
}

func TestRewriteHeadersAndTarget(t *testing.T) {
	seen := make(chan *http.Request, 1)
	dev := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Clone(context.Background())
		w.Header().Set("Connection", "X-Device-Hop")
		w.Header().Set("X-Device-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		http.Redirect(w, r, "/next", http.StatusFound)
	}))
	defer dev.Close()
	port := portOf(t, dev.Listener.Addr().String())

	for _, tc := range []struct {
		name, hostHeader, wantHost string
	}{
		{"configured host header", "printer.example", "printer.example"},
		{"default host header", "", "127.0.0.1:" + strconv.Itoa(port)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t, deviceproxy.Device{ID: "d1", Host: "127.0.0.1", HTTPPort: port, HostHeader: tc.hostHeader})
			h, err := p.Handler(0)
			if err != nil {
				t.Fatal(err)
			}
			hdr := http.Header{
				"Origin":              {"https://s1.sessions.example"},
				"Referer":             {"https://s1.sessions.example/a/b?c=d"},
				"X-Forwarded-For":     {"203.0.113.1"},
				"X-Forwarded-Host":    {"evil"},
				"Forwarded":           {"for=203.0.113.1"},
				"Connection":          {"X-Client-Hop"},
				"X-Client-Hop":        {"1"},
				"Proxy-Authorization": {"Basic eA=="},
			}
			ctx := deviceproxy.WithClientOrigin(context.Background(), "https://s1.sessions.example")
			rec := serve(h, originFormRequest(ctx, "GET", "/cgi?x=1", hdr))
			if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/next" {
				t.Fatalf("got %d Location %q; the redirect must come back unfollowed", rec.Code, rec.Header().Get("Location"))
			}
			for _, h := range []string{"Connection", "X-Device-Hop", "Keep-Alive"} {
				if v := rec.Header().Get(h); v != "" {
					t.Errorf("response header %s = %q leaked", h, v)
				}
			}
			r := <-seen
			origin := "http://" + tc.wantHost
			if r.Host != tc.wantHost || r.URL.RequestURI() != "/cgi?x=1" {
				t.Errorf("device saw Host %q target %q", r.Host, r.URL.RequestURI())
			}
			if r.Header.Get("Origin") != origin || r.Header.Get("Referer") != origin+"/a/b?c=d" {
				t.Errorf("Origin %q Referer %q", r.Header.Get("Origin"), r.Header.Get("Referer"))
			}
			for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Client-Hop", "Proxy-Authorization"} {
				if v := r.Header.Get(h); v != "" {
					t.Errorf("device saw %s = %q", h, v)
				}
			}
		})
	}
}

func TestRefusesUndeclaredPortsAndAbsoluteForm(t *testing.T) {
	p := newProxy(t, deviceproxy.Device{ID: "d1", Host: "127.0.0.1", HTTPPort: 8080, Ports: []int{22}})
	for _, port := range []int{0, 8080, 22} {
		if _, err := p.Handler(port); err != nil {
			t.Errorf("Handler(%d): %v", port, err)
		}
	}
	for _, port := range []int{80, 443, 8081, 65535} {
		_, err := p.Handler(port)
		if proto.CodeOf(err) != proto.CodePortNotAllowed {
			t.Errorf("Handler(%d) = %v, want port_not_allowed", port, err)
		}
		_, err = p.DialTCP(context.Background(), port)
		if proto.CodeOf(err) != proto.CodePortNotAllowed {
			t.Errorf("DialTCP(%d) = %v, want port_not_allowed", port, err)
		}
	}
	h, _ := p.Handler(0)
	req := httptest.NewRequest("GET", "http://10.0.0.1:22/", nil) // absolute form
	if rec := serve(h, req); rec.Code != http.StatusBadRequest {
		t.Errorf("absolute-form request: %d, want 400", rec.Code)
	}
}

func TestNewValidates(t *testing.T) {
	for _, d := range []deviceproxy.Device{
		{ID: "a", Host: ""},
		{ID: "b", Host: "10.0.0.1:80"},
		{ID: "c", Host: "x/y"},
		{ID: "d", Host: "10.0.0.1", Scheme: "ftp"},
		{ID: "e", Host: "10.0.0.1", Ports: []int{70000}},
		{ID: "f", Host: "10.0.0.1", HostHeader: "a b"},
	} {
		if _, err := deviceproxy.New(d, nil); err == nil {
			t.Errorf("New(%+v) accepted", d)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	// A port with nothing listening: 502.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := portOf(t, ln.Addr().String())
	_ = ln.Close()
	p := newProxy(t, deviceproxy.Device{ID: "d1", Host: "127.0.0.1", HTTPPort: closedPort})
	h, _ := p.Handler(0)
	if rec := serve(h, originFormRequest(context.Background(), "GET", "/", nil)); rec.Code != http.StatusBadGateway {
		t.Errorf("refused connection: %d, want 502", rec.Code)
	}
	_, err := p.DialTCP(context.Background(), closedPort)
	var pe *proto.Error
	if !errors.As(err, &pe) || pe.Code != proto.CodeDeviceFailed {
		t.Errorf("DialTCP to a closed port: %v, want device_failed", err)
	}

	// A device that never answers: 504 on a deadline, 499 on cancel.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	p = newProxy(t, deviceproxy.Device{ID: "d2", Host: "127.0.0.1", HTTPPort: portOf(t, slow.Listener.Addr().String())})
	h, _ = p.Handler(0)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if rec := serve(h, originFormRequest(ctx, "GET", "/", nil)); rec.Code != http.StatusGatewayTimeout {
		t.Errorf("device timeout: %d, want 504", rec.Code)
	}
	ctx, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel2)
	rec := serve(h, originFormRequest(ctx, "GET", "/", nil))
	if rec.Code != deviceproxy.StatusClientClosedRequest {
		t.Errorf("cancelled: %d, want 499", rec.Code)
	}
	body, _ := io.ReadAll(rec.Body)
	if len(body) == 0 || len(body) > 200 {
		t.Errorf("error body %q: want a short text", body)
	}
}

func TestDialTCPDeclaredPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = io.WriteString(c, "SSH-2.0-device\r\n")
			_ = c.Close()
		}
	}()
	port := portOf(t, ln.Addr().String())
	p := newProxy(t, deviceproxy.Device{ID: "d1", Host: "127.0.0.1", HTTPPort: 80, Ports: []int{port}})
	c, err := p.DialTCP(context.Background(), port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	if string(b) != "SSH-2.0-device\r\n" {
		t.Fatalf("got %q", b)
	}
}

// TestOriginIsNeverLaundered: only an Origin or Referer on the client's own
// origin (where it serves the device's pages) becomes the device's; a
// foreign one reaches the device unchanged, so the device's own CSRF check
// still sees it, and nothing foreign gets a device Referer added.
func TestOriginIsNeverLaundered(t *testing.T) {
	const (
		client = "https://abcdefgh12345678.sessions.example" // the session's device origin
		device = "http://printer.example"
	)
	seen := make(chan http.Header, 1)
	dev := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Clone() }))
	defer dev.Close()
	p := newProxy(t, deviceproxy.Device{ID: "d1", Host: "127.0.0.1", HTTPPort: portOf(t, dev.Listener.Addr().String()), HostHeader: "printer.example"})
	h, _ := p.Handler(0)
	cases := []struct {
		name, method, client string
		origin, referer      []string // sent; nil for none
		wantOrigin           string
		wantReferer          string
	}{
		{"own origin, POST", "POST", client, []string{client}, []string{client + "/settings?x=1"}, device, device + "/settings?x=1"},
		{"own origin, no Referer", "POST", client, []string{client}, nil, device, device + "/"},
		{"own Referer on a GET", "GET", client, nil, []string{client + "/a"}, "", device + "/a"},
		{"foreign origin passes unchanged", "POST", client, []string{"https://evil.example"}, []string{"https://evil.example/x"}, "https://evil.example", "https://evil.example/x"},
		{"foreign origin gets no device Referer", "POST", client, []string{"https://evil.example"}, nil, "https://evil.example", ""},
		{"another session's origin is foreign", "POST", client, []string{"https://zzzzzzzz12345678.sessions.example"}, nil, "https://zzzzzzzz12345678.sessions.example", ""},
		{"null passes unchanged", "POST", client, []string{"null"}, nil, "null", ""},
		{"look-alike passes unchanged", "POST", client, []string{client + ".evil.example"}, nil, client + ".evil.example", ""},
		{"no client origin: nothing is own", "POST", "", []string{client}, []string{client + "/a"}, client, client + "/a"},
		{"two Origins are foreign", "POST", client, []string{client, "https://evil.example"}, nil, client, ""},
		{"foreign Referer on a GET passes unchanged", "GET", client, nil, []string{"https://evil.example/page"}, "", "https://evil.example/page"},
		{"relative Referer is dropped", "GET", client, nil, []string{"/relative"}, "", ""},
		{"no Origin (not a web page), POST", "POST", client, nil, nil, device, device + "/"},
		{"no Origin, GET", "GET", client, nil, nil, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			if tc.origin != nil {
				hdr["Origin"] = tc.origin
			}
			if tc.referer != nil {
				hdr["Referer"] = tc.referer
			}
			ctx := context.Background()
			if tc.client != "" {
				ctx = deviceproxy.WithClientOrigin(ctx, tc.client)
			}
			serve(h, originFormRequest(ctx, tc.method, "/x", hdr))
			got := <-seen
			if got.Get("Origin") != tc.wantOrigin || got.Get("Referer") != tc.wantReferer {
				t.Errorf("device saw Origin %q Referer %q, want %q %q", got.Values("Origin"), got.Get("Referer"), tc.wantOrigin, tc.wantReferer)
			}
		})
	}
}

// TestControlRefusesTheDialItself: the scope check runs on the address
// actually dialled (after resolution), so a device whose name resolves
// outside the site's scope is never connected to.
func TestControlRefusesTheDialItself(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := portOf(t, ln.Addr().String())
	sc, err := scope.New(scope.Config{CIDRs: []string{"192.0.2.0/24"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, deviceproxy.Device{ID: "d1", Host: "localhost", HTTPPort: 80, Ports: []int{port}, Control: sc.Control})
	_, err = p.DialTCP(context.Background(), port)
	var pe *proto.Error
	if !errors.As(err, &pe) || pe.Code != proto.CodeForbidden || !strings.Contains(pe.Message, "outside the site's scope") {
		t.Fatalf("dial: %v, want a forbidden out-of-scope refusal", err)
	}
	// The same device without the check reaches the listener.
	open := newProxy(t, deviceproxy.Device{ID: "d1", Host: "localhost", HTTPPort: 80, Ports: []int{port}})
	c, err := open.DialTCP(context.Background(), port)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
}

// TestDeviceOriginsHeader: an HTML document carries the device's own
// origins (each of its names, http and https as mapped) for the page
// shim's run-time URLs; a value the device sent itself never passes, and
// other types carry none.
func TestDeviceOriginsHeader(t *testing.T) {
	dev := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(proto.HeaderDeviceOrigins, "http://evil.example")
		if r.URL.Path == "/page" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
		} else {
			w.Header().Set("Content-Type", "application/json")
		}
		io.WriteString(w, "x")
	}))
	defer dev.Close()
	port := portOf(t, dev.Listener.Addr().String())
	p := newProxy(t, deviceproxy.Device{ID: "d1", Host: "127.0.0.1", HTTPPort: port, HostHeader: "printer.example", Names: []string{"NPI4000.local"}})
	h, _ := p.Handler(0)
	ctx := deviceproxy.WithClientOrigin(context.Background(), "https://s1.sessions.example")
	got := serve(h, originFormRequest(ctx, "GET", "/page", nil)).Header().Get(proto.HeaderDeviceOrigins)
	for _, want := range []string{fmt.Sprintf("http://127.0.0.1:%d", port), "http://printer.example", fmt.Sprintf("https://printer.example:%d", port), "http://npi4000.local"} {
		if !slices.Contains(strings.Fields(got), want) {
			t.Errorf("%s = %q, lacks %s", proto.HeaderDeviceOrigins, got, want)
		}
	}
	if strings.Contains(got, "evil") {
		t.Errorf("the device's own value passed: %q", got)
	}
	if got := serve(h, originFormRequest(ctx, "GET", "/data", nil)).Header().Values(proto.HeaderDeviceOrigins); len(got) != 0 {
		t.Errorf("JSON carries %q", got)
	}
}

// TestIdleConnectionsCoverTheBrowsersChannels: the connections kept idle
// to a device are at least the browser session's requests in flight (its
// data channel pool), so a page's burst reuses them.
func TestIdleConnectionsCoverTheBrowsersChannels(t *testing.T) {
	js, err := os.ReadFile("../../web/session/tunnel.js")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`export const MAX_CHANNELS = (\d+);`).FindSubmatch(js)
	if m == nil {
		t.Fatal("web/session/tunnel.js: no MAX_CHANNELS")
	}
	n, _ := strconv.Atoi(string(m[1]))
	if deviceproxy.MaxIdleConnsPerHost < n {
		t.Fatalf("MaxIdleConnsPerHost %d < the browser's MAX_CHANNELS %d", deviceproxy.MaxIdleConnsPerHost, n)
	}
}
