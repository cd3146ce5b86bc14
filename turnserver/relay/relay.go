// Package relay is porthole-turn: a STUN/TURN relay on pion/turn/v4 with
// ephemeral TURN REST API credentials, a deny-by-default peer policy, UDP,
// TCP and TLS listeners, a per-credential allocation quota and counters.
//
// Build a Server with New (which validates and does no I/O), then call Run,
// which listens, serves until its context ends and returns once pion's read
// loops have been released. Ready is closed once every listener is bound;
// after that Addrs reports the bound addresses (useful with port 0):
//
//	srv, err := relay.New(relay.Config{Secret: secret, UDPListen: "0.0.0.0:3478", PublicIP: ip})
//	go func() { errc <- srv.Run(ctx) }()
//	select {
//	case <-srv.Ready():
//		addrs := srv.Addrs()
//	case err := <-errc: // failed to listen
//	}
//
// Credentials are minted with package credential (username
// "<expiry>:<session>", password base64(HMAC-SHA1(secret, username))).
package relay

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/turnserver/policy"
)

// Defaults for zero Config fields.
const (
	DefaultRealm                       = "porthole"
	DefaultMaxCredentialLifetime       = 35 * time.Minute // a 30-minute session plus clock skew
	DefaultMaxAllocationsPerCredential = 10
	// MinSecretLen is the shortest accepted shared secret.
	MinSecretLen = 16
)

// Config configures a Server. Zero values are safe defaults except Secret,
// at least one listener and a PublicIP that New can determine.
type Config struct {
	// Realm is the STUN realm; clients must use it. Default "porthole".
	Realm string

	// Secret is the shared secret of the TURN REST API credentials, also known
	// to whoever mints them (signaling). At least MinSecretLen bytes.
	Secret []byte

	// UDPListen, TCPListen and TLSListen are host:port addresses to listen
	// on; empty disables that listener. Port 0 picks a free port (see Addrs).
	// At least one is required.
	UDPListen string
	TCPListen string
	TLSListen string

	// UDPSockets is how many UDP sockets share UDPListen with SO_REUSEPORT,
	// each read by its own pion loop: the kernel spreads clients over them
	// by address, so one busy socket no longer drops what a single read
	// loop cannot keep up with. 0 means GOMAXPROCS; 1 is a plain socket.
	UDPSockets int

	// SocketBuffer is the receive and send buffer size, in bytes, asked
	// for every UDP listener and relay socket. As root (CAP_NET_ADMIN) it
	// is granted past net.core.rmem_max/wmem_max (SO_RCVBUFFORCE); else
	// the kernel caps it there. What the kernel granted is logged. 0 means
	// DefaultSocketBuffer; negative keeps the kernel's default.
	SocketBuffer int

	// TLS is the server configuration for TLSListen (required with it). It is
	// cloned and its MinVersion raised to TLS 1.2 if lower.
	TLS *tls.Config

	// PublicIP is the IPv4 address advertised as the relayed address
	// (XOR-RELAYED-ADDRESS). pion/turn v4.1.4 allocates IPv4 relays only.
	// Default: the host of the first listener, if it is a concrete IPv4
	// address.
	PublicIP netip.Addr

	// RelayBindIP is the local IPv4 address relay sockets bind to, e.g. the
	// private address behind a 1:1 NAT whose public side is PublicIP.
	// Default 0.0.0.0.
	RelayBindIP netip.Addr

	// RelayPortMin and RelayPortMax (inclusive) confine relayed addresses
	// to a UDP port range, so a firewall in front of the relay can be
	// written for it (pion's RelayAddressGeneratorPortRange picks ports
	// at random in it). Both zero: any port. Set both or neither.
	RelayPortMin, RelayPortMax uint16

	// Allow re-enables peer ranges the policy denies by default (loopback,
	// private, link-local, CGNAT, …). See package policy.
	Allow []netip.Prefix

	// AllowOwnHost lets peers reach the relay host's own addresses (every
	// interface's, PublicIP, subnet broadcasts) on ports that are not live
	// allocations, judged by the range rules like other peers. By default
	// they are refused whatever Allow says: a relay on an ordinary public
	// address would otherwise carry datagrams to every UDP service bound to
	// its wildcard. Only for setups where every peer runs on the relay's own
	// machine (the loopback demo and tests).
	AllowOwnHost bool

	// ServicePorts are further sockets of this host that peers must never
	// reach through the relay (metrics, admin). The relay's own listeners are
	// always included.
	ServicePorts []netip.AddrPort

	// MaxCredentialLifetime refuses usernames whose expiry lies further ahead
	// than now+MaxCredentialLifetime; pion itself does not cap it.
	// Default 35 minutes.
	MaxCredentialLifetime time.Duration

	// MaxAllocationsPerCredential caps live allocations per username; past
	// the cap Allocate is answered 486 Allocation Quota Reached. Default 10.
	MaxAllocationsPerCredential int

	// Logger receives state changes and refusals at Info, detail at Debug.
	// Default slog.Default().
	Logger *slog.Logger

	// Now is the clock for credential checks. Default time.Now.
	Now func() time.Time

	// Metrics, if set, gets the relay's metrics (porthole_turn_…, read
	// from Stats at scrape time; metrics.go). Nil exports none.
	Metrics prometheus.Registerer
}

