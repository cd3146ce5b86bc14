package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/internal/fetchx"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/bus"
	"github.com/porthole-dev/porthole/signaling/cluster"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
)

// deviceEnv is newEnv with a device origin: DeviceWeb answers the relay
// frame (and the rest of /__t/) with a stub page.
func deviceEnv(t *testing.T, mod func(*Config)) *env {
	return newEnv(t, func(c *Config) {
		c.DeviceWeb = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, "<!doctype html><title>relay</title>")
		})
		if mod != nil {
			mod(c)
		}
	})
}

// fakeFetchAgent plays an agent that speaks the fallback: it answers each
// fetch.request with serve, through a real fetchx.Exchange on its side.
type fakeFetchAgent struct {
	t     *testing.T
	p     *peer
	serve func(req *proto.FetchRequest, body []byte, x *fetchx.Exchange)

	mu   sync.Mutex
	open map[string]*fetchx.Exchange // session/id
	seen []*proto.FetchRequest
	done chan struct{}
}

func (e *env) fetchAgent(key string, serve func(*proto.FetchRequest, []byte, *fetchx.Exchange), devices ...string) *fakeFetchAgent {
	e.t.Helper()
	p, resp, err := e.dial(proto.PathAgentSocket, dialOpts{header: bearerHeader(key)})
	if err != nil {
		e.t.Fatalf("agent dial: %v (%v)", err, status(resp))
	}
	var devs []proto.Device
	for _, d := range devices {
		devs = append(devs, proto.Device{ID: d, HTTPPort: 80})
	}
	p.send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Software: "test-agent", Devices: devs, Fetch: proto.FetchVersion})
	var w proto.Welcome
	p.nextData(proto.TypeWelcome, &w)
	return &fakeFetchAgent{t: e.t, p: p, serve: serve, open: map[string]*fetchx.Exchange{}, done: make(chan struct{})}
}

// accept answers session.open for one session, then serves fetches until
// the test ends.
func (a *fakeFetchAgent) run() {
	go func() {
		defer close(a.done)
		for {
			var env *proto.Envelope
			select {
			case env = <-a.p.in:
			case <-a.p.done:
				a.mu.Lock()
				for _, x := range a.open {
					x.Close()
				}
				a.mu.Unlock()
				return
			}
			switch {
			case env.Type == proto.TypeSessionOpen:
				a.p.send(proto.TypeSessionReady, env.Session, struct{}{})
			case env.Type == proto.TypeFetchRequest:
				var req proto.FetchRequest
				if err := proto.DecodeData(env, &req); err != nil {
					a.t.Errorf("agent got a bad request: %v", err)
					continue
				}
				session := env.Session
				x := fetchx.New(req.ID, func(ctx context.Context, typ proto.MsgType, payload proto.Validator) error {
					a.p.send(typ, session, payload)
					return nil
				}, 0)
				x.Start()
				a.mu.Lock()
				a.open[fmt.Sprintf("%s/%d", session, req.ID)] = x
				a.seen = append(a.seen, &req)
				a.mu.Unlock()
				go func() {
					var body []byte
					if req.ContentLength != 0 {
						for {
							p, err := x.Read(context.Background())
							if err != nil {
								break
							}
							body = append(body, p...)
						}
					}
					a.serve(&req, body, x)
				}()
			case proto.IsFetch(env.Type):
				v, err := cluster.DecodeFetch(env)
				if err != nil {
					a.t.Errorf("agent got a bad %s: %v", env.Type, err)
					continue
				}
				a.mu.Lock()
				x := a.open[fmt.Sprintf("%s/%d", env.Session, cluster.FetchID(v))]
				a.mu.Unlock()
				if x != nil {
					if err := x.Deliver(env.Type, v); err != nil {
						a.t.Errorf("signaling broke the fetch protocol: %v", err)
					}
				}
			}
		}
	}()
}

func (a *fakeFetchAgent) requests() []*proto.FetchRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*proto.FetchRequest(nil), a.seen...)
}

// answer replies with status, header, cookies and body.
func answer(x *fetchx.Exchange, status int, hdr http.Header, cookies []string, body []byte) {
	ctx := context.Background()
	if err := x.SendHead(ctx, &proto.FetchResponse{ResponseHead: proto.ResponseHead{Status: status, Header: hdr, Cookies: cookies}}); err != nil {
		return
	}
	if len(body) > 0 && x.Write(ctx, body) != nil {
		return
	}
	_ = x.End(ctx)
}

