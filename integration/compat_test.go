package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/porthole-dev/porthole/integration/realews"
	"github.com/porthole-dev/porthole/integration/stack"
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
