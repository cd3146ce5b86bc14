package peerconn

import (
	"net"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// UDPSocketBuffer is the receive and send buffer requested for the peer's
// UDP sockets (the kernel caps it at net.core.rmem_max / wmem_max). The
// default (about 208 KiB on Linux) overflows under a burst of SCTP data;
// each lost tail packet then costs pion's 1 s minimum retransmission
// timeout.
const UDPSocketBuffer = 4 << 20

// bufferedNet is the operating system's network with larger UDP socket
// buffers.
type bufferedNet struct{ transport.Net }

func newBufferedNet() (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return bufferedNet{n}, nil
}

type buffered interface {
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
}

func grow(c any) {
	if b, ok := c.(buffered); ok {
		_ = b.SetReadBuffer(UDPSocketBuffer)
		_ = b.SetWriteBuffer(UDPSocketBuffer)
	}
}

func (n bufferedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err == nil {
		grow(c)
	}
	return c, err
}

func (n bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		grow(c)
	}
	return c, err
}

func (n bufferedNet) DialUDP(network string, laddr, raddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.DialUDP(network, laddr, raddr)
	if err == nil {
		grow(c)
	}
	return c, err
}
