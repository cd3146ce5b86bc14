package hub

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/porthole-dev/porthole/proto"
)

// Socket is what a connection needs of its WebSocket: the methods of
// gorilla's *websocket.Conn that the pumps call, so that a socket may also
// be something that only behaves like one (a technician's WebSocket held
// by another node of a cluster, package cluster), as netbird's signal
// server serves its peers through one small interface.
//
// As with gorilla, one goroutine reads (ReadMessage, and the deadline,
// limit and pong handler it applies) and one writes (WriteMessage,
// SetWriteDeadline); WriteControl and Close may be called from any
// goroutine and must not block beyond the deadline given.
type Socket interface {
	ReadMessage() (messageType int, data []byte, err error)
	SetReadLimit(limit int64)
	SetReadDeadline(t time.Time) error
	SetPongHandler(h func(appData string) error)
	WriteMessage(messageType int, data []byte) error
	SetWriteDeadline(t time.Time) error
	WriteControl(messageType int, data []byte, deadline time.Time) error
	Close() error
}

var _ Socket = (*websocket.Conn)(nil)

// conn is one WebSocket, agent or client, in the gorilla chat pattern: a
// readPump that decodes and dispatches messages and a writePump that owns all
// writes, joined by a bounded send queue.
type conn struct {
	h    *Hub
	ws   Socket
	role proto.Role
	id   string // agent ID for agents, user ID for clients
	log  *slog.Logger

	send     chan *outMsg  // pointers: an idle connection's queue is 8 bytes a slot
	bulk     chan *outMsg  // agents: fetch.* messages (fetch.go), written after send's; nil for clients
	done     chan struct{} // closed by stop
	stopOnce sync.Once
	stopCode int // close code writePump sends on stop; 0 sends none
	stopText string
	closing  atomic.Bool // closeAfterFlush was called: nothing more is queued

	// Guarded by h.mu.
	session   string               // clients: the one session this connection may speak for
	auth      ClientAuth           // clients: what the server proved about it (binding.go)
	sessions  map[string]*session  // agents: live sessions on this connection
	revoked   bool                 // agents: dropped on purpose; its sessions end at once
	place     AgentPlace           // agents: where it is, for choosing relays (relays.go)
	fetch     int                  // agents: the fallback protocol version it announced (fetch.go)
	inventory bool                 // agents: it applies inventories (inventory.go); under h.mu
	fetches   map[*fetchEntry]bool // agents: exchanges in flight on this connection
	site      string               // agents: its site, the scope of its device IDs (agents.go)

	// Owned by the read goroutine.
	greeted bool
	bad     int
	limiter *rate.Limiter // every message after hello (limits.go)

	aq agentQueue // agents: each session's messages in send (limits.go)
}

// outMsg is a queued text message, or (closeCode != 0) a request to close
// the connection after the messages queued before it.
type outMsg struct {
	data      []byte
	closeCode int
	closeText string
	session   string // a client's message queued for an agent (limits.go)
}

// start registers c and starts its pumps, or closes the socket if the hub
// has closed.
func (h *Hub) start(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		c.ws.Close()
		return
	}
	h.conns[c] = struct{}{}
	h.wg.Add(2)
	go c.writePump()
	go c.readPump()
}

func (h *Hub) newConn(ws Socket, role proto.Role, id string, log *slog.Logger) *conn {
	l := &h.opt.Limits
	queue, limiter := h.opt.MaxQueue, newLimiter(l.ClientRate, l.ClientBurst)
	if role == proto.RoleAgent {
		// One agent carries every session on it: a longer queue, shared
		// fairly (enqueueFor).
		queue, limiter = l.AgentQueue, newLimiter(l.AgentRate, l.AgentBurst)
	}
	c := &conn{
		h:       h,
		ws:      ws,
		role:    role,
		id:      id,
		log:     log,
		send:    make(chan *outMsg, queue),
		done:    make(chan struct{}),
		limiter: limiter,
	}
	if role == proto.RoleAgent {
		c.bulk = make(chan *outMsg, bulkQueue)
	}
	return c
}

// bulkQueue bounds an agent connection's queued fetch.* messages. Their
// senders wait for room (enqueueWait), so a full queue slows the
// exchanges instead of disconnecting the agent.
const bulkQueue = 16

