// Package sigclient is the WebSocket client side of the signaling protocol,
// shared by the agent daemon and the technician CLI: it dials, authenticates,
// keeps the connection alive, and moves proto envelopes in both directions
// through bounded queues.
package sigclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-dev/porthole/agent/egress"
	"github.com/porthole-dev/porthole/proto"
)

// Options configure a connection. Zero values are safe defaults.
type Options struct {
	// Header is sent with the upgrade request, e.g. Authorization.
	Header http.Header
	// TLS configures wss:// connections (client certificates, roots).
	TLS *tls.Config
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger
	// IdleTimeout closes the connection when nothing (not even a ping)
	// arrived for this long. Signaling pings every 20 s; default 60 s.
	IdleTimeout time.Duration
	// QueueSize bounds outgoing messages not yet written; default 64.
	QueueSize int
	// BulkQueueSize bounds bulk messages (SendWait) not yet written;
	// default 32.
	BulkQueueSize int
	// Egress says how to leave the network: directly or through an HTTP
	// proxy (agent/egress). Nil means direct.
	Egress *egress.Egress
	// CertHint is the advice given when signaling's certificate does not
	// verify, e.g. because a proxy inspects TLS ("give the proxy's CA
	// with --ca-file").
	CertHint string
}

// ErrQueueFull is returned by Send when the outgoing queue is full: the
// connection cannot keep up and is closed, because signaling messages must
// not be dropped.
var ErrQueueFull = errors.New("signaling send queue full")

// ErrClosed is returned once the connection is closed.
var ErrClosed = errors.New("signaling connection closed")

const writeWait = 10 * time.Second

// Conn is one signaling connection.
type Conn struct {
	ws   *websocket.Conn
	log  *slog.Logger
	idle time.Duration
	out  chan []byte
	bulk chan []byte // SendWait's: written after out, waited for when full
	in   chan *proto.Envelope
	done chan struct{}
	// closing asks the writer to flush what is queued, say goodbye and
	// close; done is closed once the connection is gone.
	closing     chan struct{}
	closingOnce sync.Once
	wg          sync.WaitGroup
	once        sync.Once
	mu          sync.Mutex
	err         error
	closed      bool
	pongs       map[string]chan struct{} // Ping's waiters, by payload
	pingSeq     uint64
}

// Dial connects to a signaling WebSocket URL (ws:// or wss://) and starts
// the connection's reader and writer. HTTP refusals come back as errors
// carrying the status and, when signaling sent one, the proto error.
func Dial(ctx context.Context, url string, opts Options) (*Conn, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 60 * time.Second
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 64
	}
	if opts.BulkQueueSize <= 0 {
		opts.BulkQueueSize = 32
	}
	if opts.Egress == nil {
		opts.Egress = egress.Direct()
	}
	scheme, _, _ := strings.Cut(url, ":")
	d := websocket.Dialer{
		HandshakeTimeout: 15 * time.Second,
		TLSClientConfig:  opts.TLS,
		Subprotocols:     []string{proto.SocketProtocol},
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
		// The egress decides direct or CONNECT through the proxy; the
		// Dialer's own Proxy stays nil.
		NetDialContext: opts.Egress.DialerFor(scheme),
	}
	ws, resp, err := d.DialContext(ctx, url, opts.Header)
	if err != nil {
		route := opts.Egress.Route(url)
		if resp != nil {
			return nil, fmt.Errorf("connect to signaling %s (%s): %w", url, route, responseError(resp))
		}
		hint := opts.CertHint
		if hint == "" {
			hint = "trust its CA"
		}
		return nil, fmt.Errorf("connect to signaling %s (%s): %w", url, route, egress.ExplainCertificate(err, route, hint))
	}
	ws.SetReadLimit(proto.MaxSignalMessage)
	c := &Conn{
		ws:      ws,
		log:     opts.Logger,
		idle:    opts.IdleTimeout,
		out:     make(chan []byte, opts.QueueSize),
		bulk:    make(chan []byte, opts.BulkQueueSize),
		in:      make(chan *proto.Envelope, 16),
		done:    make(chan struct{}),
		closing: make(chan struct{}),
	}
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	return c, nil
}

// Send queues one message. It never blocks: a full queue closes the
// connection and returns ErrQueueFull.
func (c *Conn) Send(typ proto.MsgType, session string, payload any) error {
	b, err := proto.Encode(typ, session, payload)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	select {
	case c.out <- b:
		return nil
	default:
		go c.closeWith(ErrQueueFull)
		return ErrQueueFull
	}
}

