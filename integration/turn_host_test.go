package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"

	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/turnserver/relay"
)

// TestTURNRelayRefusesItsOwnHost runs porthole-turn as a real deployment
// runs it: on an ordinary public address (203.0.113.5, where the range rules
// allow everything), with a second public interface and a private leg,
// inside a network namespace. The relay host runs real UDP services bound to
// every address — snmpd from Debian and a counting reflector standing in for
// a resolver. A TURN client on the internet tries every address of the
// relay host (each interface, the public IP, its IPv4-mapped form, the
// subnets' broadcast addresses, 0.0.0.0, loopback): the services receive
// nothing and nothing comes back, while a public peer and another
// allocation on the same relay stay reachable, and the refusals carry the
// codes of RFC 8656.
func TestTURNRelayRefusesItsOwnHost(t *testing.T) {
	lab := netlab.New(t)
	snmpd := testenv.NeedBinary(t, "snmpd")
	bin := stack.Build(t)
	const public = "203.0.113.5"
	// The client is on a subnet of its own, so the relay host answers it from
	// its public address (a neighbour on 198.51.100/24 would hear eth1).
	inet := lab.Internet("203.0.113.0/24", "198.51.100.0/24", "198.18.0.0/15")
	dc := lab.Switch("dc-lan", "10.20.0.0/24")
	relayHost := lab.Host("relay", inet, public)
	relayHost.Attach(inet, "198.51.100.7") // a second public interface
	relayHost.Attach(dc, "10.20.0.1")      // and a private leg
	client := lab.Host("client", inet, "198.18.0.50")
	peer := lab.Host("peer", inet, "203.0.113.77")
	peerRefl := peer.StartReflector(3478)

	// The relay host's own services, on every address.
	resolver := relayHost.StartReflectorAt("0.0.0.0:5353")
	dir := t.TempDir()
	conf := filepath.Join(dir, "snmpd.conf")
	if err := os.WriteFile(conf, []byte("agentaddress udp:161\nrocommunity public default\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	relayHost.Start("snmpd", snmpd, []string{"-f", "-Lo", "-C", "-c", conf, "-p", filepath.Join(dir, "snmpd.pid")},
		"SNMP_PERSISTENT_DIR="+filepath.Join(dir, "persist"), "MIBS=")
	secret := []byte(randToken() + randToken())
	secretFile := filepath.Join(dir, "turn.secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	turnProc, _ := relayHost.StartAndWait("porthole-turn", bin["porthole-turn"], []string{
		"--udp", "0.0.0.0:3478", "--tcp", "0.0.0.0:443", "--public-ip", public, "--secret-file", secretFile,
	}, `porthole-turn listening`, 15*time.Second)

	snmpGet, err := (&gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "public", PDUType: gosnmp.GetRequest,
		RequestID: 7, Variables: []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.1.1.0", Type: gosnmp.Null}}}).MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	// Controls: both services answer when asked directly, from outside.
	direct := listenUDP(t, client, "198.18.0.50:0")
	if _, err := netlab.Mapped(direct, netip.MustParseAddrPort(public+":5353"), 2*time.Second); err != nil {
		t.Fatalf("the relay host's resolver does not answer directly, so the test proves nothing: %v", err)
	}
	if !answers(t, direct, netip.MustParseAddrPort(public+":161"), snmpGet, 5*time.Second) {
		t.Fatal("the relay host's snmpd does not answer directly, so the test proves nothing")
	}
	before := resolver.Received()

	turnClient := func(session string) (*turn.Client, net.PacketConn) {
		t.Helper()
		user, pass := proto.MintTURN(secret, session, time.Now().Add(5*time.Minute))
		c, err := turn.NewClient(&turn.ClientConfig{
			STUNServerAddr: public + ":3478", TURNServerAddr: public + ":3478",
			Conn: listenUDP(t, client, "198.18.0.50:0"), Username: user, Password: pass, Realm: relay.DefaultRealm,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		if err := c.Listen(); err != nil {
			t.Fatal(err)
		}
		rc, err := c.Allocate()
		if err != nil {
			t.Fatalf("allocate: %v", err)
		}
		t.Cleanup(func() { _ = rc.Close() })
		return c, rc
	}
	_, rc := turnClient("host-session")
	_, other := turnClient("host-session-2")
	t.Logf("relayed addresses %s and %s", rc.LocalAddr(), other.LocalAddr())

	// Controls: a public peer, and another allocation on this relay.
	if !answers(t, rc, peerRefl.Addr(), []byte("hello"), 3*time.Second) {
		t.Fatal("a public peer is not reachable through the relay")
	}
	// TURN permissions are per side: rc permits other (its first datagram is
	// dropped at other's relay socket), then other's datagram reaches rc.
	otherAddr := other.LocalAddr().(*net.UDPAddr).AddrPort()
	if _, err := rc.WriteTo([]byte("permit"), net.UDPAddrFromAddrPort(otherAddr)); err != nil {
		t.Fatalf("permission towards another allocation: %v", err)
	}
	if _, err := other.WriteTo([]byte("meet"), rc.LocalAddr()); err != nil {
		t.Fatalf("permission towards another allocation: %v", err)
	}
	_ = rc.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	if n, from, err := rc.ReadFrom(buf); err != nil || string(buf[:n]) != "meet" || from.String() != otherAddr.String() {
		t.Fatalf("two relayed peers on the relay do not meet: %q from %v, %v", buf[:n], from, err)
	}

	type target struct {
		addr string
		code stun.ErrorCode // what CreatePermission answers; 0: permitted (a relay IP), datagram dropped
	}
	var targets []target
	for _, port := range []string{"5353", "161"} {
		targets = append(targets,
			target{public + ":" + port, 0},
			target{"[::ffff:" + public + "]:" + port, 0},
			target{"198.51.100.7:" + port, stun.CodeForbidden},
			target{"[::ffff:198.51.100.7]:" + port, stun.CodeForbidden},
			target{"203.0.113.255:" + port, stun.CodeForbidden},
			target{"198.51.100.255:" + port, stun.CodeForbidden},
			target{"10.20.0.1:" + port, stun.CodeForbidden},
			target{"0.0.0.0:" + port, stun.CodeForbidden},
			target{"127.0.0.1:" + port, stun.CodeForbidden},
		)
	}
	for _, tg := range targets {
		dst := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tg.addr))
		payload := []byte("probe")
		if dst.Port == 161 {
			payload = snmpGet
		}
		_, err := rc.WriteTo(payload, dst)
		var te *stun.TurnError
		switch {
		case tg.code == 0 && err != nil:
			t.Errorf("WriteTo %s: %v; want the permission granted (a relay IP) and the datagram dropped", tg.addr, err)
		case tg.code != 0 && err == nil:
			t.Errorf("WriteTo %s: the relay granted a permission towards its own host", tg.addr)
		case tg.code != 0 && (!errors.As(err, &te) || te.ErrorCodeAttr.Code != tg.code):
			t.Errorf("WriteTo %s: %v, want error %d", tg.addr, err, tg.code)
		}
	}
	_ = rc.SetReadDeadline(time.Now().Add(blockedWait))
	if n, from, err := rc.ReadFrom(buf); err == nil {
		t.Errorf("an answer came back through the relay from %v: %q", from, buf[:n])
	}
	if n := resolver.Received() - before; n != 0 {
		t.Errorf("the relay host's resolver received %d datagrams through the relay", n)
	}
	// The relay is still healthy for everyone.
	if !answers(t, rc, peerRefl.Addr(), []byte("still there"), 3*time.Second) {
		t.Error("the public peer is no longer reachable")
	}

	// The same over TURN/TCP: the refusal is 403 there too, and nothing
	// reaches the host's services.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tcp, err := client.DialContext(ctx, "tcp", public+":443")
	if err != nil {
		t.Fatal(err)
	}
	user, pass := proto.MintTURN(secret, "host-session-tcp", time.Now().Add(5*time.Minute))
	tc, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: public + ":443", TURNServerAddr: public + ":443",
		Conn: turn.NewSTUNConn(tcp), Username: user, Password: pass, Realm: relay.DefaultRealm})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Listen(); err != nil {
		t.Fatal(err)
	}
	trc, err := tc.Allocate()
	if err != nil {
		t.Fatalf("allocate over TCP: %v", err)
	}
	defer trc.Close()
	var te *stun.TurnError
	if _, err := trc.WriteTo([]byte("probe"), net.UDPAddrFromAddrPort(netip.MustParseAddrPort("198.51.100.7:5353"))); !errors.As(err, &te) || te.ErrorCodeAttr.Code != stun.CodeForbidden {
		t.Errorf("TCP allocation, permission towards the second interface: %v, want 403", err)
	}
	// The operator's log names the session of a refusal on a wildcard TCP
	// listener too.
	if _, err := turnProc.WaitLine(ctx, regexp.MustCompile(`relay peer refused" session=host-session-tcp .*peer=198\.51\.100\.7`)); err != nil {
		t.Error(err)
	}
	if _, err := trc.WriteTo([]byte("probe"), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(public+":5353"))); err != nil {
		t.Errorf("TCP allocation, datagram to the relay IP: %v (want the permission granted and the datagram dropped)", err)
	}
	if !answers(t, trc, peerRefl.Addr(), []byte("over tcp"), 3*time.Second) {
		t.Error("a public peer is not reachable through a TCP allocation")
	}
	if n := resolver.Received() - before; n != 0 {
		t.Errorf("the relay host's resolver received %d datagrams through the relay", n)
	}
}

// answers sends payload from c to dst (retrying twice) and reports whether
// anything came back from dst.
func answers(t *testing.T, c net.PacketConn, dst netip.AddrPort, payload []byte, timeout time.Duration) bool {
	t.Helper()
	buf := make([]byte, 1500)
	deadline := time.Now().Add(timeout)
	for range 3 {
		if _, err := c.WriteTo(payload, net.UDPAddrFromAddrPort(dst)); err != nil {
			t.Logf("send to %s: %v", dst, err)
			return false
		}
		d := time.Now().Add(timeout / 3)
		if d.After(deadline) {
			d = deadline
		}
		_ = c.SetReadDeadline(d)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			if fmt.Sprint(from) == dst.String() && n > 0 {
				return true
			}
		}
	}
	return false
}