// enqueueWait queues b on the bulk queue, waiting for room until ctx ends
// or the connection stops.
func (c *conn) enqueueWait(ctx context.Context, b []byte) error {
	select {
	case <-c.done:
		return ErrAgentLost
	default:
	}
	select {
	case c.bulk <- &outMsg{data: b}:
		return nil
	case <-c.done:
		return ErrAgentLost
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// stop ends the connection: writePump sends a close frame with code (unless
// code is 0) and closes the socket, which ends readPump. It never blocks.
func (c *conn) stop(code int, text string) {
	c.stopOnce.Do(func() {
		c.stopCode, c.stopText = code, text
		close(c.done)
	})
}

// enqueue queues b without blocking. A full queue means the peer does not
// read fast enough; signaling messages cannot be dropped, so the connection
// is disconnected instead.
func (c *conn) enqueue(b []byte) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	if c.closing.Load() {
		return false // what was queued before the close goes out; nothing after it
	}
	select {
	case c.send <- &outMsg{data: b}:
		return true
	default:
		// Its writePump may be blocked writing to it: close the socket now
		// rather than after the write deadline. What is queued is lost.
		c.log.Info("send queue full; disconnecting slow peer", "queue", cap(c.send))
		c.stop(0, "")
		c.ws.Close()
		return false
	}
}

// closeAfterFlush closes the connection once the messages already queued
// are written.
func (c *conn) closeAfterFlush(code int, text string) {
	if c.closing.Swap(true) {
		return
	}
	select {
	case c.send <- &outMsg{closeCode: code, closeText: text}:
	default:
		c.stop(code, text)
	}
}

// sendMsg encodes and queues one message.
func (c *conn) sendMsg(typ proto.MsgType, session string, payload any) bool {
	b, err := proto.Encode(typ, session, payload)
	if err != nil {
		c.log.Error("encode message", "type", typ, "err", err)
		return false
	}
	return c.enqueue(b)
}

func (c *conn) writePump() {
	defer c.h.wg.Done()
	ticker := time.NewTicker(c.h.opt.PingInterval)
	defer ticker.Stop()
	defer c.ws.Close()
	wait := c.h.opt.WriteWait
	write := func(m *outMsg) bool {
		if m.closeCode != 0 {
			c.writeClose(m.closeCode, m.closeText)
			c.stop(0, "")
			return false
		}
		if m.session != "" {
			c.dequeued(m.session)
		}
		c.ws.SetWriteDeadline(time.Now().Add(wait))
		if err := c.ws.WriteMessage(websocket.TextMessage, m.data); err != nil {
			c.log.Debug("write failed", "err", err)
			c.stop(0, "")
			return false
		}
		return true
	}
	for {
		select {
		case m := <-c.send:
			if !write(m) {
				return
			}
		case m := <-c.bulk: // nil for clients: never ready
			// Signaling's own messages queued meanwhile go first.
			for drained := false; !drained; {
				select {
				case o := <-c.send:
					if !write(o) {
						return
					}
				default:
					drained = true
				}
			}
			if !write(m) {
				return
			}
		case <-ticker.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(wait)); err != nil {
				c.log.Debug("ping failed", "err", err)
				c.stop(0, "")
				return
			}
		case <-c.done:
			if c.stopCode != 0 {
				c.writeClose(c.stopCode, c.stopText)
			}
			return
		}
	}
}

func (c *conn) writeClose(code int, text string) {
	msg := websocket.FormatCloseMessage(code, text)
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.h.opt.WriteWait))
}

