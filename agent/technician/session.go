// Package technician is the technician's side of a session outside the
// browser: it opens a session through signaling, connects to the agent peer
// to peer, and exposes the tunnel for local HTTP serving and TCP forwarding.
// The porthole CLI is a thin layer over it; tests and benchmarks use it as
// the Go technician peer.
package technician

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/porthole-dev/porthole/agent/bufpool"
	"github.com/porthole-dev/porthole/agent/egress"
	"github.com/porthole-dev/porthole/agent/negotiate"
	"github.com/porthole-dev/porthole/agent/peerconn"
	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/proto"
)

// Config says where and how to open a session.
type Config struct {
	Server string // signaling base URL
	Token  string // technician token
	Device string
	// RelayOnly forces the TURN relay (ICE transport policy "relay").
	RelayOnly bool
	// LoopbackOnly restricts ICE to loopback (local demo and tests).
	LoopbackOnly bool
	Logger       *slog.Logger
	// Progress, if set, is told what the session is waiting for, so a CLI
	// can show it.
	Progress func(msg string)
	// HTTPClient for the API calls; nil uses a default with timeouts.
	HTTPClient *http.Client
	// MaxChannels caps concurrent data channels (tunnel default if 0).
	MaxChannels int
	// Egress is the way out of the technician's network: direct, or
	// through an HTTP proxy (agent/egress), for the signaling WebSocket
	// and TURN over TCP/TLS. Nil means direct. HTTPClient, when nil, is
	// built on it.
	Egress *egress.Egress
}

// Session is an open, connected session.
type Session struct {
	Info   *proto.SessionInfo
	Client *tunnel.Client

	api  *sigclient.API
	bufs *bufpool.Pool   // body-copy buffers for HTTPHandler
	conn *sigclient.Conn // the first signaling connection; cur is the current one
	cur  atomic.Pointer[sigclient.Conn]
	dial func(ctx context.Context) (*sigclient.Conn, error)
	pc   *webrtc.PeerConnection
	log  *slog.Logger

	peer     *negotiate.Peer
	progress func(string)
	// established is set once the first connection is up; from then on a
	// broken path starts recover. restored is signalled on each return to
	// connected.
	established atomic.Bool
	recovering  atomic.Bool
	restored    chan struct{}
	restarts    atomic.Int64
	resumes     atomic.Int64
	rejoining   atomic.Bool
	sitePath    atomic.Pointer[proto.SessionPath]
	// ice is the session's ICE servers (session.ready's, then the latest
	// ice.servers); relay the TURN URLs of the relay this side went
	// through when last connected (nil: not relayed); refreshed is
	// signalled on each ice.servers applied, at refreshedAt (Unix ns).
	ice         atomic.Pointer[[]proto.ICEServer]
	relay       atomic.Pointer[[]string]
	refreshed   chan []string
	refreshedAt atomic.Int64

	ended    chan struct{}
	endOnce  sync.Once
	endMu    sync.Mutex
	endCause *proto.SessionEnd
	wg       sync.WaitGroup
}

