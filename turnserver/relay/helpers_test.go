package relay

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
	"go.uber.org/goleak"

	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testRealm = "porthole"
	// ioTimeout bounds every wait for something that should happen.
	ioTimeout = 3 * time.Second
	// quietWindow is how long a sink must stay silent after a refused attempt
	// whose processing a barrier round trip has already proven.
	quietWindow = 150 * time.Millisecond
)

var (
	testSecret = []byte("test-secret-0123456789abcdef0123")
	// relayIP is deliberately not 127.0.0.1: peers on 127.0.0.1 must stay
	// refused while the relay's own relayed addresses stay reachable.
	relayIP = netip.MustParseAddr("127.0.0.2")
	// barrierPeer is a public address: permissions to it succeed, and the
	// round trip proves the server processed everything sent before it.
	barrierPeer = netip.MustParseAddrPort("192.0.2.1:9") // TEST-NET-1, nothing listens
	loopback8   = netip.MustParsePrefix("127.0.0.0/8")
)

// testLogWriter forwards slog output to t.Log until the test ends; pion may
// log from a goroutine that outlives the test by a few statements.
type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	level := slog.LevelInfo
	if os.Getenv("PORTHOLE_TEST_DEBUG") != "" {
		level = slog.LevelDebug - 4
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// startServer runs a relay on loopback with test defaults filled in and
// stops it (waiting for Run to return) when the test ends.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	if cfg.UDPListen == "" && cfg.TCPListen == "" && cfg.TLSListen == "" {
		cfg.UDPListen, cfg.TCPListen = "127.0.0.1:0", "127.0.0.1:0"
	}
	if !cfg.PublicIP.IsValid() {
		cfg.PublicIP, cfg.RelayBindIP = relayIP, relayIP
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	select {
	case <-srv.Ready():
	case err := <-errc:
		t.Fatalf("Run: %v", err)
	case <-time.After(ioTimeout):
		t.Fatal("server not ready")
	}
	return srv
}

func validCreds(session string) (string, string) {
	return proto.MintTURN(testSecret, session, time.Now().Add(10*time.Minute))
}

// newPionClient returns a listening pion TURN client over UDP.
func newPionClient(t *testing.T, server netip.AddrPort, user, pass string) *turn.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startPionClient(t, conn, server, user, pass)
}

func startPionClient(t *testing.T, conn net.PacketConn, server netip.AddrPort, user, pass string) *turn.Client {
	t.Helper()
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server.String(),
		TURNServerAddr: server.String(),
		Conn:           conn,
		Username:       user,
		Password:       pass,
		Realm:          testRealm,
		LoggerFactory:  pionLoggerFactory{testLogger(t)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		_ = conn.Close()
	})
	return c
}

// allocate allocates on c and closes the allocation when the test ends.
func allocate(t *testing.T, c *turn.Client) net.PacketConn {
	t.Helper()
	rc, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// turnErrorCode extracts the STUN error code of a pion client error, or 0.
func turnErrorCode(err error) stun.ErrorCode {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return te.ErrorCodeAttr.Code
	}
	return 0
}

// sink is a UDP socket standing in for a peer (a service on loopback, the
// relay's metrics port, …).
type sink struct {
	conn *net.UDPConn
	addr netip.AddrPort
}

func newSink(t *testing.T, addr string) *sink {
	t.Helper()
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	uc := pc.(*net.UDPConn)
	return &sink{conn: uc, addr: uc.LocalAddr().(*net.UDPAddr).AddrPort()}
}

// expectQuiet asserts nothing arrives within window.
func (s *sink) expectQuiet(t *testing.T, window time.Duration) {
	t.Helper()
	_ = s.conn.SetReadDeadline(time.Now().Add(window))
	buf := make([]byte, 2048)
	n, from, err := s.conn.ReadFrom(buf)
	if err == nil {
		t.Fatalf("sink %v received %q from %v; want nothing", s.addr, buf[:n], from)
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("sink read: %v", err)
	}
}

