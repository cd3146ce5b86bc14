package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/turn/v4"
)

const (
	// tlsHandshakeTimeout bounds how long an accepted TLS connection may take
	// to finish its handshake; pion reads without deadlines otherwise.
	tlsHandshakeTimeout = 10 * time.Second
	// streamIdleTimeout closes a TCP/TLS client connection that sent nothing
	// for this long. Every client with a live permission refreshes it at
	// least every 5 minutes (RFC 8656 §9), so 10 minutes only drops dead or
	// idle connections, which would otherwise hold a goroutine forever.
	streamIdleTimeout = 10 * time.Minute
)

// readDone is closed when the goroutine reading a socket has been released:
// its blocking read returned an error, or the socket was closed before any
// read started. Run waits on these before returning.
type readDone struct {
	started atomic.Bool
	once    sync.Once
	ch      chan struct{}
}

func newReadDone() *readDone { return &readDone{ch: make(chan struct{})} }

func (d *readDone) markDone() { d.once.Do(func() { close(d.ch) }) }

// closed marks done if no reader ever started (pion closes probe sockets
// for EVEN-PORT without reading them).
func (d *readDone) closed() {
	if !d.started.Load() {
		d.markDone()
	}
}

// listenerPacketConn is a TURN listener socket handed to pion.
// Requests and responses pass through answers, which corrects pion's
// error codes (codes.go).
type listenerPacketConn struct {
	net.PacketConn
	done    *readDone
	answers *answers
	batch   *batchReader  // nil: read PacketConn directly
	writer  *batchWriter  // nil: write PacketConn directly
	reads   atomic.Uint64 // datagrams read, for tests and logs
}

// readOne reads the next datagram of pc into p, from its batch when it
// has one, and marks the read loop done when the socket fails.
func readOne(pc net.PacketConn, batch *batchReader, done *readDone, p []byte) (int, net.Addr, error) {
	done.started.Store(true)
	var (
		n    int
		addr net.Addr
		err  error
	)
	if batch != nil {
		n, addr, err = batch.ReadFrom(p)
	} else {
		n, addr, err = pc.ReadFrom(p)
	}
	if err != nil {
		done.markDone()
	}
	return n, addr, err
}

func (c *listenerPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := readOne(c.PacketConn, c.batch, c.done, p)
	if err != nil {
		return n, addr, err
	}
	c.reads.Add(1)
	c.answers.observe(p[:n])
	return n, addr, err
}

func (c *listenerPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	p2 := c.answers.fix(p)
	var err error
	if c.writer != nil {
		_, err = c.writer.WriteTo(p2, addr)
	} else {
		_, err = c.PacketConn.WriteTo(p2, addr)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *listenerPacketConn) Close() error {
	err := c.PacketConn.Close()
	c.done.closed()
	return err
}

// streamListener is a TCP (optionally TLS) listener handed to pion. It
// tracks accepted connections so shutdown can close them (pion's
// Server.Close closes only the listener), bounds the TLS handshake and
// closes idle connections.
type streamListener struct {
	net.Listener
	srv  *Server
	tls  *tls.Config // nil for plain TCP
	done *readDone
}

func (l *streamListener) Accept() (net.Conn, error) {
	l.done.started.Store(true)
	c, err := l.Listener.Accept()
	if err != nil {
		// pion's accept loop returns on any error, temporary or not.
		l.done.markDone()
		return nil, err
	}
	raw := &trackedConn{Conn: c, srv: l.srv}
	if !l.srv.trackConn(raw) {
		_ = c.Close()
		l.done.markDone()
		return nil, net.ErrClosed
	}
	sc := &streamConn{Conn: raw, obs: streamObserver{a: newAnswers(l.srv)}}
	if l.tls != nil {
		tc := tls.Server(raw, l.tls)
		sc.Conn, sc.handshake = tc, tc.HandshakeContext
	}
	return sc, nil
}

func (l *streamListener) Close() error {
	err := l.Listener.Close()
	l.done.closed()
	return err
}

// trackedConn is an accepted connection registered with the server.
type trackedConn struct {
	net.Conn
	srv  *Server
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.srv.untrackConn(c) })
	return c.Conn.Close()
}

// streamConn is what pion reads: it completes the TLS handshake under a
// deadline on first read, then renews an idle deadline before every read.
type streamConn struct {
	net.Conn
	handshake func(context.Context) error // nil once done, or for plain TCP
	obs       streamObserver              // read only by pion's one reader
}