// Open creates a session and returns once the peer connection is up.
func Open(ctx context.Context, cfg Config) (*Session, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	if cfg.Egress == nil {
		cfg.Egress = egress.Direct()
	}
	hc := cfg.HTTPClient
	if hc == nil {
		scheme, _, _ := strings.Cut(cfg.Server, ":")
		hc = cfg.Egress.HTTPClient(scheme, nil, 30*time.Second)
	}
	api := &sigclient.API{Base: cfg.Server, Token: cfg.Token, Client: hc}

	progress(fmt.Sprintf("asking signaling for a session to %s (the agent checks the device)…", cfg.Device))
	info, err := api.CreateSession(ctx, cfg.Device)
	if err != nil {
		return nil, err
	}
	s := &Session{Info: info, api: api, bufs: bufpool.New(), log: cfg.Logger.With("session", info.Session, "device", info.Device), ended: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()

	progress("joining the session over signaling…")
	h := http.Header{}
	h.Set("Authorization", "Bearer "+info.Token)
	s.dial = func(ctx context.Context) (*sigclient.Conn, error) {
		return sigclient.Dial(ctx, sigclient.SocketURL(cfg.Server, proto.PathSessionSocket), sigclient.Options{Header: h, Logger: s.log,
			Egress: cfg.Egress, CertHint: "give the CA that issued it in SSL_CERT_FILE (a proxy that inspects TLS: its CA)"})
	}
	s.conn, err = s.dial(ctx)
	if err != nil {
		return nil, err
	}
	s.cur.Store(s.conn)
	if err := s.conn.Send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient, Software: "porthole/dev"}); err != nil {
		return nil, err
	}
	ready, err := s.waitReady(ctx)
	if err != nil {
		return nil, err
	}

	progress("connecting peer to peer (ICE)…")
	s.pc, err = peerconn.NewPeerConnection(peerconn.Config{
		ICEServers:   ready.ICEServers,
		RelayOnly:    cfg.RelayOnly,
		LoopbackOnly: cfg.LoopbackOnly,
		Logger:       s.log,
		Egress:       cfg.Egress,
	})
	if err != nil {
		return nil, fmt.Errorf("create peer connection: %w", err)
	}
	connected := make(chan webrtc.PeerConnectionState, 4)
	s.progress = progress
	s.restored = make(chan struct{}, 1)
	s.refreshed = make(chan []string, 1)
	s.ice.Store(&ready.ICEServers)
	s.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.log.Debug("peer connection state", "state", st)
		if s.established.Load() {
			// After the first connection, a broken path is repaired with
			// an ICE restart rather than ending the session.
			switch st {
			case webrtc.PeerConnectionStateDisconnected, webrtc.PeerConnectionStateFailed:
				s.wg.Add(1)
				go s.recover()
			case webrtc.PeerConnectionStateConnected:
				s.noteRelay()
				select {
				case s.restored <- struct{}{}:
				default:
				}
			}
			return
		}
		if st == webrtc.PeerConnectionStateConnected {
			s.noteRelay()
		}
		select {
		case connected <- st:
		default:
		}
		if st == webrtc.PeerConnectionStateFailed {
			s.end(&proto.SessionEnd{Reason: proto.EndError, Message: "peer connection failed"})
		}
	})
	s.Client = tunnel.NewClient(s.pc, tunnel.ClientConfig{MaxChannels: cfg.MaxChannels, Logger: s.log})
	peer := negotiate.New(s.pc, func(typ proto.MsgType, payload any) error {
		return s.cur.Load().Send(typ, info.Session, payload)
	})
	s.peer = peer
	s.wg.Add(1)
	go s.readLoop(peer)
	if err := peer.Offer(); err != nil {
		return nil, err
	}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the peer connection: %w", context.Cause(ctx))
		case <-s.ended:
			return nil, s.endError()
		case st := <-connected:
			switch st {
			case webrtc.PeerConnectionStateConnected:
				ok = true
				s.established.Store(true)
				return s, nil
			case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
				return nil, fmt.Errorf("peer connection %s: no working path between you and the agent", st)
			}
		}
	}
}

func (s *Session) waitReady(ctx context.Context) (*proto.SessionReady, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for session.ready: %w", context.Cause(ctx))
		case env, ok := <-s.conn.Incoming():
			if !ok {
				return nil, fmt.Errorf("signaling closed the connection: %w", s.conn.Err())
			}
			switch env.Type {
			case proto.TypeWelcome:
			case proto.TypeSessionReady:
				var r proto.SessionReady
				if err := proto.DecodeData(env, &r); err != nil {
					return nil, err
				}
				return &r, nil
			case proto.TypeSessionEnd:
				var e proto.SessionEnd
				_ = proto.DecodeData(env, &e)
				return nil, fmt.Errorf("session ended before it started: %s %s", e.Reason, e.Message)
			case proto.TypeError:
				var e proto.Error
				_ = proto.DecodeData(env, &e)
				return nil, &e
			}
		}
	}
}

