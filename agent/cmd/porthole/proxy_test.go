package main

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/porthole-dev/porthole/internal/connectproxy"
)

// TestCommandsUseTheProxy: with only HTTPS_PROXY set (the usual corporate
// setting) and --server given after the command's name, the API request
// goes through the proxy's CONNECT with its credentials; with the wrong
// password the error names the proxy and its 407, and no credential.
func TestCommandsUseTheProxy(t *testing.T) {
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("[]"))
	}))
	defer origin.Close()
	const user, pass = "tech", "Pr0xy-Secret-Word"
	p := connectproxy.Start(t, connectproxy.Options{
		Hosts: map[string]string{"porthole.test:443": origin.Listener.Addr().String()},
		User:  user, Password: pass,
	})
	t.Setenv("PORTHOLE_SERVER", "")
	t.Setenv("HTTP_PROXY", "")
	t.Setenv("http_proxy", "")
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	t.Setenv("https_proxy", "")

	t.Setenv("HTTPS_PROXY", "http://"+user+":"+pass+"@"+p.Addr)
	code, _, errOut := runArgs("devices", "--server", "https://porthole.test", "--token", "x")
	if p.Tunnels.Load() != 1 {
		t.Fatalf("the request did not go through the proxy (tunnels %d, refused %d); exit %d: %s", p.Tunnels.Load(), p.Refused.Load(), code, errOut)
	}
	// The test origin's certificate is not trusted: the TLS handshake ran
	// inside the tunnel.
	if code != exitUnavailable || !strings.Contains(errOut, "certificate") {
		t.Errorf("exit %d, stderr %q; want 5 and a certificate error from inside the tunnel", code, errOut)
	}

	wrong := "not-" + pass
	t.Setenv("HTTPS_PROXY", "http://"+user+":"+wrong+"@"+p.Addr)
	code, out, errOut := runArgs("devices", "--server", "https://porthole.test", "--token", "x", "--verbose")
	if code != exitUnavailable || !strings.Contains(errOut, "proxy "+p.Addr) || !strings.Contains(errOut, "407 Proxy Authentication Required") ||
		!strings.Contains(errOut, "refused the credentials") {
		t.Errorf("wrong password: exit %d, stderr %q; want 5 naming the proxy and its 407", code, errOut)
	}
	for _, s := range []string{wrong, pass, base64.StdEncoding.EncodeToString([]byte(user + ":" + wrong))} {
		if strings.Contains(out+errOut, s) {
			t.Fatalf("a proxy credential is in the output:\n%s%s", out, errOut)
		}
	}
	t.Logf("wrong password: %s", strings.TrimSpace(errOut))
}