// Write carries one whole message: pion's STUNConn writes each message
// with one call, so answers can correct a refusal.
func (c *streamConn) Write(p []byte) (int, error) {
	if _, err := c.Conn.Write(c.obs.a.fix(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *streamConn) Read(p []byte) (int, error) {
	if c.handshake != nil {
		// Only pion's per-connection goroutine reads, so no lock is needed.
		hs := c.handshake
		c.handshake = nil
		ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
		err := hs(ctx)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("tls handshake: %w", err)
		}
	}
	if err := c.Conn.SetReadDeadline(time.Now().Add(streamIdleTimeout)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	c.obs.feed(p[:n])
	return n, err
}

// relayGenerator hands pion the relay sockets: bound on RelayBindIP,
// advertised on PublicIP, wrapped so every datagram is checked by the policy
// and counted. With a port range, pion's RelayAddressGeneratorPortRange
// picks the port.
type relayGenerator struct {
	srv   *Server
	ports *turn.RelayAddressGeneratorPortRange // nil: any port the kernel gives
}

var _ turn.RelayAddressGenerator = relayGenerator{}

func (relayGenerator) Validate() error { return nil }

// newRelayGenerator builds the generator for s's configuration.
func newRelayGenerator(s *Server) (relayGenerator, error) {
	g := relayGenerator{srv: s}
	if s.cfg.RelayPortMin == 0 {
		return g, nil
	}
	g.ports = &turn.RelayAddressGeneratorPortRange{
		RelayAddress: s.cfg.PublicIP.AsSlice(),
		Address:      s.cfg.RelayBindIP.String(),
		MinPort:      s.cfg.RelayPortMin,
		MaxPort:      s.cfg.RelayPortMax,
		// Random picks in the range: with pion's default of 10 tries, a
		// range with few free ports left refuses allocations it could
		// serve (one free port in three is missed by 10 picks 1.7% of the
		// time); 64 picks miss it about once in 10^11.
		MaxRetries: 64,
	}
	if err := g.ports.Validate(); err != nil {
		return g, fmt.Errorf("relay port range: %w", err)
	}
	return g, nil
}

func (g relayGenerator) listen(network string, requestedPort int) (net.PacketConn, error) {
	s := g.srv
	bind := net.JoinHostPort(s.cfg.RelayBindIP.String(), strconv.Itoa(requestedPort))
	if g.ports != nil {
		if requestedPort != 0 && (requestedPort < int(g.ports.MinPort) || requestedPort > int(g.ports.MaxPort)) {
			return nil, fmt.Errorf("relay socket %s: %w", bind, ErrPortOutsideRange)
		}
		pc, _, err := g.ports.AllocatePacketConn(network, requestedPort)
		if err != nil {
			return nil, fmt.Errorf("relay socket in ports %d-%d: %w", g.ports.MinPort, g.ports.MaxPort, err)
		}
		return pc, nil
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(context.Background(), network, bind)
	if err != nil {
		return nil, fmt.Errorf("relay socket %s: %w", bind, err)
	}
	return pc, nil
}

func (g relayGenerator) AllocatePacketConn(network string, requestedPort int) (net.PacketConn, net.Addr, error) {
	s := g.srv
	pc, err := g.listen(network, requestedPort)
	if err != nil {
		return nil, nil, err
	}
	bind := pc.LocalAddr().String()
	ua, ok := pc.LocalAddr().(*net.UDPAddr)
	if !ok {
		_ = pc.Close()
		return nil, nil, fmt.Errorf("relay socket %s: unexpected address type %T", bind, pc.LocalAddr())
	}
	got, berr := s.growBuffers(pc)
	if !s.relayBufLogged.Swap(true) { // once: every relay socket asks the same
		s.logBuffers("relay", 1, got, berr)
	}
	port := ua.AddrPort().Port()
	udp, _ := pc.(*net.UDPConn)
	rc := &relayConn{
		PacketConn: pc,
		udp:        udp,
		srv:        s,
		relayAddr:  netip.AddrPortFrom(s.cfg.PublicIP, port),
		boundAddr:  netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), port),
		done:       newReadDone(),
		batch:      newBatchReader(pc, relayBatchSize),
	}
	if !s.trackRelay(rc) {
		_ = pc.Close()
		return nil, nil, ErrShuttingDown
	}
	return rc, net.UDPAddrFromAddrPort(rc.relayAddr), nil
}

func (relayGenerator) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, ErrTCPRelayUnsupported
}

// relayConn is one allocation's relayed socket.
type relayConn struct {
	net.PacketConn
	udp       *net.UDPConn // PacketConn, if it is one (always, but for tests)
	srv       *Server
	relayAddr netip.AddrPort // advertised to clients (PublicIP)
	boundAddr netip.AddrPort // what the socket is bound to
	done      *readDone
	batch     *batchReader // nil: read PacketConn directly; pion's one read loop uses it

	closeOnce sync.Once
	closeErr  error

	// Guarded by srv.relayMu.
	session string
	expiry  *time.Timer
	closed  bool
}

