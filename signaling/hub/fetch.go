package hub

import (
	"context"
	"crypto/subtle"
	"time"

	"github.com/porthole-dev/porthole/internal/fetchx"
	"github.com/porthole-dev/porthole/proto"
)

// The signaling fallback (proto/fetch.go): requests of the device's page
// that the browser sends to the device origin's server are carried to the
// session's agent over the agent's connection. The hub's part:
//
//   - the credentials: every session.ready a client gets carries a fresh
//     relay ticket (single use, proto.RelayTicketTTL; binding.go);
//     RedeemTicket burns it and records the SHA-256 of the device cookie
//     the server sets in exchange; OpenFetch accepts only a cookie
//     recorded for that session;
//   - the routing: OpenFetch gives an exchange an ID and a Sender to the
//     agent (waiting for room in the agent connection's bulk queue, never
//     disconnecting it), and the agent's fetch messages reach its
//     FetchRoute; at most proto.MaxFetchesPerSession at once per session;
//   - the lifetime: an exchange is aborted when its session ends or its
//     agent connection goes.

// maxDeviceCookies bounds the device cookies a session recognises; the
// oldest is forgotten first (a shell that reloads gets a new one).
const maxDeviceCookies = 8

// Fallback errors.
var (
	ErrDeviceCookie = &proto.Error{Code: proto.CodeUnauthorized, Message: "this browser holds no device cookie of the session; open the device from its Porthole session window"}
	ErrTicket       = &proto.Error{Code: proto.CodeUnauthorized, Message: "the session window's ticket is unknown, used or expired; reload the session window"}
	ErrOldAgent     = &proto.Error{Code: proto.CodeUnsupported, Message: "the agent at the site is too old to carry requests the browser sends outside the session's peer connection; update porthole-agent"}
	ErrAgentAway    = &proto.Error{Code: proto.CodeAgentOffline, Message: "the device's agent is reconnecting to signaling; try again in a moment"}
	ErrFetchLimit   = &proto.Error{Code: proto.CodeRateLimited, Message: "too many requests of this session are being carried by signaling at once; try again"}
)

// FetchRoute receives the agent's messages of one exchange (a
// *fetchx.Exchange, or a cluster's forwarder). Deliver must not block;
// Abort may.
type FetchRoute interface {
	Deliver(typ proto.MsgType, payload proto.Validator) error
	Abort(err error)
}

// fetchEntry is one exchange in flight. Guarded by h.mu.
type fetchEntry struct {
	s     *session
	agent *conn
	id    uint64
	route FetchRoute
}

// RedeemTicket burns ticket, which session id's client got in its
// session.ready, and makes the device cookie whose SHA-256 is cookie valid
// for the session's fallback requests. It returns the session's expiry
// (for the cookie's lifetime).
func (h *Hub) RedeemTicket(id, tk string, cookie [32]byte) (time.Time, error) {
	if !h.SessionLive(id) {
		return time.Time{}, ErrNoSession
	}
	if !proto.ValidTicket(tk) || !h.ConsumeRelayTicket(id, tk) {
		return time.Time{}, ErrTicket
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[id]
	if s == nil || s.state != stateReady || !h.opt.Now().Before(s.expires) {
		return time.Time{}, ErrNoSession
	}
	if len(s.cookies) >= maxDeviceCookies {
		s.cookies = s.cookies[1:]
	}
	s.cookies = append(s.cookies, cookie)
	s.log.Info("device cookie issued for the relay frame")
	return s.expires, nil
}

// OpenFetch starts an exchange with the agent of session id for a browser
// whose device cookie hashes to cookie. newRoute is called, with the hub's
// lock held (it must not block), with the exchange's ID and the Sender to
// the agent; the route it returns gets the agent's messages. release
// forgets the exchange; call it once it is over.
func (h *Hub) OpenFetch(id string, cookie [32]byte, newRoute func(xid uint64, send fetchx.Sender) FetchRoute) (release func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[id]
	if h.closed || s == nil || s.state != stateReady || !h.opt.Now().Before(s.expires) {
		return nil, ErrNoSession
	}
	known := 0
	for _, c := range s.cookies {
		known |= subtle.ConstantTimeCompare(c[:], cookie[:])
	}
	if known != 1 {
		return nil, ErrDeviceCookie
	}
	a := s.agent
	switch {
	case a == nil || h.agents[s.agentID] != a:
		return nil, ErrAgentAway
	case a.fetch < proto.FetchVersion:
		return nil, ErrOldAgent
	case len(s.fetches) >= proto.MaxFetchesPerSession:
		s.log.Info("fallback request refused: too many in flight", "limit", proto.MaxFetchesPerSession)
		return nil, ErrFetchLimit
	}
	s.fetchSeq++
	e := &fetchEntry{s: s, agent: a, id: s.fetchSeq}
	sid := s.id
	send := func(ctx context.Context, typ proto.MsgType, payload proto.Validator) error {
		b, err := proto.Encode(typ, sid, payload)
		if err != nil {
			return err
		}
		return a.enqueueWait(ctx, b)
	}
	e.route = newRoute(e.id, send)
	if s.fetches == nil {
		s.fetches = map[uint64]*fetchEntry{}
	}
	if a.fetches == nil {
		a.fetches = map[*fetchEntry]bool{}
	}
	s.fetches[e.id] = e
	a.fetches[e] = true
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.forgetFetchLocked(e)
	}, nil
}

