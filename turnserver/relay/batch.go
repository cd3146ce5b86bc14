package relay

import (
	"net"

	"golang.org/x/net/ipv4"
)

// batchSize is how many datagrams one recvmmsg may return on a listener
// socket. Under load a read loop empties its socket this many at a time,
// one system call and one poller wake-up for all of them; idle, it returns
// each as it comes.
const batchSize = 32

// relayBatchSize is the same for an allocation's relay socket: one per
// allocation, hundreds at once, each fed by one peer, so fewer buffers
// (8 × 1600 bytes each).
const relayBatchSize = 8

// batchReader hands a socket's datagrams out one ReadFrom at a time, read
// from the kernel in batches (recvmmsg on Linux; one at a time elsewhere,
// where x/net falls back). It is for exactly one reading goroutine: pion
// runs one read loop per socket.
type batchReader struct {
	pc   *ipv4.PacketConn
	msgs []ipv4.Message
	next int // index of the next buffered message
	n    int // messages buffered
}

// newBatchReader reads pc size datagrams at a time; it returns nil if pc
// is not a UDP socket (then read it directly).
func newBatchReader(pc net.PacketConn, size int) *batchReader {
	u, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	b := &batchReader{pc: ipv4.NewPacketConn(u), msgs: make([]ipv4.Message, size)}
	for i := range b.msgs {
		b.msgs[i].Buffers = [][]byte{make([]byte, 1600)} // pion's inbound MTU and then some
	}
	return b
}

// ReadFrom copies the next datagram into p.
func (b *batchReader) ReadFrom(p []byte) (int, net.Addr, error) {
	if b.next >= b.n {
		n, err := b.pc.ReadBatch(b.msgs, 0)
		if err != nil {
			return 0, nil, err
		}
		b.next, b.n = 0, n
	}
	m := &b.msgs[b.next]
	b.next++
	return copy(p, m.Buffers[0][:m.N]), m.Addr, nil
}
