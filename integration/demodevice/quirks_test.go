package demodevice

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestQuirkProfiles(t *testing.T) {
	d := New(Config{})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	_, port, _ := net.SplitHostPort(host)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) *http.Response {
		t.Helper()
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	body := func(resp *http.Response) string {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	for _, p := range []string{"/cgi-bin/status.cgi", "/cgi-bin/counters.cgi", "/cgi-bin/logo.cgi"} {
		resp := get(p)
		if resp.Header.Get("Content-Type") != "" {
			t.Errorf("%s typed %q; a CGI sends none", p, resp.Header.Get("Content-Type"))
		}
		body(resp)
	}
	if b := body(get("/quirks/absolute")); !strings.Contains(b, `href="http://`+host+`/supplies"`) ||
		!strings.Contains(b, `src="http://npi4000-demo.local:`+port+`/logo.png"`) || !strings.Contains(b, `src="//`+host+`/quirks/absolute.js"`) {
		t.Errorf("absolute page: %s", b)
	}
	if b := body(get("/quirks/refresh")); !strings.Contains(b, `content="0; URL=http://`+host+`/quirks/absolute"`) {
		t.Errorf("refresh page: %s", b)
	}
	if b := body(get("/quirks/links.json")); !strings.Contains(b, `"http:\/\/`+host+`\/supplies"`) {
		t.Errorf("links.json: %s", b)
	}
	if resp := get("/quirks/download"); !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("download: %v", resp.Header)
	} else {
		body(resp)
	}
	// Digest: challenge, then refused without the right answer.
	resp := get("/quirks/digest/")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("Www-Authenticate"), `qop="auth"`) {
		t.Errorf("digest challenge: %d %v", resp.StatusCode, resp.Header)
	}
	body(resp)
	// The POST that meets a login.
	resp, _ = client.Post(srv.URL+"/quirks/post-login", "application/x-www-form-urlencoded", strings.NewReader("dept=Sales"))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("post without login: %d", resp.StatusCode)
	}
	body(resp)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/quirks/post-login", strings.NewReader("dept=Sales"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("service", "service")
	resp, _ = client.Do(req)
	if b := body(resp); !strings.Contains(b, "saved: Sales") {
		t.Errorf("post with login: %s", b)
	}
	// SSE events are spaced.
	resp = get("/quirks/events")
	sc := bufio.NewScanner(resp.Body)
	var times []time.Time
	for sc.Scan() && len(times) < 3 {
		if strings.HasPrefix(sc.Text(), "data:") {
			times = append(times, time.Now())
		}
	}
	resp.Body.Close()
	if len(times) != 3 || times[2].Sub(times[0]) < 400*time.Millisecond {
		t.Errorf("events %v", times)
	}
	// The status WebSocket: own origin only.
	wsURL := "ws://" + host + "/ws/status"
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Origin": {"https://evil.example"}}); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign origin: %v", err)
	}
	c, _, err := (&websocket.Dialer{Subprotocols: []string{"status.v2"}}).Dial(wsURL, http.Header{"Origin": {"http://" + host}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Subprotocol() != "status.v2" {
		t.Errorf("protocol %q", c.Subprotocol())
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte("hi"))
	for i := 0; i < 5; i++ {
		_, m, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if string(m) == "echo:hi" {
			return
		}
	}
	t.Error("no echo")
}

func TestRedirectToHTTPS(t *testing.T) {
	rec := httptest.NewRecorder()
	RedirectToHTTPS(8443).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://192.168.1.20/admin?x=1", nil))
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "https://192.168.1.20:8443/admin?x=1" {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Location"))
	}
	rec = httptest.NewRecorder()
	RedirectToHTTPS(443).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://printer.lan:80/", nil))
	if rec.Header().Get("Location") != "https://printer.lan/" {
		t.Fatalf("%q", rec.Header().Get("Location"))
	}
}
