package cluster

import (
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/hub"
)

// A bridge carries one technician WebSocket between the node it reached
// (the edge, which holds the real socket) and the node owning its session,
// whose hub serves it through an ownerSocket: a hub.Socket whose reads are
// the frames the edge sends and whose writes are sent to the edge. The
// edge reads its socket and sends the frames to the owner over the bus,
// and writes what the owner sends; a close on either side closes both.

// bridgeKey names a bridge on both its nodes: the node holding the real
// WebSocket (the edge) and a number it chose.
type bridgeKey struct {
	edge string
	id   uint64
}

// bridgeQueue bounds the messages waiting for one side; a side that falls
// this far behind is disconnected, as a slow WebSocket is by the hub.
const bridgeQueue = 256

// bridgeEnd is one node's side of a bridge, as the router sees it.
type bridgeEnd interface {
	// push queues a frame from the other side without blocking.
	push(data []byte)
	// end closes this side once with code and text and, if tell, tells
	// the other side.
	end(code int, text string, tell bool)
	// lostPeer ends this side because the other node stopped heartbeating.
	lostPeer()
	peerNode() string
	sessionID() string
}

// register records b under key; false if the router closed.
func (c *Router) register(key bridgeKey, b bridgeEnd) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.bridges[key] = b
	return true
}

// unregister forgets b.
func (c *Router) unregister(key bridgeKey, b bridgeEnd) {
	c.mu.Lock()
	if c.bridges[key] == b {
		delete(c.bridges, key)
	}
	c.mu.Unlock()
}

// closeMsg is the bridge message that ends the other side.
func closeMsg(key bridgeKey, toEdge bool, code int, text string) *msg {
	return &msg{Kind: kindClose, Bridge: key.id, ToEdge: toEdge, Code: code, Data: text}
}

// edgeBridge is the edge's side: the technician's real socket, read and
// written by its own pumps.
type edgeBridge struct {
	c       *Router
	key     bridgeKey
	peer    string // the owner
	session string
	ws      hub.Socket

	out  chan []byte
	done chan struct{}
	once sync.Once
	code int
	text string
}

func (b *edgeBridge) peerNode() string  { return b.peer }
func (b *edgeBridge) sessionID() string { return b.session }

// serveEdge bridges ws, a technician's socket for session owned by node,
// with what its request proved (auth), which the owner's hub checks.
func (c *Router) serveEdge(ws hub.Socket, session, node string, auth hub.ClientAuth) {
	b := &edgeBridge{c: c, key: bridgeKey{edge: c.bus.Node(), id: c.seq.Add(1)}, peer: node, session: session, ws: ws,
		out: make(chan []byte, bridgeQueue), done: make(chan struct{})}
	if !c.register(b.key, b) {
		ws.Close()
		return
	}
	m := &msg{Kind: kindJoin, Bridge: b.key.id, Session: session, Hash: auth.TokenHash[:], Browser: auth.Browser}
	if auth.BindHash != ([32]byte{}) {
		m.Bind = auth.BindHash[:]
	}
	if !c.send(node, m) {
		b.end(websocket.CloseTryAgainLater, "cluster bus unavailable", false)
	}
	c.wg.Add(2)
	go b.readPump()
	go b.writePump()
}

func (b *edgeBridge) push(data []byte) {
	select {
	case <-b.done:
	case b.out <- data:
	default:
		b.c.log.Info("bridge queue full; disconnecting", "session", b.session)
		b.end(websocket.ClosePolicyViolation, "too slow", true)
	}
}

func (b *edgeBridge) end(code int, text string, tell bool) {
	b.once.Do(func() {
		b.code, b.text = code, text
		b.c.unregister(b.key, b)
		if tell {
			b.c.send(b.peer, closeMsg(b.key, false, code, text))
		}
		close(b.done)
	})
}

// lostPeer tells the technician why before its socket closes; a session
// set up already keeps working peer to peer.
func (b *edgeBridge) lostPeer() {
	if data, err := proto.Encode(proto.TypeError, b.session, &proto.Error{Code: proto.CodeUnavailable,
		Message: "the signaling node serving this session went away; sessions already connected keep working, others must be opened again"}); err == nil {
		select {
		case b.out <- data:
		default:
		}
	}
	b.end(websocket.CloseServiceRestart, "signaling node lost", false)
}

