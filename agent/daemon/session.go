package daemon

import (
	"cmp"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/porthole-dev/porthole/agent/deviceproxy"
	"github.com/porthole-dev/porthole/agent/fallback"
	"github.com/porthole-dev/porthole/agent/negotiate"
	"github.com/porthole-dev/porthole/agent/peerconn"
	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/proto"
)

// session is one technician's session with one device. Its peer connection
// may be replaced during its life: a reloaded browser shell sends a new
// offer on the same session.
type session struct {
	id      string
	device  *device
	user    string
	expires time.Time
	// proxy is the session's own access to the device: its cookie jar and
	// credentials outlive a replaced peer connection (a reloaded shell
	// stays logged in) and end with the session.
	proxy *deviceproxy.SessionProxy
	// pinned is the session's own proxy to the verified address.
	pinned *deviceproxy.Proxy
	// policy is what the session is held to (policy.go).
	policy *sessionPolicy
	stop   func() bool // stops the expiry timer
	// fetch serves the session's requests that signaling carries
	// (fallback.go); end cancels its context.
	fetch *fallback.Server
	end   context.CancelFunc

	mu     sync.Mutex
	rtc    *rtcPeer
	closed bool
	// ice is the session's ICE servers: session.open's, then the latest
	// ice.servers (a relay was lost).
	ice []proto.ICEServer
}

// servers returns the session's ICE servers now.
func (s *session) servers() []proto.ICEServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ice
}

// rtcPeer is one peer connection of a session and the tunnel served on it.
type rtcPeer struct {
	pc *webrtc.PeerConnection
	// relay is the TURN URLs of the relay the agent's end of the path
	// went through when it was last connected (nil: not relayed).
	relay  atomic.Pointer[[]string]
	peer   *negotiate.Peer
	tunnel *tunnel.Session
	cancel context.CancelFunc
}

func (r *rtcPeer) close() {
	r.cancel()
	_ = r.pc.Close()
	r.tunnel.Wait()
}

// current returns the live peer, or nil once the session is closed.
func (s *session) current() *rtcPeer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rtc
}

// close tears the session down and waits for its tunnel to stop.
func (s *session) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	r := s.rtc
	s.rtc = nil
	s.mu.Unlock()
	s.stop()
	s.end()
	s.fetch.Close()
	if r != nil {
		r.close()
	}
	if s.pinned != nil {
		s.pinned.CloseIdleConnections()
	}
}

// newPeer builds a peer connection for s and starts serving the tunnel on
// it before any offer is applied, so no data channel is missed.
func (a *Agent) newPeer(ctx context.Context, s *session) (*rtcPeer, error) {
	dials := &peerconn.DialLog{}
	pc, err := peerconn.NewPeerConnection(peerconn.Config{
		ICEServers:   s.servers(),
		LoopbackOnly: a.cfg.LoopbackOnly,
		Logger:       a.log,
		Egress:       a.cfg.Egress,
		RelayRoots:   a.cfg.RootCAs,
		Dials:        dials,
	})
	if err != nil {
		return nil, err
	}
	r := &rtcPeer{pc: pc}
	r.peer = negotiate.New(pc, func(typ proto.MsgType, payload any) error {
		return a.send(typ, s.id, payload)
	})
	srv := &tunnel.Server{
		HTTP:           a.guardHTTP(s),
		RequestContext: requestContext,
		DialTCP:        a.guardDialTCP(s),
		WebSocket:      a.guardWebSocket(s),
		SSH:            a.openTerminal(s),
		Logger:         a.log.With("session", s.id, "device", s.device.cfg.ID),
		Observe:        a.observe(s),
	}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		a.log.Debug("peer connection state", "session", s.id, "state", st)
		switch st {
		case webrtc.PeerConnectionStateConnected:
			lt, rt := r.peer.CandidateTypes()
			rep := pathReport{path: "unknown"}
			if info, err := peerconn.PathInfo(pc); err == nil {
				rep = newPathReport(info, dials.Proxy(info), lt, rt)
				// Which relay the path goes through: the agent's own, or
				// else the technician's (one of the session's relays too,
				// which the agent reaches directly).
				if addr := cmp.Or(info.RelayAddr, info.RemoteRelayAddr); addr != "" {
					urls := peerconn.RelayURL(s.servers(), addr)
					rep.relayServer = addr
					if len(urls) > 0 {
						rep.relayServer = urls[0]
					} else {
						urls = []string{"turn:" + addr} // unnamed: signaling matches no relay and leaves none out
					}
					r.relay.Store(&urls)
				} else {
					r.relay.Store(nil)
				}
			}
			a.reportPath(s, rep)
			a.log.Info("technician connected", "session", s.id, "device", s.device.cfg.ID, "user", s.user, "path", rep.path,
				"local", rep.local, "remote", rep.remote, "local_types", strings.Join(lt, ","), "remote_types", strings.Join(rt, ","),
				"relay", rep.relay, "proxy", rep.proxy, "reason", proto.SiteReason(rep.site))
		case webrtc.PeerConnectionStateDisconnected:
			// The path broke. If our own network changed, the signaling
			// connection is dead too, and the technician's ICE restart
			// offer can only reach us over a new one: check it now rather
			// than when its idle timeout fires.
			a.log.Info("connection to the technician interrupted; waiting for an ICE restart", "session", s.id)
			go a.checkSignaling()
			// Through a relay, the relay may be what broke: ask for the
			// session's relays without it, so that the technician's
			// restart finds this side ready on another (signaling answers
			// both sides, once a second at most).
			if urls := r.relay.Load(); urls != nil {
				a.log.Info("asking signaling for the session's relays anew", "session", s.id, "lost", strings.Join(*urls, " "))
				_ = a.send(proto.TypeICERefresh, s.id, &proto.ICERefresh{Failed: firstN(*urls, proto.MaxFailedRelays)})
			}
		case webrtc.PeerConnectionStateFailed:
			// Only the session's current peer may end it; a replaced one
			// failing is expected. The technician may still restart ICE.
			time.AfterFunc(restartGrace, func() {
				if s.current() == r && pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
					a.endSession(s, proto.EndError, "peer connection failed")
				}
			})
		}
	})
	tctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	r.tunnel = srv.Start(tctx, pc)
	return r, nil
}