// SendWait queues one bulk message (the body of an HTTP exchange carried
// over signaling, say), waiting while the bulk queue is full until ctx ends
// or the connection closes. Bulk messages are written after the messages
// Send queued, so a busy exchange never delays signaling itself, and a
// full bulk queue slows its senders instead of closing the connection.
func (c *Conn) SendWait(ctx context.Context, typ proto.MsgType, session string, payload any) error {
	b, err := proto.Encode(typ, session, payload)
	if err != nil {
		return err
	}
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	select {
	case c.bulk <- b:
		return nil
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Incoming delivers received, envelope-validated messages. It is closed when
// the connection ends; Err then says why.
func (c *Conn) Incoming() <-chan *proto.Envelope { return c.in }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err says why the connection ended; nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close flushes queued messages (for at most a few seconds), ends the
// connection and waits for its goroutines.
func (c *Conn) Close() error {
	c.closingOnce.Do(func() { close(c.closing) })
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		c.closeWith(ErrClosed)
	}
	c.wg.Wait()
	return nil
}

// Ping checks that the connection still carries data both ways: it sends
// a WebSocket ping and waits for signaling's pong until ctx ends. A
// connection that gets no pong in time is dead (say, its local address
// went away with a network change, so TCP cannot even report it yet): Ping
// closes it, so the owner reconnects, and returns the error.
func (c *Conn) Ping(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.pongs == nil {
		c.pongs = map[string]chan struct{}{}
	}
	c.pingSeq++
	token := fmt.Sprintf("p%d", c.pingSeq)
	ch := make(chan struct{})
	c.pongs[token] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pongs, token)
		c.mu.Unlock()
	}()
	deadline := time.Now().Add(writeWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.ws.WriteControl(websocket.PingMessage, []byte(token), deadline); err != nil {
		err = fmt.Errorf("ping: %w", err)
		c.closeWith(err)
		return err
	}
	select {
	case <-ch:
		return nil
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		err := fmt.Errorf("no pong from signaling: %w", context.Cause(ctx))
		c.closeWith(err)
		return err
	}
}

func (c *Conn) closeWith(err error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.err = err
		c.mu.Unlock()
		close(c.done)
		// Closing the socket unblocks the reader; the writer watches done.
		_ = c.ws.Close()
	})
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	defer close(c.in)
	_ = c.ws.SetReadDeadline(time.Now().Add(c.idle))
	c.ws.SetPingHandler(func(data string) error {
		_ = c.ws.SetReadDeadline(time.Now().Add(c.idle))
		// WriteControl may run concurrently with the writer goroutine.
		err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	c.ws.SetPongHandler(func(data string) error {
		_ = c.ws.SetReadDeadline(time.Now().Add(c.idle))
		c.mu.Lock()
		if ch := c.pongs[data]; ch != nil {
			close(ch)
			delete(c.pongs, data)
		}
		c.mu.Unlock()
		return nil
	})
	for {
		mt, b, err := c.ws.ReadMessage()
		if err != nil {
			c.closeWith(fmt.Errorf("read: %w", err))
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(c.idle))
		if mt != websocket.TextMessage {
			c.log.Warn("signaling sent a binary message; ignored")
			continue
		}
		env, err := proto.Decode(b)
		if err != nil {
			// A newer server may send types we do not know; skip them.
			c.log.Warn("signaling message refused", "err", err)
			continue
		}
		select {
		case c.in <- env:
		case <-c.done:
			return
		}
	}
}

func (c *Conn) writeLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.closing:
			for {
				select {
				case b := <-c.out:
					_ = c.ws.SetWriteDeadline(time.Now().Add(time.Second))
					if c.ws.WriteMessage(websocket.TextMessage, b) != nil {
						c.closeWith(ErrClosed)
						return
					}
					continue
				default:
				}
				break
			}
			_ = c.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			c.closeWith(ErrClosed)
			return
		case b := <-c.out:
			if !c.write(b) {
				return
			}
		case b := <-c.bulk:
			// Whatever Send queued meanwhile goes first.
			for drained := false; !drained; {
				select {
				case o := <-c.out:
					if !c.write(o) {
						return
					}
				default:
					drained = true
				}
			}
			if !c.write(b) {
				return
			}
		}
	}
}

func (c *Conn) write(b []byte) bool {
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.closeWith(fmt.Errorf("write: %w", err))
		return false
	}
	return true
}
