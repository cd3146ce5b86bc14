package integration

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-dev/porthole/integration/realews"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// TestCLIRealEWSCompat drives Debian's lighttpd, configured as an old EWS,
// through the whole stack with `porthole http`: an untyped CGI is typed,
// the page's own absolute URLs stay on the listener, the Digest admin area
// works with the technician's credentials, the http port's redirect to its
// TLS 1.0-only https port is followed inside the session, and the device
// list says the https port needs TLS 1.0.
func TestCLIRealEWSCompat(t *testing.T) {
	l := realews.StartLighttpd(t)
	s := stack.Start(t, stack.Options{ExtraDevices: []map[string]any{
		{"id": "ews-http", "name": "Old EWS", "scheme": "http", "address": "127.0.0.1", "httpPort": l.HTTPPort,
			"ports": []int{l.HTTPPort, l.HTTPSPort}, "httpsPort": l.HTTPSPort},
		{"id": "ews-tls10", "name": "Old EWS (https)", "scheme": "https", "address": "127.0.0.1", "httpPort": l.HTTPSPort},
	}})
	s.WaitOnline(t, "ews-http")

	// The device list reports the TLS 1.0 port.
	req, _ := http.NewRequest(http.MethodGet, s.SignalingURL+proto.PathDevices, nil)
	req.Header.Set("Authorization", "Bearer "+s.TechToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Devices []proto.Device `json:"devices"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	found := false
	for _, d := range list.Devices {
		if strings.HasSuffix(d.ID, "ews-tls10") {
			found = true
			if d.Health == nil || d.Health.TLS == nil || d.Health.TLS.Version != "TLS 1.0" {
				t.Errorf("health of %s: %+v", d.ID, d.Health)
			}
		}
	}
	if !found {
		t.Fatalf("ews-tls10 not listed: %+v", list.Devices)
	}

	_, m := startCLI(t, s, `serving \S+ web page at (http://\S+/)`, "http", "ews-http", "--listen", "127.0.0.1:0")
	base := strings.TrimSuffix(m[1], "/")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, body := get(t, client, base+"/cgi-bin/status.cgi")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/html" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("CGI: %d %q %v", resp.StatusCode, ct, resp.Header)
	}
	if !strings.Contains(string(body), `id="cgi"`) {
		t.Errorf("CGI body %s", body)
	}
	_, body = get(t, client, base+"/")
	for _, want := range []string{`href="` + base + `/cgi-bin/status.cgi"`, `href="//` + strings.TrimPrefix(base, "http://") + `/admin/"`,
		`href="http://example.invalid/"`, `href="` + base + `/style.css"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("index lacks %s: %s", want, body)
		}
	}
	if _, css := get(t, client, base+"/style.css"); !strings.Contains(string(css), "url("+base+"/bg.png)") {
		t.Errorf("css %s", css)
	}

	// Digest with the technician's credentials (the browser's dialog sets
	// the same header).
	resp, _ = get(t, client, base+"/admin/")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin without credentials: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodGet, base+"/admin/", nil)
	req.Header.Set("X-Porthole-Credentials", base64.StdEncoding.EncodeToString([]byte(l.DigestUser+":"+l.DigestPass)))
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Admin area") {
		t.Fatalf("admin with Digest: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, client, base+"/admin/"); resp.StatusCode != 200 {
		t.Errorf("admin again (credentials kept for the session): %d", resp.StatusCode)
	}

	// http→https inside the session: the redirect becomes a path, and the
	// next request is served by the TLS 1.0 port.
	resp, _ = get(t, client, base+"/secure/")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/secure/" {
		t.Fatalf("secure: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = get(t, client, base+"/secure/")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Secure area") {
		t.Fatalf("secure after the switch: %d %s", resp.StatusCode, body)
	}
	if want := fmt.Sprintf(`href="%s/secure/next.html"`, base); !strings.Contains(string(body), want) {
		t.Errorf("https page's own link: %s", body)
	}
}

// TestCLIWebSocketThroughStack opens the demo device's live status
// WebSocket through `porthole http`: the real agent binary dials the
// device with the device's own Origin (the device refuses any other), the
// subprotocol is negotiated, text and binary messages cross both ways,
// and a WebSocket from another site to the listener is refused.
func TestCLIWebSocketThroughStack(t *testing.T) {
	s := stack.Start(t, stack.Options{})
	_, m := startCLI(t, s, `serving \S+ web page at (http://\S+/)`, "http", stack.DeviceID, "--listen", "127.0.0.1:0")
	host := strings.TrimSuffix(strings.TrimPrefix(m[1], "http://"), "/")
	url := "ws://" + host + "/ws/status"

	if _, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site WebSocket to the listener: %v", err)
	}
	c, resp, err := (&websocket.Dialer{Subprotocols: []string{"status.v2"}}).Dial(url, http.Header{"Origin": {"http://" + host}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer c.Close()
	if c.Subprotocol() != "status.v2" {
		t.Errorf("subprotocol %q", c.Subprotocol())
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := c.ReadMessage()
	if err != nil || !strings.Contains(string(msg), `"pages"`) {
		t.Fatalf("status push: %q %v", msg, err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	gotText, gotBin := false, false
	for !(gotText && gotBin) {
		typ, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case typ == websocket.TextMessage && string(msg) == "echo:hello":
			gotText = true
		case typ == websocket.BinaryMessage && string(msg) == "\x01\x02\x03":
			gotBin = true
		}
	}
	_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
				t.Errorf("close: %v", err)
			}
			break
		}
	}
}

// TestCLIRealCockpit drives Debian's Cockpit, a real admin UI that lives on
// one WebSocket, through the whole stack with `porthole http`: its pages
// load, its socket (which refuses a foreign Origin) opens through the agent
// with the device's origin and subprotocol cockpit1, and a command spawned
// over it answers. The listener refuses the socket to another site.
func TestCLIRealCockpit(t *testing.T) {
	ck := realews.StartCockpit(t)
	s := stack.Start(t, stack.Options{ExtraDevices: []map[string]any{
		{"id": "cockpit", "name": "Cockpit", "scheme": "http", "address": "127.0.0.1", "httpPort": ck.Port},
	}})
	s.WaitOnline(t, "cockpit")
	_, m := startCLI(t, s, `serving \S+ web page at (http://\S+/)`, "http", "cockpit", "--listen", "127.0.0.1:0")
	host := strings.TrimSuffix(strings.TrimPrefix(m[1], "http://"), "/")

	resp, body := get(t, http.DefaultClient, "http://"+host+"/cockpit/@localhost/system/index.html")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "cockpit.js") {
		t.Fatalf("system page: %d %.300s", resp.StatusCode, body)
	}
	d := websocket.Dialer{Subprotocols: []string{"cockpit1"}, HandshakeTimeout: 10 * time.Second}
	if _, resp, err := d.Dial("ws://"+host+"/cockpit/socket", http.Header{"Origin": {"http://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site WebSocket to the listener: %v", err)
	}
	start := time.Now()
	ws, resp, err := d.Dial("ws://"+host+"/cockpit/socket", http.Header{"Origin": {"http://" + host}})
	if err != nil {
		t.Fatalf("cockpit socket through the stack: %v (%+v)", err, resp)
	}
	defer ws.Close()
	if ws.Subprotocol() != "cockpit1" {
		t.Errorf("subprotocol %q", ws.Subprotocol())
	}
	if out := realews.CockpitRun(t, ws, "echo porthole; head -c 100000 /dev/zero | tr '\\0' x"); !strings.HasPrefix(out, "porthole\n") || len(out) != len("porthole\n")+100000 {
		t.Fatalf("command over the socket: %d bytes, starts %.40q", len(out), out)
	}
	t.Logf("cockpit socket opened and a command's 100 kB came back in %s", time.Since(start).Round(time.Millisecond))
}

// TestCLIRealMonit drives Debian's monit, a real admin UI, through the
// whole stack with `porthole http`: its Basic login with the technician's
// credentials, a status page that carries an HttpOnly CSRF cookie (kept in
// the agent's jar, never given to the client) and the matching form token,
// and the form's POST, which monit accepts only with both, then redirects
// back to the page on the listener; the change shows on the page.
func TestCLIRealMonit(t *testing.T) {
	mo := realews.StartMonit(t)
	s := stack.Start(t, stack.Options{ExtraDevices: []map[string]any{
		{"id": "monit", "name": "monit", "scheme": "http", "address": "127.0.0.1", "httpPort": mo.Port},
	}})
	s.WaitOnline(t, "monit")
	_, m := startCLI(t, s, `serving \S+ web page at (http://\S+/)`, "http", "monit", "--listen", "127.0.0.1:0")
	base := strings.TrimSuffix(m[1], "/")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, _ := get(t, client, base+"/")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Www-Authenticate"), "Basic") {
		t.Fatalf("monit without credentials: %d %v", resp.StatusCode, resp.Header)
	}
	do := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/"+mo.Check, nil)
	req.Header.Set("X-Porthole-Credentials", base64.StdEncoding.EncodeToString([]byte(mo.User+":"+mo.Pass)))
	resp, page := do(req)
	if resp.StatusCode != 200 || !strings.Contains(page, "Monitored") {
		t.Fatalf("status page with credentials: %d %.300s", resp.StatusCode, page)
	}
	if c := resp.Header.Values("Set-Cookie"); len(c) != 0 {
		t.Errorf("the device's cookies reached the client: %q", c)
	}
	tok := realews.MonitToken(page)
	if tok == "" {
		t.Fatalf("no form token on %.400s", page)
	}
	post := func(tok string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/"+mo.Check, strings.NewReader("securitytoken="+tok+"&action=unmonitor"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		return do(req)
	}
	forged := "0" + tok[1:] // differs from tok in its first character
	if tok[0] == '0' {
		forged = "1" + tok[1:]
	}
	if resp, _ := post(forged); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a forged token: %d, want monit's 403", resp.StatusCode)
	}
	resp, _ = post(tok)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/"+mo.Check {
		t.Fatalf("the form's POST: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	testenv.Eventually(t, 10*time.Second, "monit showing the check unmonitored", func() bool {
		req, _ := http.NewRequest(http.MethodGet, base+"/"+mo.Check, nil)
		_, page := do(req)
		return strings.Contains(page, "Not monitored")
	})
}