func (s *Session) readLoop(peer *negotiate.Peer) {
	defer s.wg.Done()
	for {
		conn := s.cur.Load()
		select {
		case <-s.ended:
			return
		case env, ok := <-conn.Incoming():
			if !ok {
				// Established sessions keep working peer to peer without
				// signaling; only the setup needs it, and fails without it
				// (a signaling node that died, say) rather than hang.
				s.log.Warn("signaling connection lost", "err", conn.Err())
				if !s.established.Load() {
					s.end(&proto.SessionEnd{Reason: proto.EndError, Message: fmt.Sprintf("signaling connection lost while connecting (%v); open the session again", conn.Err())})
					return
				}
				// A node that drains (or died) leaves the session to
				// another: rejoin it there, for the ICE restarts the path
				// may need later.
				if !s.resume() {
					return
				}
				continue
			}
			switch env.Type {
			case proto.TypeAnswer, proto.TypeCandidate:
				if err := peer.Handle(env); err != nil {
					s.log.Warn("peering message refused", "type", env.Type, "err", err)
				}
			case proto.TypeICEServers:
				s.applyICEServers(env)
			case proto.TypeSessionEnd:
				var e proto.SessionEnd
				if err := proto.DecodeData(env, &e); err != nil {
					e = proto.SessionEnd{Reason: proto.EndError, Message: err.Error()}
				}
				s.end(&e)
				return
			case proto.TypeError:
				var e proto.Error
				_ = proto.DecodeData(env, &e)
				s.log.Warn("signaling reported an error", "code", e.Code, "message", e.Message)
			case proto.TypeDrain:
				s.log.Info("signaling node draining; the session moves to another node")
			case proto.TypeSessionPath:
				// The agent's account of its end: how it reached the relay
				// and why the site needed it, which this side cannot see.
				var p proto.SessionPath
				if err := proto.DecodeData(env, &p); err != nil {
					s.log.Debug("path report refused", "err", err)
					continue
				}
				s.sitePath.Store(&p)
				s.progress("the agent's side: " + p.Describe())
			}
		}
	}
}

// SitePath is the agent's latest report of its end of the path (nil
// before one arrived).
func (s *Session) SitePath() *proto.SessionPath { return s.sitePath.Load() }

func (s *Session) end(e *proto.SessionEnd) {
	s.endOnce.Do(func() {
		s.endMu.Lock()
		s.endCause = e
		s.endMu.Unlock()
		close(s.ended)
	})
}

// Ended is closed when the session ended (expired, ended by the agent or
// signaling, or the peer connection failed).
func (s *Session) Ended() <-chan struct{} { return s.ended }

// EndReason says why the session ended; nil while it is running.
func (s *Session) EndReason() *proto.SessionEnd {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	return s.endCause
}

func (s *Session) endError() error {
	if e := s.EndReason(); e != nil {
		return fmt.Errorf("session ended: %s: %s", e.Reason, e.Message)
	}
	return errors.New("session ended")
}

// RecoveryTimeout is how long a session whose path broke keeps restarting
// ICE before it ends; RestartRetry is how long one restart may take before
// the next (its offer may have been lost while the agent itself was
// reconnecting to signaling).
const (
	RecoveryTimeout = 60 * time.Second
	RestartRetry    = 4 * time.Second
)

// recover repairs a broken path with ICE restarts: a new offer with new ICE
// credentials, over signaling, until the connection is back, RecoveryTimeout
// passes (the session ends) or the session ends. The DTLS and SCTP
// associations and every data channel survive, so requests in flight
// complete once SCTP retransmits over the new path. Only one runs at a time.
func (s *Session) recover() {
	defer s.wg.Done()
	if !s.recovering.CompareAndSwap(false, true) {
		return
	}
	defer s.recovering.Store(false)
	select {
	case <-s.restored: // a stale signal from before the break
	default:
	}
	start := time.Now()
	deadline := time.NewTimer(RecoveryTimeout)
	defer deadline.Stop()
	// The relay of the path that broke: pion keeps the last selected pair
	// until the restart (the pair may have changed since connected).
	lost := s.relay.Load()
	if _, err := s.Path(); err == nil {
		s.noteRelay()
		lost = s.relay.Load()
	}
	for attempt := 1; ; attempt++ {
		if st := s.pc.ConnectionState(); st == webrtc.PeerConnectionStateConnected || st == webrtc.PeerConnectionStateClosed {
			return
		}
		s.restarts.Add(1)
		if lost != nil && attempt <= maxRelayRefreshes {
			// Through a relay, the relay may be what broke: restart with
			// the session's relays without it.
			relays, ok := s.refreshRelays(*lost)
			relays = slices.DeleteFunc(relays, func(h string) bool { return strings.Contains(hostsOf(*lost), h) })
			if ok && len(relays) > 0 {
				s.progress(fmt.Sprintf("relay lost (%s), reconnecting through relay %s (attempt %d)…", hostsOf(*lost), strings.Join(relays, ", "), attempt))
			} else {
				s.progress(fmt.Sprintf("relay lost (%s), no other relay from signaling; restarting ICE (attempt %d)…", hostsOf(*lost), attempt))
			}
		} else {
			s.progress(fmt.Sprintf("connection to the agent interrupted; restarting ICE (attempt %d)…", attempt))
		}
		s.log.Info("connection to the agent interrupted; restarting ICE", "attempt", attempt)
		if err := s.peer.Restart(); err != nil {
			s.log.Warn("ICE restart failed", "err", err)
		}
		retry := time.NewTimer(RestartRetry)
		select {
		case <-s.restored:
			retry.Stop()
			took := time.Since(start).Round(time.Millisecond)
			path := "unknown path"
			if p, err := s.Path(); err == nil {
				path = p.String()
			}
			s.log.Info("connection to the agent restored", "after", took, "restarts", attempt, "path", path)
			s.progress(fmt.Sprintf("connection restored in %s after %d ICE restart(s): %s", took, attempt, path))
			return
		case <-retry.C:
		case <-deadline.C:
			retry.Stop()
			s.end(&proto.SessionEnd{Reason: proto.EndError, Message: "the connection to the agent broke and ICE restarts did not restore it"})
			return
		case <-s.ended:
			retry.Stop()
			return
		}
	}
}

