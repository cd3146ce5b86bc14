package hub

import (
	"context"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// Session lifecycle events, for the job record of every session
// (package jobs). A session moves requested → verifying → ready →
// connected (as often as its path changes) → ended.
const (
	EventRequested = "requested" // created by signaling
	EventVerifying = "verifying" // announced to the agent, which verifies the device
	EventReady     = "ready"     // the agent accepted
	EventConnected = "connected" // the technician's peer connected (Path says how)
	EventEnded     = "ended"     // over (Reason says why)
)

// ReasonVerificationFailed is the end reason of a session the agent refused
// because the device failed its identity check or could not be reached.
const ReasonVerificationFailed = "device_verification_failed"

// Event is one step in a session's life.
type Event struct {
	Session string
	State   string // one of the Event… constants
	Time    time.Time
	User    string
	Agent   string
	Device  string
	// Site is the device's site ("" when its agent has none).
	Site string
	// DeviceName is the name the device's agent declared for it.
	DeviceName string
	Expires    time.Time
	// Connected: the path ("direct" or "relay") and candidate types, and
	// the path in words (proto.SessionPath.Describe: the agent's relay
	// transport, its proxy, why the site needs the relay).
	Path, Local, Remote string
	Detail              string
	// Relay is, when connected through a relay, which one
	// (proto.SessionPath.RelayServer).
	Relay string
	// Ended: a proto.EndReason or ReasonVerificationFailed, a message, and
	// the admin who terminated the session.
	Reason  string
	Message string
	By      string
	// Approval is the site admin's approval the session was opened with.
	Approval *proto.GrantApproval
}

// emitLocked reports e for s. Events arrive in order; Options.Events must
// not block.
func (h *Hub) emitLocked(s *session, e Event) {
	if h.opt.Events == nil {
		return
	}
	e.Session, e.Time = s.id, h.opt.Now()
	e.User, e.Agent, e.Device, e.DeviceName, e.Expires, e.Site = s.user, s.agentID, s.device, s.deviceName, s.expires, s.site
	e.Approval = s.approval
	h.opt.Events(e)
}

// TerminateSession ends live session id on an administrator's behalf
// (reason admin), telling both sides.
func (h *Hub) TerminateSession(id, admin string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[id]
	if s == nil || s.state == stateEnded {
		return ErrNoSession
	}
	s.endedBy = admin
	h.endLocked(s, proto.EndByAdmin, "terminated by an administrator", nil, ErrCanceled)
	return nil
}

// LiveSessions lists the IDs of the sessions that have not ended.
func (h *Hub) LiveSessions() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for id, s := range h.sessions {
		if s.state != stateEnded {
			out = append(out, id)
		}
	}
	return out
}

// accessLogTimeout bounds storing one batch of access-log entries.
const accessLogTimeout = 10 * time.Second

// agentAccessLog stores a batch of an agent's access log and acknowledges
// it. It runs on the agent connection's read goroutine without h.mu, so the
// store's latency slows down only this agent's reading.
func (h *Hub) agentAccessLog(c *conn, env *proto.Envelope) {
	var l proto.AccessLog
	if err := proto.DecodeData(env, &l); err != nil {
		c.refuse(env.Session, err)
		return
	}
	if h.opt.AccessLog == nil {
		c.reply(env.Session, proto.Errorf(proto.CodeUnsupported, "this signaling node keeps no access logs"))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), accessLogTimeout)
	defer cancel()
	ack, err := h.opt.AccessLog(ctx, c.id, env.Session, &l)
	if err != nil {
		c.reply(env.Session, err)
		return
	}
	c.sendMsg(proto.TypeAccessAck, env.Session, &proto.AccessAck{Seq: ack})
}

// agentRecording stores a chunk of a session's terminal recording and
// acknowledges it, like agentAccessLog.
func (h *Hub) agentRecording(c *conn, env *proto.Envelope) {
	var rc proto.RecordingChunk
	if err := proto.DecodeData(env, &rc); err != nil {
		c.refuse(env.Session, err)
		return
	}
	if h.opt.Recording == nil {
		c.reply(env.Session, proto.Errorf(proto.CodeUnsupported, "this signaling node keeps no terminal recordings"))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), accessLogTimeout)
	defer cancel()
	ack, err := h.opt.Recording(ctx, c.id, env.Session, &rc)
	if err != nil {
		c.reply(env.Session, err)
		return
	}
	c.sendMsg(proto.TypeRecordingAck, env.Session, &proto.RecordingAck{Seq: ack})
}

// orphanEndLocked records a session.end from an agent for a session this
// hub does not know (signaling restarted while the session went on peer to
// peer): its job still learns how it ended.
func (h *Hub) orphanEndLocked(c *conn, env *proto.Envelope) bool {
	if env.Type != proto.TypeSessionEnd || h.opt.Events == nil || h.sessions[env.Session] != nil {
		return false
	}
	var e proto.SessionEnd
	if proto.DecodeData(env, &e) != nil {
		return false
	}
	h.opt.Events(Event{Session: env.Session, State: EventEnded, Time: h.opt.Now(), Agent: c.id,
		Reason: string(e.Reason), Message: e.Message})
	return true
}

// agentGoneLocked handles the end of an agent connection c: its sessions
// wait AgentGrace for the agent to reconnect (their data path does not
// depend on it), except when c was dropped on purpose (revoked) or the
// hub is closing.
func (h *Hub) agentGoneLocked(c *conn) {
	for _, s := range c.sessions {
		if h.opt.AgentGrace <= 0 || c.revoked || h.closed || s.state != stateReady {
			h.endLocked(s, proto.EndAgentLost, "the agent disconnected", c, ErrAgentLost)
			continue
		}
		s.log.Info("agent disconnected; waiting for it to reconnect", "grace", h.opt.AgentGrace)
		s.agentGen++
		gen := s.agentGen
		s.agentWait = h.afterFunc(h.opt.AgentGrace, func() {
			if s.agentGen == gen && s.agent == c && s.state != stateEnded {
				h.endLocked(s, proto.EndAgentLost, "the agent did not reconnect in time", nil, ErrAgentLost)
			}
		})
	}
}

// adoptLocked moves the sessions of agent c.id that wait for it (after
// agentGoneLocked) to its new connection c.
func (h *Hub) adoptLocked(c *conn) int {
	n := 0
	for id, s := range h.sessions {
		if s.state == stateEnded || s.agent == nil || s.agent == c || s.agent.id != c.id || s.agentWait == nil {
			continue
		}
		s.agentWait.Stop()
		s.agentWait = nil
		s.agentGen++
		delete(s.agent.sessions, id)
		s.agent = c
		c.sessions[id] = s
		n++
	}
	return n
}
