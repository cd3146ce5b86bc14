package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// fallbackClient is a technician's session as the browser's relay frame
// leaves it: joined over the session socket, its ticket redeemed for the
// device cookie. It sends requests to the device origin's server the way
// a synchronous XHR of the device's page does.
type fallbackClient struct {
	t      *testing.T
	s      *stack.Stack
	info   *proto.SessionInfo
	conn   *sigclient.Conn
	host   string // the device origin's host
	cookie string
	http   *http.Client
}

func newFallbackClient(t *testing.T, s *stack.Stack, device string) *fallbackClient {
	t.Helper()
	ctx := context.Background()
	api := &sigclient.API{Base: s.SignalingURL, Token: s.TechToken}
	info, err := api.CreateSession(ctx, device)
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	conn, err := sigclient.Dial(ctx, sigclient.SocketURL(s.SignalingURL, proto.PathSessionSocket),
		sigclient.Options{Header: http.Header{"Authorization": {"Bearer " + info.Token}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient}); err != nil {
		t.Fatal(err)
	}
	var ready proto.SessionReady
	for ready.RelayTicket == "" {
		select {
		case env, ok := <-conn.Incoming():
			if !ok {
				t.Fatalf("session socket closed: %v", conn.Err())
			}
			if env.Type == proto.TypeSessionReady {
				if err := proto.DecodeData(env, &ready); err != nil || ready.RelayTicket == "" {
					t.Fatalf("session.ready %+v: %v", ready, err)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no session.ready")
		}
	}
	c := &fallbackClient{t: t, s: s, info: info, conn: conn, host: info.Session + "." + s.SessionsHost,
		http: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	resp, _ := c.do("GET", proto.PathRelayFrame+"?t="+ready.RelayTicket, nil, "Sec-Fetch-Dest", "iframe", "Sec-Fetch-Site", "same-site")
	for _, ck := range resp.Cookies() {
		if ck.Name == proto.DeviceCookie && ck.HttpOnly && ck.Secure && ck.SameSite == http.SameSiteStrictMode {
			c.cookie = ck.Value
		}
	}
	if c.cookie == "" {
		t.Fatalf("the relay frame's ticket bought no device cookie: %v", resp.Header)
	}
	return c
}

// do sends a request to the device origin's server. Without other
// Sec-Fetch-Site it is the device page's own (same-origin) with the
// device cookie.
func (c *fallbackClient) do(method, target string, body []byte, hdr ...string) (*http.Response, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.s.SignalingURL+target, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Host = c.host
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Sec-Fetch-Mode", "cors")
	req.Header.Set("Sec-Fetch-Dest", "empty")
	if c.cookie != "" {
		req.Header.Set("Cookie", proto.DeviceCookie+"="+c.cookie)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading the body: %v", method, target, err)
	}
	return resp, b
}

// jobLog returns the session's access log once it has n entries.
func jobLog(t *testing.T, s *stack.Stack, session string, n int) []proto.LoggedAccess {
	t.Helper()
	var log proto.JobLog
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%d access-log entries", n), func() bool {
		log = proto.JobLog{}
		techGet(t, s, strings.Replace(proto.PathJobLog, "{id}", session, 1), &log)
		return len(log.Entries) >= n
	})
	return log.Entries
}

// TestFallbackThroughTheRealStack: requests the worker never sees, sent
// the way Chromium sends a synchronous XHR, a favicon and a hard reload,
// reach the demo device through signaling and the real agent, with the
// device proxy's rules, and land in the access log marked "signaling".
func TestFallbackThroughTheRealStack(t *testing.T) {
	s := stack.Start(t, stack.Options{})
	c := newFallbackClient(t, s, stack.DeviceID)

	resp, body := c.do("GET", "/api/legacy/info", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"serial"`) {
		t.Fatalf("sync GET: %s %q", resp.Status, body)
	}
	if resp, body = c.do("POST", "/api/legacy/echo", []byte("hello, device"), "Content-Type", "text/plain;charset=UTF-8"); string(body) != "13:HELLO, DEVICE" {
		t.Fatalf("sync POST: %s %q", resp.Status, body)
	}
	bin := make([]byte, 4096)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	sum := sha256.Sum256(bin)
	if resp, body = c.do("POST", "/api/legacy/blob", bin, "Content-Type", "application/octet-stream"); string(body) != "4096 "+hex.EncodeToString(sum[:]) {
		t.Fatalf("binary POST: %s %q", resp.Status, body)
	}
	if resp, body = c.do("GET", "/api/legacy/blob", nil); len(body) != 256 || body[255] != 0xff {
		t.Fatalf("binary GET: %s, %d bytes", resp.Status, len(body))
	}
	// The favicon, asked for by the browser itself (Sec-Fetch-Dest image).
	if resp, body = c.do("GET", "/favicon.ico", nil, "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "image"); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/x-icon" || len(body) < 22 {
		t.Fatalf("favicon: %s %v", resp.Status, resp.Header)
	}
	// A hard reload: a navigation the worker does not see.
	resp, body = c.do("GET", "/legacy", nil, "Sec-Fetch-Site", "none", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "/static/legacy.js") {
		t.Fatalf("reload: %s %q", resp.Status, body)
	}
	if csp := resp.Header.Values("Content-Security-Policy"); !strings.Contains(strings.Join(csp, ","), proto.DeviceCSP) || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("the device page lacks the session's headers: %v", resp.Header)
	}
	// The device proxy's cookie jar serves this path too: log in, then the
	// admin page opens.
	resp, _ = c.do("POST", "/login", []byte("username=admin&password=admin"), "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/admin" {
		t.Fatalf("login: %s %v", resp.Status, resp.Header)
	}
	if resp, body = c.do("GET", "/admin", nil); resp.StatusCode != 200 || !strings.Contains(string(body), "Welcome") {
		t.Fatalf("admin after login: %s", resp.Status)
	}
	var stats struct {
		Favicons int64 `json:"favicons"`
	}
	if _, body = c.do("GET", "/api/stats", nil); json.Unmarshal(body, &stats) != nil || stats.Favicons != 1 {
		t.Fatalf("the device saw %d favicon requests (%q)", stats.Favicons, body)
	}

	entries := jobLog(t, s, c.info.Session, 9)
	want := []string{"/api/legacy/info", "/api/legacy/echo", "/api/legacy/blob", "/api/legacy/blob", "/favicon.ico", "/legacy", "/login", "/admin", "/api/stats"}
	for i, w := range want {
		e := entries[i]
		if e.URL != w || e.Via != proto.ViaSignaling || e.Status == 0 {
			t.Errorf("entry %d: %s %s status %d via %q, want %s via signaling", i+1, e.Method, e.URL, e.Status, e.Via, w)
		}
	}
	if entries[2].ReqBytes != 4096 || entries[3].RespBytes != 256 {
		t.Errorf("byte counts: %+v %+v", entries[2], entries[3])
	}
}

// TestFallbackAttacks: what a stolen or forged credential, another origin,
// a flood or an ended session get from the device origin's server.
func TestFallbackAttacks(t *testing.T) {
	s := stack.Start(t, stack.Options{})
	c := newFallbackClient(t, s, stack.DeviceID)
	other := newFallbackClient(t, s, stack.DeviceID)

	refused := []struct {
		name   string
		client *fallbackClient
		cookie string
		hdr    []string
		status int
	}{
		{"no cookie", c, "-", nil, 0}, // the shell's page (pre-split) or the session-window page
		{"a forged cookie", c, "Zm9yZ2VkLWNvb2tpZS12YWx1ZS0wMDAwMDAwMDAwMDA", nil, 401},
		{"another session's cookie", c, other.cookie, nil, 401},
		{"the session token as the cookie", c, c.info.Token, nil, 401},
		{"a page on another session's origin", c, "", []string{"Sec-Fetch-Site", "same-site"}, 403},
		{"a foreign site", c, "", []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate"}, 403},
	}
	before := len(jobLogNow(t, s, c.info.Session))
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			saved := tc.client.cookie
			switch tc.cookie {
			case "-":
				tc.client.cookie = ""
			case "":
			default:
				tc.client.cookie = tc.cookie
			}
			defer func() { tc.client.cookie = saved }()
			resp, body := tc.client.do("GET", "/api/legacy/info", nil, tc.hdr...)
			if tc.status != 0 && resp.StatusCode != tc.status {
				t.Fatalf("%s %q, want %d", resp.Status, body, tc.status)
			}
			if strings.Contains(string(body), `"serial"`) {
				t.Fatalf("the device answered: %q", body)
			}
		})
	}
	// The session token, bearer or cookie, opens nothing on the device
	// origin.
	if resp, body := c.do("GET", "/api/legacy/info", nil, "Cookie", "", "Authorization", "Bearer "+c.info.Token); strings.Contains(string(body), `"serial"`) {
		t.Fatalf("a copied session token reached the device: %s", resp.Status)
	}
	// Oversize bodies are refused before the agent.
	if resp, body := c.do("POST", "/upload", make([]byte, proto.MaxFetchBody+1)); resp.StatusCode != 413 || !strings.Contains(string(body), "1 MiB") {
		t.Fatalf("oversize body: %s %q", resp.Status, body)
	}
	if n := len(jobLogNow(t, s, c.info.Session)); n != before {
		t.Fatalf("refused requests reached the device: %d new log entries", n-before)
	}
	// A flood: many slow requests at once; past the cap they are refused,
	// the agent stays connected and the other session is served.
	done := make(chan int, 3*proto.MaxFetchesPerSession)
	for range 3 * proto.MaxFetchesPerSession {
		go func() {
			req, _ := http.NewRequest("GET", s.SignalingURL+"/slow?ms=400&chunks=3", nil)
			req.Host = c.host
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			req.Header.Set("Cookie", proto.DeviceCookie+"="+c.cookie)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	time.Sleep(200 * time.Millisecond) // the flood is in flight
	if resp, body := other.do("GET", "/api/legacy/info", nil); resp.StatusCode != 200 || !strings.Contains(string(body), `"serial"`) {
		t.Fatalf("the other session during the flood: %s", resp.Status)
	}
	codes := map[int]int{}
	for range 3 * proto.MaxFetchesPerSession {
		codes[<-done]++
	}
	if codes[200] < proto.MaxFetchesPerSession || codes[503] == 0 || codes[200]+codes[503] != 3*proto.MaxFetchesPerSession {
		t.Fatalf("flood answers %v: want the cap served and the rest 503", codes)
	}
	if resp, _ := c.do("GET", "/api/legacy/info", nil); resp.StatusCode != 200 {
		t.Fatalf("after the flood: %s", resp.Status)
	}
	// After the session ends, its cookie opens nothing.
	api := &sigclient.API{Base: s.SignalingURL, Token: s.TechToken}
	if err := api.EndSession(context.Background(), c.info.Session); err != nil {
		t.Fatal(err)
	}
	if resp, body := c.do("GET", "/api/legacy/info", nil); resp.StatusCode != 404 || strings.Contains(string(body), `"serial"`) {
		t.Fatalf("after the end: %s %q", resp.Status, body)
	}
}

func jobLogNow(t *testing.T, s *stack.Stack, session string) []proto.LoggedAccess {
	t.Helper()
	time.Sleep(1500 * time.Millisecond) // one shipping interval of the agent's access log
	var log proto.JobLog
	techGet(t, s, strings.Replace(proto.PathJobLog, "{id}", session, 1), &log)
	return log.Entries
}

// startTransmission runs Debian's transmission-daemon with its web UI on
// addr (host:port), its state in a temporary directory.
func startTransmission(t *testing.T, addr string, allowed string) {
	t.Helper()
	bin := testenv.NeedBinary(t, "transmission-daemon")
	host, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "downloads"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := proc.Start("transmission-daemon", bin, []string{"-f", "-g", filepath.Join(dir, "config"), "-w", filepath.Join(dir, "downloads"),
		"-p", port, "--rpc-bind-address", host, "-T", "-a", allowed, "-P", strconv.Itoa(testenv.FreePort(t)),
		"-O", "-Y", "-M", "--no-utp", "--log-error"}, proc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	testenv.Eventually(t, 15*time.Second, "transmission's RPC to listen", func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// TestFallbackTransmissionRPC: Debian's transmission-daemon (3.00), whose
// web UI starts with synchronous jQuery requests to /transmission/rpc,
// answered through the fallback including its CSRF dance (409 with
// X-Transmission-Session-Id, then the same request with the header).
func TestFallbackTransmissionRPC(t *testing.T) {
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	startTransmission(t, addr, "127.0.0.1")
	s := stack.Start(t, stack.Options{ExtraDevices: []map[string]any{{
		"id": "nas-1", "name": "Transmission", "scheme": "http", "address": "127.0.0.1", "httpPort": port,
	}}})
	c := newFallbackClient(t, s, "nas-1")
	resp, body := c.do("GET", "/transmission/web/", nil, "Sec-Fetch-Site", "none", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document")
	if resp.StatusCode != 200 || !regexp.MustCompile(`javascript/transmission\.js`).Match(body) {
		t.Fatalf("web UI: %s %.200q", resp.Status, body)
	}
	rpc := []byte(`{"method":"session-get"}`)
	resp, _ = c.do("POST", "/transmission/rpc", rpc, "Content-Type", "json", "X-Requested-With", "XMLHttpRequest")
	id := resp.Header.Get("X-Transmission-Session-Id")
	if resp.StatusCode != http.StatusConflict || id == "" {
		t.Fatalf("first RPC: %s, session id %q", resp.Status, id)
	}
	resp, body = c.do("POST", "/transmission/rpc", rpc, "Content-Type", "json", "X-Transmission-Session-Id", id)
	var r struct {
		Result    string         `json:"result"`
		Arguments map[string]any `json:"arguments"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &r) != nil || r.Result != "success" || r.Arguments["version"] == nil {
		t.Fatalf("RPC with the session id: %s %.200q", resp.Status, body)
	}
	entries := jobLog(t, s, c.info.Session, 3)
	for _, e := range entries[:3] {
		if e.Via != proto.ViaSignaling {
			t.Errorf("entry %+v not marked signaling", e.AccessEntry)
		}
	}
	if entries[1].Status != 409 || entries[2].Status != 200 || entries[2].URL != "/transmission/rpc" {
		t.Errorf("log %+v", entries[:3])
	}
}
