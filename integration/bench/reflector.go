package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Reflector is a minimal WSS relay in the style of macchina.io REMOTE: the
// site keeps WebSockets open to the server, a technician's WebSocket is
// paired with one of them, and the server copies every message between
// the two. Each pairing carries one TCP connection to the device.
type Reflector struct {
	srv      *httptest.Server
	upgrader websocket.Upgrader
	idle     chan *websocket.Conn // site connections waiting for a technician

	mu    sync.Mutex
	conns map[*websocket.Conn]struct{}
	wg    sync.WaitGroup
}

// NewReflector starts a reflector on a loopback TLS listener.
func NewReflector() *Reflector {
	rf := &Reflector{
		idle:     make(chan *websocket.Conn, 64),
		conns:    map[*websocket.Conn]struct{}{},
		upgrader: websocket.Upgrader{ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/site", rf.serveSite)
	mux.HandleFunc("/tech", rf.serveTech)
	rf.srv = httptest.NewUnstartedServer(mux)
	rf.srv.StartTLS()
	return rf
}

// Addr is the reflector's host:port.
func (rf *Reflector) Addr() string { return rf.srv.Listener.Addr().String() }

func (rf *Reflector) track(c *websocket.Conn) {
	rf.mu.Lock()
	rf.conns[c] = struct{}{}
	rf.mu.Unlock()
}

func (rf *Reflector) serveSite(w http.ResponseWriter, r *http.Request) {
	c, err := rf.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	rf.track(c)
	select {
	case rf.idle <- c:
	default:
		c.Close()
	}
}

func (rf *Reflector) serveTech(w http.ResponseWriter, r *http.Request) {
	var site *websocket.Conn
	select {
	case site = <-rf.idle:
	case <-time.After(5 * time.Second):
		http.Error(w, "no site connection", http.StatusServiceUnavailable)
		return
	}
	tech, err := rf.upgrader.Upgrade(w, r, nil)
	if err != nil {
		site.Close()
		return
	}
	rf.track(tech)
	if err := site.WriteMessage(websocket.TextMessage, []byte("open")); err != nil {
		site.Close()
		tech.Close()
		return
	}
	rf.wg.Add(2)
	go func() { defer rf.wg.Done(); reflect(tech, site) }()
	go func() { defer rf.wg.Done(); reflect(site, tech) }()
}

// reflect copies messages from src to dst until either fails.
func reflect(dst, src *websocket.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		typ, r, err := src.NextReader()
		if err != nil {
			return
		}
		w, err := dst.NextWriter(typ)
		if err != nil {
			return
		}
		if _, err := io.CopyBuffer(w, r, buf); err != nil {
			return
		}
		if err := w.Close(); err != nil {
			return
		}
	}
}

// Close stops the reflector and its connections.
func (rf *Reflector) Close() {
	rf.mu.Lock()
	for c := range rf.conns {
		c.Close()
	}
	rf.mu.Unlock()
	rf.srv.Close()
	rf.wg.Wait()
}

var insecureDialer = websocket.Dialer{
	TLSClientConfig:  &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the benchmark's own loopback reflector
	ReadBufferSize:   32 << 10,
	WriteBufferSize:  32 << 10,
	HandshakeTimeout: 10 * time.Second,
}

// ReflectorSite is the site side: it parks a WebSocket at the reflector
// and, once paired, pipes it to a TCP connection to the device.
type ReflectorSite struct {
	url, device string
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
}

// NewReflectorSite keeps n WebSockets parked at url (wss://host/site),
// each piping to device once paired.
func NewReflectorSite(url, device string, n int) *ReflectorSite {
	ctx, cancel := context.WithCancel(context.Background())
	s := &ReflectorSite{url: url, device: device, ctx: ctx, cancel: cancel}
	for range n {
		s.wg.Add(1)
		go s.serve()
	}
	return s
}

func (s *ReflectorSite) serve() {
	defer s.wg.Done()
	ws, _, err := insecureDialer.DialContext(s.ctx, s.url, nil)
	if err != nil {
		return
	}
	stop := context.AfterFunc(s.ctx, func() { ws.Close() })
	defer stop()
	defer ws.Close()
	if _, _, err := ws.ReadMessage(); err != nil { // "open"
		return
	}
	dev, err := net.Dial("tcp", s.device)
	if err != nil {
		return
	}
	defer dev.Close()
	wc := newWSConn(ws)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.CopyBuffer(dev, wc, make([]byte, 32<<10))
		dev.Close()
	}()
	_, _ = io.CopyBuffer(wc, dev, make([]byte, 32<<10))
	ws.Close()
	<-done
}

// Close stops the site.
func (s *ReflectorSite) Close() {
	s.cancel()
	s.wg.Wait()
}

// wsConn is a byte stream over binary WebSocket messages.
type wsConn struct {
	ws *websocket.Conn
	r  io.Reader
	wm sync.Mutex
}

func newWSConn(ws *websocket.Conn) *wsConn { return &wsConn{ws: ws} }

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				return 0, io.EOF
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wm.Lock()
	defer c.wm.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error         { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }
func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.ws.SetReadDeadline(t), c.ws.SetWriteDeadline(t))
}
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

var _ net.Conn = (*wsConn)(nil)

// reflectorClient returns an HTTP client whose connections are WebSockets
// to url (wss://host/tech), each paired by the reflector with the site.
func reflectorClient(url string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			ws, _, err := insecureDialer.DialContext(ctx, url, nil)
			if err != nil {
				return nil, err
			}
			return newWSConn(ws), nil
		},
		MaxIdleConnsPerHost: 4,
	}}
}
