package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
	"github.com/porthole-dev/porthole/proto"
)

func TestTURNRefusesAllocationWithoutValidCredentials(t *testing.T) {
	srv := startServer(t, Config{MaxCredentialLifetime: 35 * time.Minute})
	udp := srv.Addrs().UDP
	now := time.Now()

	t.Run("no credentials", func(t *testing.T) {
		c := newRawClient(t, udp, "", "")
		res := c.allocateUnauthenticated()
		if res.Type.Class != stun.ClassErrorResponse || errorCode(res) != stun.CodeUnauthorized {
			t.Fatalf("got %v code %d, want 401", res.Type, errorCode(res))
		}
	})

	goodUser, _ := proto.MintTURN(testSecret, "s_wrong_hmac", now.Add(10*time.Minute))
	expiredUser, expiredPass := proto.MintTURN(testSecret, "s_expired", now.Add(-time.Minute))
	farUser, farPass := proto.MintTURN(testSecret, "s_far", now.Add(36*time.Minute))
	otherUser, otherPass := proto.MintTURN([]byte("another-secret-0123456789abcdef"), "s_other", now.Add(time.Minute))
	// pion's client answers the 401 challenge with these credentials; pion's
	// server refuses them with 400 Bad Request, which the relay's answers
	// layer turns into the 401 RFC 8489 §9.2.4 asks for (see README).
	tests := []struct {
		name, user, pass string
	}{
		{"empty username", "", ""},
		{"wrong HMAC", goodUser, "d3JvbmcgcGFzc3dvcmQ="},
		{"other secret", otherUser, otherPass},
		{"expired", expiredUser, expiredPass},
		{"expiry beyond max lifetime", farUser, farPass},
		{"malformed username", "s_no_expiry", proto.TURNPassword(testSecret, "s_no_expiry")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Stats()
			c := newPionClient(t, udp, tt.user, tt.pass)
			rc, err := c.Allocate()
			if err == nil {
				_ = rc.Close()
				t.Fatal("Allocate succeeded")
			}
			if code := turnErrorCode(err); code != stun.CodeUnauthorized {
				t.Fatalf("Allocate error %v (code %d), want 401", err, code)
			}
			after := srv.Stats()
			if after.AuthFailures <= before.AuthFailures {
				t.Errorf("AuthFailures %d -> %d, want an increase", before.AuthFailures, after.AuthFailures)
			}
		})
	}
	if st := srv.Stats(); st.AllocationsTotal != 0 || st.AllocationsActive != 0 {
		t.Fatalf("allocations were created: %+v", st)
	}

	t.Run("credential minted by pion's helper is accepted", func(t *testing.T) {
		u, p, err := turn.GenerateLongTermTURNRESTCredentials(string(testSecret), "s_pion", 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		allocate(t, newPionClient(t, udp, u, p))
		if st := srv.Stats(); st.AllocationsTotal != 1 {
			t.Fatalf("AllocationsTotal = %d, want 1", st.AllocationsTotal)
		}
	})
}

// TestTURNRefusesPeersInDeniedRanges sends CreatePermission, ChannelBind,
// Send and ChannelData towards refused peers and proves nothing is relayed;
// the same sequence with loopback allowed delivers, so the silence is the
// policy's doing.
func TestTURNRefusesPeersInDeniedRanges(t *testing.T) {
	srv := startServer(t, Config{})
	target := newSink(t, "127.0.0.1:0")
	port := target.addr.Port()
	turnUDP := srv.Addrs().UDP
	tests := []struct {
		name string
		peer netip.AddrPort
		sink *sink // nil when nothing can listen there
	}{
		{"loopback", target.addr, target},
		{"ipv4-mapped loopback", netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), port), target},
		{"private", netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port), nil},
		{"cloud metadata", netip.MustParseAddrPort("169.254.169.254:80"), nil},
		{"unspecified", netip.AddrPortFrom(netip.IPv4Unspecified(), port), target},
		{"relay's own UDP listener", turnUDP, nil},
	}
	const channel = 0x4000
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, pass := validCreds(fmt.Sprintf("s_denied_%d", i))
			c := newRawClient(t, turnUDP, user, pass)
			c.allocate()
			before := srv.Stats()

			// pion v4.1.4 answers a refused CreatePermission with no
			// ERROR-CODE and a refused ChannelBind with 401; the relay sends
			// the 403 of RFC 8656, integrity-protected.
			res := c.createPermission(tt.peer)
			c.expectForbidden(res, "CreatePermission")
			res = c.channelBind(tt.peer, channel)
			c.expectForbidden(res, "ChannelBind")
			c.send(tt.peer, []byte("send indication"))
			c.channelData(channel, []byte("channel data"))
			c.barrier()
			if tt.sink != nil {
				tt.sink.expectQuiet(t, quietWindow)
			}
			after := srv.Stats()
			if after.PacketsToPeers != before.PacketsToPeers {
				t.Errorf("PacketsToPeers %d -> %d, want nothing relayed", before.PacketsToPeers, after.PacketsToPeers)
			}
			if got := after.PermissionsRefused - before.PermissionsRefused; got != 2 {
				t.Errorf("PermissionsRefused grew by %d, want 2", got)
			}
		})
	}

	t.Run("pion client WriteTo fails", func(t *testing.T) {
		user, pass := validCreds("s_denied_pion")
		rc := allocate(t, newPionClient(t, turnUDP, user, pass))
		for _, peer := range []netip.AddrPort{target.addr, netip.MustParseAddrPort("169.254.169.254:80")} {
			if _, err := rc.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(peer)); err == nil {
				t.Errorf("WriteTo(%v) succeeded", peer)
			}
		}
		target.expectQuiet(t, quietWindow)
	})
}

