package technician

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/porthole-dev/porthole/agent/tunnel"
)

func TestLocalOnly(t *testing.T) {
	var origin string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin = tunnelOrigin(r)
		w.WriteHeader(http.StatusTeapot)
	})
	h := LocalOnly(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8090}, next, nil)
	cases := []struct {
		name, method, host string
		hdr                map[string]string
		want               int
		why                string
	}{
		{"typed address", "GET", "127.0.0.1:8090", map[string]string{"Sec-Fetch-Site": "none"}, 418, ""},
		{"localhost", "GET", "localhost:8090", nil, 418, ""},
		{"IPv6 loopback", "GET", "[::1]:8090", nil, 418, ""},
		{"same-origin form post", "POST", "127.0.0.1:8090", map[string]string{"Origin": "http://127.0.0.1:8090", "Sec-Fetch-Site": "same-origin"}, 418, ""},
		{"a tool without Origin", "POST", "127.0.0.1:8090", nil, 418, ""},
		{"DNS rebinding", "GET", "rebind.evil.example:8090", map[string]string{"Sec-Fetch-Site": "same-origin"}, 403, "DNS rebinding"},
		{"rebinding via a localhost subdomain", "GET", "evil.localhost:8090", nil, 403, "a name"},
		{"another port", "GET", "127.0.0.1:9999", nil, 403, "not this listener's address"},
		{"no port", "GET", "127.0.0.1", nil, 403, "not this listener's address"},
		{"cross-site POST", "POST", "127.0.0.1:8090", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403, "another site"},
		{"cross-site POST, old browser", "POST", "127.0.0.1:8090", map[string]string{"Origin": "https://evil.example"}, 403, "another origin"},
		{"same-site page on another port", "POST", "127.0.0.1:8090", map[string]string{"Origin": "http://127.0.0.1:3000", "Sec-Fetch-Site": "same-site"}, 403, "another site"},
		{"cross-site navigation", "GET", "127.0.0.1:8090", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "another site"},
		{"null origin", "POST", "127.0.0.1:8090", map[string]string{"Origin": "null"}, 403, "another origin"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			origin = ""
			req := httptest.NewRequest(tc.method, "/settings", nil)
			req.Host = tc.host
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.why) {
				t.Fatalf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tc.want, tc.why)
			}
			if tc.want == 418 && origin != "http://"+tc.host {
				t.Errorf("client origin %q, want http://%s", origin, tc.host)
			}
		})
	}
}

// tunnelOrigin reads what LocalOnly tagged the request with, as the tunnel
// client does.
func tunnelOrigin(r *http.Request) string { return tunnel.ClientOriginOf(r.Context()) }
