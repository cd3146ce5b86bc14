package deviceid

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// serviceListener stands in for a device's SSH or VNC port: it counts the
// connections anything opens on it.
func serviceListener(t *testing.T) (port int, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port, accepted
}

// TestCheckWithoutWebTouchesNoService: a device without a web page is
// reached with one empty datagram to a closed UDP port, answered by ICMP
// port unreachable, and nothing connects to its service port.
func TestCheckWithoutWebTouchesNoService(t *testing.T) {
	_, accepted := serviceListener(t)
	probe, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	probePort := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close() // a closed UDP port: the kernel answers port unreachable

	c := &Checker{ProbePort: probePort, Timeout: 2 * time.Second}
	res, err := c.Check(context.Background(), Target{Device: "ssh-1", Host: "127.0.0.1"}, Expect{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reached != ReachedICMP {
		t.Fatalf("reached %q, want %q", res.Reached, ReachedICMP)
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the check opened %d connections on the service port", n)
	}
}

// TestCheckWithoutAnswerIsUnconfirmed: a device that drops the datagram
// (here something listens on the probe port and says nothing) is not
// refused; the result says nothing answered, and it got exactly one empty
// datagram.
func TestCheckWithoutAnswerIsUnconfirmed(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := &Checker{ProbePort: pc.LocalAddr().(*net.UDPAddr).Port, ReachWait: 100 * time.Millisecond}
	start := time.Now()
	res, err := c.Check(context.Background(), Target{Device: "quiet-1", Host: "127.0.0.1"}, Expect{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reached != "" {
		t.Fatalf("reached %q, want nothing", res.Reached)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("waited %s for a silent device (ReachWait 100ms)", took)
	}
	_ = pc.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 64)
	n, _, err := pc.ReadFrom(buf)
	if err != nil || n != 0 {
		t.Fatalf("probe port got %d bytes (%v), want one empty datagram", n, err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := pc.ReadFrom(buf); err == nil {
		t.Fatal("probe port got a second datagram")
	}
}

// TestCheckMACWithoutWebWaitsForTheNeighbourTable: with a MAC to check
// and no web page, the check waits for the entry the datagram makes the
// kernel resolve, then compares it.
func TestCheckMACWithoutWebWaitsForTheNeighbourTable(t *testing.T) {
	var calls atomic.Int64
	neighbor := func(netip.Addr) (net.HardwareAddr, error) {
		if calls.Add(1) < 4 { // ARP still in flight
			return nil, ErrNoNeighbor
		}
		return net.ParseMAC("02:00:00:00:00:01")
	}
	c := &Checker{Neighbor: neighbor, Timeout: 2 * time.Second}
	res, err := c.Check(context.Background(), Target{Device: "gw-1", Host: "127.0.0.1"}, Expect{MAC: "02:00:00:00:00:01"})
	if err != nil {
		t.Fatal(err)
	}
	if res.MAC != "02:00:00:00:00:01" || res.Reached == "" {
		t.Fatalf("result %+v", res)
	}
	calls.Store(0)
	_, err = c.Check(context.Background(), Target{Device: "gw-1", Host: "127.0.0.1"}, Expect{MAC: "02:00:00:00:00:02"})
	wantMismatch(t, err, "MAC address")

	// No entry ever: the device is not on the agent's segment.
	c = &Checker{Neighbor: func(netip.Addr) (net.HardwareAddr, error) { return nil, ErrNoNeighbor }, Timeout: 200 * time.Millisecond}
	_, err = c.Check(context.Background(), Target{Device: "gw-1", Host: "127.0.0.1"}, Expect{MAC: "02:00:00:00:00:01"})
	if !errors.Is(err, ErrNoNeighbor) || proto.CodeOf(err) == proto.CodeInternal {
		t.Fatalf("no neighbour entry: %v", err)
	}
}

// TestVerifyNeighborChecksEachConnection reads the entry of an
// established connection's peer.
func TestVerifyNeighborChecksEachConnection(t *testing.T) {
	port, _ := serviceListener(t)
	conn, err := net.Dial("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var asked netip.Addr
	c := &Checker{Neighbor: func(a netip.Addr) (net.HardwareAddr, error) {
		asked = a
		return net.ParseMAC("02:00:00:00:00:01")
	}}
	if err := c.VerifyNeighbor("ssh-1", conn, "02:00:00:00:00:01"); err != nil {
		t.Fatal(err)
	}
	if asked != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("asked the table for %v", asked)
	}
	err = c.VerifyNeighbor("ssh-1", conn, "02:00:00:00:00:99")
	wantMismatch(t, err, "MAC address")
	if proto.CodeOf(err) != proto.CodeDeviceFailed {
		t.Fatalf("code %s", proto.CodeOf(err))
	}
}