// TestTURNRelaysToLoopbackWhenAllowed is the control for the refusals: with
// loopback allowed, the very same requests deliver, including via the
// IPv4-mapped spelling.
func TestTURNRelaysToLoopbackWhenAllowed(t *testing.T) {
	srv := startServer(t, Config{Allow: []netip.Prefix{loopback8}, AllowOwnHost: true})
	target := newSink(t, "127.0.0.1:0")
	mapped := netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), target.addr.Port())
	user, pass := validCreds("s_allowed")
	c := newRawClient(t, srv.Addrs().UDP, user, pass)
	relayed := c.allocate()

	if res := c.createPermission(target.addr); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("CreatePermission: %v code %d", res.Type, errorCode(res))
	}
	c.send(target.addr, []byte("via send"))
	if from := target.expect(t, []byte("via send")); from != relayed {
		t.Errorf("datagram came from %v, want the relayed address %v", from, relayed)
	}
	c.send(mapped, []byte("via mapped"))
	target.expect(t, []byte("via mapped"))
	if res := c.channelBind(mapped, 0x4001); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("ChannelBind: %v code %d", res.Type, errorCode(res))
	}
	c.channelData(0x4001, []byte("via channel"))
	target.expect(t, []byte("via channel"))
	c.barrier() // the counters are bumped after the write returns
	if st := srv.Stats(); st.PacketsToPeers != 3 || st.BytesToPeers != uint64(len("via send")+len("via mapped")+len("via channel")) {
		t.Errorf("stats %+v, want 3 packets", st)
	}
}

// TestTURNRefusesServicePorts: the relay's own sockets stay unreachable even
// with loopback allowed. Permissions are per IP, so CreatePermission and
// ChannelBind succeed; the datagrams are dropped at the relay socket.
func TestTURNRefusesServicePorts(t *testing.T) {
	metrics := newSink(t, "127.0.0.1:0")
	other := newSink(t, "127.0.0.1:0")
	srv := startServer(t, Config{
		Allow:        []netip.Prefix{loopback8},
		AllowOwnHost: true,
		ServicePorts: []netip.AddrPort{metrics.addr},
	})
	user, pass := validCreds("s_service")
	c := newRawClient(t, srv.Addrs().UDP, user, pass)
	c.allocate()
	if res := c.channelBind(metrics.addr, 0x4002); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("ChannelBind: %v code %d", res.Type, errorCode(res))
	}
	before := srv.Stats()
	c.send(metrics.addr, []byte("to metrics"))
	c.channelData(0x4002, []byte("to metrics via channel"))
	c.send(srv.Addrs().UDP, []byte("to the TURN listener"))
	c.send(netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), srv.Addrs().TCP.Port()), []byte("to the TCP port"))
	c.barrier()
	metrics.expectQuiet(t, quietWindow)
	after := srv.Stats()
	if got := after.DatagramsRefused - before.DatagramsRefused; got != 4 {
		t.Errorf("DatagramsRefused grew by %d, want 4", got)
	}
	if after.PacketsToPeers != before.PacketsToPeers {
		t.Errorf("PacketsToPeers %d -> %d, want nothing relayed", before.PacketsToPeers, after.PacketsToPeers)
	}
	// Control: another port on the same IP is reachable.
	c.send(other.addr, []byte("to other"))
	other.expect(t, []byte("to other"))
}

