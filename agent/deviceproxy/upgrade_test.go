package deviceproxy_test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/porthole-dev/porthole/agent/deviceproxy"
	"github.com/porthole-dev/porthole/internal/tlstest"
	"github.com/porthole-dev/porthole/proto"
)

// originRecorder is a ResponseRecorder that takes the legacy TLS report,
// as the tunnel's ResponseWriter does.
type originRecorder struct {
	*httptest.ResponseRecorder
	legacy *proto.LegacyTLS
}

func (o *originRecorder) ClientOrigin() string               { return "https://s1.sessions.example" }
func (o *originRecorder) ReportLegacyTLS(l *proto.LegacyTLS) { o.legacy = l }

// httpsEWS is an EWS whose http port sends the browser to its https port
// (a TLS 1.0-only one, as old printers have), in the way named by mode.
type httpsEWS struct {
	plain, secure *httptest.Server
	secureHits    atomic.Int64
	cert          *tlstest.Cert
}

func newHTTPSEWS(t *testing.T, mode string) *httpsEWS {
	t.Helper()
	e := &httpsEWS{cert: tlstest.NewCert(t, tlstest.CertOptions{Bits: 1024})}
	e.secure = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.secureHits.Add(1)
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<h1>secure admin</h1><a href="https://`+r.Host+`/status">status</a>`)
	}))
	e.secure.TLS = &tls.Config{Certificates: []tls.Certificate{e.cert.TLS}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10,
		CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}}
	e.secure.Config.ErrorLog = log.New(io.Discard, "", 0) // the ladder's refused handshakes
	e.secure.StartTLS()
	t.Cleanup(e.secure.Close)
	securePort := portOf(t, e.secure.Listener.Addr().String())
	httpsURL := "https://127.0.0.1:" + itoa(securePort) + "/"
	e.plain = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode {
		case "redirect":
			http.Redirect(w, r, httpsURL+strings.TrimPrefix(r.URL.Path, "/"), http.StatusMovedPermanently)
		case "426":
			w.Header().Set("Upgrade", "TLS/1.0, HTTP/1.1")
			w.Header().Set("Connection", "Upgrade")
			w.WriteHeader(http.StatusUpgradeRequired)
		case "meta":
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, `<html><head><meta http-equiv="refresh" content="0; url=`+httpsURL+`"></head></html>`)
		case "refresh-header":
			w.Header().Set("Refresh", "0; url="+httpsURL)
		}
	}))
	t.Cleanup(e.plain.Close)
	return e
}

func (e *httpsEWS) proxy(t *testing.T) *deviceproxy.Proxy {
	securePort := portOf(t, e.secure.Listener.Addr().String())
	return newProxy(t, deviceproxy.Device{ID: "ews", Host: "127.0.0.1", HTTPPort: portOf(t, e.plain.Listener.Addr().String()),
		Ports: []int{securePort}, HTTPSPort: securePort,
		VerifyPort: func(port int) func(tls.ConnectionState) error {
			return func(cs tls.ConnectionState) error {
				sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
				if hex.EncodeToString(sum[:]) != e.cert.SHA256 {
					return errors.New("pin")
				}
				return nil
			}
		}})
}

func TestDeviceThatInsistsOnHTTPSIsFollowed(t *testing.T) {
	for _, mode := range []string{"redirect", "426", "meta", "refresh-header"} {
		t.Run(mode, func(t *testing.T) {
			e := newHTTPSEWS(t, mode)
			h, err := e.proxy(t).Session().Handler(0)
			if err != nil {
				t.Fatal(err)
			}
			rec := &originRecorder{ResponseRecorder: httptest.NewRecorder()}
			h.ServeHTTP(rec, originFormRequest(deviceproxy.WithClientOrigin(t.Context(), "https://s1.sessions.example"), http.MethodGet, "/admin", nil))
			body := rec.Body.String()
			switch mode {
			case "redirect":
				if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/admin" {
					t.Fatalf("HTTP %d Location %q", rec.Code, rec.Header().Get("Location"))
				}
			case "426":
				if rec.Code != http.StatusTemporaryRedirect || rec.Header().Get("Location") != "/admin" {
					t.Fatalf("HTTP %d Location %q", rec.Code, rec.Header().Get("Location"))
				}
			case "meta":
				if !strings.Contains(body, "url=https://s1.sessions.example/") {
					t.Fatalf("meta refresh not rewritten: %s", body)
				}
			case "refresh-header":
				if got := rec.Header().Get("Refresh"); got != "0; url=/" {
					t.Fatalf("Refresh %q", got)
				}
			}
			// The browser follows to the session's own origin: the device's
			// https port answers, over its TLS 1.0.
			rec = &originRecorder{ResponseRecorder: httptest.NewRecorder()}
			h.ServeHTTP(rec, originFormRequest(deviceproxy.WithClientOrigin(t.Context(), "https://s1.sessions.example"), http.MethodGet, "/admin", nil))
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "secure admin") {
				t.Fatalf("after the switch: HTTP %d %s", rec.Code, rec.Body.String())
			}
			if e.secureHits.Load() != 1 {
				t.Fatalf("https port served %d requests", e.secureHits.Load())
			}
			if rec.legacy == nil || rec.legacy.Version != "TLS 1.0" {
				t.Errorf("legacy TLS not reported: %+v", rec.legacy)
			}
			// Its own https links stay in the session too.
			if !strings.Contains(rec.Body.String(), `href="https://s1.sessions.example/status"`) {
				t.Errorf("https page's own link not rewritten: %s", rec.Body.String())
			}
		})
	}
}

// TestHTTPSIsNotFollowedToAnUndeclaredPort: a redirect to a port the
// configuration does not declare is left to the browser side (a notice).
func TestHTTPSIsNotFollowedToAnUndeclaredPort(t *testing.T) {
	e := newHTTPSEWS(t, "redirect")
	p := newProxy(t, deviceproxy.Device{ID: "ews", Host: "127.0.0.1", HTTPPort: portOf(t, e.plain.Listener.Addr().String())})
	h, _ := p.Session().Handler(0)
	for range 2 {
		rec := &originRecorder{ResponseRecorder: httptest.NewRecorder()}
		h.ServeHTTP(rec, originFormRequest(deviceproxy.WithClientOrigin(t.Context(), "https://s1.sessions.example"), http.MethodGet, "/admin", nil))
		if loc := rec.Header().Get("Location"); !strings.HasPrefix(loc, "https://127.0.0.1:") {
			t.Fatalf("Location %q", loc)
		}
	}
	if e.secureHits.Load() != 0 {
		t.Fatal("an undeclared port was reached")
	}
}
