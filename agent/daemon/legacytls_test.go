//go:debug tlssha1=1

package daemon

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/agent/tlscompat"
	"github.com/porthole-dev/porthole/internal/tlstest"
	"github.com/porthole-dev/porthole/proto"
)

// legacyRecorder is a ResponseWriter that takes the legacy TLS report,
// as the tunnel's does.
type legacyRecorder struct {
	*httptest.ResponseRecorder
	legacy *proto.LegacyTLS
}

func (r *legacyRecorder) ReportLegacyTLS(l *proto.LegacyTLS) { r.legacy = l }

// TestLegacyTLSPrinter: a printer that speaks only TLS 1.0 with RSA key
// exchange and a 1024-bit, SHA-1-signed, expired, self-signed certificate
// (a real OpenSSL server) is checked, pinned, remembered, reported in its
// health and in the session's responses, and served.
func TestLegacyTLSPrinter(t *testing.T) {
	cert := tlstest.NewCert(t, tlstest.CertOptions{Bits: 1024, SHA1: true, Expired: true})
	addr, ok := tlstest.OpenSSLServer(t, cert, "-tls1", "-cipher", "AES128-SHA@SECLEVEL=0")
	if !ok {
		t.Fatal("openssl refused a TLS 1.0 server")
	}
	_, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)
	state := t.TempDir()
	pinDir, tlsDir := filepath.Join(state, "tls-pins"), filepath.Join(state, "tls-compat")
	h := startAgent(t, []DeviceConfig{{ID: "old-printer", Address: "127.0.0.1", Scheme: "https", HTTPPort: port}}, nil,
		func(c *Config) {
			c.Pins = &deviceid.PinStore{Dir: pinDir}
			c.TLS = &tlscompat.Store{Dir: tlsDir}
		})

	if b, err := os.ReadFile(filepath.Join(pinDir, "old-printer.sha256")); err != nil || strings.TrimSpace(string(b)) != cert.SHA256 {
		t.Fatalf("pin %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(tlsDir, "old-printer.tls")); err != nil || !strings.Contains(string(b), `"old-versions"`) {
		t.Fatalf("remembered %q, %v", b, err)
	}
	if l := (&tlscompat.Store{Dir: tlsDir}).Start("old-printer"); l != tlscompat.OldVersions {
		t.Fatalf("a restarted agent would start at %s", l)
	}
	inv := h.agent.inventory(t.Context())
	if len(inv) != 1 || inv[0].Health == nil || !inv[0].Health.Reachable || inv[0].Health.TLS == nil ||
		inv[0].Health.TLS.Version != "TLS 1.0" || !strings.Contains(inv[0].Health.TLS.Note, "only speaks TLS 1.0") {
		t.Fatalf("health %+v", inv[0].Health)
	}

	const id = "sesslegacytls1"
	if env := h.open(id, "old-printer", h.grant(validGrant(id, "old-printer", time.Minute))); env.Type != proto.TypeSessionReady {
		t.Fatalf("session: %s", env.Type)
	}
	hd, err := h.agent.session(id).proxy.Handler(0)
	if err != nil {
		t.Fatal(err)
	}
	w := &legacyRecorder{ResponseRecorder: httptest.NewRecorder()}
	hd.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	body, _ := io.ReadAll(w.Result().Body)
	if w.Code != http.StatusOK || !strings.Contains(string(body), "AES128-SHA") {
		t.Fatalf("HTTP %d: %.200s", w.Code, body)
	}
	if w.legacy == nil || w.legacy.Cipher != "TLS_RSA_WITH_AES_128_CBC_SHA" || w.legacy.Version != "TLS 1.0" {
		t.Fatalf("response's legacy TLS report %+v", w.legacy)
	}
}
