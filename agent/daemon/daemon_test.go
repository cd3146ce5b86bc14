package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/agent/enroll"
	"github.com/porthole-dev/porthole/proto"
)

// testPKI is a CA of the test's own, standing in for signaling's.
type testPKI struct {
	caCert   *x509.Certificate
	caKey    *ecdsa.PrivateKey
	grantKey ed25519.PrivateKey
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	_, gk, _ := ed25519.GenerateKey(rand.Reader)
	return &testPKI{caCert: cert, caKey: key, grantKey: gk}
}

func (p *testPKI) issue(t *testing.T, tmpl *x509.Certificate) (certPEM, keyPEM []byte, pair tls.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, key.Public(), p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, pair
}

// fakeSignaling accepts one agent over mutual TLS and hands its socket to
// the test, which plays signaling.
type fakeSignaling struct {
	url   string
	conns chan *websocket.Conn
}

func startFakeSignaling(t *testing.T, p *testPKI) *fakeSignaling {
	t.Helper()
	_, _, serverCert := p.issue(t, &x509.Certificate{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
	f := &fakeSignaling{conns: make(chan *websocket.Conn, 4)}
	up := websocket.Upgrader{Subprotocols: []string{proto.SocketProtocol}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusUnauthorized)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		f.conns <- ws
	}))
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f.url = "wss://" + srv.Listener.Addr().String()
	return f
}

// device is a loopback web device that counts the connections it gets.
type testDevice struct {
	port  int
	conns atomic.Int64
}

func startDevice(t *testing.T, addr, serial string) *testDevice {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	d := &testDevice{port: ln.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"serial":"%s","host":"%s"}`, serial, r.Host)
	}), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			d.conns.Add(1)
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return d
}

type harness struct {
	t      *testing.T
	pki    *testPKI
	sig    *fakeSignaling
	ws     *websocket.Conn
	device *testDevice
	agent  *Agent
	logs   []*proto.Envelope // log.entries seen while waiting for something else
}

const testAgentID = "agent-1"

// startAgent runs an enrolled agent against a fake signaling with one
// device (printer-1 on 127.0.0.1, checked by serial) and returns once the
// agent said hello.
func startAgent(t *testing.T, devices []DeviceConfig, checker *deviceid.Checker, mods ...func(*Config)) *harness {
	t.Helper()
	p := newTestPKI(t)
	sig := startFakeSignaling(t, p)
	certPEM, keyPEM, _ := p.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: testAgentID},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.caCert.Raw})
	st, err := enroll.New(t.TempDir(), enroll.Info{Agent: testAgentID, Site: "site-a", AgentURL: sig.url,
		GrantKey: base64.StdEncoding.EncodeToString(p.grantKey.Public().(ed25519.PublicKey))}, caPEM, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, pki: p, sig: sig}
	if devices == nil {
		h.device = startDevice(t, "127.0.0.1:0", "SER-1")
		devices = []DeviceConfig{{ID: "printer-1", Address: "127.0.0.1", HTTPPort: h.device.port,
			Expect: deviceid.Expect{Serial: "SER-1", HTTPProbe: &deviceid.HTTPProbe{Path: "/status", Pattern: `"serial":"([^"]+)"`}}}}
	}
	cfg := Config{Enrollment: st, Devices: devices, LoopbackOnly: true, Checker: checker, MinBackoff: time.Hour}
	for _, m := range mods {
		m(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case h.ws = <-sig.conns:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not connect")
	}
	t.Cleanup(func() { h.ws.Close() })
	env := h.next()
	if env.Type != proto.TypeHello {
		t.Fatalf("first message %s", env.Type)
	}
	h.send(proto.TypeWelcome, "", &proto.Welcome{ID: testAgentID})
	return h
}

func (h *harness) send(typ proto.MsgType, session string, payload any) {
	h.t.Helper()
	b, err := proto.Encode(typ, session, payload)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) next() *proto.Envelope {
	h.t.Helper()
	_ = h.ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, b, err := h.ws.ReadMessage()
	if err != nil {
		h.t.Fatal(err)
	}
	env, err := proto.Decode(b)
	if err != nil {
		h.t.Fatal(err)
	}
	return env
}