// Addrs are the bound listener addresses; a zero field is a listener that is
// not configured.
type Addrs struct {
	UDP netip.AddrPort
	TCP netip.AddrPort
	TLS netip.AddrPort
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	AllocationsActive       int64  // live allocations
	AllocationsTotal        uint64 // allocations ever created
	AllocationsRefusedQuota uint64 // Allocate requests refused with 486
	AuthFailures            uint64 // requests refused for their credentials
	PermissionsRefused      uint64 // CreatePermission/ChannelBind peers refused by the policy
	DatagramsRefused        uint64 // datagrams towards a refused peer, dropped
	PacketsToPeers          uint64 // datagrams relayed from clients to peers
	BytesToPeers            uint64
	PacketsFromPeers        uint64 // datagrams received from peers on relay sockets
	BytesFromPeers          uint64
}

type counters struct {
	allocActive, allocTotal, quotaRefused, authFailures            atomic.Uint64
	permissionsRefused, datagramsRefused                           atomic.Uint64
	packetsToPeers, bytesToPeers, packetsFromPeers, bytesFromPeers atomic.Uint64
}

// Server is a TURN relay. Create it with New.
type Server struct {
	cfg   Config
	log   *slog.Logger
	quota *quota

	started atomic.Bool
	ready   chan struct{}
	addrsMu sync.Mutex
	addrs   Addrs
	udp     []*listenerPacketConn // set by Run before Ready, then read only

	relayBufLogged atomic.Bool

	// policy is set by Run before pion starts and never changed after.
	policy *policy.Policy

	stats counters
	host  hostAddrs

	relayMu  sync.RWMutex
	closing  bool
	relays   map[*relayConn]struct{}
	relayBy  map[netip.AddrPort]*relayConn // advertised and bound addresses
	sessions map[string]string             // listener|client → session, for logs

	connMu sync.Mutex
	conns  map[*trackedConn]struct{}
}

// New validates cfg, applies defaults and returns a Server. It does no I/O.
func New(cfg Config) (*Server, error) {
	if err := normalize(&cfg); err != nil {
		return nil, err
	}
	// Build the policy once to validate Allow and ServicePorts early.
	if _, err := policy.New(policy.Config{Allow: cfg.Allow, ServicePorts: cfg.ServicePorts}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		quota:    newQuota(cfg.MaxAllocationsPerCredential),
		ready:    make(chan struct{}),
		relays:   map[*relayConn]struct{}{},
		relayBy:  map[netip.AddrPort]*relayConn{},
		sessions: map[string]string{},
		conns:    map[*trackedConn]struct{}{},
	}
	if err := s.registerMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	return s, nil
}