// firstN is at most the first n of s.
func firstN(s []string, n int) []string { return s[:min(len(s), n)] }

// applyICEServers takes signaling's ice.servers for s: the session's next
// peer connections use them, and the current one at its next ICE restart.
func (a *Agent) applyICEServers(s *session, env *proto.Envelope) {
	var up proto.ICEServersUpdate
	if err := proto.DecodeData(env, &up); err != nil {
		a.log.Info("ice.servers refused", "session", s.id, "err", err)
		return
	}
	s.mu.Lock()
	s.ice = up.ICEServers
	r := s.rtc
	s.mu.Unlock()
	if r != nil {
		if err := peerconn.SetICEServers(r.pc, up.ICEServers); err != nil {
			a.log.Warn("the new ICE servers were refused", "session", s.id, "err", err)
			return
		}
	}
	a.log.Info("relays refreshed for the session", "session", s.id, "relays", strings.Join(up.Relays, " "))
}

// clientOrigin is the tunnel's and the fallback's RequestContext: the
// origin the technician's client serves the device's pages on; only
// Origin and Referer on it become the device's own.
func clientOrigin(ctx context.Context, head *proto.RequestHead) context.Context {
	return deviceproxy.WithClientOrigin(ctx, head.ClientOrigin)
}

// restartGrace is how long a failed peer connection waits for the
// technician's ICE restart before its session ends.
const restartGrace = 30 * time.Second

// signalingPingTimeout bounds checkSignaling's wait for a pong.
const signalingPingTimeout = 3 * time.Second

// checkSignaling pings signaling once (concurrent calls share it); a
// connection that does not answer is closed, and Run reconnects.
func (a *Agent) checkSignaling() {
	if !a.pinging.CompareAndSwap(false, true) {
		return
	}
	defer a.pinging.Store(false)
	c := a.conn.Load()
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), signalingPingTimeout)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		a.log.Warn("signaling connection dead; reconnecting", "err", err)
	}
}

// handlePeering applies an offer or candidate to the session: an offer
// from the same technician peer (an ICE restart) renegotiates the current
// peer connection, and a fresh offer from a restarted client (a reloaded
// page) replaces it.
func (a *Agent) handlePeering(ctx context.Context, s *session, env *proto.Envelope) error {
	r := s.current()
	if r == nil {
		return proto.Errorf(proto.CodeSessionEnded, "session is closing")
	}
	if env.Type == proto.TypeOffer && r.peer.RemoteSet() && r.peer.Renegotiates(env) {
		// Same DTLS certificate: the technician's peer connection is the
		// same one, restarting ICE after a network change. Answer on this
		// connection; channels and requests in flight carry on.
		a.log.Info("ICE restart offered by the technician", "session", s.id)
	} else if env.Type == proto.TypeOffer && r.peer.RemoteSet() {
		nr, err := a.newPeer(ctx, s)
		if err != nil {
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nr.close()
			return proto.Errorf(proto.CodeSessionEnded, "session is closing")
		}
		old := s.rtc
		s.rtc = nr
		s.mu.Unlock()
		a.log.Info("technician reconnected with a new offer; replacing the peer connection", "session", s.id)
		go old.close()
		r = nr
	}
	return r.peer.Handle(env)
}

