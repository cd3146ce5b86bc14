package realews

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestLighttpdHasTheQuirks checks the real server misbehaves as intended,
// so the tests that use it test something.
func TestLighttpdHasTheQuirks(t *testing.T) {
	l := StartLighttpd(t)
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := fmt.Sprintf("http://127.0.0.1:%d", l.HTTPPort)
	resp, err := c.Get(base + "/cgi-bin/status.cgi")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "" || !strings.Contains(string(b), `id="cgi"`) {
		t.Fatalf("CGI: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	resp, _ = c.Get(base + "/admin/")
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("Www-Authenticate"), "Digest") {
		t.Fatalf("admin: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = c.Get(base + "/secure/")
	resp.Body.Close()
	if want := fmt.Sprintf("https://127.0.0.1:%d/secure/", l.HTTPSPort); resp.StatusCode != 301 || resp.Header.Get("Location") != want {
		t.Fatalf("secure: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	addr := fmt.Sprintf("127.0.0.1:%d", l.HTTPSPort)
	if conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}); err == nil { //nolint:gosec // test
		conn.Close()
		t.Fatal("the https port speaks modern TLS")
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, //nolint:gosec // test
		CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}})
	if err != nil {
		t.Fatalf("TLS 1.0: %v", err)
	}
	if v := conn.ConnectionState().Version; v != tls.VersionTLS10 {
		t.Errorf("version %x", v)
	}
	conn.Close()
}