func TestTURNRelaysByteExactToAllowedLoopbackEcho(t *testing.T) {
	srv := startServer(t, Config{Allow: []netip.Prefix{loopback8}, AllowOwnHost: true})
	echo := echoServer(t)
	user, pass := validCreds("s_echo")
	rc := allocate(t, newPionClient(t, srv.Addrs().UDP, user, pass))
	exchangeEcho(t, rc, echo, udpSizes...)
	if st := srv.Stats(); st.PacketsToPeers == 0 || st.PacketsFromPeers == 0 || st.AllocationsActive != 1 {
		t.Errorf("stats %+v", st)
	}
}

// udpSizes exercise the smallest datagram too.
var udpSizes = []int{1, 16, 100, 512, 1200, 1200, 7, 1000}

// streamSizes avoid 1–4 byte payloads: pion's STUNConn (both ends of TURN
// over TCP/TLS) needs at least 9 bytes before it frames a message, so an
// 8-byte ChannelData frame waits for the next frame (see README).
var streamSizes = []int{5, 16, 100, 512, 1200, 1200, 7, 1000}

// exchangeEcho sends payloads of several sizes through rc to an echo peer
// and checks every reply byte for byte. The first write goes by Send
// indication; later ones use the channel pion binds in the background.
func exchangeEcho(t *testing.T, rc net.PacketConn, echo netip.AddrPort, sizes ...int) {
	t.Helper()
	peer := net.UDPAddrFromAddrPort(echo)
	buf := make([]byte, 2048)
	for i, size := range sizes {
		msg := bytes.Repeat([]byte{byte(i + 1)}, size)
		copy(msg, fmt.Sprintf("%d:", i))
		if _, err := rc.WriteTo(msg, peer); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		_ = rc.SetReadDeadline(time.Now().Add(ioTimeout))
		n, from, err := rc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("message %d: ReadFrom: %v", i, err)
		}
		if !bytes.Equal(buf[:n], msg) {
			t.Fatalf("message %d: got %d bytes %q, want %d bytes", i, n, buf[:min(n, 16)], size)
		}
		if got := from.(*net.UDPAddr).AddrPort(); netip.AddrPortFrom(got.Addr().Unmap(), got.Port()) != echo {
			t.Fatalf("message %d came from %v, want %v", i, from, echo)
		}
	}
}

// TestTURNLetsTwoRelayedPeersMeet: the relayed addresses live on 127.0.0.2,
// a denied range, and loopback is not allowed; the relay still lets two
// allocations talk, but not reach another socket on the same IP.
func TestTURNLetsTwoRelayedPeersMeet(t *testing.T) {
	srv := startServer(t, Config{})
	bystander := newSink(t, relayIP.String()+":0")
	userA, passA := validCreds("s_meet_a")
	userB, passB := validCreds("s_meet_b")
	a := allocate(t, newPionClient(t, srv.Addrs().UDP, userA, passA))
	b := allocate(t, newPionClient(t, srv.Addrs().UDP, userB, passB))

	// B's first write opens B's permission for A's IP; A's permission comes
	// with A's first write. Retry until each side has heard the other.
	deliver := func(from, to net.PacketConn, msg []byte) {
		t.Helper()
		buf := make([]byte, 1500)
		deadline := time.Now().Add(ioTimeout)
		for time.Now().Before(deadline) {
			if _, err := from.WriteTo(msg, to.LocalAddr()); err != nil {
				t.Fatalf("WriteTo %v: %v", to.LocalAddr(), err)
			}
			_ = to.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, src, err := to.ReadFrom(buf)
			if err != nil {
				continue // the other side's permission is not installed yet
			}
			if string(buf[:n]) == "open" {
				// B's opener, delivered once A's permission appeared.
				_ = to.SetReadDeadline(time.Now().Add(ioTimeout))
				if n, src, err = to.ReadFrom(buf); err != nil {
					t.Fatalf("after opener: %v", err)
				}
			}
			if !bytes.Equal(buf[:n], msg) || src.String() != from.LocalAddr().String() {
				t.Fatalf("got %q from %v, want %q from %v", buf[:n], src, msg, from.LocalAddr())
			}
			return
		}
		t.Fatalf("%v never reached %v", from.LocalAddr(), to.LocalAddr())
	}
	_, _ = b.WriteTo([]byte("open"), a.LocalAddr())
	deliver(a, b, []byte("hello B"))
	deliver(b, a, []byte("hello A"))
	deliver(a, b, []byte("again"))

	before := srv.Stats()
	if _, err := a.WriteTo([]byte("to bystander"), net.UDPAddrFromAddrPort(bystander.addr)); err != nil {
		t.Fatalf("WriteTo bystander: %v", err) // the permission (per IP) exists
	}
	waitFor(t, "the datagram to be refused", func() bool { return srv.Stats().DatagramsRefused > before.DatagramsRefused })
	bystander.expectQuiet(t, quietWindow)
}