// ResumeTimeout bounds how long an established session tries to rejoin
// signaling after its connection closed; the peer path does not depend on
// it, so a session that gives up goes on without signaling.
const ResumeTimeout = 60 * time.Second

// resume reconnects the session's signaling after its connection closed:
// the session socket again (through the load balancer, to whichever node
// owns the session now), hello, and session.ready. It reports whether it
// did; it gives up at ResumeTimeout, when the session ended, or when
// signaling refuses this client for good (another window holds the
// session, the token is bound elsewhere).
func (s *Session) resume() bool {
	select {
	case <-s.ended:
		return false
	default:
	}
	s.rejoining.Store(true)
	defer s.rejoining.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), ResumeTimeout)
	defer cancel()
	go func() {
		select {
		case <-s.ended:
			cancel()
		case <-ctx.Done():
		}
	}()
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		conn, final, err := s.rejoin(ctx)
		if err == nil {
			old := s.cur.Swap(conn)
			_ = old.Close()
			s.resumes.Add(1)
			s.log.Info("signaling connection resumed", "attempt", attempt)
			return true
		}
		if final {
			s.log.Warn("signaling refused to resume the session; it goes on peer to peer without signaling", "err", err)
			return false
		}
		s.log.Debug("resuming signaling failed; retrying", "attempt", attempt, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.log.Warn("signaling could not be rejoined; the session goes on peer to peer without signaling", "err", err)
			return false
		case <-t.C:
		}
		wait = min(wait*2, time.Second)
	}
}

// rejoin makes one attempt of resume; final says not to try again.
func (s *Session) rejoin(ctx context.Context) (conn *sigclient.Conn, final bool, err error) {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err = s.dial(actx)
	if err != nil {
		return nil, false, err
	}
	if err := conn.Send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient, Software: "porthole/dev"}); err != nil {
		conn.Close()
		return nil, false, err
	}
	for {
		select {
		case <-actx.Done():
			conn.Close()
			return nil, false, context.Cause(actx)
		case env, ok := <-conn.Incoming():
			if !ok {
				return nil, false, fmt.Errorf("signaling closed the connection: %w", conn.Err())
			}
			switch env.Type {
			case proto.TypeSessionReady:
				return conn, false, nil
			case proto.TypeSessionEnd:
				var e proto.SessionEnd
				_ = proto.DecodeData(env, &e)
				conn.Close()
				s.end(&e)
				return nil, true, fmt.Errorf("session ended: %s", e.Reason)
			case proto.TypeError:
				var e proto.Error
				_ = proto.DecodeData(env, &e)
				conn.Close()
				switch e.Code {
				case proto.CodeSessionInUse, proto.CodeUnauthorized, proto.CodeForbidden:
					return nil, true, &e
				}
				return nil, false, &e
			}
		}
	}
}

// Rejoining reports whether the session is trying to rejoin signaling
// (its connection closed and resume has not succeeded or given up yet).
func (s *Session) Rejoining() bool { return s.rejoining.Load() }

// Resumes counts the times the session rejoined signaling after its
// connection closed (a node drained).
func (s *Session) Resumes() int64 { return s.resumes.Load() }