func (h *Hub) forgetFetchLocked(e *fetchEntry) {
	if e.s.fetches[e.id] == e {
		delete(e.s.fetches, e.id)
	}
	delete(e.agent.fetches, e)
}

// abortLocked aborts e's route on a goroutine of its own (Abort may wait
// to tell the agent) and forgets it.
func (h *Hub) abortFetchLocked(e *fetchEntry, err error) {
	h.forgetFetchLocked(e)
	h.wg.Add(1) // under h.mu: before Close's Wait
	go func() {
		defer h.wg.Done()
		e.route.Abort(err)
	}()
}

// endFetchesLocked aborts the exchanges of s, which ended.
func (h *Hub) endFetchesLocked(s *session) {
	for _, e := range s.fetches {
		h.abortFetchLocked(e, proto.Errorf(proto.CodeSessionEnded, "the session has ended"))
	}
}

// abortConnFetchesLocked aborts the exchanges carried by agent connection
// c, which is gone (the agent cancels them on its side too).
func (h *Hub) abortConnFetchesLocked(c *conn) {
	for e := range c.fetches {
		h.abortFetchLocked(e, ErrAgentLost)
	}
}

// fetchMessage routes a fetch message from an agent to its exchange. The
// route's Deliver runs outside the hub's lock.
func (h *Hub) fetchMessage(c *conn, env *proto.Envelope) {
	v, xid, err := decodeAgentFetch(env)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	if c.role != proto.RoleAgent {
		c.refuse(env.Session, proto.Errorf(proto.CodeBadMessage, "clients do not send %s", env.Type))
		h.mu.Unlock()
		return
	}
	if err != nil {
		c.refuse(env.Session, err)
		h.mu.Unlock()
		return
	}
	var e *fetchEntry
	if s := h.sessions[env.Session]; s != nil {
		e = s.fetches[xid]
	}
	if e == nil || e.agent != c {
		// Over already (aborted by the browser, say): late messages are
		// expected and harmless.
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	if err := e.route.Deliver(env.Type, v); err != nil {
		c.log.Info("agent broke the fetch protocol; exchange aborted", "session", env.Session, "exchange", xid, "err", err)
		h.mu.Lock()
		h.abortFetchLocked(e, err)
		h.mu.Unlock()
	}
}

// decodeAgentFetch decodes a fetch message an agent may send.
func decodeAgentFetch(env *proto.Envelope) (proto.Validator, uint64, error) {
	var v proto.Validator
	var id *uint64
	switch env.Type {
	case proto.TypeFetchResponse:
		m := &proto.FetchResponse{}
		v, id = m, &m.ID
	case proto.TypeFetchData:
		m := &proto.FetchData{}
		v, id = m, &m.ID
	case proto.TypeFetchEnd:
		m := &proto.FetchEnd{}
		v, id = m, &m.ID
	case proto.TypeFetchAbort:
		m := &proto.FetchAbort{}
		v, id = m, &m.ID
	case proto.TypeFetchCredit:
		m := &proto.FetchCredit{}
		v, id = m, &m.ID
	default:
		return nil, 0, proto.Errorf(proto.CodeBadMessage, "agents do not send %s", env.Type)
	}
	if err := proto.DecodeData(env, v); err != nil {
		return nil, 0, err
	}
	return v, *id, nil
}
