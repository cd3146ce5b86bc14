package server

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/hub"
)

// bridgeKey names a bridge on both its nodes: the node holding the real
// WebSocket (the edge) and a number it chose.
type bridgeKey struct {
	edge string
	id   uint64
}

// bridgeQueue bounds the messages waiting to be written to one side; a
// side that falls this far behind is disconnected, as a slow WebSocket is
// by the hub.
const bridgeQueue = 256

// bridge carries one technician WebSocket between the node it reached (the
// edge, which holds the real socket) and the node owning its session,
// which holds an in-memory socket served by its hub. Each side reads its
// socket and sends the frames to the other over the bus, and writes what
// the other sends; a close on either side closes both.
type bridge struct {
	c       *cluster
	key     bridgeKey
	peer    string // the node at the other end
	session string
	edge    bool
	ws      *websocket.Conn

	out  chan []byte
	done chan struct{}
	once sync.Once
	code int
	text string
}

// newBridge registers a bridge; nil if the cluster closed.
func (c *cluster) newBridge(key bridgeKey, peer, session string, edge bool, ws *websocket.Conn) *bridge {
	b := &bridge{c: c, key: key, peer: peer, session: session, edge: edge, ws: ws,
		out: make(chan []byte, bridgeQueue), done: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.bridges[key] = b
	return b
}

func (b *bridge) start() {
	b.c.wg.Add(2)
	go b.readPump()
	go b.writePump()
}

// msg returns a bus message for the other side of b.
func (b *bridge) msg(kind string) *busMsg {
	return &busMsg{Kind: kind, Bridge: b.key.id, ToEdge: !b.edge}
}

// push queues a frame from the other side without blocking.
func (b *bridge) push(data []byte) {
	select {
	case <-b.done:
	case b.out <- data:
	default:
		b.c.log.Info("bridge queue full; disconnecting", "session", b.session)
		b.end(websocket.ClosePolicyViolation, "too slow", true)
	}
}

// end closes b once: its socket gets a close frame with code (written
// after the frames already queued) and, if tell, the other side is told.
func (b *bridge) end(code int, text string, tell bool) {
	b.once.Do(func() {
		b.code, b.text = code, text
		b.c.mu.Lock()
		if b.c.bridges[b.key] == b {
			delete(b.c.bridges, b.key)
		}
		b.c.mu.Unlock()
		if tell {
			m := b.msg(kindClose)
			m.Code, m.Data = code, text
			b.c.send(b.peer, m)
		}
		close(b.done)
	})
}

// lostPeer ends b because the other node stopped heartbeating. A
// technician is told why before its socket closes; a session set up
// already keeps working peer to peer.
func (b *bridge) lostPeer() {
	if b.edge {
		if data, err := proto.Encode(proto.TypeError, b.session, &proto.Error{Code: proto.CodeUnavailable,
			Message: "the signaling node serving this session went away; sessions already connected keep working, others must be opened again"}); err == nil {
			select {
			case b.out <- data:
			default:
			}
		}
		b.end(websocket.CloseServiceRestart, "signaling node lost", false)
		return
	}
	b.end(websocket.CloseGoingAway, "the technician's signaling node went away", false)
}

func (b *bridge) readPump() {
	defer b.c.wg.Done()
	s := b.c.s
	b.ws.SetReadLimit(proto.MaxSignalMessage)
	if b.edge {
		b.ws.SetReadDeadline(time.Now().Add(s.cfg.PongWait))
		b.ws.SetPongHandler(func(string) error {
			return b.ws.SetReadDeadline(time.Now().Add(s.cfg.PongWait))
		})
	}
	// The edge holds the technician's real socket, so it applies the
	// connection's rate limit itself: frames past it never reach the bus,
	// which every session between the two nodes shares (the owner's hub
	// would refuse them too, but only after they had crossed).
	var lim *edgeLimit
	if b.edge {
		lim = newEdgeLimit(s.cfg.Limits, s.now)
	}
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
		if lim != nil {
			if refusal, disconnect := lim.take(); refusal != nil {
				if disconnect {
					b.c.log.Info("too many messages on a bridged connection; disconnected", "session", b.session)
					b.end(websocket.ClosePolicyViolation, "too many bad messages", true)
					return
				}
				b.refuse(refusal)
				continue
			}
		}
		m := b.msg(kindFrame)
		m.Data = string(data)
		if !b.c.send(b.peer, m) {
			b.end(websocket.CloseTryAgainLater, "cluster bus unavailable", true)
			return
		}
	}
}