func TestTURNEnforcesAllocationQuotaPerCredential(t *testing.T) {
	srv := startServer(t, Config{MaxAllocationsPerCredential: 2})
	udp := srv.Addrs().UDP
	user, pass := validCreds("s_quota")
	allocate(t, newPionClient(t, udp, user, pass))
	second := allocate(t, newPionClient(t, udp, user, pass))

	_, err := newPionClient(t, udp, user, pass).Allocate()
	if code := turnErrorCode(err); code != stun.CodeAllocQuotaReached {
		t.Fatalf("third Allocate: %v (code %d), want 486", err, code)
	}
	if st := srv.Stats(); st.AllocationsRefusedQuota != 1 || st.AllocationsActive != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Another credential has its own quota.
	otherUser, otherPass := validCreds("s_quota_other")
	allocate(t, newPionClient(t, udp, otherUser, otherPass))

	// Freeing a slot lets the credential allocate again.
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the allocation to be deleted", func() bool { return srv.Stats().AllocationsActive == 2 })
	allocate(t, newPionClient(t, udp, user, pass))
}

func TestTURNOverTCPRelaysToAllowedPeer(t *testing.T) {
	srv := startServer(t, Config{Allow: []netip.Prefix{loopback8}, AllowOwnHost: true})
	echo := echoServer(t)
	conn, err := net.Dial("tcp", srv.Addrs().TCP.String())
	if err != nil {
		t.Fatal(err)
	}
	user, pass := validCreds("s_tcp")
	rc := allocate(t, startPionClient(t, turn.NewSTUNConn(conn), srv.Addrs().TCP, user, pass))
	exchangeEcho(t, rc, echo, streamSizes...)
}

func TestTURNOverTLSRefusesOldVersions(t *testing.T) {
	serverTLS, pool := selfSignedTLS(t)
	serverTLS.MinVersion = tls.VersionTLS10 // New must raise it
	srv := startServer(t, Config{
		TLSListen:    "127.0.0.1:0",
		TLS:          serverTLS,
		Allow:        []netip.Prefix{loopback8},
		AllowOwnHost: true,
	})
	addr := srv.Addrs().TLS.String()
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: v, MaxVersion: v})
			if err == nil {
				_ = conn.Close()
				t.Fatalf("handshake with %s succeeded", tls.VersionName(v))
			}
		})
	}
	t.Run("TLS 1.2 relays", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		user, pass := validCreds("s_tls")
		rc := allocate(t, startPionClient(t, turn.NewSTUNConn(conn), srv.Addrs().TLS, user, pass))
		exchangeEcho(t, rc, echoServer(t), streamSizes...)
	})
}

// TestTURNClosesAllocationWhenCredentialExpires: pion would keep the
// allocation for its lifetime; the relay ends it with the credential.
func TestTURNClosesAllocationWhenCredentialExpires(t *testing.T) {
	// Shift the server's clock so the credential, whose expiry has one-second
	// resolution, has 300 ms left when the allocation is made.
	expiry := time.Now().Truncate(time.Second).Add(2 * time.Second)
	shift := time.Until(expiry.Add(-300 * time.Millisecond))
	srv := startServer(t, Config{Now: func() time.Time { return time.Now().Add(shift) }})
	user, pass := proto.MintTURN(testSecret, "s_expiring", expiry)
	c := newRawClient(t, srv.Addrs().UDP, user, pass)
	c.allocate()
	waitFor(t, "the allocation to close", func() bool {
		st := srv.Stats()
		return st.AllocationsTotal == 1 && st.AllocationsActive == 0
	})
	// The expired credential can no longer allocate.
	c2 := newRawClient(t, srv.Addrs().UDP, user, pass)
	c2.allocateUnauthenticated()
	res := c2.roundTrip(append([]stun.Setter{stun.TransactionID,
		stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedUDP}, c2.authSetters()...)...)
	if res.Type.Class != stun.ClassErrorResponse {
		t.Fatalf("Allocate with expired credential: %v", res.Type)
	}
}

