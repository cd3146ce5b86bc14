package bench

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Delay relays simulate network latency in user space (the kernel here has
// no netem). Each direction is a FIFO line: a reader stamps every packet
// or segment with the time it may leave, and a sender writes it out at
// that time. Lines are bounded; a full UDP line drops like a router queue,
// a full TCP line stops reading (TCP flow control).

// udpLineCap bounds the packets in flight in one direction of a UDP relay
// (at 25 ms and 1,200-byte packets: 16,384 packets ≈ 6 Gbps of BDP).
const udpLineCap = 16384

// relaySocketBuffer is the relays' UDP socket buffer size.
const relaySocketBuffer = 4 << 20

type packet struct {
	due time.Time
	buf *[]byte
	n   int
	to  *net.UDPAddr
}

// UDPDelay forwards datagrams between clients and one target, each
// direction delayed by Delay. Each client source address gets its own
// upstream socket, so the target sees one peer per client.
type UDPDelay struct {
	Delay  time.Duration
	target *net.UDPAddr
	ln     *net.UDPConn
	// packets lends 2 KiB datagram buffers to this relay's readers.
	packets sync.Pool

	mu    sync.Mutex
	ups   map[string]*net.UDPConn
	conns []*net.UDPConn

	Dropped atomic.Int64
	wg      sync.WaitGroup
	closed  atomic.Bool
}

// NewUDPDelay listens on 127.0.0.1 and forwards to target.
func NewUDPDelay(target string, delay time.Duration) (*UDPDelay, error) {
	ta, err := net.ResolveUDPAddr("udp4", target)
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	growUDP(ln)
	r := &UDPDelay{Delay: delay, target: ta, ln: ln, ups: map[string]*net.UDPConn{}}
	r.packets.New = func() any { b := make([]byte, 2048); return &b }
	r.conns = append(r.conns, ln)
	down := r.newLine(ln) // towards clients, sent from the listening socket
	r.wg.Add(1)
	go r.readClients(down)
	return r, nil
}

func growUDP(c *net.UDPConn) {
	_ = c.SetReadBuffer(relaySocketBuffer)
	_ = c.SetWriteBuffer(relaySocketBuffer)
}

// Addr is the address clients send to.
func (r *UDPDelay) Addr() *net.UDPAddr { return r.ln.LocalAddr().(*net.UDPAddr) }

func (r *UDPDelay) newLine(out *net.UDPConn) chan packet {
	line := make(chan packet, udpLineCap)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for p := range line {
			if d := time.Until(p.due); d > 0 {
				time.Sleep(d)
			}
			_, _ = out.WriteToUDP((*p.buf)[:p.n], p.to)
			r.packets.Put(p.buf)
		}
	}()
	return line
}

func (r *UDPDelay) push(line chan packet, p packet) {
	select {
	case line <- p:
	default:
		r.Dropped.Add(1)
		r.packets.Put(p.buf)
	}
}

func (r *UDPDelay) readClients(down chan packet) {
	defer r.wg.Done()
	var lines []chan packet
	var readers sync.WaitGroup
	defer func() {
		for _, l := range lines {
			close(l)
		}
		readers.Wait() // no upstream reader pushes to down any more
		close(down)
	}()
	upLines := map[string]chan packet{}
	for {
		bp := r.packets.Get().(*[]byte)
		n, src, err := r.ln.ReadFromUDP(*bp)
		if err != nil {
			r.packets.Put(bp)
			return
		}
		key := src.String()
		up, ok := upLines[key]
		if !ok {
			uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				r.packets.Put(bp)
				continue
			}
			growUDP(uc)
			r.mu.Lock()
			if r.closed.Load() {
				r.mu.Unlock()
				uc.Close()
				r.packets.Put(bp)
				return
			}
			r.ups[key] = uc
			r.conns = append(r.conns, uc)
			r.mu.Unlock()
			up = r.newLine(uc)
			upLines[key], lines = up, append(lines, up)
			readers.Add(1)
			go r.readUpstream(uc, src, down, &readers)
		}
		r.push(up, packet{due: time.Now().Add(r.Delay), buf: bp, n: n, to: r.target})
	}
}

// readUpstream carries the target's answers back to one client.
func (r *UDPDelay) readUpstream(uc *net.UDPConn, client *net.UDPAddr, down chan packet, readers *sync.WaitGroup) {
	defer readers.Done()
	for {
		bp := r.packets.Get().(*[]byte)
		n, _, err := uc.ReadFromUDP(*bp)
		if err != nil {
			r.packets.Put(bp)
			return
		}
		if r.closed.Load() {
			r.packets.Put(bp)
			return
		}
		r.push(down, packet{due: time.Now().Add(r.Delay), buf: bp, n: n, to: client})
	}
}

// Close stops the relay and waits for its goroutines.
func (r *UDPDelay) Close() {
	r.mu.Lock()
	r.closed.Store(true)
	conns := r.conns
	r.mu.Unlock()
	// Upstream sockets first, then the listener: readClients closes the
	// down line only after every upstream reader returned.
	for _, c := range conns[1:] {
		_ = c.Close()
	}
	_ = conns[0].Close()
	r.wg.Wait()
}

// TCPDelay forwards TCP connections to a target with each direction
// delayed by Delay.
type TCPDelay struct {
	Delay  time.Duration
	target string
	ln     net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// tcpLineCap bounds the segments queued per direction (≤ 64 KiB each).
const tcpLineCap = 2048

// NewTCPDelay listens on 127.0.0.1 and forwards to target.
func NewTCPDelay(target string, delay time.Duration) (*TCPDelay, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &TCPDelay{Delay: delay, target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is the listening address.
func (r *TCPDelay) Addr() string { return r.ln.Addr().String() }

func (r *TCPDelay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *TCPDelay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp4", r.target)
		if err != nil {
			c.Close()
			continue
		}
		if !r.track(c) || !r.track(u) {
			c.Close()
			u.Close()
			return
		}
		r.wg.Add(2)
		go r.direction(c, u)
		go r.direction(u, c)
	}
}

type segment struct {
	due time.Time
	b   []byte // nil: EOF
}

// direction copies src to dst through a delay line.
func (r *TCPDelay) direction(src, dst net.Conn) {
	defer r.wg.Done()
	line := make(chan segment, tcpLineCap)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range line {
			if d := time.Until(s.due); d > 0 {
				time.Sleep(d)
			}
			if s.b == nil {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
				continue
			}
			if _, err := dst.Write(s.b); err != nil {
				src.Close()
				dst.Close()
				for range line {
				}
				return
			}
		}
	}()
	for {
		b := make([]byte, 64<<10)
		n, err := src.Read(b)
		if n > 0 {
			line <- segment{due: time.Now().Add(r.Delay), b: b[:n]}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				line <- segment{due: time.Now().Add(r.Delay)}
			} else {
				dst.Close()
			}
			break
		}
	}
	close(line)
	<-done
}

// Close stops the relay and its connections and waits for its goroutines.
func (r *TCPDelay) Close() {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.ln.Close()
	r.wg.Wait()
}
