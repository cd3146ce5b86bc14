package hub

import (
	"slices"
	"sort"

	"github.com/gorilla/websocket"
	"github.com/porthole-dev/porthole/proto"
)

// Device identity is scoped by agent: a device is (agent, ID), and the same
// ID on agents of different sites are different devices, so another site's
// agent cannot take a device away by declaring its ID. Within one site (or
// among agents assigned to none) an ID names one device: while the agent
// that declared it is connected, a declaration of it by another agent of
// that site is refused, logged and reported to that agent; once that agent
// is gone, another agent of the same site may take the device over (an
// agent replaced at the site), which is logged too.

// deviceKey names a declared device.
type deviceKey struct{ agent, id string }

// deviceEntry records which agent declared a device, and how.
type deviceEntry struct {
	agent string
	site  string // the agent's site when it declared it ("" for none)
	dev   proto.Device
}

// ServeAgent runs the signaling connection of agent agentID, whose identity
// the caller has verified, until it closes or the hub closes. It returns at
// once; the connection runs on goroutines the hub owns.
func (h *Hub) ServeAgent(ws Socket, agentID string) {
	c := h.newConn(ws, proto.RoleAgent, agentID, h.log.With("agent", agentID))
	c.sessions = make(map[string]*session)
	h.start(c)
}

// agentHello registers c as agentID's connection (the newest wins) and its
// devices (scoped by agent and site, see deviceKey), then welcomes it.
func (h *Hub) agentHello(c *conn, hello *proto.Hello, adopted []SessionState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		// It reconnected here before the load balancer noticed: off to
		// another node, its sessions (if Adopt took them) with it.
		c.log.Info("agent refused: this node is draining")
		c.sendMsg(proto.TypeDrain, "", &proto.Drain{RetryAfterMS: drainRetry.Milliseconds(), Message: ErrDraining.Message})
		c.closeAfterFlush(websocket.CloseServiceRestart, "signaling node is shutting down; reconnect")
		return
	}
	if old := h.agents[c.id]; old != nil && old != c {
		// The agent reconnected (its network changed, say) before this
		// node noticed the old connection die: its live sessions move to
		// the new connection instead of ending with agent_lost, so the
		// technician's ICE restart reaches it. An agent process that
		// restarted knows none of them and ends each on its next message.
		for id, s := range old.sessions {
			s.agent = c
			c.sessions[id] = s
			delete(old.sessions, id)
		}
		old.log.Info("agent connection replaced by a newer one", "sessions_moved", len(c.sessions))
		h.abortConnFetchesLocked(old) // the agent dropped them with its old connection
		old.stop(websocket.CloseNormalClosure, "replaced by a newer connection")
	}
	if n := h.adoptLocked(c); n > 0 {
		c.log.Info("agent reconnected within its grace; sessions resumed", "sessions", n)
	}
	if n := h.adoptStatesLocked(c, adopted); n > 0 {
		c.log.Info("agent reconnected from a draining node; its sessions moved here", "sessions", n, "handed_over", len(adopted))
	}
	h.agents[c.id] = c
	accepted, refused := h.declareLocked(c, hello.Devices)
	c.place = AgentPlace{Region: hello.Region}
	c.fetch = hello.Fetch
	c.inventory = hello.Inventory
	c.log.Info("agent online", "devices", len(accepted), "software", hello.Software, "region", hello.Region)
	if h.opt.Presence != nil {
		h.opt.Presence(c.id, accepted, true)
	}
	c.sendMsg(proto.TypeWelcome, "", &proto.Welcome{ID: c.id, Node: h.opt.Node, Relays: h.opt.Relays})
	c.sendRefusedLocked(refused)
}

// sendRefusedLocked tells c which of its declarations were refused.
func (c *conn) sendRefusedLocked(refused []string) {
	for _, id := range refused {
		c.sendMsg(proto.TypeError, "", &proto.Error{Code: proto.CodeForbidden,
			Message: "device " + id + " is already declared by another agent of this site; this agent's declaration of it is refused (rename the device, or stop declaring it on the other agent)"})
	}
}