// expect asserts want arrives (byte-exact) within ioTimeout.
func (s *sink) expect(t *testing.T, want []byte) netip.AddrPort {
	t.Helper()
	_ = s.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	buf := make([]byte, 2048)
	n, from, err := s.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("sink %v: want %q, got %v", s.addr, want, err)
	}
	if !bytes.Equal(buf[:n], want) {
		t.Fatalf("sink %v received %q, want %q", s.addr, buf[:n], want)
	}
	return from
}

// waitFor polls cond until it holds or ioTimeout passes. It is for state
// that only the server's counters reveal, not for synchronising I/O.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, ioTimeout, what, cond)
}

// rawClient speaks TURN over UDP message by message, so tests can send what
// pion's client would not (an IPv6-family ::ffff:127.0.0.1 peer) and see the
// exact response the server sends.
type rawClient struct {
	t          *testing.T
	conn       *net.UDPConn
	server     *net.UDPAddr
	user, pass string
	realm      stun.Realm
	nonce      stun.Nonce
	integrity  stun.MessageIntegrity
	relayed    netip.AddrPort
}

func newRawClient(t *testing.T, server netip.AddrPort, user, pass string) *rawClient {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return &rawClient{t: t, conn: pc.(*net.UDPConn), server: net.UDPAddrFromAddrPort(server), user: user, pass: pass}
}

// roundTrip sends a request and returns the response with its transaction ID,
// skipping indications.
func (c *rawClient) roundTrip(setters ...stun.Setter) *stun.Message {
	c.t.Helper()
	req, err := stun.Build(setters...)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.WriteTo(req.Raw, c.server); err != nil {
		c.t.Fatal(err)
	}
	buf := make([]byte, 2048)
	_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	for {
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			c.t.Fatalf("waiting for response to %v: %v", req.Type, err)
		}
		res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if res.Decode() == nil && res.TransactionID == req.TransactionID {
			return res
		}
	}
}

func (c *rawClient) authSetters() []stun.Setter {
	return []stun.Setter{stun.NewUsername(c.user), c.realm, c.nonce, c.integrity, stun.Fingerprint}
}

// allocateUnauthenticated sends an Allocate without MESSAGE-INTEGRITY and
// remembers the realm and nonce of the challenge.
func (c *rawClient) allocateUnauthenticated() *stun.Message {
	res := c.roundTrip(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest),
		requestedUDP, stun.Fingerprint)
	if err := c.nonce.GetFrom(res); err != nil {
		c.t.Fatalf("challenge without nonce: %v", res)
	}
	if err := c.realm.GetFrom(res); err != nil {
		c.t.Fatalf("challenge without realm: %v", res)
	}
	c.integrity = stun.NewLongTermIntegrity(c.user, c.realm.String(), c.pass)
	return res
}

// allocate performs the full Allocate exchange and fails the test unless it
// succeeds.
func (c *rawClient) allocate() netip.AddrPort {
	c.t.Helper()
	c.allocateUnauthenticated()
	res := c.roundTrip(append([]stun.Setter{stun.TransactionID,
		stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedUDP}, c.authSetters()...)...)
	if res.Type.Class != stun.ClassSuccessResponse {
		c.t.Fatalf("Allocate: %v (code %d)", res.Type, errorCode(res))
	}
	var relayed stun.XORMappedAddress
	if err := relayed.GetFromAs(res, stun.AttrXORRelayedAddress); err != nil {
		c.t.Fatal(err)
	}
	ip, _ := netip.AddrFromSlice(relayed.IP)
	c.relayed = netip.AddrPortFrom(ip.Unmap(), uint16(relayed.Port))
	c.t.Cleanup(func() { // Refresh with LIFETIME 0 deletes the allocation.
		req, _ := stun.Build(append([]stun.Setter{stun.TransactionID,
			stun.NewType(stun.MethodRefresh, stun.ClassRequest), lifetimeZero}, c.authSetters()...)...)
		_, _ = c.conn.WriteTo(req.Raw, c.server)
	})
	return c.relayed
}

func (c *rawClient) createPermission(peers ...netip.AddrPort) *stun.Message {
	c.t.Helper()
	setters := []stun.Setter{stun.TransactionID, stun.NewType(stun.MethodCreatePermission, stun.ClassRequest)}
	for _, p := range peers {
		setters = append(setters, xorPeer(p))
	}
	return c.roundTrip(append(setters, c.authSetters()...)...)
}

