package netlab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Reflector is a UDP server that answers every datagram with the source
// address it came from ("ip:port" as text): a minimal STUN, for checking
// what a NAT maps a flow to.
type Reflector struct {
	conn     *net.UDPConn
	wg       sync.WaitGroup
	received atomic.Int64
}

// Received counts the datagrams the reflector got.
func (r *Reflector) Received() int64 { return r.received.Load() }

// StartReflector runs a reflector in the host's namespace on port; it
// stops when the test ends.
func (h *Host) StartReflector(port uint16) *Reflector {
	h.lab.t.Helper()
	return h.StartReflectorAt(h.AddrPort(port).String())
}

// StartReflectorAt runs a reflector in the host's namespace on addr
// ("0.0.0.0:53" for a service bound to every address, as a resolver is).
func (h *Host) StartReflectorAt(addr string) *Reflector {
	t := h.lab.t
	t.Helper()
	c, err := h.ListenUDP(addr)
	if err != nil {
		t.Fatalf("netlab: reflector on %s: %v", h.name, err)
	}
	r := &Reflector{conn: c}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(r.Close)
	return r
}

// Addr is the reflector's address.
func (r *Reflector) Addr() netip.AddrPort {
	return r.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Close stops the reflector and waits for it.
func (r *Reflector) Close() {
	_ = r.conn.Close()
	r.wg.Wait()
}

func (r *Reflector) serve() {
	defer r.wg.Done()
	buf := make([]byte, 1500)
	for {
		_, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		r.received.Add(1)
		_, _ = r.conn.WriteToUDPAddrPort([]byte(from.String()), from)
	}
}

// ErrNoAnswer means a probe got no answer in time: the path is blocked.
var ErrNoAnswer = errors.New("netlab: no answer")

// Mapped sends a probe from conn to a reflector and returns the address
// the reflector saw (the NAT's mapping for this flow). It retries a few
// times within timeout; ErrNoAnswer if nothing came back.
func Mapped(conn *net.UDPConn, reflector netip.AddrPort, timeout time.Duration) (netip.AddrPort, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	for attempt := 0; attempt < 5 && time.Now().Before(deadline); attempt++ {
		if _, err := conn.WriteToUDPAddrPort([]byte("probe"), reflector); err != nil {
			return netip.AddrPort{}, err
		}
		wait := min(time.Until(deadline), timeout/5+time.Millisecond)
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return netip.AddrPort{}, err
			}
			if from.Addr().Unmap() != reflector.Addr() || from.Port() != reflector.Port() {
				continue // not our reflector's answer
			}
			return netip.ParseAddrPort(string(buf[:n]))
		}
	}
	return netip.AddrPort{}, fmt.Errorf("%w from %s within %s", ErrNoAnswer, reflector, timeout)
}

// StartTCPEcho runs a TCP echo server in the host's namespace on port; it
// stops when the test ends.
func (h *Host) StartTCPEcho(port uint16) netip.AddrPort {
	t := h.lab.t
	t.Helper()
	ln, err := h.Listen(h.AddrPort(port).String())
	if err != nil {
		t.Fatalf("netlab: TCP echo on %s: %v", h.name, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// TCPEcho connects from the host to addr, sends msg, and checks that it
// comes back.
func (h *Host) TCPEcho(ctx context.Context, addr netip.AddrPort, msg string) error {
	c, err := h.DialContext(ctx, "tcp4", addr.String())
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo from %s: got %q, want %q", addr, buf, msg)
	}
	return nil
}
