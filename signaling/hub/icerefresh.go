package hub

import (
	"strings"

	"github.com/porthole-dev/porthole/proto"
)

// iceRefreshLocked answers an ice.refresh from c, the session's agent or
// the client holding it (the callers checked that): the session's ICE
// servers anew, without the relays the asker lost, to both peers — the
// agent first, so that it holds them before the restart offer that
// follows reaches it. Bounded per session (proto.MaxICERefreshes, one per
// proto.ICERefreshInterval), so a flapping path cannot turn into a storm
// of credentials and restarts.
func (h *Hub) iceRefreshLocked(s *session, c *conn, env *proto.Envelope) {
	var r proto.ICERefresh
	if err := proto.DecodeData(env, &r); err != nil {
		c.refuse(s.id, err)
		return
	}
	now := h.opt.Now()
	switch {
	case s.refreshes >= proto.MaxICERefreshes:
		s.log.Warn("ice.refresh refused: the session asked too often", "refreshes", s.refreshes, "role", c.role)
		c.reply(s.id, proto.Errorf(proto.CodeRateLimited, "session %s has had its relays refreshed %d times, the most a session may", s.id, s.refreshes))
		return
	case !s.lastRefresh.IsZero() && now.Sub(s.lastRefresh) < proto.ICERefreshInterval:
		// Both peers noticed the same break: the first answer went to
		// both already.
		c.reply(s.id, proto.Errorf(proto.CodeRateLimited, "relays refreshed %s ago; retry after %s", now.Sub(s.lastRefresh).Round(1e6), proto.ICERefreshInterval))
		return
	}
	s.refreshes++
	s.lastRefresh = now
	servers := h.opt.RefreshICEServers(s.id, s.expires, s.agent.place, r.Failed)
	up := &proto.ICEServersUpdate{ICEServers: servers}
	for _, sv := range servers {
		for _, u := range sv.URLs {
			if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
				up.Relays = append(up.Relays, u)
			}
		}
	}
	s.log.Info("relays refreshed for the session", "asked_by", c.role, "failed", strings.Join(r.Failed, " "), "relays", strings.Join(up.Relays, " "), "refresh", s.refreshes)
	if c == s.agent {
		s.agent.sendMsg(proto.TypeICEServers, s.id, up)
	} else {
		h.forwardLocked(s, c, proto.TypeICEServers, up)
	}
	h.toClientLocked(s, proto.TypeICEServers, up)
}