func normalize(cfg *Config) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if cfg.Realm == "" {
		cfg.Realm = DefaultRealm
	}
	if len(cfg.Secret) < MinSecretLen {
		return bad("Secret must be at least %d bytes", MinSecretLen)
	}
	cfg.Secret = append([]byte(nil), cfg.Secret...)
	listeners := []string{cfg.UDPListen, cfg.TCPListen, cfg.TLSListen}
	if cfg.UDPListen == "" && cfg.TCPListen == "" && cfg.TLSListen == "" {
		return bad("no listener: set UDPListen, TCPListen or TLSListen")
	}
	for _, l := range listeners {
		if l == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(l); err != nil {
			return bad("listen address %q: %v", l, err)
		}
	}
	if cfg.TLSListen != "" {
		if cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil && cfg.TLS.GetConfigForClient == nil) {
			return bad("TLSListen needs TLS with a certificate")
		}
		cfg.TLS = cfg.TLS.Clone()
		if cfg.TLS.MinVersion < tls.VersionTLS12 {
			cfg.TLS.MinVersion = tls.VersionTLS12
		}
	}
	if !cfg.PublicIP.IsValid() {
		for _, l := range listeners {
			if host, _, err := net.SplitHostPort(l); err == nil {
				if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().Is4() && !ip.Unmap().IsUnspecified() {
					cfg.PublicIP = ip
					break
				}
			}
		}
	}
	if !cfg.PublicIP.IsValid() {
		return bad("PublicIP is required when no listener has a concrete IPv4 address")
	}
	cfg.PublicIP = cfg.PublicIP.Unmap()
	if !cfg.PublicIP.Is4() || cfg.PublicIP.IsUnspecified() {
		return bad("PublicIP must be a concrete IPv4 address (pion/turn v4 relays IPv4 only); got %v", cfg.PublicIP)
	}
	if !cfg.RelayBindIP.IsValid() {
		cfg.RelayBindIP = netip.IPv4Unspecified()
	}
	cfg.RelayBindIP = cfg.RelayBindIP.Unmap()
	if !cfg.RelayBindIP.Is4() {
		return bad("RelayBindIP must be an IPv4 address; got %v", cfg.RelayBindIP)
	}
	switch {
	case (cfg.RelayPortMin == 0) != (cfg.RelayPortMax == 0):
		return bad("set both RelayPortMin and RelayPortMax, or neither")
	case cfg.RelayPortMin > cfg.RelayPortMax:
		return bad("RelayPortMin %d is above RelayPortMax %d", cfg.RelayPortMin, cfg.RelayPortMax)
	}
	switch {
	case cfg.MaxCredentialLifetime < 0:
		return bad("MaxCredentialLifetime is negative")
	case cfg.MaxCredentialLifetime == 0:
		cfg.MaxCredentialLifetime = DefaultMaxCredentialLifetime
	}
	switch {
	case cfg.MaxAllocationsPerCredential < 0:
		return bad("MaxAllocationsPerCredential is negative")
	case cfg.MaxAllocationsPerCredential == 0:
		cfg.MaxAllocationsPerCredential = DefaultMaxAllocationsPerCredential
	}
	if cfg.SocketBuffer == 0 {
		cfg.SocketBuffer = DefaultSocketBuffer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

// Ready is closed once Run has bound every listener and pion is serving.
// If Run fails before that, Ready is never closed: wait on Run's error too.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound listener addresses. It is zero until Ready is
// closed.
func (s *Server) Addrs() Addrs {
	s.addrsMu.Lock()
	defer s.addrsMu.Unlock()
	return s.addrs
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		AllocationsActive:       int64(c.allocActive.Load()),
		AllocationsTotal:        c.allocTotal.Load(),
		AllocationsRefusedQuota: c.quotaRefused.Load(),
		AuthFailures:            c.authFailures.Load(),
		PermissionsRefused:      c.permissionsRefused.Load(),
		DatagramsRefused:        c.datagramsRefused.Load(),
		PacketsToPeers:          c.packetsToPeers.Load(),
		BytesToPeers:            c.bytesToPeers.Load(),
		PacketsFromPeers:        c.packetsFromPeers.Load(),
		BytesFromPeers:          c.bytesFromPeers.Load(),
	}
}

