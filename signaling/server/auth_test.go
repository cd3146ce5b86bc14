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
	aHost := a.Session + "." + domain

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
		{"another session's origin", proto.PathSessionSocket, http.Header{"Authorization": {"Bearer " + a.Token}, "Origin": {b.Origin}}, nil, "", 403},
		{"origin null", proto.PathSessionSocket, http.Header{"Authorization": {"Bearer " + a.Token}, "Origin": {"null"}}, nil, "", 403},
		{"look-alike origin", proto.PathSessionSocket, http.Header{"Authorization": {"Bearer " + a.Token}, "Origin": {a.Origin + ".evil.example"}}, nil, "", 403},
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

func TestSessionSocketAcceptedOrigins(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	tests := []struct {
		name string
		hdr  http.Header
	}{
		{"no origin (CLI)", bearerHeader(info.Token)},
		{"the session's own origin", http.Header{"Authorization": {"Bearer " + info.Token}, "Origin": {info.Origin}}},
		{"an allowed app origin", http.Header{"Authorization": {"Bearer " + info.Token}, "Origin": {appOrigin}}},
		{"on the session host", http.Header{"Authorization": {"Bearer " + info.Token}, "Origin": {info.Origin}, "Host": {info.Session + "." + domain}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := e.client(info.Token, dialOpts{header: tt.hdr})
			c.close()
		})
	}
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
		{"session origin gets no CORS", http.MethodGet, info.Origin, 403, ""},
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
		c.SessionWeb = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("shell " + r.Host)) })
	})
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
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
		{info.Session + "." + domain, "/", 200, "shell " + info.Session + "." + domain},
		{info.Session + "." + domain, "/v1/devices", 200, "shell"},
		{"abcdefghijklmnopqrstuvwxyz." + domain, "/", 404, "No such session"},
		{"UPPER_CASE." + domain, "/", 404, "No such session"},
		{"a.b." + domain, "/", 404, "No such session"},
	}
	for _, tt := range tests {
		code, body := get(tt.host, tt.path)
		if code != tt.want || (tt.body != "" && !strings.Contains(body, tt.body)) {
			t.Errorf("GET %s%s = %d %q, want %d %q", tt.host, tt.path, code, body, tt.want, tt.body)
		}
	}
}
