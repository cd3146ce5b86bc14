package tunnel_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/proto"
)

// wsDevice is a device with a WebSocket status endpoint.
type wsDevice struct {
	origin, cookie, protocol atomic.Value
	flooded                  atomic.Int64
}

func (wd *wsDevice) handler() http.Handler {
	up := websocket.Upgrader{
		Subprotocols: []string{"status.v2", "status.v1"},
		CheckOrigin: func(r *http.Request) bool {
			// A device's own CSWSH defence: its own origin only.
			return r.Header.Get("Origin") == "http://"+r.Host
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "s3cret", HttpOnly: true, Path: "/"})
	})
	mux.HandleFunc("/ws/echo", func(w http.ResponseWriter, r *http.Request) {
		wd.origin.Store(r.Header.Get("Origin"))
		wd.cookie.Store(r.Header.Get("Cookie"))
		c, err := up.Upgrade(w, r, http.Header{"Set-Cookie": {"ws_seen=1; Path=/"}})
		if err != nil {
			return
		}
		defer c.Close()
		wd.protocol.Store(c.Subprotocol())
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if string(msg) == "bye" {
				_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "device says bye"))
				_, _, _ = c.ReadMessage() // the close answer
				return
			}
			if err := c.WriteMessage(typ, msg); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/ws/flood", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		msg := bytes.Repeat([]byte("f"), 64<<10)
		for {
			_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
				return
			}
			wd.flooded.Add(int64(len(msg)))
		}
	})
	return mux
}

func TestWebSocketThroughTheTunnel(t *testing.T) {
	wd := &wsDevice{}
	d := newDevice(t, wd.handler(), deviceOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if resp, err := d.http.Get("http://device/login"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	ws, err := d.pair.Client.DialWebSocket(ctx, proto.WSOpen{Target: "/ws/echo?x=1", Protocols: []string{"status.v1", "status.v2"},
		Header: http.Header{"Cookie": {"ui_lang=de"}, "Origin": {"https://evil.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	if ws.Protocol() != "status.v2" {
		t.Errorf("protocol %q", ws.Protocol())
	}
	if o, _ := wd.origin.Load().(string); o != "http://127.0.0.1:"+strconv.Itoa(d.port) {
		t.Errorf("device saw Origin %q, want its own", o)
	}
	if c, _ := wd.cookie.Load().(string); !strings.Contains(c, "sid=s3cret") || !strings.Contains(c, "ui_lang=de") {
		t.Errorf("device saw Cookie %q, want the jar's and the page's", c)
	}
	if got := ws.Opened().Cookies; len(got) != 1 || got[0] != "ws_seen=1" {
		t.Errorf("handshake cookies %v", got)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: 64 chunks
	for _, m := range []struct {
		binary bool
		data   []byte
	}{{false, []byte("hello")}, {true, []byte{0, 1, 2, 255}}, {false, []byte{}}, {true, big}} {
		if err := ws.WriteMessage(ctx, m.binary, m.data); err != nil {
			t.Fatal(err)
		}
		bin, got, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if bin != m.binary || !bytes.Equal(got, m.data) {
			t.Fatalf("echo of %d bytes (binary %v): got %d bytes (binary %v)", len(m.data), m.binary, len(got), bin)
		}
	}
	// The device closes with a code and reason of its own.
	if err := ws.WriteMessage(ctx, false, []byte("bye")); err != nil {
		t.Fatal(err)
	}
	_, _, err = ws.ReadMessage()
	var ce *tunnel.WebSocketCloseError
	if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "device says bye" {
		t.Fatalf("close %v", err)
	}
	// The channel went back to the pool after the handshake.
	testenvEventually(t, func() bool { return d.pair.Client.Stats().Idle >= 1 && d.pair.Client.Stats().Dropped == 0 })

	// The client closes.
	ws2, err := d.pair.Client.DialWebSocket(ctx, proto.WSOpen{Target: "/ws/echo"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ws2.Close(proto.WSCloseNormal, "done"); err != nil {
		t.Fatal(err)
	}
	if st := d.pair.Client.Stats(); st.Dropped != 0 {
		t.Errorf("a clean close dropped a channel: %+v", st)
	}
}

func testenvEventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebSocketFloodIsBounded: a device that sends without pause while
// the technician does not read fills the channel to its high-water mark
// and then waits in TCP; nothing grows without bound.
func TestWebSocketFloodIsBounded(t *testing.T) {
	wd := &wsDevice{}
	d := newDevice(t, wd.handler(), deviceOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, err := d.pair.Client.DialWebSocket(ctx, proto.WSOpen{Target: "/ws/flood"})
	if err != nil {
		t.Fatal(err)
	}
	// Read one message, then stop reading for a while.
	if _, m, err := ws.ReadMessage(); err != nil || len(m) != 64<<10 {
		t.Fatalf("first message: %d bytes, %v", len(m), err)
	}
	// The device must come to a stop: the count stays the same for
	// 400 ms, within 10 s.
	var b int64
	deadline := time.Now().Add(10 * time.Second)
	for stable := 0; stable < 2; {
		a := wd.flooded.Load()
		time.Sleep(200 * time.Millisecond)
		if b = wd.flooded.Load(); b == a {
			stable++
		} else {
			stable = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("the device was still sending after 10 s with nobody reading (%d MiB)", b>>20)
		}
	}
	// High water (4 MiB) plus the SCTP windows, the kernel's socket
	// buffers and gorilla's: well under 64 MiB.
	if b > 64<<20 {
		t.Errorf("the device sent %d MiB with nobody reading", b>>20)
	}
	t.Logf("device got %d MiB out before it was held back", b>>20)
	// Reading resumes the flow.
	for range 10 {
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	// Leaving it open: the pair's cleanup ends it (a flooding device that
	// never reads would make a closing handshake wait its 5 s bound).
}

// TestWebSocketRefusals: the agent opens WebSockets to the device's
// declared ports only, never to another host, and a device that does not
// upgrade is a refusal, not a hang.
func TestWebSocketRefusals(t *testing.T) {
	wd := &wsDevice{}
	d := newDevice(t, wd.handler(), deviceOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		open proto.WSOpen
		code proto.Code
	}{
		{proto.WSOpen{Target: "/ws/echo", Port: 22}, proto.CodePortNotAllowed},
		{proto.WSOpen{Target: "/login"}, proto.CodeDeviceFailed},
	} {
		_, err := d.pair.Client.DialWebSocket(ctx, tc.open)
		if proto.CodeOf(err) != tc.code {
			t.Errorf("%+v: %v, want %s", tc.open, err, tc.code)
		}
	}
	for _, target := range []string{"ws://evil.example/", "//evil.example/ws", "http://127.0.0.1:22/"} {
		if _, err := d.pair.Client.DialWebSocket(ctx, proto.WSOpen{Target: target}); err == nil {
			t.Errorf("target %q accepted", target)
		}
	}
	// The channel is still usable for HTTP afterwards.
	resp, err := d.http.Get("http://device/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
