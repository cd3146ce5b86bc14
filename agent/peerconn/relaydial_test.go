package peerconn

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/pion/turn/v4"
	"golang.org/x/net/http/httpproxy"

	"github.com/porthole-dev/porthole/agent/egress"
	"github.com/porthole-dev/porthole/internal/connectproxy"
	"github.com/porthole-dev/porthole/internal/testcert"
	"github.com/porthole-dev/porthole/proto"
)

// turnOverTCP runs a pion TURN server with a TLS and a plain TCP
// listener on loopback.
func turnOverTCP(t *testing.T, leaf *testcert.Leaf) (tlsAddr, tcpAddr string) {
	t.Helper()
	tl, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gen := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1"}
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm: "test",
		AuthHandler: func(u, realm string, _ net.Addr) ([]byte, bool) {
			return turn.GenerateAuthKey(u, realm, "pw"), u == "user"
		},
		ListenerConfigs: []turn.ListenerConfig{{Listener: tl, RelayAddressGenerator: gen()}, {Listener: pl, RelayAddressGenerator: gen()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return tl.Addr().String(), pl.Addr().String()
}

// TestRelayDialerCarriesTURNThroughTheProxy: pion's TURN client
// allocates over TLS and over plain TCP through a CONNECT tunnel, the
// TLS handshake with the relay happens inside the tunnel, and the dial
// log remembers which connection went through the proxy.
func TestRelayDialerCarriesTURNThroughTheProxy(t *testing.T) {
	ca := testcert.NewCA(t, "Relay CA")
	tlsAddr, tcpAddr := turnOverTCP(t, ca.Issue(t, "relay.test"))
	px := connectproxy.Start(t, connectproxy.Options{Hosts: map[string]string{"relay.test:443": tlsAddr, "relay.test:3478": tcpAddr}})
	proxyAddr := px.Addr
	eg, err := egress.New(egress.Config{Proxy: httpproxy.Config{HTTPSProxy: "http://" + proxyAddr}})
	if err != nil {
		t.Fatal(err)
	}
	dials := &DialLog{}
	d := newRelayDialer(Config{
		ICEServers: []proto.ICEServer{{URLs: []string{"turns:relay.test:443?transport=tcp", "turn:relay.test:3478?transport=tcp", "turn:relay.test:3478?transport=udp"}}},
		Egress:     eg, RelayRoots: ca.Pool(), Dials: dials,
	})
	for _, tc := range []struct{ addr, transport string }{{"relay.test:443", "tls"}, {"relay.test:3478", "tcp"}} {
		t.Run(tc.transport, func(t *testing.T) {
			c, err := d.Dial("tcp4", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			_, isTLS := c.(*tls.Conn)
			if isTLS != (tc.transport == "tls") {
				t.Fatalf("connection %T for %s", c, tc.transport)
			}
			local := c.LocalAddr().(*net.TCPAddr) // what pion asserts
			client, err := turn.NewClient(&turn.ClientConfig{Conn: turn.NewSTUNConn(c), Username: "user", Password: "pw", Realm: "test"})
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			if err := client.Listen(); err != nil {
				t.Fatal(err)
			}
			relayed, err := client.Allocate()
			if err != nil {
				t.Fatalf("allocate over %s through the proxy: %v", tc.transport, err)
			}
			relayed.Close()
			if got := dials.Proxy(Path{LocalRelated: local.String()}); got != proxyAddr {
				t.Errorf("dial log says proxy %q for %s, want %s", got, local, proxyAddr)
			}
		})
	}
	if n := px.Tunnels.Load(); n != 2 {
		t.Errorf("%d tunnels through the proxy, want 2", n)
	}
	if got := dials.Proxy(Path{LocalRelated: "10.9.9.9:1"}); got != "" {
		t.Errorf("unknown connection attributed to %q", got)
	}
}

// TestRelayDialerRefusesAnUnknownCertificate: a relay (or a proxy that
// inspects TLS) whose certificate does not verify gets no allocation, and
// the error says where to look.
func TestRelayDialerRefusesAnUnknownCertificate(t *testing.T) {
	tlsAddr, _ := turnOverTCP(t, testcert.NewCA(t, "Inspecting Proxy CA").Issue(t, "relay.test"))
	proxyAddr := connectproxy.Start(t, connectproxy.Options{Hosts: map[string]string{"relay.test:443": tlsAddr}}).Addr
	eg, _ := egress.New(egress.Config{Proxy: httpproxy.Config{HTTPSProxy: proxyAddr}})
	d := newRelayDialer(Config{
		ICEServers: []proto.ICEServer{{URLs: []string{"turns:relay.test:443?transport=tcp"}}},
		Egress:     eg, RelayRoots: testcert.NewCA(t, "Relay CA").Pool(),
	})
	_, err := d.Dial("tcp4", "relay.test:443")
	if !errors.Is(err, egress.ErrInspected) {
		t.Fatalf("err = %v, want the inspection hint", err)
	}
	for _, s := range []string{"Inspecting Proxy CA", "proxy " + proxyAddr, "caFile"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not say %q", err, s)
		}
	}
}

// TestRelayDialerDoesNotGuessTLS: an address named by a turns: and a
// turn: URL alike is dialled without TLS rather than with a guess.
func TestRelayDialerDoesNotGuessTLS(t *testing.T) {
	d := newRelayDialer(Config{ICEServers: []proto.ICEServer{{URLs: []string{"turns:relay.test:443?transport=tcp", "turn:relay.test:443?transport=tcp", "turns:other.test:5349"}}}})
	if _, ok := d.tls["relay.test:443"]; ok {
		t.Error("TLS assumed for an address named by turn: too")
	}
	if d.tls["other.test:5349"] != "other.test" {
		t.Errorf("tls map %v", d.tls)
	}
}
