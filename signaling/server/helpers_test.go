package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	agentKey   = "agent-key-1"
	agentKey2  = "agent-key-2"
	techToken  = "tech-token-alice"
	bobToken   = "tech-token-bob"
	turnSecret = "turn-secret"
	domain     = "sessions.test"
	appOrigin  = "http://app.test"
	wait       = 5 * time.Second
)

// logBuffer collects log output so tests can assert refusals were logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type env struct {
	t    *testing.T
	srv  *Server
	ts   *httptest.Server
	logs *logBuffer
}

// newEnv starts a server on a real loopback socket. mod adjusts the config.
func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	logs := &logBuffer{}
	cfg := Config{
		Logger:            slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		AppOrigin:         appOrigin,
		PasswordParams:    authn.FastParams,
		AgentKeys:         map[string]string{"agent-1": agentKey, "agent-2": agentKey2},
		InsecureDevTokens: true,
		TechnicianTokens:  map[string]string{techToken: "alice", bobToken: "bob"},
		TURNSecret:        []byte(turnSecret),
		ICEURLs:           []string{"stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"},
		SessionsDomain:    domain,
		SessionsScheme:    "http",
		AllowedOrigins:    []string{appOrigin},
		ReadyTimeout:      wait,
		Node:              "node-test",
	}
	if mod != nil {
		mod(&cfg)
	}
	if cfg.Store == nil {
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "porthole.db"), boltstore.Options{Now: cfg.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		cfg.Store = st
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	e := &env{t: t, srv: srv, ts: ts, logs: logs}
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return e
}

func (e *env) wsURL(path string) string { return "ws" + strings.TrimPrefix(e.ts.URL, "http") + path }

// waitLog waits until the server log contains s.
func (e *env) waitLog(s string) {
	e.t.Helper()
	testenv.Eventually(e.t, wait, fmt.Sprintf("the log to contain %q", s), func() bool {
		return strings.Contains(e.logs.String(), s)
	})
}

// request sends an API request with a bearer token and decodes the JSON
// answer into out (if not nil).
func (e *env) request(method, path, token string, body any, hdr http.Header, out any) *http.Response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if h := hdr.Get("Host"); h != "" {
		req.Host = h
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp
}

// peer is a test WebSocket client. Unless it was dialled with read=false, a
// reader goroutine decodes every message (answering pings as it reads).
type peer struct {
	t      *testing.T
	ws     *websocket.Conn
	in     chan *proto.Envelope
	done   chan struct{}
	stop   chan struct{}
	err    error // the read error, once done is closed
	wmu    sync.Mutex
	closed bool
}

type dialOpts struct {
	header      http.Header
	protocols   []string
	noRead      bool
	smallBuffer bool                  // a tiny TCP receive buffer, for a reader that falls behind quickly
	setup       func(*websocket.Conn) // before the reader starts
}

func (e *env) dial(path string, o dialOpts) (*peer, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: wait, Subprotocols: o.protocols}
	if o.smallBuffer {
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetReadBuffer(2048)
			}
			return c, err
		}
	}
	ws, resp, err := d.Dial(e.wsURL(path), o.header)
	if err != nil {
		return nil, resp, err
	}
	p := &peer{t: e.t, ws: ws, in: make(chan *proto.Envelope, 256), done: make(chan struct{}), stop: make(chan struct{})}
	e.t.Cleanup(p.close)
	if o.setup != nil {
		o.setup(ws)
	}
	if o.noRead {
		close(p.done)
		return p, resp, nil
	}
	go func() {
		defer close(p.done)
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				p.err = err
				return
			}
			env, err := proto.Decode(b)
			if err != nil {
				p.err = err
				p.t.Errorf("server sent an invalid message %q: %v", b, err)
				return
			}
			select {
			case p.in <- env:
			case <-p.stop:
				return
			}
		}
	}()
	return p, resp, nil
}

func (p *peer) close() {
	p.wmu.Lock()
	if !p.closed {
		close(p.stop)
	}
	p.closed = true
	p.wmu.Unlock()
	p.ws.Close()
	<-p.done
}

func bearerHeader(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

// agent dials as agent-1 (or key), says hello with devices and checks the
// welcome.
func (e *env) agent(key string, devices ...string) *peer {
	e.t.Helper()
	p, resp, err := e.dial(proto.PathAgentSocket, dialOpts{header: bearerHeader(key)})
	if err != nil {
		e.t.Fatalf("agent dial: %v (%v)", err, status(resp))
	}
	var devs []proto.Device
	for _, d := range devices {
		devs = append(devs, proto.Device{ID: d, Ports: []int{80}, HTTPPort: 80})
	}
	p.send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Software: "test-agent", Devices: devs})
	var w proto.Welcome
	p.nextData(proto.TypeWelcome, &w)
	return p
}