func (b *bridge) writePump() {
	defer b.c.wg.Done()
	defer b.ws.Close()
	s := b.c.s
	wait := min(10*time.Second, s.cfg.PongWait)
	var ping <-chan time.Time
	if b.edge {
		t := time.NewTicker(s.cfg.PingInterval)
		defer t.Stop()
		ping = t.C
	}
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
		case <-ping:
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
			code := b.code
			if code == 0 || code == websocket.CloseNoStatusReceived || code == websocket.CloseAbnormalClosure {
				code = websocket.CloseGoingAway
			}
			_ = b.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, b.text), time.Now().Add(time.Second))
			return
		}
	}
}

// serveEdge bridges ws, a technician's socket for session owned by node,
// with what its request proved (auth), which the owner's hub checks.
func (c *cluster) serveEdge(ws *websocket.Conn, session, node string, auth hub.ClientAuth) {
	b := c.newBridge(bridgeKey{edge: c.bus.Node(), id: c.seq.Add(1)}, node, session, true, ws)
	if b == nil {
		ws.Close()
		return
	}
	m := b.msg(kindJoin)
	m.Session, m.Hash, m.Browser = session, auth.TokenHash[:], auth.Browser
	if auth.BindHash != ([32]byte{}) {
		m.Bind = auth.BindHash[:]
	}
	m.ToEdge = false
	if !c.send(node, m) {
		b.end(websocket.CloseTryAgainLater, "cluster bus unavailable", false)
	}
	b.start()
}

// join starts the owner's side of a bridge: an in-memory socket served by
// this node's hub. It runs on the bus's delivery goroutine, so the bridge
// exists before the frames that follow the join are delivered.
func (c *cluster) join(m *busMsg) {
	key := bridgeKey{edge: m.From, id: m.Bridge}
	refuse := func(text string) {
		c.send(m.From, &busMsg{Kind: kindClose, Bridge: m.Bridge, ToEdge: true, Code: websocket.CloseTryAgainLater, Data: text})
	}
	auth := hub.ClientAuth{Browser: m.Browser}
	if len(m.Hash) != len(auth.TokenHash) || (m.Bind != nil && len(m.Bind) != len(auth.BindHash)) {
		refuse("bad join")
		return
	}
	copy(auth.TokenHash[:], m.Hash)
	copy(auth.BindHash[:], m.Bind)
	srv, cli, err := wsPair()
	if err != nil {
		c.log.Warn("bridge socket failed", "err", err)
		refuse("bridge failed")
		return
	}
	b := c.newBridge(key, m.From, m.Session, false, cli)
	if b == nil {
		srv.Close()
		cli.Close()
		refuse("signaling is shutting down")
		return
	}
	b.start()
	c.s.hub.ServeClientAuth(srv, m.Session, auth)
}

// wsPair returns the two ends of a WebSocket connection in memory.
func wsPair() (server, client *websocket.Conn, err error) {
	a, z := net.Pipe()
	type result struct {
		c   *websocket.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		br := bufio.NewReader(a)
		req, err := http.ReadRequest(br)
		if err != nil {
			done <- result{nil, err}
			return
		}
		w := &hijacked{conn: a, brw: bufio.NewReadWriter(br, bufio.NewWriter(a)), h: http.Header{}}
		up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
		c, err := up.Upgrade(w, req, nil)
		done <- result{c, err}
	}()
	d := websocket.Dialer{
		NetDialContext:   func(context.Context, string, string) (net.Conn, error) { return z, nil },
		HandshakeTimeout: 5 * time.Second,
	}
	client, _, err = d.Dial("ws://bridge/", nil)
	r := <-done
	if err == nil {
		err = r.err
	}
	if err != nil {
		a.Close()
		z.Close()
		return nil, nil, err
	}
	return r.c, client, nil
}

// hijacked is the http.ResponseWriter the in-memory upgrade needs.
type hijacked struct {
	conn net.Conn
	brw  *bufio.ReadWriter
	h    http.Header
}

func (w *hijacked) Header() http.Header         { return w.h }
func (w *hijacked) Write(b []byte) (int, error) { return len(b), nil }
func (w *hijacked) WriteHeader(int)             {}
func (w *hijacked) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, w.brw, nil
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

// refuse answers the technician on the edge itself, without blocking: a
// socket too slow to take its refusals loses them.
func (b *bridge) refuse(pe *proto.Error) {
	data, err := proto.Encode(proto.TypeError, b.session, pe)
	if err != nil {
		return
	}
	select {
	case b.out <- data:
	default:
	}
}
