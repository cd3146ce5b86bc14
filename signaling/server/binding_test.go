package server

import (
	"crypto/sha256"
	"net/http"
	"testing"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/bus"
)

// The session window's binding, over HTTP as the browser does it: a token
// copied out of the browser is refused by signaling however it is used,
// and the technician's connection is never replaced.

func shellHeader(info proto.SessionInfo, token string, cookie *http.Cookie) http.Header {
	h := http.Header{"Authorization": {"Bearer " + token}, "Origin": {info.ShellOrigin},
		"Host": {proto.ShellHostPrefix + info.Session + "." + domain}}
	if cookie != nil {
		h.Set("Cookie", cookie.String())
	}
	return h
}

func TestCopiedTokenIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	other := e.open(agent, techToken, "printer-1")
	otherCookie := e.bind(other, other.Token)
	// The technician's window binds its token and joins.
	tech := e.boundClient(info, info.Token)

	attempts := []struct {
		name string
		hdr  http.Header
	}{
		{"the token alone, from a tool", bearerHeader(info.Token)},
		{"the token as the browser sends it, without the cookie", shellHeader(info, info.Token, nil)},
		{"the token with a forged cookie", shellHeader(info, info.Token, &http.Cookie{Name: proto.BindCookie, Value: "forged"})},
		{"the token with another session's cookie", shellHeader(info, info.Token, otherCookie)},
		{"the token with an empty cookie", shellHeader(info, info.Token, &http.Cookie{Name: proto.BindCookie, Value: ""})},
	}
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			c := e.refusedClient(a.hdr)
			c.nextError(proto.CodeUnauthorized)
			if err := c.waitClosed(); closeCode(err) != 1008 {
				t.Fatalf("closed with %v, want 1008", err)
			}
		})
	}
	t.Run("binding the copied token again", func(t *testing.T) {
		// A tool can forge Origin and Sec-Fetch-Site; the token is bound
		// once, so it gets nowhere.
		var got proto.Error
		resp := e.request(http.MethodPost, proto.PathSessionBind, info.Token, nil, http.Header{
			"Host": {proto.ShellHostPrefix + info.Session + "." + domain}, "Origin": {info.ShellOrigin}, "Sec-Fetch-Site": {"same-origin"}}, &got)
		if resp.StatusCode != http.StatusForbidden || got.Code != proto.CodeForbidden || len(resp.Cookies()) != 0 {
			t.Fatalf("bind of a bound token: %d %+v cookies %v", resp.StatusCode, got, resp.Cookies())
		}
	})
	t.Run("the device origin cannot bind", func(t *testing.T) {
		fresh := e.open(agent, techToken, "printer-1")
		for _, h := range []http.Header{
			{"Host": {proto.ShellHostPrefix + fresh.Session + "." + domain}, "Origin": {fresh.DeviceOrigin}, "Sec-Fetch-Site": {"same-site"}},
			{"Host": {proto.ShellHostPrefix + fresh.Session + "." + domain}, "Sec-Fetch-Site": {"same-origin"}},
			{"Host": {proto.ShellHostPrefix + fresh.Session + "." + domain}, "Origin": {fresh.ShellOrigin}, "Sec-Fetch-Site": {"same-site"}},
			{"Host": {fresh.Session + "." + domain}, "Origin": {fresh.DeviceOrigin}, "Sec-Fetch-Site": {"same-origin"}},
		} {
			resp := e.request(http.MethodPost, proto.PathSessionBind, fresh.Token, nil, h, nil)
			if resp.StatusCode == http.StatusNoContent || len(resp.Cookies()) != 0 {
				t.Fatalf("bind from %v: %d", h, resp.StatusCode)
			}
		}
		e.boundClient(fresh, fresh.Token).close() // still bindable by its own window
	})
	t.Run("a second window of the same session", func(t *testing.T) {
		// The same user opening the session's window again gets a token of
		// its own (OAuth, modelled by AddToken) and is refused.
		second := "second-window-token-0123456789abcdef"
		if _, err := e.srv.sessions.AddToken(t.Context(), info.Session, sha256Of(second)); err != nil {
			t.Fatal(err)
		}
		var got proto.Error
		resp := e.request(http.MethodPost, proto.PathSessionBind, second, nil, http.Header{
			"Host": {proto.ShellHostPrefix + info.Session + "." + domain}, "Origin": {info.ShellOrigin}, "Sec-Fetch-Site": {"same-origin"}}, &got)
		if resp.StatusCode != http.StatusConflict || got.Code != proto.CodeSessionInUse || got.Message != "This session is already open in another window. Use that window, or end the session there and open the device again." {
			t.Fatalf("bind of a second window: %d %+v", resp.StatusCode, got)
		}
		e.waitLog("token binding refused")
	})
	// The technician's window was never replaced: it still speaks for the
	// session.
	tech.send(proto.TypeOffer, info.Session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\n"})
	if env := agent.next(proto.TypeOffer); env.Session != info.Session {
		t.Fatalf("offer for %s arrived as %s", info.Session, env.Session)
	}
	e.waitLog("client refused")
}

// TestBindingAcrossTheClusterBridge: the agent is on node A, the
// technician's requests reach node B, which binds through A and bridges the
// socket there; the rules are A's hub's, and refusals reach the client
// across the bridge.
func TestBindingAcrossTheClusterBridge(t *testing.T) {
	net := bus.NewNetwork()
	join := func(node string) func(*Config) {
		return func(c *Config) {
			l := net.Join(node)
			t.Cleanup(func() { l.Close() }) // after the server's own cleanup (LIFO)
			c.Node, c.Bus = node, l
		}
	}
	a := newEnv(t, join("node-a"))
	b := newEnv(t, join("node-b"))
	agent := a.agent(agentKey, "printer-1")
	var info proto.SessionInfo
	ch := make(chan *http.Response, 1)
	go func() {
		ch <- b.request(http.MethodPost, proto.PathSessions, techToken, &proto.CreateSession{Device: "printer-1"}, nil, &info)
	}()
	var open proto.SessionOpen
	msg := agent.nextData(proto.TypeSessionOpen, &open)
	agent.send(proto.TypeSessionReady, msg.Session, struct{}{})
	if resp := <-ch; resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/sessions on node B = %d", resp.StatusCode)
	}
	cookie := b.bind(info, info.Token) // a bus call to node A
	tech, _ := b.client(info.Token, dialOpts{header: shellHeader(info, info.Token, cookie)})
	tech.send(proto.TypeOffer, info.Session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\n"})
	agent.next(proto.TypeOffer)

	for _, n := range []*env{b, a} {
		c := n.refusedClient(bearerHeader(info.Token))
		c.nextError(proto.CodeUnauthorized)
		c.waitClosed()
	}
	resp := b.request(http.MethodPost, proto.PathSessionBind, info.Token, nil, http.Header{
		"Host": {proto.ShellHostPrefix + info.Session + "." + domain}, "Origin": {info.ShellOrigin}, "Sec-Fetch-Site": {"same-origin"}}, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("second bind through node B = %d, want 403", resp.StatusCode)
	}
	// The window reconnecting, now through node A, replaces its own old
	// connection (a reload landing on another node).
	again, _ := a.client(info.Token, dialOpts{header: shellHeader(info, info.Token, cookie)})
	if err := tech.waitClosed(); err == nil {
		t.Fatal("the old connection of the window was not closed")
	}
	again.send(proto.TypeOffer, info.Session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\n"})
	agent.next(proto.TypeOffer)
}

func sha256Of(s string) [32]byte { return sha256.Sum256([]byte(s)) }
