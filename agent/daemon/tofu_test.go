package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/proto"
)

// selfSigned makes a self-signed certificate for 127.0.0.1, as an embedded
// web server makes at its first boot, and returns it with its SHA-256.
func selfSigned(t *testing.T) (*tls.Certificate, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "printer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, hex.EncodeToString(sum[:])
}

// tlsDevice is an https device with a self-signed certificate that a
// restart replaces; it counts the HTTP requests it serves.
type tlsDevice struct {
	srv      *httptest.Server
	cert     atomic.Pointer[tls.Certificate]
	requests atomic.Int64
}

func startTLSDevice(t *testing.T, cert *tls.Certificate) *tlsDevice {
	t.Helper()
	d := &tlsDevice{}
	d.cert.Store(cert)
	d.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.requests.Add(1)
		_, _ = io.WriteString(w, "printer status page")
	}))
	d.srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{Certificates: []tls.Certificate{*d.cert.Load()}}, nil
	}}
	d.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	d.srv.StartTLS()
	t.Cleanup(d.srv.Close)
	return d
}

// restart gives the device a new certificate and drops its connections.
func (d *tlsDevice) restart(cert *tls.Certificate) {
	d.cert.Store(cert)
	d.srv.CloseClientConnections()
}

func (d *tlsDevice) port() int { return d.srv.Listener.Addr().(*net.TCPAddr).Port }

// get requests / through the session's own proxy, as the tunnel does.
func (h *harness) get(session string) (int, string) {
	h.t.Helper()
	s := h.agent.session(session)
	if s == nil {
		h.t.Fatalf("no session %s", session)
	}
	hd, err := s.proxy.Handler(0)
	if err != nil {
		h.t.Fatal(err)
	}
	w := httptest.NewRecorder()
	hd.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func TestSelfSignedDeviceIsPinnedOnFirstUse(t *testing.T) {
	cert1, fp1 := selfSigned(t)
	cert2, fp2 := selfSigned(t)
	dev := startTLSDevice(t, cert1)
	pinDir := filepath.Join(t.TempDir(), "tls-pins")
	h := startAgent(t, []DeviceConfig{{ID: "tls-1", Address: "127.0.0.1", Scheme: "https", HTTPPort: dev.port()}}, nil,
		func(c *Config) { c.Pins = &deviceid.PinStore{Dir: pinDir} })

	// The identity check of the hello was the first use: pinned.
	b, err := os.ReadFile(filepath.Join(pinDir, "tls-1.sha256"))
	if err != nil || strings.TrimSpace(string(b)) != fp1 {
		t.Fatalf("pin file %q, %v; want %s", b, err, fp1)
	}

	open := func(session string) *proto.Envelope {
		return h.open(session, "tls-1", h.grant(validGrant(session, "tls-1", time.Minute)))
	}
	// The first session works through the pin, and so does the next one
	// with the same certificate.
	for _, id := range []string{"sesstofu000001", "sesstofu000002"} {
		if env := open(id); env.Type != proto.TypeSessionReady {
			t.Fatalf("%s: %s", id, env.Type)
		}
		if code, body := h.get(id); code != http.StatusOK || body != "printer status page" {
			t.Fatalf("%s: HTTP %d %s", id, code, body)
		}
	}

	// The device restarts with a new self-signed certificate (or another
	// machine took its address).
	dev.restart(cert2)
	served := dev.requests.Load()
	wantRefusal(t, open("sesstofu000003"), proto.CodeDeviceFailed,
		"SHA-256 "+fp2+", pinned "+fp1)
	wantRefusal(t, open("sesstofu000004"), proto.CodeDeviceFailed,
		"accept the new one on the agent with: porthole-agent trust --sha256 "+fp2+" tls-1")
	// A session opened before the change reaches nothing either: every
	// new connection must present the pinned certificate.
	h.agent.session("sesstofu000001").pinned.CloseIdleConnections()
	if code, body := h.get("sesstofu000001"); code != http.StatusBadGateway {
		t.Fatalf("session opened before the change: HTTP %d %s", code, body)
	}
	if n := dev.requests.Load(); n != served {
		t.Fatalf("%d requests reached the device with the changed certificate", n-served)
	}
	// The health in the hello reports it.
	inv := h.agent.inventory(context.Background())
	if len(inv) != 1 || inv[0].Health == nil || !inv[0].Health.Reachable ||
		!strings.Contains(inv[0].Health.Problem, "another TLS certificate than the one pinned") ||
		!strings.Contains(inv[0].Health.Problem, fp2) {
		t.Fatalf("health %+v", inv[0].Health)
	}
	if b, _ := os.ReadFile(filepath.Join(pinDir, "tls-1.sha256")); strings.TrimSpace(string(b)) != fp1 {
		t.Fatalf("the refused certificate replaced the pin: %s", b)
	}

	// The admin accepts the new certificate (porthole-agent trust, another
	// process on the same state directory); the running agent follows.
	if err := (&deviceid.PinStore{Dir: pinDir}).Set("tls-1", fp2); err != nil {
		t.Fatal(err)
	}
	if env := open("sesstofu000005"); env.Type != proto.TypeSessionReady {
		t.Fatalf("after accepting: %s", env.Type)
	}
	if code, body := h.get("sesstofu000005"); code != http.StatusOK || body != "printer status page" {
		t.Fatalf("after accepting: HTTP %d %s", code, body)
	}
}

func TestInsecureSkipVerifyDeviceIsNotPinned(t *testing.T) {
	cert1, _ := selfSigned(t)
	cert2, _ := selfSigned(t)
	dev := startTLSDevice(t, cert1)
	pinDir := filepath.Join(t.TempDir(), "tls-pins")
	h := startAgent(t, []DeviceConfig{{ID: "tls-1", Address: "127.0.0.1", Scheme: "https", HTTPPort: dev.port(), InsecureSkipVerify: true}}, nil,
		func(c *Config) { c.Pins = &deviceid.PinStore{Dir: pinDir} })
	dev.restart(cert2)
	if env := h.open("sessinsecure01", "tls-1", h.grant(validGrant("sessinsecure01", "tls-1", time.Minute))); env.Type != proto.TypeSessionReady {
		t.Fatalf("answer %s", env.Type)
	}
	if _, err := os.Stat(pinDir); !os.IsNotExist(err) {
		t.Fatalf("pin directory: %v", err)
	}
}
