package cluster

import (
	"encoding/binary"
	"net"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-dev/porthole/signaling/hub"
)

// ownerSocket is the owner's side of a bridge (bridge.go): the hub.Socket
// through which this node's hub serves a technician WebSocket that another
// node (the edge) holds. Its reads are the frames the edge sent; its
// writes go to the edge over the bus. The edge pings the technician and
// applies the read limit, the rate limit and the read deadline to the real
// socket, so a ping here is answered at once, as the in-memory peer of a
// real WebSocket would.
type ownerSocket struct {
	c       *Router
	key     bridgeKey
	session string

	in   chan []byte   // the edge's frames
	pong chan struct{} // a ping to answer on the read side
	done chan struct{} // closed by end
	once sync.Once
	err  error // what reads return once done and in is drained

	// Owned by the reading goroutine (hub.Socket's contract).
	limit       int64
	deadline    time.Time
	pongHandler func(string) error
}

var _ hub.Socket = (*ownerSocket)(nil)

func newOwnerSocket(c *Router, key bridgeKey, session string) *ownerSocket {
	return &ownerSocket{c: c, key: key, session: session,
		in: make(chan []byte, bridgeQueue), pong: make(chan struct{}, 1), done: make(chan struct{})}
}

func (s *ownerSocket) peerNode() string  { return s.key.edge }
func (s *ownerSocket) sessionID() string { return s.session }

// push queues a frame from the edge without blocking.
func (s *ownerSocket) push(data []byte) {
	select {
	case <-s.done:
	case s.in <- data:
	default:
		s.c.log.Info("bridge queue full; disconnecting", "session", s.session)
		s.end(websocket.ClosePolicyViolation, "too slow", true)
	}
}

// end closes the socket once: the hub reads a close frame with code after
// the frames already queued and, if tell, the edge is told.
func (s *ownerSocket) end(code int, text string, tell bool) {
	s.once.Do(func() {
		s.err = &websocket.CloseError{Code: closeCode(code), Text: text}
		s.c.unregister(s.key, s)
		if tell {
			s.c.send(s.key.edge, closeMsg(s.key, true, code, text))
		}
		close(s.done)
	})
}

func (s *ownerSocket) lostPeer() {
	s.end(websocket.CloseGoingAway, "the technician's signaling node went away", false)
}

// ReadMessage implements hub.Socket.
func (s *ownerSocket) ReadMessage() (int, []byte, error) {
	for {
		again, n, data, err := s.read()
		if !again {
			return n, data, err
		}
	}
}

// read waits for one frame, a close, the deadline or a ping to answer
// (again: read once more).
func (s *ownerSocket) read() (again bool, n int, data []byte, err error) {
	var timeout <-chan time.Time
	if !s.deadline.IsZero() {
		t := time.NewTimer(time.Until(s.deadline))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case data := <-s.in:
		n, data, err = s.frame(data)
		return false, n, data, err
	case <-s.pong:
		if h := s.pongHandler; h != nil {
			if err := h(""); err != nil {
				return false, 0, nil, err
			}
		}
		return true, 0, nil, nil
	case <-s.done:
		select {
		case data := <-s.in:
			n, data, err = s.frame(data)
			return false, n, data, err
		default:
		}
		return false, 0, nil, s.err
	case <-timeout:
		return false, 0, nil, os.ErrDeadlineExceeded
	}
}

func (s *ownerSocket) frame(data []byte) (int, []byte, error) {
	if s.limit > 0 && int64(len(data)) > s.limit {
		s.end(websocket.CloseMessageTooBig, "", true)
		return 0, nil, websocket.ErrReadLimit
	}
	return websocket.TextMessage, data, nil
}

// SetReadLimit implements hub.Socket.
func (s *ownerSocket) SetReadLimit(limit int64) { s.limit = limit }

// SetReadDeadline implements hub.Socket.
func (s *ownerSocket) SetReadDeadline(t time.Time) error { s.deadline = t; return nil }

// SetPongHandler implements hub.Socket.
func (s *ownerSocket) SetPongHandler(h func(string) error) { s.pongHandler = h }

// WriteMessage implements hub.Socket: the message goes to the edge.
func (s *ownerSocket) WriteMessage(_ int, data []byte) error {
	select {
	case <-s.done:
		return net.ErrClosed
	default:
	}
	if !s.c.send(s.key.edge, &msg{Kind: kindFrame, Bridge: s.key.id, ToEdge: true, Data: string(data)}) {
		s.end(websocket.CloseTryAgainLater, "cluster bus unavailable", true)
		return net.ErrClosed
	}
	return nil
}

// SetWriteDeadline implements hub.Socket; sending to the bus never blocks.
func (s *ownerSocket) SetWriteDeadline(time.Time) error { return nil }

// WriteControl implements hub.Socket: a ping is answered at once, a close
// frame ends the bridge with its code.
func (s *ownerSocket) WriteControl(typ int, data []byte, _ time.Time) error {
	select {
	case <-s.done:
		return websocket.ErrCloseSent
	default:
	}
	switch typ {
	case websocket.PingMessage:
		select {
		case s.pong <- struct{}{}:
		default:
		}
	case websocket.CloseMessage:
		code, text := websocket.CloseNoStatusReceived, ""
		if len(data) >= 2 {
			code, text = int(binary.BigEndian.Uint16(data)), string(data[2:])
		}
		s.end(code, text, true)
	}
	return nil
}

// Close implements hub.Socket: a close without a close frame, which the
// edge sees as its peer going away.
func (s *ownerSocket) Close() error {
	s.end(websocket.CloseGoingAway, "peer went away", true)
	return nil
}