// client joins a session with its token and checks welcome and
// session.ready.
func (e *env) client(token string, o dialOpts) (*peer, proto.SessionReady) {
	e.t.Helper()
	if o.header == nil && o.protocols == nil {
		o.header = bearerHeader(token)
	}
	p, resp, err := e.dial(proto.PathSessionSocket, o)
	if err != nil {
		e.t.Fatalf("client dial: %v (%v)", err, status(resp))
	}
	p.send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient})
	var w proto.Welcome
	p.nextData(proto.TypeWelcome, &w)
	var r proto.SessionReady
	p.nextData(proto.TypeSessionReady, &r)
	return p, r
}

// open creates a session on device as token's user; agent accepts it.
func (e *env) open(agent *peer, token, device string) proto.SessionInfo {
	e.t.Helper()
	type result struct {
		resp *http.Response
		info proto.SessionInfo
	}
	ch := make(chan result, 1)
	go func() {
		var r result
		r.resp = e.request(http.MethodPost, proto.PathSessions, token, &proto.CreateSession{Device: device}, nil, &r.info)
		ch <- r
	}()
	var open proto.SessionOpen
	env := agent.nextData(proto.TypeSessionOpen, &open)
	agent.send(proto.TypeSessionReady, env.Session, struct{}{})
	r := <-ch
	if r.resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("POST /v1/sessions = %d, want 201", r.resp.StatusCode)
	}
	return r.info
}

func status(resp *http.Response) any {
	if resp == nil {
		return "no response"
	}
	return resp.Status
}

func (p *peer) sendRaw(b []byte) {
	p.t.Helper()
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.ws.SetWriteDeadline(time.Now().Add(wait))
	if err := p.ws.WriteMessage(websocket.TextMessage, b); err != nil && !p.closed {
		p.t.Errorf("write: %v", err)
	}
}

func (p *peer) send(typ proto.MsgType, session string, payload any) {
	p.t.Helper()
	b, err := proto.Encode(typ, session, payload)
	if err != nil {
		p.t.Fatal(err)
	}
	p.sendRaw(b)
}

// next returns the next message, failing unless it has type typ.
func (p *peer) next(typ proto.MsgType) *proto.Envelope {
	p.t.Helper()
	select {
	case env := <-p.in:
		if env.Type != typ {
			p.t.Fatalf("got %s %s, want %s", env.Type, env.Data, typ)
		}
		return env
	case <-p.done:
		select {
		case env := <-p.in:
			if env.Type != typ {
				p.t.Fatalf("got %s %s, want %s", env.Type, env.Data, typ)
			}
			return env
		default:
		}
		p.t.Fatalf("connection closed (%v) while waiting for %s", p.err, typ)
	case <-time.After(wait):
		p.t.Fatalf("no %s within %v", typ, wait)
	}
	return nil
}

func (p *peer) nextData(typ proto.MsgType, v any) *proto.Envelope {
	p.t.Helper()
	env := p.next(typ)
	if err := proto.DecodeData(env, v); err != nil {
		p.t.Fatalf("%s: %v", typ, err)
	}
	return env
}

// nextError expects an error message with code.
func (p *peer) nextError(code proto.Code) *proto.Envelope {
	p.t.Helper()
	var e proto.Error
	env := p.nextData(proto.TypeError, &e)
	if e.Code != code {
		p.t.Fatalf("error code %s (%s), want %s", e.Code, e.Message, code)
	}
	return env
}

// waitClosed waits for the server to close the connection and returns the
// read error, skipping messages still queued.
func (p *peer) waitClosed() error {
	p.t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(wait):
		p.t.Fatalf("connection still open after %v", wait)
		return nil
	}
}

func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// bind binds token to a fresh bind cookie as the session window does
// (POST PathSessionBind on the shell origin) and returns the cookie.
func (e *env) bind(info proto.SessionInfo, token string) *http.Cookie {
	e.t.Helper()
	resp := e.request(http.MethodPost, proto.PathSessionBind, token, nil, http.Header{
		"Host": {proto.ShellHostPrefix + info.Session + "." + domain}, "Origin": {info.ShellOrigin}, "Sec-Fetch-Site": {"same-origin"}}, nil)
	if resp.StatusCode != http.StatusNoContent {
		e.t.Fatalf("bind: %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == proto.BindCookie {
			return c
		}
	}
	e.t.Fatalf("bind: no %s cookie in %v", proto.BindCookie, resp.Header["Set-Cookie"])
	return nil
}

// refusedClient dials the session socket with hdr and says hello; the
// caller expects the refusal.
func (e *env) refusedClient(hdr http.Header) *peer {
	e.t.Helper()
	p, resp, err := e.dial(proto.PathSessionSocket, dialOpts{header: hdr})
	if err != nil {
		e.t.Fatalf("client dial: %v (%v)", err, status(resp))
	}
	p.send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient})
	return p
}

// boundClient binds token and joins info's session with it as the session
// window does: on the shell host, from the shell origin, with the cookie.
func (e *env) boundClient(info proto.SessionInfo, token string) *peer {
	e.t.Helper()
	cookie := e.bind(info, token)
	c, _ := e.client(token, dialOpts{header: http.Header{"Authorization": {"Bearer " + token}, "Origin": {info.ShellOrigin},
		"Host": {proto.ShellHostPrefix + info.Session + "." + domain}, "Cookie": {cookie.String()}}})
	return c
}
