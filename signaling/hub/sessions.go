package hub

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"golang.org/x/time/rate"
	"log/slog"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/porthole-dev/porthole/proto"
)

type sessionState int

const (
	statePending sessionState = iota // announced to the agent, waiting for session.ready
	stateReady                       // accepted; a client may join
	stateEnded                       // over; kept as a tombstone for a minute
)

// session is one technician's session with one device. All fields are
// guarded by h.mu.
type session struct {
	id, user, device string
	deviceName       string                // as the agent declared it at creation
	site, siteName   string                // the device's site (its agent's) and that site's name
	agentID          string                // the agent that serves it
	endedBy          string                // the admin who terminated it
	approval         *proto.GrantApproval  // the site admin's approval it was opened with
	jobReason        string                // the end reason for its job when it differs from the proto one
	tokenHash        [32]byte              // the token POST /v1/sessions returned (the API caller's)
	extraTokens      [][32]byte            // tokens added later (OAuth), all ending with the session
	bound            map[[32]byte][32]byte // token hash → SHA-256 of its BindCookie (binding.go)
	holder           ClientAuth            // the client that holds the session: live, or gone and in grace
	held             bool                  // holder is set
	tickets          []relayTicket         // relay tickets handed out and not used yet
	expires          time.Time
	state            sessionState
	agent            *conn // the agent connection that accepted it
	client           *conn // the current client connection, nil while none
	log              *slog.Logger

	// result receives exactly one value when the session leaves
	// statePending: nil when the agent accepted, the refusal otherwise.
	result chan error

	timer    *time.Timer // expiry while live, tombstone removal once ended
	grace    *time.Timer // running while live without a client
	graceGen int         // invalidates grace callbacks that lost a race with Stop

	agentWait *time.Timer // running while its agent is away (AgentGrace)
	agentGen  int         // invalidates agentWait callbacks

	// The signaling fallback (fetch.go).
	cookies  [][32]byte             // SHA-256 of the device cookies handed out, oldest first
	fetches  map[uint64]*fetchEntry // exchanges in flight
	fetchSeq uint64                 // the last exchange ID given out

	limiter    *rate.Limiter // its client's offers and candidates (limits.go)
	candidates int           // candidates its client sent

	refreshes   int       // ice.refresh answers given (relays.go)
	lastRefresh time.Time // the last one
}

func (s *session) stopTimersLocked() {
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.grace != nil {
		s.grace.Stop()
		s.grace = nil
	}
	s.graceGen++
	if s.agentWait != nil {
		s.agentWait.Stop()
		s.agentWait = nil
	}
	s.agentGen++
}

func hashToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// OpenSession creates a session for user on device, announces it to the
// device's agent with session.open and waits until the agent accepts or
// refuses it, ReadyTimeout passes, or ctx ends. The returned token is the
// only copy; the hub keeps its SHA-256.
func (h *Hub) OpenSession(ctx context.Context, user, device string) (*proto.SessionInfo, error) {
	return h.OpenAgentSession(ctx, user, "", device)
}

// OpenAgentSession is OpenSession for a device that must still be declared
// by agent (any agent if agent is empty): a caller that checked the
// agent's site before does not open a device another agent declared since.
func (h *Hub) OpenAgentSession(ctx context.Context, user, agent, device string) (*proto.SessionInfo, error) {
	var prep *Prepared
	if h.opt.Prepare != nil {
		// Outside the lock (it may read the store): the device's agent
		// and site first, then the policy for them.
		h.mu.Lock()
		dev, _, err := h.findDeviceLocked(agent, device)
		h.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if prep, err = h.opt.Prepare(ctx, user, dev.agent, dev.site, device, dev.dev.Policy); err != nil {
			return nil, err
		}
		agent = dev.agent
	}
	s, token, err := h.createSession(user, agent, device, prep)
	if err != nil {
		return nil, err
	}
	if s.site != "" && h.opt.SiteName != nil {
		// Outside the lock (it may read the store), before the agent can
		// accept: session.ready, which carries it, follows acceptance.
		name := h.opt.SiteName(s.site)
		h.mu.Lock()
		s.siteName = name
		h.mu.Unlock()
	}
	t := time.NewTimer(h.opt.ReadyTimeout)
	defer t.Stop()
	var cause *proto.Error
	select {
	case err := <-s.result:
		return sessionInfo(s, token, err)
	case <-t.C:
		cause = ErrReadyTimeout
	case <-ctx.Done():
		cause = ErrCanceled
	}
	h.mu.Lock()
	if s.state == statePending {
		h.endLocked(s, proto.EndError, cause.Message, nil, cause)
	}
	h.mu.Unlock()
	return sessionInfo(s, token, <-s.result)
}

