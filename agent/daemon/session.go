package daemon

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/porthole-dev/porthole/agent/peering"
	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/agent/webrtcpeer"
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
	ice     []proto.ICEServer
	timer   *time.Timer

	mu     sync.Mutex
	rtc    *rtcPeer
	closed bool
}

// rtcPeer is one peer connection of a session and the tunnel served on it.
type rtcPeer struct {
	pc     *webrtc.PeerConnection
	peer   *peering.Peer
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
	s.timer.Stop()
	if r != nil {
		r.close()
	}
}

// newPeer builds a peer connection for s and starts serving the tunnel on
// it before any offer is applied, so no data channel is missed.
func (a *Agent) newPeer(ctx context.Context, s *session) (*rtcPeer, error) {
	pc, err := webrtcpeer.NewPeerConnection(webrtcpeer.Config{
		ICEServers:   s.ice,
		LoopbackOnly: a.cfg.LoopbackOnly,
		Logger:       a.log,
	})
	if err != nil {
		return nil, err
	}
	r := &rtcPeer{pc: pc}
	r.peer = peering.New(pc, func(typ proto.MsgType, payload any) error {
		return a.send(typ, s.id, payload)
	})
	srv := &tunnel.Server{
		HTTP:    s.device.proxy.Handler,
		DialTCP: s.device.proxy.DialTCP,
		Logger:  a.log.With("session", s.id, "device", s.device.cfg.ID),
	}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		a.log.Debug("peer connection state", "session", s.id, "state", st)
		switch st {
		case webrtc.PeerConnectionStateConnected:
			path := "unknown"
			if info, err := webrtcpeer.PathInfo(pc); err == nil {
				path = "direct"
				if info.Relayed {
					path = "relay"
				}
			}
			a.log.Info("technician connected", "session", s.id, "device", s.device.cfg.ID, "user", s.user, "path", path)
		case webrtc.PeerConnectionStateFailed:
			// Only the session's current peer may end it; a replaced one
			// failing is expected.
			if s.current() == r {
				go a.endSession(s, proto.EndError, "peer connection failed")
			}
		}
	})
	tctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	r.tunnel = srv.Start(tctx, pc)
	return r, nil
}

// handlePeering applies an offer or candidate to the session, replacing the
// peer connection when a restarted client sends a fresh offer.
func (a *Agent) handlePeering(ctx context.Context, s *session, env *proto.Envelope) error {
	r := s.current()
	if r == nil {
		return proto.Errorf(proto.CodeSessionEnded, "session is closing")
	}
	if env.Type == proto.TypeOffer && r.peer.RemoteSet() {
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
	dev, ok := a.devices[open.Device]
	if !ok {
		refuse(proto.CodeDeviceNotFound, "this agent declares no device %q", open.Device)
		return
	}
	now := time.Now()
	expires := open.Expires
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

	s := &session{id: env.Session, device: dev, user: open.User, expires: expires, ice: open.ICEServers}
	r, err := a.newPeer(ctx, s)
	if err != nil {
		refuse(proto.CodeInternal, "create peer connection: %v", err)
		return
	}
	s.rtc = r
	s.timer = time.AfterFunc(time.Until(expires), func() {
		a.endSession(s, proto.EndExpired, "the session reached its time limit")
	})
	a.mu.Lock()
	a.sessions[s.id] = s
	a.mu.Unlock()
	a.log.Info("session opened", "session", s.id, "device", dev.cfg.ID, "user", s.user, "expires", expires.Format(time.RFC3339))
	_ = a.send(proto.TypeSessionReady, s.id, &proto.SessionReady{Device: dev.cfg.ID, Expires: expires})
}