// Run listens, serves until ctx ends, then closes every listener,
// connection and allocation. It returns nil after a shutdown caused by ctx,
// or the error that kept it from listening. It returns once every read loop
// pion started has been released from its blocking read; the few
// bookkeeping statements pion runs after that do not block. Run may be
// called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	var (
		lc      net.ListenConfig
		addrs   Addrs
		closers []func() error
		waits   []*readDone
		udp     []*listenerPacketConn
		sc      = turn.ServerConfig{
			Realm:         s.cfg.Realm,
			AuthHandler:   s.authenticate,
			QuotaHandler:  s.reserveQuota,
			EventHandler:  s.eventHandler(),
			LoggerFactory: pionLoggerFactory{s.log},
		}
	)
	fail := func(err error) error {
		for _, c := range closers {
			_ = c()
		}
		return err
	}
	gen, err := newRelayGenerator(s)
	if err != nil {
		return err
	}
	if s.cfg.UDPListen != "" {
		n := s.cfg.UDPSockets
		if n <= 0 {
			n = runtime.GOMAXPROCS(0)
		}
		if reusePort == nil {
			n = 1
		}
		ulc := lc
		if n > 1 {
			ulc.Control = reusePort
		}
		addr := s.cfg.UDPListen
		var (
			got  bufferSizes
			berr error
		)
		for i := range n {
			pc, err := ulc.ListenPacket(ctx, "udp", addr)
			if err != nil {
				return fail(fmt.Errorf("listen udp %s: %w", addr, err))
			}
			g, err := s.growBuffers(pc)
			if i == 0 || err != nil {
				got, berr = g, err
			}
			lpc := &listenerPacketConn{PacketConn: pc, done: newReadDone(), answers: newAnswers(s), batch: newBatchReader(pc, batchSize), writer: newBatchWriter(pc, s.log)}
			udp = append(udp, lpc)
			closers, waits = append(closers, lpc.Close), append(waits, lpc.done)
			if i == 0 {
				// The others join the port the first one got (port 0).
				addrs.UDP = pc.LocalAddr().(*net.UDPAddr).AddrPort()
				addr = addrs.UDP.String()
			}
			sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{
				PacketConn:            lpc,
				RelayAddressGenerator: gen,
				PermissionHandler:     s.permissionHandler(pc.LocalAddr()),
			})
		}
		s.logBuffers("udp listener", n, got, berr)
	}
	for _, l := range []struct {
		addr string
		tls  *tls.Config
		out  *netip.AddrPort
	}{{s.cfg.TCPListen, nil, &addrs.TCP}, {s.cfg.TLSListen, s.cfg.TLS, &addrs.TLS}} {
		if l.addr == "" {
			continue
		}
		ln, err := lc.Listen(ctx, "tcp", l.addr)
		if err != nil {
			return fail(fmt.Errorf("listen tcp %s: %w", l.addr, err))
		}
		sl := &streamListener{Listener: ln, srv: s, tls: l.tls, done: newReadDone()}
		closers, waits = append(closers, sl.Close), append(waits, sl.done)
		*l.out = ln.Addr().(*net.TCPAddr).AddrPort()
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener:              sl,
			RelayAddressGenerator: gen,
			PermissionHandler:     s.permissionHandler(ln.Addr()),
		})
	}

	s.host.log = s.log
	s.host.refresh()
	pol, err := policy.New(policy.Config{
		Allow:        s.cfg.Allow,
		ServicePorts: s.servicePorts(addrs),
		RelayIPs:     s.relayIPs(),
		IsRelayAddr:  s.isRelayAddr,
		IsHostAddr:   s.host.contains,
		AllowOwnHost: s.cfg.AllowOwnHost,
	})
	if err != nil {
		return fail(fmt.Errorf("relay policy: %w", err))
	}
	s.policy = pol

	ts, err := turn.NewServer(sc)
	if err != nil {
		return fail(fmt.Errorf("start pion/turn: %w", err))
	}
	s.addrsMu.Lock()
	s.addrs = addrs
	s.udp = udp
	s.addrsMu.Unlock()
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go s.host.watch(watchCtx, watchDone)
	close(s.ready)
	s.log.Info("porthole-turn listening", "udp", addrs.UDP, "tcp", addrs.TCP, "tls", addrs.TLS,
		"public_ip", s.cfg.PublicIP, "realm", s.cfg.Realm, "allow_own_host", s.cfg.AllowOwnHost)

	<-ctx.Done()
	stopWatch()
	<-watchDone
	s.shutdown(ts, waits)
	for i, l := range udp {
		if w := l.writer; w != nil {
			s.log.Info("udp listener writes", "socket", i, "datagrams", w.writes.Load(),
				"queued", w.queuedSent.Load(), "batches", w.batches.Load(), "failed", w.failed.Load())
		}
	}
	s.log.Info("porthole-turn stopped")
	return nil
}