// deviceSession opens a session served by the fake agent and redeems its
// ticket; it returns the session ID and the device cookie's value.
func (e *env) deviceSession(a *fakeFetchAgent, device string) (string, string) {
	e.t.Helper()
	info := e.openAsync(device)
	_, ready := e.client(info.Token, dialOpts{})
	if !proto.ValidTicket(ready.RelayTicket) {
		e.t.Fatalf("session.ready without a ticket: %+v", ready)
	}
	resp := e.deviceGet(info.Session, proto.PathRelayFrame+"?t="+ready.RelayTicket, http.Header{"Sec-Fetch-Dest": {"iframe"}, "Sec-Fetch-Site": {"same-site"}})
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == proto.DeviceCookie {
			cookie = c
		}
	}
	if cookie == nil {
		e.t.Fatalf("relay frame got no device cookie: %s %v", resp.Status, resp.Header)
	}
	if !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || cookie.Domain != "" || cookie.MaxAge <= 0 || cookie.MaxAge > 1800 {
		e.t.Fatalf("device cookie %+v", cookie)
	}
	return info.Session, cookie.Value
}

// openAsync creates a session whose session.open the running fake agent
// answers.
func (e *env) openAsync(device string) proto.SessionInfo {
	e.t.Helper()
	var info proto.SessionInfo
	resp := e.request(http.MethodPost, proto.PathSessions, techToken, &proto.CreateSession{Device: device}, nil, &info)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("POST /v1/sessions = %d", resp.StatusCode)
	}
	return info
}

// deviceGet sends a request to a session's device origin.
func (e *env) deviceDo(session, method, target string, hdr http.Header, body io.Reader) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+target, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Host = session + "." + domain
	for k, v := range hdr {
		req.Header[k] = v
	}
	// Like a browser's XHR, the caller sees redirects itself here.
	client := *e.ts.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (e *env) deviceGet(session, target string, hdr http.Header) *http.Response {
	resp, _ := e.deviceDo(session, http.MethodGet, target, hdr, nil)
	return resp
}

// fromPage is what the device's own page sends with a synchronous XHR.
func fromPage(cookie string, more ...string) http.Header {
	h := http.Header{"Sec-Fetch-Site": {"same-origin"}, "Sec-Fetch-Mode": {"cors"}, "Sec-Fetch-Dest": {"empty"},
		"Cookie": {proto.DeviceCookie + "=" + cookie + "; lang=en"}}
	for i := 0; i+1 < len(more); i += 2 {
		h.Add(more[i], more[i+1])
	}
	return h
}

func echoAgent(req *proto.FetchRequest, body []byte, x *fetchx.Exchange) {
	switch {
	case strings.HasPrefix(req.Target, "/big"):
		big := bytes.Repeat([]byte("0123456789abcdef"), 128<<10) // 2 MiB
		answer(x, 200, http.Header{"Content-Type": {"application/octet-stream"}}, nil, big)
	case req.Target == "/away":
		answer(x, 302, http.Header{"Location": {"https://evil.example/phish"}}, nil, nil)
	case req.Target == "/here":
		answer(x, 302, http.Header{"Location": {"/login.html"}}, nil, nil)
	case req.Target == "/logout":
		_ = x.SendHead(context.Background(), &proto.FetchResponse{ResponseHead: proto.ResponseHead{Status: 200,
			Header: http.Header{"Content-Type": {"text/html"}}, DeletedCookies: []string{"sid", proto.DeviceCookie}}})
		_ = x.End(context.Background())
	case req.Target == "/hang":
		_ = x.SendHead(context.Background(), &proto.FetchResponse{ResponseHead: proto.ResponseHead{Status: 200}})
		<-x.Done() // until signaling aborts it
	default:
		answer(x, 200, http.Header{
			"Content-Type":                {"text/plain"},
			"Set-Cookie":                  {proto.DeviceCookie + "=stolen; Path=/"},
			"Strict-Transport-Security":   {"max-age=31536000; includeSubDomains"},
			"Content-Security-Policy":     {"img-src 'self'; frame-ancestors 'none'"},
			"Access-Control-Allow-Origin": {"*"},
			"Cache-Control":               {"max-age=86400"},
		}, []string{"tab=2", proto.DeviceCookie + "=forged", "__host-PORTHOLE-bind=x"},
			append([]byte(req.Method+" "+req.Target+" "), body...))
	}
}