func TestTURNCloseSessionTearsDownItsAllocations(t *testing.T) {
	srv := startServer(t, Config{})
	udp := srv.Addrs().UDP
	u1, p1 := validCreds("s_end")
	u2, p2 := validCreds("s_keep")
	newRawClient(t, udp, u1, p1).allocate()
	newRawClient(t, udp, u1, p1).allocate()
	newRawClient(t, udp, u2, p2).allocate()
	if n := srv.CloseSession("s_end"); n != 2 {
		t.Fatalf("CloseSession = %d, want 2", n)
	}
	waitFor(t, "two allocations to close", func() bool { return srv.Stats().AllocationsActive == 1 })
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	base := func() Config {
		return Config{Secret: testSecret, UDPListen: "127.0.0.1:0", PublicIP: relayIP}
	}
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"no secret", func(c *Config) { c.Secret = nil }},
		{"short secret", func(c *Config) { c.Secret = []byte("short") }},
		{"no listener", func(c *Config) { c.UDPListen = "" }},
		{"bad listen address", func(c *Config) { c.UDPListen = "127.0.0.1" }},
		{"TLS listener without certificate", func(c *Config) { c.TLSListen = "127.0.0.1:0" }},
		{"no public IP on wildcard listener", func(c *Config) { c.PublicIP = netip.Addr{}; c.UDPListen = "0.0.0.0:0" }},
		{"IPv6 public IP", func(c *Config) { c.PublicIP = netip.MustParseAddr("2001:db8::1") }},
		{"unspecified public IP", func(c *Config) { c.PublicIP = netip.IPv4Unspecified() }},
		{"IPv6 relay bind IP", func(c *Config) { c.RelayBindIP = netip.IPv6Loopback() }},
		{"negative lifetime", func(c *Config) { c.MaxCredentialLifetime = -time.Second }},
		{"negative quota", func(c *Config) { c.MaxAllocationsPerCredential = -1 }},
		{"invalid allow prefix", func(c *Config) { c.Allow = []netip.Prefix{{}} }},
		{"port range without its end", func(c *Config) { c.RelayPortMin = 40000 }},
		{"port range without its start", func(c *Config) { c.RelayPortMax = 40000 }},
		{"port range upside down", func(c *Config) { c.RelayPortMin, c.RelayPortMax = 40010, 40000 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			tt.mutate(&cfg)
			if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
		})
	}
	t.Run("public IP defaults to the listener's", func(t *testing.T) {
		srv, err := New(Config{Secret: testSecret, UDPListen: "127.0.0.3:0"})
		if err != nil {
			t.Fatal(err)
		}
		if srv.cfg.PublicIP != netip.MustParseAddr("127.0.0.3") {
			t.Fatalf("PublicIP = %v", srv.cfg.PublicIP)
		}
	})
}

func TestRunFailsWhenAddressInUseAndRunsOnce(t *testing.T) {
	busy := newSink(t, "127.0.0.1:0")
	srv, err := New(Config{Secret: testSecret, UDPListen: busy.addr.String(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Run(context.Background()); err == nil {
		t.Fatal("Run on a busy port succeeded")
	}
	select {
	case <-srv.Ready():
		t.Fatal("Ready closed although Run failed")
	default:
	}
	if err := srv.Run(context.Background()); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Run = %v, want ErrAlreadyRunning", err)
	}
}

// TestTURNServesOnSeveralReusePortSockets: with several SO_REUSEPORT
// sockets on one address, clients spread over them by the kernel each get
// their allocation and relay through it, and every socket answers on the
// one advertised port.
func TestTURNServesOnSeveralReusePortSockets(t *testing.T) {
	if reusePort == nil {
		t.Skip("no SO_REUSEPORT here")
	}
	srv := startServer(t, Config{UDPListen: "127.0.0.1:0", UDPSockets: 4, Allow: []netip.Prefix{loopback8}, AllowOwnHost: true})
	target := newSink(t, "127.0.0.1:0")
	for i := range 16 {
		user, pass := validCreds(fmt.Sprintf("s_reuse%d", i))
		c := newRawClient(t, srv.Addrs().UDP, user, pass)
		relayed := c.allocate()
		if res := c.createPermission(target.addr); res.Type.Class != stun.ClassSuccessResponse {
			t.Fatalf("client %d CreatePermission: %v code %d", i, res.Type, errorCode(res))
		}
		msg := []byte(fmt.Sprint("from client ", i))
		c.send(target.addr, msg)
		if from := target.expect(t, msg); from != relayed {
			t.Fatalf("client %d: datagram came from %v, want its relayed address %v", i, from, relayed)
		}
	}
	// Several readers served the port: 16 clients hashed over 4 sockets
	// all land on one with probability 4^-15.
	serving := 0
	for _, l := range srv.udp {
		if l.reads.Load() > 0 {
			serving++
		}
	}
	if serving < 2 {
		t.Errorf("%d of %d listener sockets read anything, want several", serving, len(srv.udp))
	}
}
