package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/porthole-dev/porthole/proto"
)

func TestSocketsRefuseBadCredentialsBeforeUpgrade(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	a := e.open(agent, techToken, "printer-1")
	b := e.open(agent, techToken, "printer-1")
	aHost := proto.ShellHostPrefix + a.Session + "." + domain

	tests := []struct {
		name   string
		path   string
		header http.Header
		protos []string
		host   string
		want   int
	}{
		{"agent without key", proto.PathAgentSocket, nil, nil, "", 401},
		{"agent with wrong key", proto.PathAgentSocket, bearerHeader("agent-key-3"), nil, "", 401},
		{"agent with a technician token", proto.PathAgentSocket, bearerHeader(techToken), nil, "", 401},
		{"agent with a session token", proto.PathAgentSocket, bearerHeader(a.Token), nil, "", 401},
		{"agent from a browser page", proto.PathAgentSocket, http.Header{"Authorization": {"Bearer " + agentKey}, "Origin": {"https://evil.example"}}, nil, "", 403},
		{"session without token", proto.PathSessionSocket, nil, nil, "", 401},
		{"session with wrong token", proto.PathSessionSocket, bearerHeader(a.Token + "x"), nil, "", 401},
		{"session with technician token", proto.PathSessionSocket, bearerHeader(techToken), nil, "", 401},
		{"session with wrong subprotocol token", proto.PathSessionSocket, nil, []string{proto.SocketProtocol, proto.SessionTokenProtocolPrefix + "nope"}, "", 401},
		{"other session's token on a session host", proto.PathSessionSocket, bearerHeader(b.Token), nil, aHost, 401},
		{"foreign origin", proto.PathSessionSocket, http.Header{"Authorization": {"Bearer " + a.Token}, "Origin": {"https://evil.example"}}, nil, "", 403},
		{"another session's origin", proto.PathSessionSocket, http.Header{"Authorization": {"Bearer " + a.Token}, "Origin": {b.ShellOrigin}}, nil, "", 403},
		{"origin null", proto.PathSessionSocket, http.Header{"Authorization": {"Bearer " + a.Token}, "Origin": {"null"}}, nil, "", 403},
		{"look-alike origin", proto.PathSessionSocket, http.Header{"Authorization": {"Bearer " + a.Token}, "Origin": {a.ShellOrigin + ".evil.example"}}, nil, "", 403},
		// The device's page runs on the device origin: it may not open the
		// session's socket, with or without the session's token.
		{"the session's device origin", proto.PathSessionSocket, http.Header{"Authorization": {"Bearer " + a.Token}, "Origin": {a.DeviceOrigin}}, nil, "", 403},
		{"on the device host", proto.PathSessionSocket, http.Header{"Authorization": {"Bearer " + a.Token}, "Origin": {a.DeviceOrigin}}, nil, a.Session + "." + domain, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h[k] = v
			}
			if tt.host != "" {
				h.Set("Host", tt.host)
			}
			p, resp, err := e.dial(tt.path, dialOpts{header: h, protocols: tt.protos})
			if err == nil {
				p.close()
				t.Fatalf("upgraded, want %d", tt.want)
			}
			if resp == nil || resp.StatusCode != tt.want {
				t.Fatalf("got %v, want %d", status(resp), tt.want)
			}
		})
	}
	e.waitLog("request refused")

	// Nothing reached the agent; both sessions still work.
	for _, s := range []proto.SessionInfo{a, b} {
		c, _ := e.client(s.Token, dialOpts{})
		c.send(proto.TypeOffer, s.Session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\n"})
		if env := agent.next(proto.TypeOffer); env.Session != s.Session {
			t.Fatalf("offer for %s arrived as %s", s.Session, env.Session)
		}
		c.close()
	}
}

// TestSessionSocketAcceptedOrigins: the socket upgrades for the session's
// shell origin and for non-browser clients; a browser page must then have
// bound its token, or the hub refuses it at hello.
func TestSessionSocketAcceptedOrigins(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	t.Run("no origin (CLI), unbound", func(t *testing.T) {
		info := e.open(agent, techToken, "printer-1")
		c, _ := e.client(info.Token, dialOpts{header: bearerHeader(info.Token)})
		c.close()
	})
	info := e.open(agent, techToken, "printer-1")
	shellHost := proto.ShellHostPrefix + info.Session + "." + domain
	t.Run("the shell origin, unbound", func(t *testing.T) {
		c := e.refusedClient(http.Header{"Authorization": {"Bearer " + info.Token}, "Origin": {info.ShellOrigin}, "Host": {shellHost}})
		c.nextError(proto.CodeUnauthorized)
	})
	t.Run("an allowed app origin, unbound", func(t *testing.T) {
		c := e.refusedClient(http.Header{"Authorization": {"Bearer " + info.Token}, "Origin": {appOrigin}})
		c.nextError(proto.CodeUnauthorized)
	})
	cookie := e.bind(info, info.Token)
	t.Run("the shell origin, bound, on the shell host", func(t *testing.T) {
		c, _ := e.client(info.Token, dialOpts{header: http.Header{"Authorization": {"Bearer " + info.Token}, "Origin": {info.ShellOrigin},
			"Host": {shellHost}, "Cookie": {cookie.String()}}})
		c.close()
	})
}