func sessionInfo(s *session, token string, err error) (*proto.SessionInfo, error) {
	if err != nil {
		return nil, err
	}
	return &proto.SessionInfo{Session: s.id, Device: s.device, Token: token, Expires: s.expires}, nil
}

// findDeviceLocked finds device (of wantAgent, unless empty) and its
// agent's connection.
func (h *Hub) findDeviceLocked(wantAgent, device string) (deviceEntry, *conn, error) {
	if h.closed {
		return deviceEntry{}, nil, ErrClosed
	}
	if h.draining {
		return deviceEntry{}, nil, ErrDraining
	}
	var dev deviceEntry
	found := 0
	for _, agent := range h.byID[device] {
		if wantAgent == "" || agent == wantAgent {
			dev = h.devices[deviceKey{agent, device}]
			found++
		}
	}
	switch {
	case found == 0:
		return dev, nil, ErrNotFound
	case found > 1:
		return dev, nil, ErrAmbiguous
	}
	agent := h.agents[dev.agent]
	if agent == nil {
		return dev, nil, ErrAgentOffline
	}
	return dev, agent, nil
}

func (h *Hub) createSession(user, wantAgent, device string, prep *Prepared) (*session, string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	dev, agent, err := h.findDeviceLocked(wantAgent, device)
	if err != nil {
		return nil, "", err
	}
	if prep == nil {
		prep = &Prepared{}
	}
	ttl := h.opt.SessionTTL
	if prep.TTL > 0 && prep.TTL < ttl {
		ttl = prep.TTL
	}
	id := newSessionID()
	for h.sessions[id] != nil {
		id = newSessionID()
	}
	var tok [32]byte
	rand.Read(tok[:])
	token := base64.RawURLEncoding.EncodeToString(tok[:])
	s := &session{
		id:         id,
		user:       user,
		device:     device,
		deviceName: dev.dev.Name,
		site:       dev.site,
		agentID:    dev.agent,
		tokenHash:  hashToken(token),
		expires:    h.opt.Now().Add(ttl),
		approval:   prep.Approval,
		agent:      agent,
		result:     make(chan error, 1),
		log:        h.log.With("session", id, "device", device, "user", user, "agent", dev.agent),
		limiter:    newLimiter(h.opt.Limits.SessionRate, h.opt.Limits.SessionBurst),
	}
	h.sessions[id] = s
	h.tokens[s.tokenHash] = s
	agent.sessions[id] = s
	s.timer = h.afterFunc(ttl, func() {
		if s.state != stateEnded {
			h.endLocked(s, proto.EndExpired, "the session's time limit was reached", nil, nil)
		}
	})
	s.log.Info("session requested", "expires", s.expires)
	h.emitLocked(s, Event{State: EventRequested})
	open := &proto.SessionOpen{
		Device:     device,
		User:       user,
		Expires:    s.expires,
		ICEServers: h.opt.ICEServers(id, s.expires, agent.place),
	}
	if h.opt.Grant != nil {
		g, err := h.opt.Grant(&proto.Grant{Session: id, Agent: dev.agent, Device: device, User: user, Expires: s.expires.Unix(),
			Approval: prep.Approval, Scope: prep.Scope})
		if err != nil {
			s.log.Error("sign session grant", "err", err)
			h.endLocked(s, proto.EndError, "the session grant could not be signed", nil, proto.Errorf(proto.CodeInternal, "session grant"))
			return s, token, nil
		}
		open.Grant = g
	}
	if !agent.sendMsg(proto.TypeSessionOpen, id, open) {
		h.endLocked(s, proto.EndError, "the agent is unreachable", nil, ErrAgentOffline)
		return s, token, nil
	}
	h.emitLocked(s, Event{State: EventVerifying})
	return s, token, nil
}

// newSessionID returns 26 lower-case base32 characters (128 random bits).
func newSessionID() string { return strings.ToLower(rand.Text()) }