func (h *harness) grant(g proto.Grant) string {
	h.t.Helper()
	s, err := proto.SignGrant(&g, h.pki.grantKey)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func validGrant(session, device string, ttl time.Duration) proto.Grant {
	now := time.Now()
	return proto.Grant{Session: session, Agent: testAgentID, Device: device, User: "tech",
		IssuedAt: now.Unix(), Expires: now.Add(ttl).Unix()}
}

// open sends session.open and returns the agent's answer.
func (h *harness) open(session, device, grant string) *proto.Envelope {
	h.t.Helper()
	h.send(proto.TypeSessionOpen, session, &proto.SessionOpen{Device: device, User: "tech",
		Expires: time.Now().Add(30 * time.Minute), Grant: grant})
	return h.next()
}

func wantRefusal(t *testing.T, env *proto.Envelope, code proto.Code, text string) {
	t.Helper()
	if env.Type != proto.TypeError {
		t.Fatalf("answer %s, want an error %s", env.Type, code)
	}
	var e proto.Error
	if err := proto.DecodeData(env, &e); err != nil {
		t.Fatal(err)
	}
	if e.Code != code || !strings.Contains(e.Message, text) {
		t.Fatalf("refusal %s %q, want %s containing %q", e.Code, e.Message, code, text)
	}
}

func TestAgentReportsInventoryWithHealth(t *testing.T) {
	dev := startDevice(t, "127.0.0.1:0", "SER-1")
	probe := &deviceid.HTTPProbe{Path: "/status", Pattern: `"serial":"([^"]+)"`}
	h := startAgentWithHello(t, []DeviceConfig{
		{ID: "good", Address: "127.0.0.1", HTTPPort: dev.port, Expect: deviceid.Expect{Serial: "SER-1", HTTPProbe: probe}},
		{ID: "impostor", Address: "127.0.0.1", HTTPPort: dev.port, Expect: deviceid.Expect{Serial: "SER-2", HTTPProbe: probe}},
	})
	health := map[string]*proto.DeviceHealth{}
	for _, d := range h.Devices {
		health[d.ID] = d.Health
	}
	if g := health["good"]; g == nil || !g.Reachable || g.Problem != "" {
		t.Fatalf("good device: %+v", g)
	}
	if i := health["impostor"]; i == nil || !strings.Contains(i.Problem, "serial number") {
		t.Fatalf("impostor: %+v", i)
	}
}

// startAgentWithHello starts an agent with devices and returns its hello.
func startAgentWithHello(t *testing.T, devices []DeviceConfig) *proto.Hello {
	t.Helper()
	var hello proto.Hello
	startAgentCapture(t, devices, &hello)
	return &hello
}

func startAgentCapture(t *testing.T, devices []DeviceConfig, hello *proto.Hello) *harness {
	t.Helper()
	return startAgentCaptureWith(t, devices, nil, hello)
}

// startAgentCaptureWith is startAgentCapture with a device checker.
func startAgentCaptureWith(t *testing.T, devices []DeviceConfig, checker *deviceid.Checker, hello *proto.Hello) *harness {
	t.Helper()
	p := newTestPKI(t)
	sig := startFakeSignaling(t, p)
	certPEM, keyPEM, _ := p.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: testAgentID},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.caCert.Raw})
	st, err := enroll.New(t.TempDir(), enroll.Info{Agent: testAgentID, Site: "s", AgentURL: sig.url,
		GrantKey: base64.StdEncoding.EncodeToString(p.grantKey.Public().(ed25519.PublicKey))}, caPEM, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Enrollment: st, Devices: devices, LoopbackOnly: true, MinBackoff: time.Hour, Checker: checker})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	h := &harness{t: t, pki: p, agent: a}
	select {
	case h.ws = <-sig.conns:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not connect")
	}
	t.Cleanup(func() { h.ws.Close() })
	env := h.next()
	if err := proto.DecodeData(env, hello); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestGrantsAreVerifiedBeforeAnythingIsConnected(t *testing.T) {
	h := startAgent(t, nil, nil)
	base := h.device.conns.Load() // the inventory check at connect
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	forged, _ := proto.SignGrant(ptr(validGrant("sessforged0001", "printer-1", time.Minute)), otherKey)
	good := h.grant(validGrant("sessaltered001", "printer-1", time.Minute))
	parts := strings.Split(good, ".")
	other := h.grant(validGrant("sessaltered001", "printer-2", time.Minute))
	altered := parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2]
	past := validGrant("sessexpired001", "printer-1", time.Minute)
	past.IssuedAt, past.Expires = time.Now().Add(-2*time.Minute).Unix(), time.Now().Add(-time.Minute).Unix()

	for _, tc := range []struct {
		name, session, device, grant string
		code                         proto.Code
		text                         string
	}{
		{"no grant", "sessnogrant001", "printer-1", "", proto.CodeUnauthorized, "without a grant"},
		{"bad signature", "sessforged0001", "printer-1", forged, proto.CodeUnauthorized, "bad signature"},
		{"altered payload", "sessaltered001", "printer-1", altered, proto.CodeUnauthorized, "bad signature"},
		{"past expiry", "sessexpired001", "printer-1", h.grant(past), proto.CodeSessionEnded, "expired"},
		{"other session", "sessother00001", "printer-1", h.grant(validGrant("sessgranted001", "printer-1", time.Minute)), proto.CodeUnauthorized, "another session"},
		{"other device", "sessdevice0001", "printer-1", h.grant(validGrant("sessdevice0001", "printer-9", time.Minute)), proto.CodeUnauthorized, "another device"},
		{"undeclared device", "sessundecl0001", "printer-9", h.grant(validGrant("sessundecl0001", "printer-9", time.Minute)), proto.CodeDeviceNotFound, "no device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantRefusal(t, h.open(tc.session, tc.device, tc.grant), tc.code, tc.text)
		})
	}
	if n := h.device.conns.Load(); n != base {
		t.Fatalf("refused sessions made %d connections to the device", n-base)
	}
	// A good grant opens the session — once.
	g := h.grant(validGrant("sessgood000001", "printer-1", time.Minute))
	if env := h.open("sessgood000001", "printer-1", g); env.Type != proto.TypeSessionReady {
		t.Fatalf("good grant: %s", env.Type)
	}
	h.send(proto.TypeSessionEnd, "sessgood000001", &proto.SessionEnd{Reason: proto.EndByClient})
	wantRefusal(t, h.open("sessgood000001", "printer-1", g), proto.CodeUnauthorized, "replay")
}