// WriteTo sends a client's datagram to a peer, unless the policy refuses the
// peer. pion checks permissions per IP only; this is where ports (service
// ports, other allocations) are decided, for Send indications and
// ChannelData alike.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("relay: unexpected peer address type %T", addr)
	}
	peer := ua.AddrPort()
	if err := c.srv.policy.Check(c.relayAddr.Addr(), peer); err != nil {
		c.srv.refusedDatagram(c, peer, err)
		// TURN drops such datagrams silently (RFC 8656 §11.3); an error here
		// would only make pion log once per packet.
		return len(p), nil
	}
	dst := netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
	var (
		n   int
		err error
	)
	if c.udp != nil {
		n, err = c.udp.WriteToUDPAddrPort(p, dst) // no net.Addr to allocate per datagram
	} else {
		n, err = c.PacketConn.WriteTo(p, net.UDPAddrFromAddrPort(dst))
	}
	if err == nil {
		c.srv.stats.packetsToPeers.Add(1)
		c.srv.stats.bytesToPeers.Add(uint64(n))
	}
	return n, err
}

// ReadFrom receives a peer's datagram for the client. pion relays it only
// if the client holds a permission for the source IP, which CheckIP granted.
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := readOne(c.PacketConn, c.batch, c.done, p)
	if err != nil {
		return n, addr, err
	}
	c.srv.stats.packetsFromPeers.Add(1)
	c.srv.stats.bytesFromPeers.Add(uint64(n))
	return n, addr, nil
}

// Close is idempotent: pion closes the socket when it deletes the
// allocation, and so do credential expiry, CloseSession and shutdown.
// Closing makes pion's read loop fail, which deletes the allocation.
func (c *relayConn) Close() error {
	c.closeOnce.Do(func() {
		c.srv.untrackRelay(c)
		c.closeErr = c.PacketConn.Close()
		c.done.closed()
	})
	return c.closeErr
}

// DefaultSocketBuffer is the receive and send buffer size asked for the UDP
// listeners and every relay socket when Config.SocketBuffer is 0. With the
// kernel's usual default (about 208 KiB) a burst from many sessions
// overflows a listener between two reads of its pion loop, and each loss
// costs the peers' congestion window.
const DefaultSocketBuffer = 4 << 20

// bufferSizes are a socket's receive and send buffer sizes as getsockopt
// reports them (on Linux twice the usable size asked for).
type bufferSizes struct{ Recv, Send int }

// growBuffers asks for Config.SocketBuffer bytes of buffer on pc and
// returns what the kernel granted. A negative SocketBuffer leaves the
// kernel's default.
func (s *Server) growBuffers(pc net.PacketConn) (bufferSizes, error) {
	size := s.cfg.SocketBuffer
	if size < 0 {
		return bufferSizes{}, nil
	}
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return bufferSizes{}, fmt.Errorf("socket buffers: %T has no file descriptor", pc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return bufferSizes{}, fmt.Errorf("socket buffers: %w", err)
	}
	got, err := setSocketBuffers(raw, size)
	if errors.Is(err, errors.ErrUnsupported) {
		if u, ok := pc.(*net.UDPConn); ok {
			err = errors.Join(u.SetReadBuffer(size), u.SetWriteBuffer(size))
		}
	}
	return got, err
}

// logBuffers states the buffer size the kernel granted to what, at Warn if
// it is less than asked (the kernel's limit, net.core.rmem_max and
// wmem_max, applies without CAP_NET_ADMIN).
func (s *Server) logBuffers(what string, sockets int, got bufferSizes, err error) {
	size := s.cfg.SocketBuffer
	if size < 0 {
		s.log.Info("socket buffers: kernel default", "sockets", what)
		return
	}
	attrs := []any{"sockets", what, "count", sockets, "asked", size,
		"recv_granted", got.Recv, "send_granted", got.Send, "kernel_reports_times", kernelBufferFactor}
	switch {
	case err != nil:
		s.log.Warn("socket buffers not set", append(attrs, "err", err)...)
	case got.Recv < kernelBufferFactor*size || got.Send < kernelBufferFactor*size:
		s.log.Warn("socket buffers smaller than asked: raise net.core.rmem_max/wmem_max or run with CAP_NET_ADMIN", attrs...)
	default:
		s.log.Info("socket buffers", attrs...)
	}
}