func (c *rawClient) channelBind(peer netip.AddrPort, channel uint16) *stun.Message {
	c.t.Helper()
	return c.roundTrip(append([]stun.Setter{stun.TransactionID,
		stun.NewType(stun.MethodChannelBind, stun.ClassRequest), xorPeer(peer), channelNumber(channel)},
		c.authSetters()...)...)
}

// send sends a Send indication (no response exists).
func (c *rawClient) send(peer netip.AddrPort, data []byte) {
	c.t.Helper()
	m, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		xorPeer(peer), stun.RawAttribute{Type: stun.AttrData, Value: data}, stun.Fingerprint)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.WriteTo(m.Raw, c.server); err != nil {
		c.t.Fatal(err)
	}
}

// channelData sends a ChannelData message.
func (c *rawClient) channelData(channel uint16, data []byte) {
	c.t.Helper()
	b := make([]byte, 4+(len(data)+3)/4*4)
	binary.BigEndian.PutUint16(b[0:], channel)
	binary.BigEndian.PutUint16(b[2:], uint16(len(data)))
	copy(b[4:], data)
	if _, err := c.conn.WriteTo(b, c.server); err != nil {
		c.t.Fatal(err)
	}
}

// barrier proves the server has processed everything sent before it: pion
// handles one UDP socket's datagrams in order, on one goroutine.
func (c *rawClient) barrier() {
	c.t.Helper()
	if res := c.createPermission(barrierPeer); res.Type.Class != stun.ClassSuccessResponse {
		c.t.Fatalf("barrier CreatePermission: %v (code %d)", res.Type, errorCode(res))
	}
}

// expectForbidden asserts res is a 403 error response whose
// MESSAGE-INTEGRITY verifies with the client's key (RFC 8656 §9.1: a
// refusal of an authenticated request is itself authenticated).
func (c *rawClient) expectForbidden(res *stun.Message, what string) {
	c.t.Helper()
	c.expectCode(res, what, stun.CodeForbidden)
}

func (c *rawClient) expectCode(res *stun.Message, what string, code stun.ErrorCode) {
	c.t.Helper()
	if res.Type.Class != stun.ClassErrorResponse || errorCode(res) != code {
		c.t.Fatalf("%s: got %v code %d, want %d", what, res.Type, errorCode(res), code)
	}
	if err := c.integrity.Check(res); err != nil {
		c.t.Fatalf("%s: %d response without valid MESSAGE-INTEGRITY: %v", what, code, err)
	}
}

func errorCode(m *stun.Message) stun.ErrorCode {
	var ec stun.ErrorCodeAttribute
	if err := ec.GetFrom(m); err != nil {
		return 0
	}
	return ec.Code
}

var (
	requestedUDP = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	lifetimeZero = stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}
)

func channelNumber(n uint16) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{byte(n >> 8), byte(n), 0, 0}}
}

// xorPeer encodes XOR-PEER-ADDRESS with the family of the address as given:
// ::ffff:127.0.0.1 goes out as a 16-byte IPv6-family address, which pion's
// client (and stun.XORMappedAddress) would silently turn into IPv4.
type xorPeer netip.AddrPort

func (p xorPeer) AddTo(m *stun.Message) error {
	ap := netip.AddrPort(p)
	family, ip := uint16(1), ap.Addr().AsSlice()
	if !ap.Addr().Is4() {
		family = 2
	}
	v := make([]byte, 4+len(ip))
	binary.BigEndian.PutUint16(v[0:], family)
	binary.BigEndian.PutUint16(v[2:], ap.Port()^0x2112)
	key := make([]byte, 16)
	binary.BigEndian.PutUint32(key, 0x2112A442)
	copy(key[4:], m.TransactionID[:])
	for i := range ip {
		v[4+i] = ip[i] ^ key[i]
	}
	m.Add(stun.AttrXORPeerAddress, v)
	return nil
}

// echoServer echoes UDP datagrams on loopback until the test ends.
func echoServer(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { _ = pc.Close(); <-done })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// selfSignedTLS returns a server config for 127.0.0.1 and a client pool that
// trusts it.
func selfSignedTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}