func (s *Server) shutdown(ts *turn.Server, waits []*readDone) {
	s.relayMu.Lock()
	s.closing = true // no new relay sockets from here on
	s.relayMu.Unlock()

	// Closes the UDP sockets and TCP/TLS listeners, not accepted connections.
	if err := ts.Close(); err != nil {
		s.log.Warn("closing listeners", "err", err)
	}
	s.connMu.Lock()
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.connMu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	for _, d := range waits {
		<-d.ch
	}
	// With every listener loop gone no allocation can start; close what is
	// left and wait for each allocation's read loop.
	s.relayMu.RLock()
	relays := make([]*relayConn, 0, len(s.relays))
	for r := range s.relays {
		relays = append(relays, r)
	}
	s.relayMu.RUnlock()
	for _, r := range relays {
		_ = r.Close()
	}
	for _, r := range relays {
		<-r.done.ch
	}
}

// servicePorts lists every address at which this host's own sockets can be
// reached: the bound listeners (a wildcard listener on every local address)
// and Config.ServicePorts.
func (s *Server) servicePorts(a Addrs) []netip.AddrPort {
	var local []netip.Addr
	localIPs := func() []netip.Addr {
		if local != nil {
			return local
		}
		local = append(local, s.relayIPs()...)
		local = append(local, netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback())
		ifaddrs, err := net.InterfaceAddrs()
		if err != nil {
			s.log.Warn("listing interface addresses for service ports", "err", err)
		}
		for _, ia := range ifaddrs {
			if pfx, err := netip.ParsePrefix(ia.String()); err == nil {
				local = append(local, pfx.Addr())
			}
		}
		return local
	}
	var out []netip.AddrPort
	for _, ap := range append([]netip.AddrPort{a.UDP, a.TCP, a.TLS}, s.cfg.ServicePorts...) {
		switch {
		case !ap.IsValid():
		case ap.Addr().Unmap().IsUnspecified():
			for _, ip := range localIPs() {
				out = append(out, netip.AddrPortFrom(ip, ap.Port()))
			}
		default:
			out = append(out, ap)
		}
	}
	return out
}

// relayIPs are the addresses relayed addresses live on.
func (s *Server) relayIPs() []netip.Addr {
	ips := []netip.Addr{s.cfg.PublicIP}
	if !s.cfg.RelayBindIP.IsUnspecified() && s.cfg.RelayBindIP != s.cfg.PublicIP {
		ips = append(ips, s.cfg.RelayBindIP)
	}
	return ips
}

