package hub

import (
	"sync"

	"golang.org/x/time/rate"

	"github.com/porthole-dev/porthole/proto"
)

// Limits bound what one session and one connection may make the hub carry,
// so that one technician cannot knock a shared agent offline: every limit
// refuses the offender's message with rate_limited (a refusal that counts
// towards MaxBadMessages), and an agent's queue that fills with one session's
// messages ends that session, never the agent. Zero fields mean the defaults.
type Limits struct {
	// SessionRate and SessionBurst are the token bucket for the offers and
	// candidates a session's client sends. Default 20 a second, burst 50:
	// a browser trickles its candidates in well under that.
	SessionRate  float64
	SessionBurst int
	// MaxCandidates is how many candidates a session's client may send in
	// the session's life, ICE restarts included. Default 200.
	MaxCandidates int
	// ClientRate/ClientBurst and AgentRate/AgentBurst are the token
	// buckets for every message a connection sends after hello (an
	// agent's fetch.* messages excepted: their credit window bounds them).
	// Defaults 50 a second, burst 100 for a client; 500, burst 1000 for an
	// agent, which speaks for all its sessions.
	ClientRate  float64
	ClientBurst int
	AgentRate   float64
	AgentBurst  int
	// AgentQueue is an agent connection's send queue; it carries every
	// session on the agent. Default 64 (at least Options.MaxQueue).
	AgentQueue int
	// SessionShare is how many of one session's client messages may wait
	// in its agent's queue at once; the session whose message finds its
	// share full (or the queue within AgentReserve of full) is ended.
	// Default 16.
	SessionShare int
	// AgentReserve is the part of an agent's queue kept for the hub's own
	// messages (session.open, session.end, log.ack), which client traffic
	// never takes. Default 16.
	AgentReserve int
}

// Defaults for zero Limits fields.
const (
	DefaultSessionRate   = 20
	DefaultSessionBurst  = 50
	DefaultMaxCandidates = 200
	DefaultClientRate    = 50
	DefaultClientBurst   = 100
	DefaultAgentRate     = 500
	DefaultAgentBurst    = 1000
	DefaultAgentQueue    = 64
	DefaultSessionShare  = 16
	DefaultAgentReserve  = 16
)

func (l *Limits) setDefaults(maxQueue int) {
	setDefault(&l.SessionRate, DefaultSessionRate)
	setDefault(&l.SessionBurst, DefaultSessionBurst)
	setDefault(&l.MaxCandidates, DefaultMaxCandidates)
	setDefault(&l.ClientRate, DefaultClientRate)
	setDefault(&l.ClientBurst, DefaultClientBurst)
	setDefault(&l.AgentRate, DefaultAgentRate)
	setDefault(&l.AgentBurst, DefaultAgentBurst)
	setDefault(&l.AgentQueue, max(DefaultAgentQueue, maxQueue))
	setDefault(&l.SessionShare, DefaultSessionShare)
	setDefault(&l.AgentReserve, DefaultAgentReserve)
	l.AgentReserve = min(l.AgentReserve, l.AgentQueue/2)
}

// allow takes one token from c's connection bucket.
func (c *conn) allow() error {
	if c.limiter.AllowN(c.h.opt.Now(), 1) {
		return nil
	}
	return proto.Errorf(proto.CodeRateLimited, "too many messages on this connection (at most %g a second); slow down",
		float64(c.limiter.Limit()))
}

// allowSessionLocked takes one token from s's bucket for a client message
// of type typ, and counts its candidates.
func (h *Hub) allowSessionLocked(s *session, typ proto.MsgType) error {
	l := &h.opt.Limits
	if typ == proto.TypeCandidate {
		if s.candidates >= l.MaxCandidates {
			return proto.Errorf(proto.CodeRateLimited, "session %s has sent %d candidates, the most a session may; no more are accepted", s.id, l.MaxCandidates)
		}
	}
	if !s.limiter.AllowN(h.opt.Now(), 1) {
		return proto.Errorf(proto.CodeRateLimited, "too many signaling messages for session %s (at most %g a second); slow down", s.id, l.SessionRate)
	}
	if typ == proto.TypeCandidate {
		s.candidates++
	}
	return nil
}

// agentQueue keeps count of each session's client messages waiting in an
// agent connection's send queue.
type agentQueue struct {
	mu     sync.Mutex
	queued map[string]int
}

// errShareFull means a session's share of its agent's queue is full.
var errShareFull = proto.Errorf(proto.CodeRateLimited, "the agent's queue for this session is full")

// enqueueFor queues b on agent connection c for session, within the
// session's share and outside the hub's reserve. It never disconnects c:
// the caller ends the session on errShareFull.
func (c *conn) enqueueFor(session string, b []byte) error {
	l := &c.h.opt.Limits
	c.aq.mu.Lock()
	if c.aq.queued[session] >= l.SessionShare || len(c.send) >= cap(c.send)-l.AgentReserve {
		c.aq.mu.Unlock()
		return errShareFull
	}
	if c.aq.queued == nil {
		c.aq.queued = map[string]int{} // only agents that carry client messages pay for it
	}
	c.aq.queued[session]++
	c.aq.mu.Unlock()
	select {
	case <-c.done:
		c.dequeued(session)
		return nil // the agent is going; its sessions end with it
	default:
	}
	select {
	case c.send <- &outMsg{data: b, session: session}:
		return nil
	default:
		c.dequeued(session)
		return errShareFull
	}
}

// dequeued is called by writePump once a session's message left the queue.
func (c *conn) dequeued(session string) {
	c.aq.mu.Lock()
	if n := c.aq.queued[session] - 1; n > 0 {
		c.aq.queued[session] = n
	} else {
		delete(c.aq.queued, session)
	}
	c.aq.mu.Unlock()
}

// forwardLocked sends a client's message on to s's agent. When the
// agent's queue holds too much of this session already, the session ends
// (its client was told why) and the agent stays connected.
func (h *Hub) forwardLocked(s *session, from *conn, typ proto.MsgType, payload any) {
	b, err := proto.Encode(typ, s.id, payload)
	if err != nil {
		s.log.Error("encode message", "type", typ, "err", err)
		return
	}
	if err := s.agent.enqueueFor(s.id, b); err != nil {
		s.log.Info("agent queue full with this session's messages; ending the session, keeping the agent",
			"share", h.opt.Limits.SessionShare, "queue", cap(s.agent.send))
		from.reply(s.id, proto.Errorf(proto.CodeRateLimited,
			"session %s sent signaling messages faster than its agent reads them; the session was ended (other sessions on the agent continue)", s.id))
		h.endLocked(s, proto.EndError, "signaling messages sent faster than the agent reads them", nil, nil)
	}
}

func newLimiter(r float64, burst int) *rate.Limiter { return rate.NewLimiter(rate.Limit(r), burst) }

// setDefault sets *v to d unless the caller set it (a positive value).
func setDefault[T ~int | ~int64 | ~float64](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}