func TestAPIOrigins(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	tests := []struct {
		name, method, origin string
		want                 int
		wantACAO             string
	}{
		{"no origin", http.MethodGet, "", 200, ""},
		{"app origin", http.MethodGet, appOrigin, 200, appOrigin},
		{"app preflight", http.MethodOptions, appOrigin, 204, appOrigin},
		{"session origin gets no CORS", http.MethodGet, info.ShellOrigin, 403, ""},
		{"foreign origin", http.MethodGet, "https://evil.example", 403, ""},
		{"foreign preflight", http.MethodOptions, "https://evil.example", 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h http.Header
			if tt.origin != "" {
				h = http.Header{"Origin": {tt.origin}}
			}
			resp := e.request(tt.method, proto.PathDevices, techToken, nil, h, nil)
			if resp.StatusCode != tt.want || resp.Header.Get("Access-Control-Allow-Origin") != tt.wantACAO {
				t.Errorf("%s = %d ACAO %q, want %d %q", tt.method, resp.StatusCode,
					resp.Header.Get("Access-Control-Allow-Origin"), tt.want, tt.wantACAO)
			}
		})
	}
}

func TestSessionHosts(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Web = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("app ui")) })
		c.ShellWeb = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("shell " + r.Host + r.URL.Path)) })
		c.DeviceWeb = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("device " + r.Host + r.URL.Path)) })
	})
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	shell, device := proto.ShellHostPrefix+info.Session+"."+domain, info.Session+"."+domain
	if info.ShellOrigin != "http://"+shell || info.DeviceOrigin != "http://"+device {
		t.Fatalf("session info origins %q %q", info.ShellOrigin, info.DeviceOrigin)
	}
	get := func(host, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
		req.Host = host
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := make([]byte, 200)
		n, _ := resp.Body.Read(b)
		return resp.StatusCode, string(b[:n])
	}
	tests := []struct {
		host, path string
		want       int
		body       string
	}{
		{"app.test", "/", 200, "app ui"},
		{"app.test", "/devices", 200, "app ui"},
		{"app.test", "/v1/nope", 404, ""},
		{shell, "/", 200, "shell " + shell + "/"},
		{shell, "/v1/devices", 200, "shell"},
		{shell, proto.PathSessionCallback + "?code=x", 200, "shell " + shell + "/"},
		{shell, "/__t/sw.js", 200, "shell"}, // ShellWeb decides what it serves under /__t/
		{device, "/", 200, "device " + device + "/"},
		{device, "/__t/sw.js", 200, "device " + device + "/__t/sw.js"},
		{device, proto.PathRelayFrame, 200, "device"},
		// What holds a secret is never on the device origin.
		{device, proto.PathSessionAuth, 404, "not on this origin"},
		{device, proto.PathSessionCallback, 404, "not on this origin"},
		{device, proto.PathSessionBind, 404, "not on this origin"},
		{device, proto.PathSessionSocket, 404, "not on this origin"},
		{"abcdefghijklmnopqrstuvwxyz." + domain, "/", 404, "No such session"},
		{"shell-abcdefghijklmnopqrstuvwxyz." + domain, "/", 404, "No such session"},
		{"shell-" + shell, "/", 404, "No such session"},
		{"UPPER_CASE." + domain, "/", 404, "No such session"},
		{"a.b." + domain, "/", 404, "No such session"},
		{"shell-." + domain, "/", 404, "No such session"},
		// The end page and the wipe are there after the end too.
		{"abcdefghijklmnopqrstuvwxyz." + domain, proto.PathSessionEnded, 200, "device"},
		{"shell-abcdefghijklmnopqrstuvwxyz." + domain, proto.PathSessionWipe, 204, ""},
	}
	for _, tt := range tests {
		code, body := get(tt.host, tt.path)
		if code != tt.want || (tt.body != "" && !strings.Contains(body, tt.body)) {
			t.Errorf("GET %s%s = %d %q, want %d %q", tt.host, tt.path, code, body, tt.want, tt.body)
		}
	}
}