func TestDeviceOriginCarriesWhatTheWorkerMisses(t *testing.T) {
	e := deviceEnv(t, nil)
	a := e.fetchAgent(agentKey, echoAgent, "printer-1")
	a.run()
	session, cookie := e.deviceSession(a, "printer-1")

	// A synchronous XHR GET.
	resp, body := e.deviceDo(session, "GET", "/cgi-bin/status?x=1", fromPage(cookie, "X-Requested-With", "XMLHttpRequest",
		"X-Porthole-Credentials", "YWRtaW46YWRtaW4=", "Origin", "http://"+session+"."+domain, "X-Forwarded-For", "203.0.113.9"), nil)
	if resp.StatusCode != 200 || string(body) != "GET /cgi-bin/status?x=1 " {
		t.Fatalf("GET: %s %q", resp.Status, body)
	}
	req := a.requests()[0]
	if c := req.Header.Get("Cookie"); c != "lang=en" {
		t.Fatalf("the agent got cookies %q: signaling's own must never reach the device", c)
	}
	for _, k := range []string{"Sec-Fetch-Site", "X-Porthole-Credentials", "X-Forwarded-For"} {
		if req.Header.Get(k) != "" {
			t.Errorf("the agent got %s", k)
		}
	}
	// The page's own Origin goes on, with the device origin as the client's:
	// the agent makes it the device's.
	if req.Header.Get("Origin") != "http://"+session+"."+domain || req.ClientOrigin != "http://"+session+"."+domain {
		t.Errorf("Origin %q, client origin %q", req.Header.Get("Origin"), req.ClientOrigin)
	}
	if req.Header.Get("X-Requested-With") != "XMLHttpRequest" {
		t.Errorf("the page's own header was dropped: %v", req.Header)
	}
	// The response follows the session's rules, whatever the agent sent.
	h := resp.Header
	if csp := strings.Join(h.Values("Content-Security-Policy"), " | "); !strings.Contains(csp, proto.DeviceCSP) || strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "img-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	if h.Get("Strict-Transport-Security") != "" || h.Get("Access-Control-Allow-Origin") != "" || h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", h)
	}
	var mirrored []string
	for _, c := range resp.Cookies() {
		mirrored = append(mirrored, c.Name)
		if proto.IsPortholeCookie(c.Name) {
			t.Errorf("the device set signaling's cookie %s", c.Name)
		}
	}
	if strings.Join(mirrored, ",") != "tab" || !strings.Contains(h.Get("Set-Cookie"), "SameSite=Strict") {
		t.Errorf("mirrored cookies %v (%q)", mirrored, h.Values("Set-Cookie"))
	}

	// A synchronous XHR POST with a binary body, and a 2 MiB answer.
	bin := make([]byte, 300<<10)
	rand.Read(bin)
	resp, body = e.deviceDo(session, "POST", "/upload", fromPage(cookie, "Content-Type", "application/octet-stream"), bytes.NewReader(bin))
	if resp.StatusCode != 200 || !bytes.Equal(body, append([]byte("POST /upload "), bin...)) {
		t.Fatalf("POST: %s, %d bytes", resp.Status, len(body))
	}
	if resp, body = e.deviceDo(session, "GET", "/big", fromPage(cookie), nil); resp.StatusCode != 200 || len(body) != 2<<20 {
		t.Fatalf("big: %s, %d bytes", resp.Status, len(body))
	}
	// A hard reload is a navigation with Sec-Fetch-Site: none.
	nav := fromPage(cookie)
	nav.Set("Sec-Fetch-Site", "none")
	nav.Set("Sec-Fetch-Mode", "navigate")
	nav.Set("Sec-Fetch-Dest", "document")
	if resp, _ := e.deviceDo(session, "GET", "/index.html", nav, nil); resp.StatusCode != 200 {
		t.Fatalf("reload: %s", resp.Status)
	}
	// Cookies the device deleted are deleted in the browser too; never
	// signaling's own.
	if resp, _ := e.deviceDo(session, "GET", "/logout", fromPage(cookie), nil); resp.StatusCode != 200 || len(resp.Cookies()) != 1 ||
		resp.Cookies()[0].Name != "sid" || resp.Cookies()[0].MaxAge >= 0 || !resp.Cookies()[0].Secure {
		t.Fatalf("logout: %s %q", resp.Status, resp.Header.Values("Set-Cookie"))
	}
	// Redirects: on the device they pass; off it they become a page.
	if resp, _ := e.deviceDo(session, "GET", "/here", fromPage(cookie), nil); resp.StatusCode != 302 || resp.Header.Get("Location") != "/login.html" {
		t.Fatalf("redirect on the device: %s %v", resp.Status, resp.Header)
	}
	if resp, body := e.deviceDo(session, "GET", "/away", fromPage(cookie), nil); resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Location") != "" || !strings.Contains(string(body), "not the device") {
		t.Fatalf("redirect off the device: %s %v", resp.Status, resp.Header)
	}
}