func ptr[T any](v T) *T { return &v }

func TestGrantExpiryEndsTheSession(t *testing.T) {
	h := startAgent(t, nil, nil)
	g := validGrant("sessshort00001", "printer-1", 2*time.Second)
	// The envelope claims 30 minutes; the signed grant says 2 s.
	env := h.open("sessshort00001", "printer-1", h.grant(g))
	if env.Type != proto.TypeSessionReady {
		t.Fatalf("answer %s", env.Type)
	}
	var ready proto.SessionReady
	if err := proto.DecodeData(env, &ready); err != nil {
		t.Fatal(err)
	}
	if !ready.Expires.Equal(g.ExpiresAt()) {
		t.Fatalf("ready expires %v, grant %v", ready.Expires, g.ExpiresAt())
	}
	end := h.next()
	var e proto.SessionEnd
	if end.Type != proto.TypeSessionEnd || proto.DecodeData(end, &e) != nil || e.Reason != proto.EndExpired {
		t.Fatalf("got %s %+v, want session.end expired", end.Type, e)
	}
	if time.Now().Before(g.ExpiresAt()) {
		t.Fatal("session ended before its grant expired")
	}
}

func TestIdentityMismatchRefusesTheSession(t *testing.T) {
	h := startAgent(t, nil, nil)
	// The same address now answers with another serial: DHCP gave it away.
	impostor := startDevice(t, "127.0.0.1:0", "SOMEONE-ELSE")
	h.agent.devices["printer-1"].cfg.HTTPPort = impostor.port
	env := h.open("sessimpost0001", "printer-1", h.grant(validGrant("sessimpost0001", "printer-1", time.Minute)))
	wantRefusal(t, env, proto.CodeDeviceFailed, `serial number is "SOMEONE-ELSE", expected "SER-1"`)
}

// rebinding is a lookup seam whose answer changes after the first query,
// as a DNS rebinding attacker's name does.
type rebinding struct {
	first, then netip.Addr
	calls       atomic.Int64
}