func (a *Agent) openSession(ctx context.Context, env *proto.Envelope) {
	refuse := func(code proto.Code, format string, args ...any) {
		err := proto.Errorf(code, format, args...)
		a.log.Info("session refused", "session", env.Session, "code", code, "reason", err.Message)
		_ = a.send(proto.TypeError, env.Session, err)
	}
	if env.Session == "" {
		refuse(proto.CodeBadMessage, "session.open without a session id")
		return
	}
	var open proto.SessionOpen
	if err := proto.DecodeData(env, &open); err != nil {
		var pe *proto.Error
		if errors.As(err, &pe) {
			refuse(pe.Code, "%s", pe.Message)
		} else {
			refuse(proto.CodeBadMessage, "%v", err)
		}
		return
	}
	// Nothing on the LAN is touched for a session without a valid grant.
	grantExpires, grant, perr := a.checkGrant(env.Session, &open)
	if perr != nil {
		refuse(perr.Code, "%s", perr.Message)
		return
	}
	dev, ok := a.device(open.Device)
	if !ok {
		refuse(proto.CodeDeviceNotFound, "this agent declares no device %q", open.Device)
		return
	}
	// The site's own policy, before anything on the LAN is touched.
	policy, perr := a.checkPolicy(env.Session, dev, grant)
	if perr != nil {
		refuse(perr.Code, "%s", perr.Message)
		return
	}
	checked, err := a.checkDevice(ctx, dev)
	if err != nil {
		var pe *proto.Error
		if !errors.As(err, &pe) {
			pe = proto.Errorf(proto.CodeDeviceFailed, "%v", err)
		}
		refuse(pe.Code, "%s", pe.Message)
		return
	}
	if checked.Reached == "" {
		a.log.Info("device answered no probe; opening the session anyway", "session", env.Session, "device", dev.cfg.ID)
	}
	pinned, err := a.sessionProxy(dev, checked.Addr, checked.TLSPin, env.Session)
	if err != nil {
		refuse(proto.CodeInternal, "device proxy: %v", err)
		return
	}
	now := a.clock.Now()
	expires := open.Expires
	if !grantExpires.IsZero() {
		expires = grantExpires // the signed expiry, not the envelope's
	}
	if expires.IsZero() || expires.After(now.Add(a.cfg.MaxSessionTTL)) {
		// The agent enforces the limit itself, whatever signaling says.
		expires = now.Add(a.cfg.MaxSessionTTL)
	}
	if !expires.After(now) {
		refuse(proto.CodeSessionEnded, "session already expired")
		return
	}
	a.mu.Lock()
	_, exists := a.sessions[env.Session]
	n := len(a.sessions)
	a.mu.Unlock()
	if exists {
		refuse(proto.CodeBadMessage, "session already open")
		return
	}
	if n >= a.cfg.MaxSessions {
		refuse(proto.CodeRateLimited, "agent already serves %d sessions", n)
		return
	}

	s := &session{id: env.Session, device: dev, user: open.User, expires: expires, ice: open.ICEServers, proxy: pinned.Session(), pinned: pinned,
		policy: policy}
	sctx, end := context.WithCancel(ctx)
	s.end = end
	s.fetch = fallback.New(sctx, fallback.Config{
		HTTP:           a.guardHTTP(s),
		RequestContext: requestContext,
		Observe:        a.observe(s),
		Logger:         a.log.With("session", s.id, "device", dev.cfg.ID),
	})
	r, err := a.newPeer(ctx, s)
	if err != nil {
		end()
		refuse(proto.CodeInternal, "create peer connection: %v", err)
		return
	}
	s.rtc = r
	s.stop = a.clock.AfterFunc(expires.Sub(now), func() {
		a.endSession(s, proto.EndExpired, "the session reached its time limit")
	})
	a.mu.Lock()
	a.sessions[s.id] = s
	a.mu.Unlock()
	a.log.Info("session opened", "session", s.id, "device", dev.cfg.ID, "user", s.user, "expires", expires.Format(time.RFC3339))
	_ = a.send(proto.TypeSessionReady, s.id, &proto.SessionReady{Device: dev.cfg.ID, Expires: expires})
}