// declareLocked replaces the devices c's agent declares (its hello, or
// its answer to an inventory) and returns the declarations accepted and
// the IDs refused because another connected agent of the site holds them.
func (h *Hub) declareLocked(c *conn, devices []proto.Device) (accepted []proto.Device, refused []string) {
	declared := make(map[string]bool, len(devices))
	for _, d := range devices {
		declared[d.ID] = true
	}
	for k := range h.devices {
		if k.agent == c.id && !declared[k.id] {
			h.deleteDeviceLocked(k)
		}
	}
	for _, d := range devices {
		if owner, ok := h.deviceOwnerLocked(d.ID, c.site, c.id); ok {
			if h.agents[owner] != nil {
				c.log.Warn("device declaration refused: another agent of the same site declared this id first",
					"device", d.ID, "site", c.site, "owner", owner)
				refused = append(refused, d.ID)
				continue
			}
			c.log.Info("device taken over from an agent of the same site that is offline", "device", d.ID, "site", c.site, "previous_agent", owner)
			h.deleteDeviceLocked(deviceKey{owner, d.ID})
		}
		h.putDeviceLocked(deviceKey{c.id, d.ID}, deviceEntry{agent: c.id, site: c.site, dev: d})
	}
	accepted = devices
	if len(refused) > 0 {
		accepted = make([]proto.Device, 0, len(devices)-len(refused))
		for _, d := range devices {
			if h.devices[deviceKey{c.id, d.ID}].agent == c.id {
				accepted = append(accepted, d)
			}
		}
	}
	return accepted, refused
}

// deviceOwnerLocked returns the agent other than self that holds device id
// in site's scope.
func (h *Hub) deviceOwnerLocked(id, site, self string) (string, bool) {
	for _, agent := range h.byID[id] {
		if agent != self && h.devices[deviceKey{agent, id}].site == site {
			return agent, true
		}
	}
	return "", false
}

func (h *Hub) putDeviceLocked(k deviceKey, e deviceEntry) {
	if _, ok := h.devices[k]; !ok {
		h.byID[k.id] = append(h.byID[k.id], k.agent)
	}
	h.devices[k] = e
}

func (h *Hub) deleteDeviceLocked(k deviceKey) {
	delete(h.devices, k)
	agents := slices.DeleteFunc(h.byID[k.id], func(a string) bool { return a == k.agent })
	if len(agents) == 0 {
		delete(h.byID, k.id)
	} else {
		h.byID[k.id] = agents
	}
}

// Devices lists every device an agent has declared, sorted by ID, with
// whether its agent is connected.
func (h *Hub) Devices() []proto.DeviceStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]proto.DeviceStatus, 0, len(h.devices))
	for _, e := range h.devices {
		out = append(out, proto.DeviceStatus{Device: e.dev, Agent: e.agent, Online: h.agents[e.agent] != nil})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].Agent < out[j].Agent
	})
	return out
}