// authenticate is pion's AuthHandler: it accepts TURN REST API usernames
// whose expiry lies in (now, now+MaxCredentialLifetime] and derives the
// long-term key from the shared secret. pion checks MESSAGE-INTEGRITY
// against the key; a mismatch reaches onAuth.
func (s *Server) authenticate(username, realm string, src net.Addr) ([]byte, bool) {
	key, reason := s.credentialKey(username, realm)
	if reason != "" {
		_, session, _ := proto.ParseTURNUsername(username)
		s.stats.authFailures.Add(1)
		s.log.Info("TURN credential refused", "session", session, "client", src, "reason", reason)
		return nil, false
	}
	return key, true
}

// credentialKey returns the long-term key of username, or why it is
// refused. It has no side effects (the answers layer asks it too).
func (s *Server) credentialKey(username, realm string) ([]byte, string) {
	expiry, _, err := proto.ParseTURNUsername(username)
	now := s.cfg.Now()
	switch {
	case err != nil:
		return nil, err.Error()
	case realm != s.cfg.Realm:
		return nil, "wrong realm"
	case !expiry.After(now):
		return nil, "credential expired"
	case expiry.Sub(now) > s.cfg.MaxCredentialLifetime:
		return nil, "expiry beyond the maximum credential lifetime"
	}
	return turn.GenerateAuthKey(username, realm, proto.TURNPassword(s.cfg.Secret, username)), ""
}

func (s *Server) reserveQuota(username, _ string, src net.Addr) bool {
	if s.quota.reserve(username, s.cfg.Now()) {
		return true
	}
	s.stats.quotaRefused.Add(1)
	_, session, _ := proto.ParseTURNUsername(username)
	s.log.Info("allocation quota reached", "session", session, "client", src,
		"max", s.cfg.MaxAllocationsPerCredential)
	return false
}

// permissionHandler checks the peer of every CreatePermission and
// ChannelBind on one listener (pion routes both through it).
func (s *Server) permissionHandler(listener net.Addr) turn.PermissionHandler {
	return func(client net.Addr, peerIP net.IP) bool {
		// A 16-byte ::ffff:a.b.c.d stays mapped here; the policy unmaps it.
		peer, ok := netip.AddrFromSlice(peerIP)
		err := policy.ErrInvalidPeer
		if ok {
			err = s.policy.CheckIP(s.cfg.PublicIP, peer)
		}
		if err == nil {
			return true
		}
		s.stats.permissionsRefused.Add(1)
		s.relayMu.RLock()
		session := s.sessions[sessionKey(listener, client)]
		s.relayMu.RUnlock()
		s.log.Info("relay peer refused", "session", session, "client", client, "peer", peerIP.String(), "err", err)
		return false
	}
}

func (s *Server) refusedDatagram(c *relayConn, peer netip.AddrPort, err error) {
	s.stats.datagramsRefused.Add(1)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.relayMu.RLock()
		session := c.session
		s.relayMu.RUnlock()
		s.log.Debug("datagram to refused peer dropped", "session", session, "relay", c.relayAddr, "peer", peer, "err", err)
	}
}

// sessionKey names a client's allocation for the logs. pion tells the
// permission handler of a stream listener the listener's address (0.0.0.0:443
// on a wildcard) but the events the accepted connection's (203.0.113.5:443),
// so a stream client is named by its own address alone, which is unique per
// connection.
func sessionKey(listener, client net.Addr) string {
	if _, ok := client.(*net.TCPAddr); ok {
		return "tcp|" + client.String()
	}
	return listener.String() + "|" + client.String()
}