func TestDeviceOriginRefusesEveryoneButTheSessionsPage(t *testing.T) {
	e := deviceEnv(t, nil)
	a := e.fetchAgent(agentKey, echoAgent, "printer-1", "printer-2")
	a.run()
	session, cookie := e.deviceSession(a, "printer-1")
	other, otherCookie := e.deviceSession(a, "printer-2")
	ok := len(a.requests())

	for _, tc := range []struct {
		name   string
		sess   string
		hdr    http.Header
		method string
		body   io.Reader
		status int
		text   string
		log    string
	}{
		{"forged cookie", session, fromPage("Zm9yZ2VkLWNvb2tpZS12YWx1ZS0wMDAwMDAwMDAwMDA"), "GET", nil, 401, "belongs to a Porthole session window", "device cookie"},
		{"another session's cookie", session, fromPage(otherCookie), "GET", nil, 401, "belongs to a Porthole session window", "device cookie"},
		{"a page on another session's origin", session, func() http.Header { h := fromPage(cookie); h.Set("Sec-Fetch-Site", "same-site"); return h }(), "GET", nil, 403, "not from another site", "sec_fetch_site=same-site"},
		{"two Sec-Fetch-Site values", session, fromPage(cookie, "Sec-Fetch-Site", "same-site"), "GET", nil, 403, "not from another site", "not from the device's own page"},
		{"the shell's origin", session, func() http.Header { h := fromPage(cookie); h.Set("Sec-Fetch-Site", "same-site"); return h }(), "POST", strings.NewReader("x"), 403, "Refused", "sec_fetch_site=same-site"},
		{"a foreign site", session, func() http.Header { h := fromPage(cookie); h.Set("Sec-Fetch-Site", "cross-site"); return h }(), "POST", strings.NewReader("x"), 403, "Refused", "sec_fetch_site=cross-site"},
		{"a foreign Origin", session, fromPage(cookie, "Origin", "https://evil.example"), "POST", strings.NewReader("x"), 403, "Refused", "Origin of another site"},
		{"no Sec-Fetch-Site (not a browser)", session, func() http.Header { h := fromPage(cookie); h.Del("Sec-Fetch-Site"); return h }(), "GET", nil, 403, "Refused", `sec_fetch_site=""`},
		{"oversize body", session, fromPage(cookie), "POST", bytes.NewReader(make([]byte, proto.MaxFetchBody+1)), 413, "at most 1 MiB", "body too large"},
		{"oversize chunked body", session, fromPage(cookie), "POST", io.MultiReader(bytes.NewReader(make([]byte, proto.MaxFetchBody)), strings.NewReader("!")), 413, "", "request body over"},
		{"a service worker's script", session, func() http.Header { h := fromPage(cookie); h.Set("Sec-Fetch-Dest", "serviceworker"); return h }(), "GET", nil, 404, "no workers", "a worker script of the device"},
		{"Service-Worker: script alone", session, fromPage(cookie, "Service-Worker", "script"), "GET", nil, 404, "no workers", "dest=empty"},
		{"a shared worker's script", session, func() http.Header { h := fromPage(cookie); h.Set("Sec-Fetch-Dest", "sharedworker"); return h }(), "GET", nil, 404, "no workers", "dest=sharedworker"},
		{"a dedicated worker's script", session, func() http.Header { h := fromPage(cookie); h.Set("Sec-Fetch-Dest", "worker"); return h }(), "GET", nil, 404, "no workers", "dest=worker"},
		{"a WebSocket", session, fromPage(cookie, "Upgrade", "websocket", "Connection", "Upgrade"), "GET", nil, 501, "WebSocket", "WebSocket outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.name == "oversize chunked body" {
				body = io.NopCloser(body) // no Content-Length: the limit is counted
			}
			resp, got := e.deviceDo(tc.sess, tc.method, "/secret", tc.hdr, body)
			if resp.StatusCode != tc.status || !strings.Contains(string(got), tc.text) {
				t.Fatalf("%s %q, want %d %q", resp.Status, got, tc.status, tc.text)
			}
			e.waitLog(tc.log)
		})
	}
	// None of them reached the device except the chunked one, which was
	// cut off at the limit.
	for _, r := range a.requests()[ok:] {
		if r.Method != "POST" || r.ContentLength != -1 {
			t.Errorf("a refused request reached the agent: %+v", r)
		}
	}
	// The cookie of the other session still works for its own session.
	if resp, _ := e.deviceDo(other, "GET", "/x", fromPage(otherCookie), nil); resp.StatusCode != 200 {
		t.Fatalf("the other session's own request: %s", resp.Status)
	}
	// With no cookie at all (the first visit of a bookmarked device URL),
	// nothing is carried: the device origin's own page answers.
	if resp, body := e.deviceDo(session, "GET", "/secret", http.Header{"Sec-Fetch-Site": {"none"}}, nil); string(body) != "<!doctype html><title>relay</title>" {
		t.Fatalf("no cookie: %s %q", resp.Status, body)
	}
	// Without DeviceWeb, the page says where the device page belongs.
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Sec-Fetch-Site", "none")
	web := e.srv.cfg.DeviceWeb
	e.srv.cfg.DeviceWeb = nil
	e.srv.serveDeviceFallback(w, r, session)
	e.srv.cfg.DeviceWeb = web
	if w.Code != 404 || !strings.Contains(w.Body.String(), "Open it from Porthole") || !strings.Contains(w.Body.String(), appOrigin+"/") {
		t.Fatalf("no cookie: %d %s", w.Code, w.Body.String())
	}
	// A copied session token buys nothing on the device origin.
	info := e.openAsync("printer-1")
	if resp, _ := e.deviceDo(info.Session, "GET", "/x", http.Header{"Sec-Fetch-Site": {"same-origin"}, "Authorization": {"Bearer " + info.Token},
		"Cookie": {proto.DeviceCookie + "=" + info.Token}}, nil); resp.StatusCode != 401 {
		t.Fatalf("session token as device credential: %s", resp.Status)
	}
	// After the session ends, its cookie opens nothing, and the end page
	// takes it out of the browser.
	e.request(http.MethodDelete, proto.PathSessions+"/"+session, techToken, nil, nil, nil)
	ended := e.deviceGet(session, proto.PathSessionEnded, nil)
	var gone bool
	for _, c := range ended.Cookies() {
		gone = gone || (c.Name == proto.DeviceCookie && c.MaxAge < 0)
	}
	if !gone {
		t.Errorf("the end page leaves the device cookie: %v", ended.Header.Values("Set-Cookie"))
	}
	resp, got := e.deviceDo(session, "GET", "/x", fromPage(cookie), nil)
	if resp.StatusCode != 404 || !strings.Contains(string(got), "No such session") {
		t.Fatalf("after the end: %s %q", resp.Status, got)
	}
}