// agentMessage routes one message from an agent that has said hello.
func (h *Hub) agentMessage(c *conn, env *proto.Envelope) {
	switch env.Type {
	case proto.TypeSessionReady, proto.TypeAnswer, proto.TypeCandidate, proto.TypeSessionEnd, proto.TypeError, proto.TypeSessionPath, proto.TypeICERefresh:
	case proto.TypeRelayRTT:
		h.agentRelayRTTLocked(c, env)
		return
	default:
		c.refuse(env.Session, proto.Errorf(proto.CodeBadMessage, "agents do not send %s", env.Type))
		return
	}
	if env.Type == proto.TypeError && env.Session == "" {
		var e proto.Error
		if err := proto.DecodeData(env, &e); err != nil {
			c.refuse("", err)
			return
		}
		c.log.Info("agent reported an error", "code", e.Code, "message", e.Message)
		return
	}
	s := h.sessions[env.Session]
	if s == nil && h.orphanEndLocked(c, env) {
		return
	}
	if s == nil || s.agent != c {
		c.refuse(env.Session, proto.Errorf(proto.CodeSessionNotFound, "no session %s on this connection", env.Session))
		return
	}
	if s.state == stateEnded {
		c.reply(s.id, proto.Errorf(proto.CodeSessionEnded, "session %s has ended", s.id))
		return
	}
	switch env.Type {
	case proto.TypeSessionReady:
		var r proto.SessionReady
		if err := proto.DecodeData(env, &r); err != nil {
			c.refuse(s.id, err)
			return
		}
		if s.state == statePending {
			s.state = stateReady
			s.result <- nil
			h.startGraceLocked(s)
			s.log.Info("session ready")
			h.emitLocked(s, Event{State: EventReady})
		}
	case proto.TypeSessionPath:
		var p proto.SessionPath
		if err := proto.DecodeData(env, &p); err != nil {
			c.refuse(s.id, err)
			return
		}
		if s.state == stateReady {
			s.log.Info("technician connected", "path", p.Path, "local", p.Local, "remote", p.Remote, "relay", p.Relay, "proxy", p.Proxy, "site", p.Site)
			h.emitLocked(s, Event{State: EventConnected, Path: p.Path, Local: p.Local, Remote: p.Remote, Detail: p.Describe(), Relay: p.RelayServer})
			// The technician's side cannot see how the agent reached the
			// relay (a proxy, TLS only); the toolbar shows it.
			h.toClientLocked(s, env.Type, &p)
		}
	case proto.TypeICERefresh:
		h.iceRefreshLocked(s, c, env)
	case proto.TypeAnswer:
		var d proto.SessionDescription
		if err := proto.DecodeData(env, &d); err != nil {
			c.refuse(s.id, err)
			return
		}
		if d.Type != "answer" || s.state != stateReady {
			c.refuse(s.id, proto.Errorf(proto.CodeBadMessage, "unexpected answer"))
			return
		}
		h.toClientLocked(s, env.Type, &d)
	case proto.TypeCandidate:
		var cand proto.Candidate
		if err := proto.DecodeData(env, &cand); err != nil {
			c.refuse(s.id, err)
			return
		}
		if s.state != stateReady {
			c.refuse(s.id, proto.Errorf(proto.CodeBadMessage, "candidate before session.ready"))
			return
		}
		h.toClientLocked(s, env.Type, &cand)
	case proto.TypeSessionEnd:
		var e proto.SessionEnd
		if err := proto.DecodeData(env, &e); err != nil {
			c.refuse(s.id, err)
			return
		}
		h.endLocked(s, e.Reason, e.Message, c, proto.Errorf(proto.CodeDeviceFailed, "the agent ended the session: %s", e.Reason))
	case proto.TypeError:
		var e proto.Error
		if err := proto.DecodeData(env, &e); err != nil {
			c.refuse(s.id, err)
			return
		}
		if s.state == statePending {
			s.log.Info("agent refused the session", "code", e.Code, "message", e.Message)
			switch e.Code {
			case proto.CodeDeviceFailed, proto.CodeDeviceTimeout, proto.CodeDeviceNotFound:
				s.jobReason = ReasonVerificationFailed
			}
			h.endLocked(s, proto.EndError, e.Message, c, &e)
			return
		}
		h.toClientLocked(s, env.Type, &e)
	}
}

// toClientLocked relays a message to the session's client. Without a
// client (it is reloading) the message is dropped: the rejoining client
// starts a fresh offer.
func (h *Hub) toClientLocked(s *session, typ proto.MsgType, payload any) {
	if s.client == nil {
		s.log.Debug("no client connected; message dropped", "type", typ)
		return
	}
	s.client.sendMsg(typ, s.id, payload)
}

// OnlineAgents lists the IDs of the agents connected now.
func (h *Hub) OnlineAgents() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.agents))
	for id := range h.agents {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