// RefreshWait bounds the wait for signaling's ice.servers before an ICE
// restart goes ahead with the servers it has; maxRelayRefreshes is how
// many restarts of one recovery ask for relays anew (signaling bounds
// them per session too).
const (
	RefreshWait       = 2 * time.Second
	maxRelayRefreshes = 3
)

// noteRelay records which relay the new path goes through (nil when not
// relayed): this side's, or else the agent's (a technician that reaches
// the agent's relay directly still depends on it).
func (s *Session) noteRelay() {
	p, err := s.Path()
	addr := p.RelayAddr
	if addr == "" {
		addr = p.RemoteRelayAddr
	}
	if err != nil || addr == "" {
		s.relay.Store(nil)
		return
	}
	urls := peerconn.RelayURL(*s.ice.Load(), addr)
	if len(urls) == 0 {
		urls = []string{"turn:" + addr} // unnamed: signaling matches no relay and leaves none out
	}
	s.relay.Store(&urls)
}

// refreshRelays asks signaling for the session's relays without lost and
// waits, at most RefreshWait, for them to be applied; an ice.servers that
// arrived moments ago (the agent asked first) is used as it is. It
// returns the relays now configured.
func (s *Session) refreshRelays(lost []string) ([]string, bool) {
	if time.Since(time.Unix(0, s.refreshedAt.Load())) < 2*proto.ICERefreshInterval {
		return peerconn.RelayHosts(*s.ice.Load()), true
	}
	select {
	case <-s.refreshed: // stale
	default:
	}
	s.log.Info("asking signaling for the session's relays anew", "lost", strings.Join(lost, " "))
	if err := s.cur.Load().Send(proto.TypeICERefresh, s.Info.Session, &proto.ICERefresh{Failed: lost[:min(len(lost), proto.MaxFailedRelays)]}); err != nil {
		s.log.Warn("ice.refresh not sent", "err", err)
		return nil, false
	}
	t := time.NewTimer(RefreshWait)
	defer t.Stop()
	select {
	case relays := <-s.refreshed:
		return relays, true
	case <-t.C:
		return nil, false
	case <-s.ended:
		return nil, false
	}
}

// applyICEServers takes signaling's ice.servers: the next ICE restart
// gathers with them.
func (s *Session) applyICEServers(env *proto.Envelope) {
	var up proto.ICEServersUpdate
	if err := proto.DecodeData(env, &up); err != nil {
		s.log.Warn("ice.servers refused", "err", err)
		return
	}
	if err := peerconn.SetICEServers(s.pc, up.ICEServers); err != nil {
		s.log.Warn("the new ICE servers were refused", "err", err)
		return
	}
	s.ice.Store(&up.ICEServers)
	s.refreshedAt.Store(time.Now().UnixNano())
	relays := peerconn.RelayHosts(up.ICEServers)
	s.log.Info("relays refreshed for the session", "relays", strings.Join(relays, " "))
	select {
	case s.refreshed <- relays:
	default:
	}
}

// hostsOf is the host:port of each TURN URL.
func hostsOf(urls []string) string {
	return strings.Join(peerconn.RelayHosts([]proto.ICEServer{{URLs: urls}}), ", ")
}

// Restarts counts the ICE restarts this session has made.
func (s *Session) Restarts() int64 { return s.restarts.Load() }

// Path reports the selected ICE path.
func (s *Session) Path() (peerconn.Path, error) { return peerconn.PathInfo(s.pc) }

// PeerConnection exposes the underlying connection (tests, stats).
func (s *Session) PeerConnection() *webrtc.PeerConnection { return s.pc }

// Close ends the session: it tells signaling, closes the tunnel and the
// peer connection, and waits for its goroutines.
func (s *Session) Close() error {
	s.end(&proto.SessionEnd{Reason: proto.EndByClient, Message: "ended by the technician"})
	if c := s.cur.Load(); c != nil {
		_ = c.Send(proto.TypeSessionEnd, s.Info.Session, &proto.SessionEnd{Reason: proto.EndByClient})
	}
	if s.Client != nil {
		_ = s.Client.Close()
	}
	if s.pc != nil {
		_ = s.pc.Close()
	}
	if c := s.cur.Load(); c != nil {
		_ = c.Close()
	}
	if s.conn != nil {
		_ = s.conn.Close()
	}
	s.wg.Wait()
	return nil
}