func (r *rebinding) lookup(context.Context, string) ([]netip.Addr, error) {
	if r.calls.Add(1) == 1 {
		return []netip.Addr{r.first}, nil
	}
	return []netip.Addr{r.then}, nil
}

func TestNoPivotIntoTheLAN(t *testing.T) {
	dev := startDevice(t, "127.0.0.1:0", "SER-1")
	// A canary on another loopback address, same port: anything reaching
	// it went somewhere the agent must never go.
	canary := startDevice(t, "127.0.0.2:"+strconv.Itoa(dev.port), "CANARY")
	otherPort := startDevice(t, "127.0.0.1:0", "OTHER-PORT")
	r := &rebinding{first: netip.MustParseAddr("127.0.0.1"), then: netip.MustParseAddr("127.0.0.2")}
	checker := &deviceid.Checker{Lookup: r.lookup}
	probe := &deviceid.HTTPProbe{Path: "/status", Pattern: `"serial":"([^"]+)"`}
	a, err := New(Config{Key: "k", Server: "http://127.0.0.1:1", Checker: checker, Devices: []DeviceConfig{{
		ID: "printer-1", Address: "printer.test", HTTPPort: dev.port,
		Expect: deviceid.Expect{Serial: "SER-1", HTTPProbe: probe},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	d := a.devices["printer-1"]
	checked, err := a.checkDevice(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if checked.Addr != r.first || r.calls.Load() != 1 {
		t.Fatalf("checked %v after %d lookups", checked.Addr, r.calls.Load())
	}
	pinned, err := a.sessionProxy(d, checked.Addr, checked.TLSPin, "s1")
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.CloseIdleConnections()
	sp := pinned.Session()

	get := func(target, host string) (int, string) {
		t.Helper()
		h, err := sp.Handler(0)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		b, _ := io.ReadAll(w.Result().Body)
		return w.Code, string(b)
	}
	// Whatever the request names — another LAN address, loopback in
	// decimal or IPv4-mapped IPv6 form, the rebinding name itself — it
	// goes to the pinned, verified address with the device's own Host.
	for _, tc := range []struct{ target, host string }{
		{"/status", "printer.test"},
		{"/status", "127.0.0.2:" + strconv.Itoa(dev.port)},
		{"http://2130706434/status", "2130706434"},
		{"http://[::ffff:127.0.0.2]/status", "[::ffff:127.0.0.2]"},
		{"http://127.0.0.2:" + strconv.Itoa(otherPort.port) + "/status", "127.0.0.2"},
		{"/status", "0x7f000002"},
	} {
		code, body := get(tc.target, tc.host)
		t.Logf("%s Host %s: %d %s", tc.target, tc.host, code, body)
		if code != http.StatusOK && code != http.StatusBadRequest {
			t.Fatalf("%s (Host %s): HTTP %d", tc.target, tc.host, code)
		}
		if code == http.StatusOK && !strings.Contains(body, `"serial":"SER-1"`) {
			t.Fatalf("%s (Host %s) reached %s", tc.target, tc.host, body)
		}
		if code == http.StatusOK && !strings.Contains(body, `"host":"printer.test:`) {
			t.Fatalf("%s: device saw Host %s", tc.target, body)
		}
	}
	// An undeclared port is refused before any connection.
	if _, err := sp.Handler(otherPort.port); proto.CodeOf(err) != proto.CodePortNotAllowed {
		t.Fatalf("undeclared port: %v", err)
	}
	if _, err := sp.DialTCP(context.Background(), otherPort.port); proto.CodeOf(err) != proto.CodePortNotAllowed {
		t.Fatalf("undeclared TCP port: %v", err)
	}
	if r.calls.Load() != 1 {
		t.Fatalf("the name was looked up %d times in one session", r.calls.Load())
	}
	if canary.conns.Load() != 0 || otherPort.conns.Load() != 0 {
		t.Fatalf("the agent connected elsewhere: canary %d, other port %d", canary.conns.Load(), otherPort.conns.Load())
	}
	// The next session resolves again and finds the rebinding answer: the
	// identity check catches it before anything is served.
	if _, err := a.checkDevice(context.Background(), d); err == nil || !strings.Contains(err.Error(), "CANARY") {
		t.Fatalf("rebinding to another machine: %v", err)
	}
}
