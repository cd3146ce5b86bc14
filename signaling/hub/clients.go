package hub

import (
	"github.com/gorilla/websocket"
	"github.com/porthole-dev/porthole/proto"
)

// ServeClient runs a technician client's connection to session sessionID
// for a caller that proved nothing more than the session (tests, tools
// inside signaling): the connection is treated as an unbound non-browser
// client. It returns at once; the connection runs on goroutines the hub
// owns.
func (h *Hub) ServeClient(ws Socket, sessionID string) {
	h.ServeClientAuth(ws, sessionID, ClientAuth{})
}

// ServeClientToken is ServeClientAuth for a non-browser client that
// presented the token whose SHA-256 is tokenHash and no binding.
func (h *Hub) ServeClientToken(ws Socket, sessionID string, tokenHash [32]byte) {
	h.ServeClientAuth(ws, sessionID, ClientAuth{TokenHash: tokenHash})
}

// ServeClientAuth runs the connection of a client whose token for
// sessionID the caller has verified, with what else it proved (auth). At
// its hello the hub applies the binding and one-client rules (binding.go):
// a refused client gets an error message with the reason and is closed.
// RevokeToken of its token closes it.
func (h *Hub) ServeClientAuth(ws Socket, sessionID string, auth ClientAuth) {
	h.mu.Lock()
	user := ""
	if s := h.sessions[sessionID]; s != nil {
		user = s.user
	}
	h.mu.Unlock()
	c := h.newConn(ws, proto.RoleClient, user, h.log.With("session", sessionID, "user", user))
	c.session = sessionID
	c.auth = auth
	h.start(c)
}

// clientHello attaches c to its session if the session admits it (one
// client per session: the same window reconnecting replaces its old
// connection, any other is refused) and sends welcome and session.ready.
func (h *Hub) clientHello(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[c.session]
	if s == nil || s.state != stateReady {
		c.reply(c.session, proto.Errorf(proto.CodeSessionEnded, "session %s has ended", c.session))
		c.closeAfterFlush(websocket.CloseNormalClosure, "session ended")
		return
	}
	if h.draining {
		c.log.Info("client refused: this node is draining")
		c.sendMsg(proto.TypeDrain, c.session, &proto.Drain{RetryAfterMS: drainRetry.Milliseconds(), Message: ErrDraining.Message})
		c.closeAfterFlush(websocket.CloseServiceRestart, "signaling node is shutting down; reconnect")
		return
	}
	if err := h.admitLocked(s, c.auth); err != nil {
		c.log.Info("client refused", "code", err.Code, "why", err.Message, "browser", c.auth.Browser)
		c.reply(c.session, err)
		c.closeAfterFlush(websocket.ClosePolicyViolation, string(err.Code))
		return
	}
	if old := s.client; old != nil && old != c {
		old.log.Info("client connection replaced by a newer one of the same window")
		old.stop(websocket.CloseNormalClosure, "replaced by a newer connection of the same window")
	}
	s.client = c
	s.holder, s.held = c.auth, true
	h.stopGraceLocked(s)
	c.sendMsg(proto.TypeWelcome, "", &proto.Welcome{ID: s.user, Node: h.opt.Node})
	c.sendMsg(proto.TypeSessionReady, s.id, &proto.SessionReady{
		Device:      s.device,
		DeviceName:  s.deviceName,
		SiteName:    s.siteName,
		Expires:     s.expires,
		ICEServers:  h.opt.ICEServers(s.id, s.expires, s.agent.place),
		RelayTicket: h.newRelayTicketLocked(s),
	})
	s.log.Info("client joined", "bound", s.bound[c.auth.TokenHash] != [32]byte{}, "browser", c.auth.Browser)
}

// clientMessage routes one message from a client that has said hello.
func (h *Hub) clientMessage(c *conn, env *proto.Envelope) {
	switch env.Type {
	case proto.TypeOffer, proto.TypeCandidate, proto.TypeSessionEnd, proto.TypeError, proto.TypeICERefresh:
	case proto.TypeSessionOpen:
		c.refuse(env.Session, proto.Errorf(proto.CodeUnsupported, "open sessions with POST %s", proto.PathSessions))
		return
	default:
		c.refuse(env.Session, proto.Errorf(proto.CodeBadMessage, "clients do not send %s", env.Type))
		return
	}
	if env.Session != c.session {
		c.refuse(env.Session, proto.Errorf(proto.CodeSessionNotFound, "this connection belongs to another session"))
		return
	}
	s := h.sessions[c.session]
	if s == nil || s.state == stateEnded {
		c.reply(c.session, proto.Errorf(proto.CodeSessionEnded, "session %s has ended", c.session))
		return
	}
	if s.client != c {
		return // replaced; this connection is closing
	}
	if env.Type == proto.TypeOffer || env.Type == proto.TypeCandidate {
		if err := h.allowSessionLocked(s, env.Type); err != nil {
			c.refuse(s.id, err)
			return
		}
	}
	switch env.Type {
	case proto.TypeICERefresh:
		h.iceRefreshLocked(s, c, env)
	case proto.TypeOffer:
		var d proto.SessionDescription
		if err := proto.DecodeData(env, &d); err != nil {
			c.refuse(s.id, err)
			return
		}
		if d.Type != "offer" {
			c.refuse(s.id, proto.Errorf(proto.CodeBadMessage, "an offer must have type offer"))
			return
		}
		h.forwardLocked(s, c, env.Type, &d)
	case proto.TypeCandidate:
		var cand proto.Candidate
		if err := proto.DecodeData(env, &cand); err != nil {
			c.refuse(s.id, err)
			return
		}
		h.forwardLocked(s, c, env.Type, &cand)
	case proto.TypeSessionEnd:
		var e proto.SessionEnd
		if err := proto.DecodeData(env, &e); err != nil {
			c.refuse(s.id, err)
			return
		}
		h.endLocked(s, e.Reason, e.Message, c, nil)
	case proto.TypeError:
		var e proto.Error
		if err := proto.DecodeData(env, &e); err != nil {
			c.refuse(s.id, err)
			return
		}
		s.log.Info("client reported an error", "code", e.Code, "message", e.Message)
	}
}