func (b *edgeBridge) readPump() {
	defer b.c.wg.Done()
	cfg := &b.c.cfg
	b.ws.SetReadLimit(proto.MaxSignalMessage)
	b.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
	b.ws.SetPongHandler(func(string) error {
		return b.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
	})
	// The edge holds the technician's real socket, so it applies the
	// connection's rate limit itself: frames past it never reach the bus,
	// which every session between the two nodes shares (the owner's hub
	// would refuse them too, but only after they had crossed).
	lim := newEdgeLimit(cfg.Limits, cfg.Now)
	for {
		typ, data, err := b.ws.ReadMessage()
		if err != nil {
			code, text := websocket.CloseGoingAway, "peer went away"
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseNoStatusReceived && ce.Code != websocket.CloseAbnormalClosure {
				code, text = ce.Code, ce.Text
			}
			b.end(code, text, true)
			return
		}
		if typ != websocket.TextMessage {
			continue // the hub refuses binary messages; nothing to carry
		}
		if refusal, disconnect := lim.take(); refusal != nil {
			if disconnect {
				b.c.log.Info("too many messages on a bridged connection; disconnected", "session", b.session)
				b.end(websocket.ClosePolicyViolation, "too many bad messages", true)
				return
			}
			b.refuse(refusal)
			continue
		}
		if !b.c.send(b.peer, &msg{Kind: kindFrame, Bridge: b.key.id, Data: string(data)}) {
			b.end(websocket.CloseTryAgainLater, "cluster bus unavailable", true)
			return
		}
	}
}

func (b *edgeBridge) writePump() {
	defer b.c.wg.Done()
	defer b.ws.Close()
	cfg := &b.c.cfg
	wait := min(10*time.Second, cfg.PongWait)
	t := time.NewTicker(cfg.PingInterval)
	defer t.Stop()
	write := func(data []byte) bool {
		b.ws.SetWriteDeadline(time.Now().Add(wait))
		return b.ws.WriteMessage(websocket.TextMessage, data) == nil
	}
	for {
		select {
		case data := <-b.out:
			if !write(data) {
				b.end(websocket.CloseGoingAway, "write failed", true)
				return
			}
		case <-t.C:
			if b.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(wait)) != nil {
				b.end(websocket.CloseGoingAway, "ping failed", true)
				return
			}
		case <-b.done:
			for {
				select {
				case data := <-b.out:
					if !write(data) {
						return
					}
					continue
				default:
				}
				break
			}
			_ = b.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeCode(b.code), b.text), time.Now().Add(time.Second))
			return
		}
	}
}

// closeCode is the code a close frame may carry for code: the codes that
// only say no frame came become going away.
func closeCode(code int) int {
	if code == 0 || code == websocket.CloseNoStatusReceived || code == websocket.CloseAbnormalClosure {
		return websocket.CloseGoingAway
	}
	return code
}

// refuse answers the technician on the edge itself, without blocking: a
// socket too slow to take its refusals loses them.
func (b *edgeBridge) refuse(pe *proto.Error) {
	data, err := proto.Encode(proto.TypeError, b.session, pe)
	if err != nil {
		return
	}
	select {
	case b.out <- data:
	default:
	}
}

// join starts the owner's side of a bridge: an ownerSocket served by this
// node's hub. It runs on the bus's delivery goroutine, so the bridge
// exists before the frames that follow the join are delivered.
func (c *Router) join(m *msg) {
	key := bridgeKey{edge: m.From, id: m.Bridge}
	auth := hub.ClientAuth{Browser: m.Browser}
	if len(m.Hash) != len(auth.TokenHash) || (m.Bind != nil && len(m.Bind) != len(auth.BindHash)) {
		c.send(m.From, closeMsg(key, true, websocket.CloseTryAgainLater, "bad join"))
		return
	}
	copy(auth.TokenHash[:], m.Hash)
	copy(auth.BindHash[:], m.Bind)
	s := newOwnerSocket(c, key, m.Session)
	if !c.register(key, s) {
		c.send(m.From, closeMsg(key, true, websocket.CloseTryAgainLater, "signaling is shutting down"))
		return
	}
	c.hub.ServeClientAuth(s, m.Session, auth)
}

// edgeLimit is the edge's token bucket for one bridged technician socket:
// the hub's per-connection client limit (hub.Limits ClientRate and
// ClientBurst), with the hub's count of refusals before a disconnect.
type edgeLimit struct {
	lim     *rate.Limiter
	now     func() time.Time
	refused int
}

func newEdgeLimit(l hub.Limits, now func() time.Time) *edgeLimit {
	r, burst := l.ClientRate, l.ClientBurst
	if r <= 0 {
		r = hub.DefaultClientRate
	}
	if burst <= 0 {
		burst = hub.DefaultClientBurst
	}
	return &edgeLimit{lim: rate.NewLimiter(rate.Limit(r), burst), now: now}
}

// take spends a token for one frame. Without one it returns the refusal
// to send the technician, and whether the socket has been refused too often.
func (e *edgeLimit) take() (refusal *proto.Error, disconnect bool) {
	if e.lim.AllowN(e.now(), 1) {
		return nil, false
	}
	e.refused++
	return proto.Errorf(proto.CodeRateLimited, "too many messages on this connection (at most %g a second); slow down",
		float64(e.lim.Limit())), e.refused > hub.DefaultMaxBadMessages
}
