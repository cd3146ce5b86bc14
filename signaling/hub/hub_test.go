package hub

import (
	"context"
	"crypto/sha256"
	"net"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/porthole-dev/porthole/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pipeListener hands net.Pipe connections to an http.Server, so that whole
// WebSocket conversations run inside a synctest bubble with fake time.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *pipeListener) Close() error   { close(l.done); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

type bubble struct {
	t      *testing.T
	hub    *Hub
	dialer websocket.Dialer
}

// newBubble serves h on pipes: /agent as agent-1, /client?session=ID as a
// client of that session (with token=T, bind=B and browser=1 for what the
// server would have proved: the SHA-256 of token T and of cookie B, and
// an Origin header).
func newBubble(t *testing.T, opt Options) *bubble {
	h := New(opt)
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	up := websocket.Upgrader{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		q := r.URL.Query()
		switch {
		case r.URL.Path == "/agent":
			h.ServeAgent(ws, "agent-1")
		case q.Has("token"):
			a := ClientAuth{TokenHash: sha256.Sum256([]byte(q.Get("token"))), Browser: q.Get("browser") == "1"}
			if q.Get("bind") != "" {
				a.BindHash = sha256.Sum256([]byte(q.Get("bind")))
			}
			h.ServeClientAuth(ws, q.Get("session"), a)
		default:
			h.ServeClient(ws, q.Get("session"))
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	b := &bubble{t: t, hub: h}
	b.dialer.NetDialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		c1, c2 := net.Pipe()
		l.conns <- c2
		return c1, nil
	}
	return b
}

// peer is a dialled connection whose reader goroutine keeps answering
// pings while the test waits elsewhere.
type peer struct {
	ws *websocket.Conn
	in chan []byte
}

func (b *bubble) dial(path string) *peer {
	b.t.Helper()
	ws, _, err := b.dialer.Dial("ws://pipe"+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	p := &peer{ws: ws, in: make(chan []byte, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(p.in)
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			p.in <- msg
		}
	}()
	b.t.Cleanup(func() { ws.Close(); <-done })
	return p
}

func send(t *testing.T, p *peer, typ proto.MsgType, session string, payload any) {
	t.Helper()
	b, err := proto.Encode(typ, session, payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, p *peer, typ proto.MsgType, v any) *proto.Envelope {
	t.Helper()
	b, ok := <-p.in
	if !ok {
		t.Fatalf("connection closed while waiting for %s", typ)
	}
	env, err := proto.Decode(b)
	if err != nil || env.Type != typ {
		t.Fatalf("got %s (%v), want %s", b, err, typ)
	}
	if v != nil {
		if err := proto.DecodeData(env, v); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

// TestSessionExpiresAfterThirtyMinutes runs a full 30-minute session on
// fake time: it ends exactly at its TTL, both sides hear "expired", and
// the token stops working. Keepalive runs throughout: both peers answer
// pings because they are reading.
func TestSessionExpiresAfterThirtyMinutes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		agent := b.dial("/agent")
		send(t, agent, proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Devices: []proto.Device{{ID: "printer-1"}}})
		recv(t, agent, proto.TypeWelcome, nil)

		type result struct {
			info *proto.SessionInfo
			err  error
		}
		res := make(chan result, 1)
		go func() {
			info, err := b.hub.OpenSession(t.Context(), "alice", "printer-1")
			res <- result{info, err}
		}()
		env := recv(t, agent, proto.TypeSessionOpen, nil)
		send(t, agent, proto.TypeSessionReady, env.Session, struct{}{})
		r := <-res
		if r.err != nil {
			t.Fatal(r.err)
		}
		start := time.Now()
		if !r.info.Expires.Equal(start.Add(30 * time.Minute)) {
			t.Errorf("expires %v, want start+30m", r.info.Expires)
		}
		if id, ok := b.hub.SessionForToken(r.info.Token); !ok || id != r.info.Session {
			t.Fatal("token does not open its session")
		}
		client := b.dial("/client?session=" + r.info.Session)
		send(t, client, proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient})
		recv(t, client, proto.TypeWelcome, nil)
		recv(t, client, proto.TypeSessionReady, nil)

		for _, ws := range []*peer{client, agent} {
			var end proto.SessionEnd
			recv(t, ws, proto.TypeSessionEnd, &end)
			if end.Reason != proto.EndExpired {
				t.Errorf("reason %s, want expired", end.Reason)
			}
		}
		if d := time.Since(start); d != 30*time.Minute {
			t.Errorf("session lasted %v, want exactly 30m", d)
		}
		if _, ok := b.hub.SessionForToken(r.info.Token); ok {
			t.Error("token still works after expiry")
		}
	})
}

// TestClientGrace: a session survives its client's disconnection for
// ClientGrace (a browser reload), and ends with client_lost after it.
func TestClientGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		agent := b.dial("/agent")
		send(t, agent, proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Devices: []proto.Device{{ID: "printer-1"}}})
		recv(t, agent, proto.TypeWelcome, nil)
		res := make(chan *proto.SessionInfo, 1)
		go func() {
			info, err := b.hub.OpenSession(t.Context(), "alice", "printer-1")
			if err != nil {
				t.Error(err)
			}
			res <- info
		}()
		env := recv(t, agent, proto.TypeSessionOpen, nil)
		send(t, agent, proto.TypeSessionReady, env.Session, struct{}{})
		info := <-res
		join := func() *peer {
			c := b.dial("/client?session=" + info.Session)
			send(t, c, proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient})
			recv(t, c, proto.TypeWelcome, nil)
			recv(t, c, proto.TypeSessionReady, nil)
			return c
		}

		c := join()
		c.ws.Close()
		time.Sleep(DefaultClientGrace - time.Second)
		synctest.Wait()
		if !b.hub.SessionLive(info.Session) {
			t.Fatal("session ended within the grace period")
		}
		c = join() // the reload completes
		time.Sleep(time.Hour / 4)
		synctest.Wait()
		if !b.hub.SessionLive(info.Session) {
			t.Fatal("session ended although a client rejoined")
		}

		c.ws.Close()
		start := time.Now()
		var end proto.SessionEnd
		recv(t, agent, proto.TypeSessionEnd, &end)
		if end.Reason != proto.EndClientLost || time.Since(start) != DefaultClientGrace {
			t.Errorf("ended %v after the client left with %s, want %v client_lost", time.Since(start), end.Reason, DefaultClientGrace)
		}
	})
}