// TestDeviceOriginFloodIsBounded: a page that fires many requests past the
// worker gets its share and 503s past the cap; the agent stays connected,
// and another session is served meanwhile.
func TestDeviceOriginFloodIsBounded(t *testing.T) {
	e := deviceEnv(t, nil)
	a := e.fetchAgent(agentKey, echoAgent, "printer-1", "printer-2")
	a.run()
	session, cookie := e.deviceSession(a, "printer-1")
	other, otherCookie := e.deviceSession(a, "printer-2")

	var busy, hanging atomic.Int32
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	for range 3 * proto.MaxFetchesPerSession {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/hang", nil)
			req.Host = session + "." + domain
			req.Header = fromPage(cookie)
			resp, err := e.ts.Client().Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				hanging.Add(1)
				_, _ = io.Copy(io.Discard, resp.Body) // until cancelled
			case 503:
				if resp.Header.Get("Retry-After") != "" {
					busy.Add(1)
				}
			}
		})
	}
	testenv.Eventually(t, wait, "the flood to settle", func() bool {
		return hanging.Load() == proto.MaxFetchesPerSession && busy.Load() == 2*proto.MaxFetchesPerSession
	})
	if resp, body := e.deviceDo(other, "GET", "/ok", fromPage(otherCookie), nil); resp.StatusCode != 200 || string(body) != "GET /ok " {
		t.Fatalf("another session during the flood: %s %q", resp.Status, body)
	}
	if n := len(e.srv.hub.OnlineAgents()); n != 1 {
		t.Fatalf("the agent went offline during the flood")
	}
	cancel()
	wg.Wait()
	e.waitLog("fallback request refused: too many in flight")
}