func (c *conn) readPump() {
	defer c.h.wg.Done()
	defer c.h.connClosed(c)
	defer c.stop(0, "") // gorilla answers a peer's close frame itself

	opt := &c.h.opt
	c.ws.SetReadLimit(proto.MaxSignalMessage)
	c.ws.SetReadDeadline(time.Now().Add(opt.HelloTimeout))
	c.ws.SetPongHandler(func(string) error {
		if c.greeted { // before hello, pongs do not keep a connection alive
			c.ws.SetReadDeadline(time.Now().Add(opt.PongWait))
		}
		return nil
	})
	for {
		typ, b, err := c.ws.ReadMessage()
		if err != nil {
			// gorilla already sent 1009 for an oversize frame and answers
			// close frames; a dead peer gets nothing.
			c.logReadError(err)
			return
		}
		if typ != websocket.TextMessage {
			c.refuse("", proto.Errorf(proto.CodeBadMessage, "binary messages are not accepted"))
			continue
		}
		if !utf8.Valid(b) {
			// RFC 6455 §8.1: a text frame that is not UTF-8 fails the
			// connection with 1007 (gorilla leaves the check to us).
			c.log.Info("text message is not valid UTF-8; disconnected")
			c.stop(websocket.CloseInvalidFramePayloadData, "text message is not valid UTF-8")
			return
		}
		env, err := proto.Decode(b)
		if err != nil {
			c.refuse("", err)
			continue
		}
		if !c.greeted {
			c.hello(env)
			continue
		}
		// An agent's fetch.* messages are bounded by their exchange's credit
		// window (proto.FetchWindow, an overrun aborts the exchange), not by
		// the connection's bucket: a download through the fallback sends
		// more chunks than the bucket holds, and refusing them would break
		// the body and, past MaxBadMessages, drop the agent.
		if c.role != proto.RoleAgent || !proto.IsFetch(env.Type) {
			if err := c.allow(); err != nil {
				c.refuse(env.Session, err)
				continue
			}
		}
		c.h.dispatch(c, env)
	}
}

func (c *conn) logReadError(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		c.log.Info("message over size limit; disconnected", "limit", proto.MaxSignalMessage)
	case errors.As(err, &ne) && ne.Timeout():
		if c.greeted {
			c.log.Info("no pong in time; disconnected")
		} else {
			c.log.Info("no hello in time; disconnected")
		}
	case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway):
		c.log.Debug("peer closed", "err", err)
	default:
		c.log.Debug("read failed", "err", err)
	}
}

// hello handles the first message, which must be a hello of c's role.
func (c *conn) hello(env *proto.Envelope) {
	if env.Type != proto.TypeHello {
		c.refuse(env.Session, proto.Errorf(proto.CodeBadMessage, "the first message must be hello"))
		return
	}
	var hello proto.Hello
	if err := proto.DecodeData(env, &hello); err != nil {
		c.refuse("", err)
		return
	}
	if hello.Role != c.role {
		c.refuse("", proto.Errorf(proto.CodeBadMessage, "hello: role %s on a %s socket", hello.Role, c.role))
		return
	}
	c.greeted = true
	c.ws.SetReadDeadline(time.Now().Add(c.h.opt.PongWait))
	if c.role == proto.RoleAgent {
		if (len(hello.Devices) > 0 || c.h.opt.Inventory != nil) && c.h.opt.AgentSite != nil {
			c.site = c.h.opt.AgentSite(c.id) // before the lock: it may read the store
		}
		var adopted []SessionState
		if c.h.opt.Adopt != nil && !c.h.Draining() {
			adopted = c.h.opt.Adopt(c.id) // before the lock: it may read the store
		}
		c.h.agentHello(c, &hello, adopted)
		c.h.agentSynced(c, &hello)
	} else {
		c.h.clientHello(c)
	}
}

// refuse answers a bad message with an error carrying its code and counts
// it; a peer that keeps sending bad messages is disconnected.
func (c *conn) refuse(session string, err error) {
	c.bad++
	c.reply(session, err)
	if c.bad > c.h.opt.MaxBadMessages {
		c.log.Info("too many bad messages; disconnected", "count", c.bad)
		c.stop(websocket.ClosePolicyViolation, "too many bad messages")
	}
}

// reply sends err back to the sender without counting it against them.
func (c *conn) reply(session string, err error) {
	pe := &proto.Error{Code: proto.CodeOf(err), Message: err.Error()}
	var e *proto.Error
	if errors.As(err, &e) {
		pe.Message = e.Message
	}
	if len(pe.Message) > proto.MaxText {
		pe.Message = pe.Message[:proto.MaxText]
	}
	c.log.Info("message refused", "named_session", session, "code", pe.Code, "message", pe.Message)
	if session != "" && !proto.ValidSessionID(session) {
		session = ""
	}
	c.sendMsg(proto.TypeError, session, pe)
}
