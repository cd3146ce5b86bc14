package hub

import (
	"github.com/gorilla/websocket"
	"github.com/porthole-dev/porthole/proto"
)

// ServeClient runs a technician client's connection to session sessionID,
// whose token the caller has verified. The connection can speak for that
// one session only. It returns at once; the connection runs on goroutines
// the hub owns.
func (h *Hub) ServeClient(ws *websocket.Conn, sessionID string) {
	h.ServeClientToken(ws, sessionID, [32]byte{})
}

// ServeClientToken is ServeClient for a connection opened with the token
// whose SHA-256 is tokenHash: RevokeToken of that token closes it.
func (h *Hub) ServeClientToken(ws *websocket.Conn, sessionID string, tokenHash [32]byte) {
	h.mu.Lock()
	user := ""
	if s := h.sessions[sessionID]; s != nil {
		user = s.user
	}
	h.mu.Unlock()
	c := h.newConn(ws, proto.RoleClient, user, h.log.With("session", sessionID, "user", user))
	c.session = sessionID
	c.tokenHash = tokenHash
	h.start(c)
}

// clientHello attaches c to its session (the newest client connection wins,
// so a reloaded browser takes over) and sends welcome and session.ready.
func (h *Hub) clientHello(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[c.session]
	if s == nil || s.state != stateReady {
		c.reply(c.session, proto.Errorf(proto.CodeSessionEnded, "session %s has ended", c.session))
		c.closeAfterFlush(websocket.CloseNormalClosure, "session ended")
		return
	}
	if old := s.client; old != nil && old != c {
		old.log.Info("client connection replaced by a newer one")
		old.stop(websocket.CloseNormalClosure, "replaced by a newer connection")
	}
	s.client = c
	h.stopGraceLocked(s)
	c.sendMsg(proto.TypeWelcome, "", &proto.Welcome{ID: s.user, Node: h.opt.Node})
	c.sendMsg(proto.TypeSessionReady, s.id, &proto.SessionReady{
		Device:     s.device,
		Expires:    s.expires,
		ICEServers: h.opt.ICEServers(s.id, s.expires, s.agent.place),
	})
	s.log.Info("client joined")
}

// clientMessage routes one message from a client that has said hello.
func (h *Hub) clientMessage(c *conn, env *proto.Envelope) {
	switch env.Type {
	case proto.TypeOffer, proto.TypeCandidate, proto.TypeSessionEnd, proto.TypeError:
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
	switch env.Type {
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
		s.agent.sendMsg(env.Type, s.id, &d)
	case proto.TypeCandidate:
		var cand proto.Candidate
		if err := proto.DecodeData(env, &cand); err != nil {
			c.refuse(s.id, err)
			return
		}
		s.agent.sendMsg(env.Type, s.id, &cand)
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