// TestCLIDemoLegacyTLS: the demo device's own legacy profiles through the
// stack (Options.LegacyTLS): its TLS 1.0-only port is listed as such, and
// its https-only twin's http port, which redirects everything to that
// port, is followed there inside the session.
func TestCLIDemoLegacyTLS(t *testing.T) {
	s := stack.Start(t, stack.Options{LegacyTLS: true})
	s.WaitOnline(t, stack.RedirectDeviceID)
	s.WaitOnline(t, stack.LegacyTLSDeviceID)
	req, _ := http.NewRequest(http.MethodGet, s.SignalingURL+proto.PathDevices, nil)
	req.Header.Set("Authorization", "Bearer "+s.TechToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Devices []proto.Device `json:"devices"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	for _, d := range list.Devices {
		if strings.HasSuffix(d.ID, stack.LegacyTLSDeviceID) && (d.Health == nil || d.Health.TLS == nil || d.Health.TLS.Version != "TLS 1.0") {
			t.Errorf("health of %s: %+v", d.ID, d.Health)
		}
	}
	_, m := startCLI(t, s, `serving \S+ web page at (http://\S+/)`, "http", stack.RedirectDeviceID, "--listen", "127.0.0.1:0")
	base := strings.TrimSuffix(m[1], "/")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, body := get(t, client, base+"/supplies")
	if resp.StatusCode == http.StatusMovedPermanently {
		if loc := resp.Header.Get("Location"); loc != "/supplies" {
			t.Fatalf("the redirect to https: Location %q, want the path", loc)
		}
		resp, body = get(t, client, base+"/supplies")
	}
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Supplies") {
		t.Fatalf("supplies over the https port: %d %.300s", resp.StatusCode, body)
	}
}