// endLocked ends s once: both sides that did not cause it (from) are told
// with session.end, the client connection is closed, a waiting OpenSession
// gets waitErr, the token stops working, and the session stays as a
// tombstone for a while so late messages for it are answered session_ended.
func (h *Hub) endLocked(s *session, reason proto.EndReason, msg string, from *conn, waitErr error) {
	if s.state == stateEnded {
		return
	}
	prev := s.state
	s.state = stateEnded
	delete(h.tokens, s.tokenHash)
	for _, t := range s.extraTokens {
		delete(h.tokens, t)
	}
	s.extraTokens = nil
	s.stopTimersLocked()
	h.endFetchesLocked(s)
	// The job hears of the end before either side does, so whoever is
	// told the session ended finds it ended in the job too.
	jobReason := string(reason)
	if s.jobReason != "" {
		jobReason = s.jobReason
	}
	h.emitLocked(s, Event{State: EventEnded, Reason: jobReason, Message: msg, By: s.endedBy})
	end := &proto.SessionEnd{Reason: reason, Message: msg}
	if a := s.agent; a != nil {
		delete(a.sessions, s.id)
		if a != from {
			a.sendMsg(proto.TypeSessionEnd, s.id, end)
		}
	}
	if c := s.client; c != nil {
		if c != from {
			c.sendMsg(proto.TypeSessionEnd, s.id, end)
		}
		c.closeAfterFlush(websocket.CloseNormalClosure, "session ended")
		s.client = nil
	}
	if prev == statePending {
		if waitErr == nil {
			waitErr = proto.Errorf(proto.CodeSessionEnded, "session ended before the agent accepted it (%s)", reason)
		}
		s.result <- waitErr
	}
	s.log.Info("session ended", "reason", reason, "message", msg)
	if h.closed {
		delete(h.sessions, s.id)
		return
	}
	s.timer = h.afterFunc(tombstoneTTL, func() {
		if h.sessions[s.id] == s {
			delete(h.sessions, s.id)
		}
	})
}

// startGraceLocked ends s with client_lost unless a client joins within
// ClientGrace.
func (h *Hub) startGraceLocked(s *session) {
	if s.grace != nil {
		s.grace.Stop()
	}
	s.graceGen++
	gen := s.graceGen
	s.grace = h.afterFunc(h.opt.ClientGrace, func() {
		if s.graceGen == gen && s.state == stateReady && s.client == nil {
			h.endLocked(s, proto.EndClientLost, "no client joined in time", nil, nil)
		}
	})
}

func (h *Hub) stopGraceLocked(s *session) {
	if s.grace != nil {
		s.grace.Stop()
		s.grace = nil
	}
	s.graceGen++
}

// SessionForToken returns the ID of the live session that token opens.
func (h *Hub) SessionForToken(token string) (string, bool) {
	if token == "" {
		return "", false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.tokens[hashToken(token)]
	if s == nil || s.state != stateReady || !h.opt.Now().Before(s.expires) {
		return "", false
	}
	return s.id, true
}

// SessionLive reports whether id names a session that has not ended.
func (h *Hub) SessionLive(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[id]
	return s != nil && s.state != stateEnded
}

// EndSession ends session id on behalf of user (reason client), telling
// both sides. Another user's session is reported as not found.
func (h *Hub) EndSession(id, user string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[id]
	if s == nil || s.user != user || s.state == stateEnded {
		return ErrNoSession
	}
	h.endLocked(s, proto.EndByClient, "ended by the technician", nil, ErrCanceled)
	return nil
}

// SessionOwner returns the user and expiry of session id while it is live
// and accepted by its agent.
func (h *Hub) SessionOwner(id string) (user string, expires time.Time, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[id]
	if s == nil || s.state != stateReady || !h.opt.Now().Before(s.expires) {
		return "", time.Time{}, false
	}
	return s.user, s.expires, true
}

// AddToken makes the token whose SHA-256 is hash open session id too, until
// the session ends or RevokeToken. The session must be live.
func (h *Hub) AddToken(id string, hash [32]byte) (expires time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[id]
	if s == nil || s.state != stateReady || !h.opt.Now().Before(s.expires) {
		return time.Time{}, ErrNoSession
	}
	if h.draining {
		return time.Time{}, ErrDraining
	}
	if _, taken := h.tokens[hash]; taken {
		return time.Time{}, proto.Errorf(proto.CodeBadMessage, "token already in use")
	}
	h.tokens[hash] = s
	s.extraTokens = append(s.extraTokens, hash)
	return s.expires, nil
}

// RevokeToken makes a token added with AddToken useless. Connections it
// opened are closed.
func (h *Hub) RevokeToken(hash [32]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.tokens[hash]
	if s == nil || hash == s.tokenHash {
		return
	}
	delete(h.tokens, hash)
	for i, t := range s.extraTokens {
		if t == hash {
			s.extraTokens = append(s.extraTokens[:i], s.extraTokens[i+1:]...)
			break
		}
	}
	delete(s.bound, hash)
	if c := s.client; c != nil && c.auth.TokenHash == hash {
		s.log.Info("client token revoked; disconnecting the client")
		c.closeAfterFlush(websocket.ClosePolicyViolation, "token revoked")
	}
}
