package deviceid

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Reaching a device without touching its services.
//
// A device that offers only SSH, VNC or a raw TCP port must not be
// contacted on that port before every session: a connection opened and
// dropped is, to sshd, a "Connection closed by … [preauth]" line, and to a
// VNC server an authentication failure that soon blacklists the agent's
// address (TigerVNC refuses even the right password for a while). So the
// check never connects to a service port. Instead it sends one empty UDP
// datagram to the discard port (9, RFC 863) from a connected socket, and
// lets the kernel do the rest:
//
//   - on the agent's own segment the kernel must first resolve the address
//     (ARP or NDP): the neighbour table then holds the device's MAC address,
//     which is what the MAC check reads;
//   - a host that is up answers the datagram with ICMP port unreachable,
//     which the connected socket reports as ECONNREFUSED; a router that
//     knows the host is gone answers host unreachable (EHOSTUNREACH), and
//     so does the kernel itself when ARP gets no answer.
//
// No application on the device sees anything: nothing listens on UDP 9
// (and if something does, it discards). A device that drops the datagram
// silently is not refused — the session's own first connection will tell
// — but its health says the agent could not confirm it.
//
// Why not read the neighbour table after the session's own first
// connection instead? That connection would already have gone to whoever
// holds the address before the check could refuse it. The table is read
// before the session AND after each connection of the session has been
// established (VerifyNeighbor), before a byte is sent on it: the kernel's
// entry may be stale for a few seconds after an address moved to another
// machine, but a TCP handshake only completes with the machine whose MAC
// the entry then holds, so the per-connection check is exact.

// DiscardPort is where the reachability datagram goes (RFC 863).
const DiscardPort = 9

// DefaultReachWait bounds the wait for an answer to the datagram from a
// device that is not on the agent's segment (on the segment, the
// neighbour table answers first).
const DefaultReachWait = 500 * time.Millisecond

// Ways a check confirmed that a device is there (Result.Reached).
const (
	ReachedWeb      = "web"       // its web port answered (TCP, TLS)
	ReachedNeighbor = "neighbour" // the neighbour table resolved it (same segment)
	ReachedICMP     = "icmp"      // it answered the datagram with port unreachable
	ReachedSNMP     = "snmp"      // it answered SNMP
)

// nudge sends the reachability datagram to addr and waits up to wait for
// the device to show itself: an ICMP answer, or a complete neighbour table
// entry. It returns how the device was reached ("" when nothing answered
// in time) or an error when the network says the device is not there.
func (c *Checker) nudge(ctx context.Context, addr netip.Addr, wait time.Duration) (string, error) {
	port := c.ProbePort
	if port == 0 {
		port = DiscardPort
	}
	conn, err := c.dialUDP(ctx, netip.AddrPortFrom(addr, uint16(port))) //nolint:gosec // port validated
	if err != nil {
		return "", fmt.Errorf("probe %s: %w", addr, err)
	}
	defer conn.Close()
	if _, err := conn.Write(nil); err != nil {
		if how, done := datagramAnswer(err); done {
			return how, nil
		}
		return "", fmt.Errorf("probe %s: %w", addr, err)
	}
	neighbor := c.neighbor()
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	buf := make([]byte, 1)
	for {
		if _, err := neighbor(addr); err == nil {
			return ReachedNeighbor, nil
		}
		step := min(time.Until(deadline), pollEvery(addr))
		if step <= 0 {
			return "", nil
		}
		_ = conn.SetReadDeadline(time.Now().Add(step))
		_, err := conn.Read(buf)
		if err == nil {
			continue // something answered on UDP 9: still not proof enough of who
		}
		if how, done := datagramAnswer(err); done {
			if how == "" {
				return "", fmt.Errorf("no route to %s: %w (is the device on?)", addr, err)
			}
			return how, nil
		}
	}
}

// datagramAnswer interprets an error on the probe socket: port unreachable
// proves the host is up; host or network unreachable proves it is not
// reachable ("" and done); anything else (a timeout) says nothing yet.
func datagramAnswer(err error) (how string, done bool) {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReachedICMP, true
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTDOWN):
		return "", true
	}
	return "", false
}

func (c *Checker) dialUDP(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
	if c.Dial != nil {
		return c.Dial(ctx, "udp", to.String())
	}
	var d net.Dialer
	return d.DialContext(ctx, "udp", to.String())
}

func (c *Checker) neighbor() func(netip.Addr) (net.HardwareAddr, error) {
	if c.Neighbor != nil {
		return c.Neighbor
	}
	return NeighborMAC
}

// waitNeighbor polls the neighbour table until it holds a complete entry
// for addr or ctx ends (ARP gives up after about three seconds).
func (c *Checker) waitNeighbor(ctx context.Context, addr netip.Addr) (net.HardwareAddr, error) {
	neighbor := c.neighbor()
	every := pollEvery(addr)
	for {
		mac, err := neighbor(addr)
		if err == nil || !errors.Is(err, ErrNoNeighbor) {
			return mac, err
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// pollEvery is how often the neighbour table is read while waiting:
// IPv4's is a file, IPv6's a run of ip(8).
func pollEvery(addr netip.Addr) time.Duration {
	if addr.Is6() && !addr.Is4In6() {
		return 25 * time.Millisecond
	}
	return 5 * time.Millisecond
}

// VerifyNeighbor checks, for a connection to the device that has just
// been established and on which nothing was sent yet, that the neighbour
// table holds want (the configured MAC address) for its remote address.
// The handshake confirmed that entry, so the machine that answered is the
// one it names. A mismatch is a *proto.Error (device_failed) wrapping a
// *Mismatch.
func (c *Checker) VerifyNeighbor(device string, conn net.Conn, want string) error {
	wantMAC, err := net.ParseMAC(want)
	if err != nil {
		return fail(device, err)
	}
	ap, err := netip.ParseAddrPort(conn.RemoteAddr().String())
	if err != nil {
		return fail(device, fmt.Errorf("remote address %s: %w", conn.RemoteAddr(), err))
	}
	addr := ap.Addr().Unmap().WithZone("")
	got, err := c.neighbor()(addr)
	if err != nil {
		return fail(device, fmt.Errorf("read the MAC address of %s after connecting: %w", addr, err))
	}
	if !strings.EqualFold(got.String(), wantMAC.String()) {
		return mismatch(&Mismatch{Device: device, Addr: addr, What: "MAC address", Got: got.String(), Want: wantMAC.String()})
	}
	return nil
}