// TestDeviceOriginSlowBrowserHoldsOnlyItsOwnExchange: a browser that does
// not read a big answer stops the agent after a window of chunks; the
// agent's connection keeps carrying everything else.
func TestDeviceOriginSlowBrowserHoldsOnlyItsOwnExchange(t *testing.T) {
	e := deviceEnv(t, nil)
	var sent atomic.Int64
	a := e.fetchAgent(agentKey, func(req *proto.FetchRequest, body []byte, x *fetchx.Exchange) {
		if req.Target != "/huge" {
			echoAgent(req, body, x)
			return
		}
		ctx := context.Background()
		_ = x.SendHead(ctx, &proto.FetchResponse{ResponseHead: proto.ResponseHead{Status: 200}})
		chunk := make([]byte, proto.FetchChunk)
		for range 1024 { // 16 MiB
			if x.Write(ctx, chunk) != nil {
				return
			}
			sent.Add(1)
		}
		_ = x.End(ctx)
	}, "printer-1")
	a.run()
	session, cookie := e.deviceSession(a, "printer-1")

	req, _ := http.NewRequest("GET", e.ts.URL+"/huge", nil)
	req.Host = session + "." + domain
	req.Header = fromPage(cookie)
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The browser reads nothing: TCP buffers and the window fill, then the
	// agent waits.
	var last int64 = -1
	testenv.Eventually(t, wait, "the agent to stop sending", func() bool {
		n := sent.Load()
		stopped := n == last && n > 0
		last = n
		time.Sleep(100 * time.Millisecond)
		return stopped
	})
	if n := sent.Load(); n >= 1024 {
		t.Fatalf("the agent sent everything (%d chunks) to a browser that read nothing", n)
	}
	if resp, body := e.deviceDo(session, "GET", "/meanwhile", fromPage(cookie), nil); resp.StatusCode != 200 || string(body) != "GET /meanwhile " {
		t.Fatalf("a request beside the stalled one: %s %q", resp.Status, body)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != 1024*proto.FetchChunk {
		t.Fatalf("read %d bytes: %v", n, err)
	}
}

// TestDeviceOriginAcrossNodes: the browser reaches a node that does not
// hold the agent; the ticket, the cookie check and the exchange go to the
// owner over the bus.
func TestDeviceOriginAcrossNodes(t *testing.T) {
	net := bus.NewNetwork()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "porthole.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	busA, busB := net.Join("node-a"), net.Join("node-b")
	t.Cleanup(func() { busA.Close(); busB.Close() })
	owner := deviceEnv(t, func(c *Config) { c.Bus, c.Node, c.Store = busA, "node-a", st })
	edge := deviceEnv(t, func(c *Config) { c.Bus, c.Node, c.Store = busB, "node-b", st })
	a := owner.fetchAgent(agentKey, echoAgent, "printer-1")
	a.run()
	testenv.Eventually(t, wait, "the agent's presence on the edge", func() bool {
		return len(edge.srv.sessions.Devices(context.Background())) == 1
	})
	session, cookie := edge.deviceSession(a, "printer-1")
	bin := make([]byte, 200<<10)
	rand.Read(bin)
	resp, body := edge.deviceDo(session, "POST", "/upload", fromPage(cookie), bytes.NewReader(bin))
	if resp.StatusCode != 200 || !bytes.Equal(body, append([]byte("POST /upload "), bin...)) {
		t.Fatalf("POST across nodes: %s, %d bytes", resp.Status, len(body))
	}
	if resp, body = edge.deviceDo(session, "GET", "/big", fromPage(cookie), nil); resp.StatusCode != 200 || len(body) != 2<<20 {
		t.Fatalf("big across nodes: %s, %d bytes", resp.Status, len(body))
	}
	if resp, _ := edge.deviceDo(session, "GET", "/x", fromPage("Zm9yZ2VkLWNvb2tpZS12YWx1ZS0wMDAwMDAwMDAwMDA"), nil); resp.StatusCode != 401 {
		t.Fatalf("forged cookie across nodes: %s", resp.Status)
	}
	if owner.srv.router.Forwarders() != 0 {
		testenv.Eventually(t, wait, "forwarders to finish", func() bool {
			return owner.srv.router.Forwarders() == 0
		})
	}
}