func (s *Server) eventHandler() turn.EventHandler {
	return turn.EventHandler{
		OnAuth: func(src, _ net.Addr, _, username, _ string, method string, verdict bool) {
			if verdict {
				return
			}
			s.stats.authFailures.Add(1)
			_, session, _ := proto.ParseTURNUsername(username)
			s.log.Info("TURN credential refused", "session", session, "client", src,
				"method", method, "reason", "message integrity mismatch")
		},
		OnAllocationCreated: s.onAllocationCreated,
		OnAllocationDeleted: func(src, dst net.Addr, _, username, _ string) {
			s.stats.allocActive.Add(^uint64(0))
			s.quota.deleted(username)
			s.relayMu.Lock()
			delete(s.sessions, sessionKey(dst, src))
			s.relayMu.Unlock()
			_, session, _ := proto.ParseTURNUsername(username)
			s.log.Info("allocation deleted", "session", session, "client", src)
		},
	}
}

func (s *Server) onAllocationCreated(src, dst net.Addr, _, username, _ string, relayAddr net.Addr, _ int) {
	s.stats.allocActive.Add(1)
	s.stats.allocTotal.Add(1)
	s.quota.created(username)
	expiry, session, _ := proto.ParseTURNUsername(username) // authenticate accepted it
	var ap netip.AddrPort
	if ua, ok := relayAddr.(*net.UDPAddr); ok {
		ap = ua.AddrPort()
	}
	s.relayMu.Lock()
	s.sessions[sessionKey(dst, src)] = session
	if rc := s.relayBy[ap]; rc != nil && !rc.closed {
		rc.session = session
		// The allocation dies with its credential: pion would keep it alive
		// for its lifetime (up to an hour) and refreshes are all it checks.
		rc.expiry = time.AfterFunc(max(expiry.Sub(s.cfg.Now()), 0), func() {
			s.log.Info("allocation closed: credential expired", "session", session, "relay", ap)
			_ = rc.Close()
		})
	}
	s.relayMu.Unlock()
	s.log.Info("allocation created", "session", session, "client", src, "relay", relayAddr)
}

// CloseSession tears down every allocation whose credential names session
// and returns how many it closed. Later Allocate requests with an unexpired
// credential of that session still succeed; revoke by letting signaling stop
// minting and the credentials expire.
func (s *Server) CloseSession(session string) int {
	s.relayMu.RLock()
	var victims []*relayConn
	for r := range s.relays {
		if r.session == session {
			victims = append(victims, r)
		}
	}
	s.relayMu.RUnlock()
	for _, r := range victims {
		_ = r.Close()
	}
	if len(victims) > 0 {
		s.log.Info("session allocations closed", "session", session, "count", len(victims))
	}
	return len(victims)
}

func (s *Server) isRelayAddr(ap netip.AddrPort) bool {
	s.relayMu.RLock()
	defer s.relayMu.RUnlock()
	_, ok := s.relayBy[ap]
	return ok
}

func (s *Server) trackRelay(rc *relayConn) bool {
	s.relayMu.Lock()
	defer s.relayMu.Unlock()
	if s.closing {
		return false
	}
	s.relays[rc] = struct{}{}
	s.relayBy[rc.relayAddr] = rc
	if !rc.boundAddr.Addr().IsUnspecified() {
		s.relayBy[rc.boundAddr] = rc
	}
	return true
}

func (s *Server) untrackRelay(rc *relayConn) {
	s.relayMu.Lock()
	defer s.relayMu.Unlock()
	rc.closed = true
	if rc.expiry != nil {
		rc.expiry.Stop()
	}
	delete(s.relays, rc)
	for _, ap := range []netip.AddrPort{rc.relayAddr, rc.boundAddr} {
		if s.relayBy[ap] == rc {
			delete(s.relayBy, ap)
		}
	}
}

func (s *Server) trackConn(c *trackedConn) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	s.relayMu.RLock()
	closing := s.closing
	s.relayMu.RUnlock()
	if closing {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrackConn(c *trackedConn) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	delete(s.conns, c)
}
