package relay

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
)

// TestTURNAnswersWithRFCCodes asserts the code each refusal actually sends,
// over UDP and TCP. pion/turn v4.1.4 alone would send 400 for every
// credential failure, an ERROR-CODE-less error for a refused
// CreatePermission and 401 for a refused ChannelBind; the relay's answers
// layer (codes.go) makes them 401 (with REALM and NONCE, no integrity: the
// client's key is what failed), 403 and 443 (both integrity-protected).
func TestTURNAnswersWithRFCCodes(t *testing.T) {
	srv := startServer(t, Config{})
	udp := srv.Addrs().UDP
	v6peer := netip.MustParseAddrPort("[2001:db8::1]:9")
	loop := netip.MustParseAddrPort("127.0.0.1:9")

	t.Run("udp wrong HMAC is 401 with a usable challenge", func(t *testing.T) {
		user, pass := validCreds("s_codes_hmac")
		c := newRawClient(t, udp, user, "d3JvbmcgcGFzc3dvcmQ=")
		c.allocateUnauthenticated()
		sent := c.nonce
		res := c.roundTrip(append([]stun.Setter{stun.TransactionID,
			stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedUDP}, c.authSetters()...)...)
		if res.Type.Class != stun.ClassErrorResponse || errorCode(res) != stun.CodeUnauthorized {
			t.Fatalf("got %v code %d, want 401", res.Type, errorCode(res))
		}
		var realm stun.Realm
		var nonce stun.Nonce
		if realm.GetFrom(res) != nil || realm.String() != testRealm || nonce.GetFrom(res) != nil || !bytes.Equal(nonce, sent) {
			t.Fatalf("401 carries realm %q nonce %q, want %q and the nonce sent %q", realm, nonce, testRealm, sent)
		}
		if res.Contains(stun.AttrMessageIntegrity) {
			t.Fatal("401 carries MESSAGE-INTEGRITY")
		}
		// The challenge works: the right password on the same nonce allocates.
		c.pass = pass
		c.integrity = stun.NewLongTermIntegrity(user, testRealm, pass)
		res = c.roundTrip(append([]stun.Setter{stun.TransactionID,
			stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedUDP}, c.authSetters()...)...)
		if res.Type.Class != stun.ClassSuccessResponse {
			t.Fatalf("retry after 401: %v code %d", res.Type, errorCode(res))
		}
		c.t.Cleanup(func() {
			req, _ := stun.Build(append([]stun.Setter{stun.TransactionID,
				stun.NewType(stun.MethodRefresh, stun.ClassRequest), lifetimeZero}, c.authSetters()...)...)
			_, _ = c.conn.WriteTo(req.Raw, c.server)
		})
	})

	t.Run("udp permissions", func(t *testing.T) {
		user, pass := validCreds("s_codes_perm")
		c := newRawClient(t, udp, user, pass)
		c.allocate()
		c.expectCode(c.createPermission(v6peer), "CreatePermission to IPv6 on an IPv4 relay", stun.CodePeerAddrFamilyMismatch)
		c.expectCode(c.channelBind(v6peer, 0x4005), "ChannelBind to IPv6 on an IPv4 relay", stun.CodePeerAddrFamilyMismatch)
		c.expectForbidden(c.createPermission(barrierPeer, loop), "CreatePermission with one forbidden peer of two")
		c.expectForbidden(c.channelBind(loop, 0x4006), "ChannelBind to loopback")
		c.barrier() // allowed peers still get success, untouched
	})

	t.Run("tcp", func(t *testing.T) {
		dial := func() net.Conn {
			conn, err := net.Dial("tcp", srv.Addrs().TCP.String())
			if err != nil {
				t.Fatal(err)
			}
			return conn
		}
		user, _ := validCreds("s_codes_tcp")
		bad := startPionClient(t, turn.NewSTUNConn(dial()), srv.Addrs().TCP, user, "d3JvbmcgcGFzc3dvcmQ=")
		if rc, err := bad.Allocate(); err == nil {
			_ = rc.Close()
			t.Fatal("Allocate with a wrong password succeeded")
		} else if code := turnErrorCode(err); code != stun.CodeUnauthorized {
			t.Fatalf("Allocate over TCP with a wrong password: %v (code %d), want 401", err, code)
		}
		user, pass := validCreds("s_codes_tcp_ok")
		rc := allocate(t, startPionClient(t, turn.NewSTUNConn(dial()), srv.Addrs().TCP, user, pass))
		_, err := rc.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(loop))
		if code := turnErrorCode(err); code != stun.CodeForbidden {
			t.Fatalf("CreatePermission over TCP to loopback: %v (code %d), want 403", err, code)
		}
		if _, err := rc.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(barrierPeer)); err != nil {
			t.Fatalf("CreatePermission over TCP to a public peer: %v", err)
		}
	})
}

// TestStreamObserverFramesTURNOverTCP feeds a stream of STUN requests and
// ChannelData, split at every byte boundary, and checks each request is
// observed exactly once and nothing else is.
func TestStreamObserverFramesTURNOverTCP(t *testing.T) {
	srv, err := New(Config{Secret: testSecret, UDPListen: "127.0.0.1:0", PublicIP: relayIP, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	user, pass := validCreds("s_frames")
	integrity := stun.NewLongTermIntegrity(user, testRealm, "wrong"+pass)
	var stream []byte
	var ids [][stun.TransactionIDSize]byte
	for i := range 3 {
		m, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedUDP,
			stun.NewUsername(user), stun.NewRealm(testRealm), stun.NewNonce("n"), integrity)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.TransactionID)
		stream = append(stream, m.Raw...)
		// ChannelData of an odd length, padded to 4 as on streams.
		cd := []byte{0x40, 0x00, 0x00, byte(i + 1), 'a', 'b', 'c', 0}
		stream = append(stream, cd[:4+((i+1)+3)&^3]...)
	}
	for split := 1; split < len(stream); split++ {
		a := newAnswers(srv)
		o := streamObserver{a: a}
		o.feed(stream[:split])
		o.feed(stream[split:])
		if len(a.pending) != len(ids) {
			t.Fatalf("split at %d: %d verdicts, want %d", split, len(a.pending), len(ids))
		}
		for _, id := range ids {
			if v, ok := a.pending[id]; !ok || v.code != stun.CodeUnauthorized {
				t.Fatalf("split at %d: verdict %+v for %x, want 401", split, v, id)
			}
		}
	}
}
