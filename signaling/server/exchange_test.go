package server

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

func TestFullExchange(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")

	// The agent's session.open carries the user, expiry and minted TURN credentials.
	type result struct {
		resp *http.Response
		info proto.SessionInfo
	}
	ch := make(chan result, 1)
	go func() {
		var r result
		r.resp = e.request(http.MethodPost, proto.PathSessions, techToken, &proto.CreateSession{Device: "printer-1"}, nil, &r.info)
		ch <- r
	}()
	var open proto.SessionOpen
	env := agent.nextData(proto.TypeSessionOpen, &open)
	if open.Device != "printer-1" || open.User != "alice" || !proto.ValidSessionID(env.Session) || len(env.Session) != 26 {
		t.Fatalf("session.open = %+v session %q", open, env.Session)
	}
	checkICE(t, open.ICEServers, env.Session, open.Expires)
	agent.send(proto.TypeSessionReady, env.Session, struct{}{})
	r := <-ch
	if r.resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST = %d", r.resp.StatusCode)
	}
	info := r.info
	if info.Session != env.Session || info.Device != "printer-1" || info.Token == "" ||
		info.ShellOrigin != "http://shell-"+info.Session+"."+domain || info.DeviceOrigin != "http://"+info.Session+"."+domain ||
		!info.Expires.Equal(open.Expires) {
		t.Fatalf("session info %+v", info)
	}
	if d := time.Until(info.Expires); d < 29*time.Minute || d > 30*time.Minute {
		t.Errorf("session expires in %v, want 30 min", d)
	}

	client, ready := e.client(info.Token, dialOpts{})
	if ready.Device != "printer-1" || !ready.Expires.Equal(info.Expires) {
		t.Errorf("session.ready = %+v", ready)
	}
	checkICE(t, ready.ICEServers, info.Session, info.Expires)

	// offer: client → agent
	client.send(proto.TypeOffer, info.Session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\no=offer\r\n"})
	var offer proto.SessionDescription
	if env := agent.nextData(proto.TypeOffer, &offer); env.Session != info.Session || offer.SDP != "v=0\r\no=offer\r\n" {
		t.Fatalf("agent got offer %+v", offer)
	}
	// answer: agent → client; candidates both ways
	agent.send(proto.TypeAnswer, info.Session, &proto.SessionDescription{Type: "answer", SDP: "v=0\r\no=answer\r\n"})
	var answer proto.SessionDescription
	client.nextData(proto.TypeAnswer, &answer)
	if answer.SDP != "v=0\r\no=answer\r\n" {
		t.Fatalf("client got answer %+v", answer)
	}
	mid, idx := "0", uint16(0)
	cand := &proto.Candidate{Candidate: "candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host", SDPMid: &mid, SDPMLineIndex: &idx}
	agent.send(proto.TypeCandidate, info.Session, cand)
	var got proto.Candidate
	client.nextData(proto.TypeCandidate, &got)
	if got.Candidate != cand.Candidate || got.SDPMid == nil || *got.SDPMid != "0" {
		t.Fatalf("client got candidate %+v", got)
	}
	client.send(proto.TypeCandidate, info.Session, &proto.Candidate{Candidate: ""})
	agent.nextData(proto.TypeCandidate, &got)
	if got.Candidate != "" {
		t.Fatalf("agent got candidate %+v", got)
	}

	// The client ends the session: the agent hears it, the token dies.
	client.send(proto.TypeSessionEnd, info.Session, &proto.SessionEnd{Reason: proto.EndByClient})
	var end proto.SessionEnd
	agent.nextData(proto.TypeSessionEnd, &end)
	if end.Reason != proto.EndByClient {
		t.Errorf("agent got end reason %s", end.Reason)
	}
	client.waitClosed()
	if _, resp, err := e.dial(proto.PathSessionSocket, dialOpts{header: bearerHeader(info.Token)}); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token after end: %v %v, want 401", err, status(resp))
	}
}

// checkICE verifies the STUN entry and the TURN credential that expires
// with the session and carries a valid HMAC.
func checkICE(t *testing.T, servers []proto.ICEServer, session string, expires time.Time) {
	t.Helper()
	if len(servers) != 2 {
		t.Fatalf("ICE servers %+v, want stun + turn", servers)
	}
	if servers[0].URLs[0] != "stun:127.0.0.1:3478" || servers[0].Username != "" {
		t.Errorf("stun entry %+v", servers[0])
	}
	turn := servers[1]
	if len(turn.URLs) != 2 || !strings.HasPrefix(turn.URLs[0], "turn:") {
		t.Errorf("turn entry %+v", turn)
	}
	ts, sess, _ := strings.Cut(turn.Username, ":")
	exp, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sess != session {
		t.Fatalf("TURN username %q, want <expiry>:%s", turn.Username, session)
	}
	if exp > expires.Unix() || exp < expires.Unix()-1 {
		t.Errorf("TURN expiry %d, session expires %d", exp, expires.Unix())
	}
	if turn.Credential != proto.TURNPassword([]byte(turnSecret), turn.Username) {
		t.Errorf("TURN credential is not HMAC-SHA1(secret, username)")
	}
}

func TestBrowserSubprotocolToken(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	cookie := e.bind(info, info.Token)
	client, _ := e.client(info.Token, dialOpts{
		protocols: []string{proto.SocketProtocol, proto.SessionTokenProtocolPrefix + info.Token},
		header:    http.Header{"Origin": {info.ShellOrigin}, "Cookie": {cookie.String()}},
	})
	if got := client.ws.Subprotocol(); got != proto.SocketProtocol {
		t.Errorf("server chose subprotocol %q, want %q only", got, proto.SocketProtocol)
	}
}

func TestOpenSessionErrors(t *testing.T) {
	tests := []struct {
		name       string
		device     string
		body       string
		token      string
		agentReply func(p *peer, session string) // nil: the agent does not answer
		offline    bool                          // the agent has gone away
		wantStatus int
		wantCode   proto.Code
	}{
		{name: "agent refuses", device: "printer-1", agentReply: func(p *peer, s string) {
			p.send(proto.TypeError, s, &proto.Error{Code: proto.CodeDeviceFailed, Message: "MAC mismatch"})
		}, wantStatus: 502, wantCode: proto.CodeDeviceFailed},
		{name: "agent has no such device", device: "printer-1", agentReply: func(p *peer, s string) {
			p.send(proto.TypeError, s, &proto.Error{Code: proto.CodeDeviceNotFound})
		}, wantStatus: 404, wantCode: proto.CodeDeviceNotFound},
		{name: "agent ends it", device: "printer-1", agentReply: func(p *peer, s string) {
			p.send(proto.TypeSessionEnd, s, &proto.SessionEnd{Reason: proto.EndByAgent})
		}, wantStatus: 502, wantCode: proto.CodeDeviceFailed},
		{name: "agent offline", device: "printer-1", offline: true, wantStatus: 503, wantCode: proto.CodeAgentOffline},
		{name: "unknown device", device: "nope", wantStatus: 404, wantCode: proto.CodeNotFound},
		{name: "timeout", device: "printer-1", wantStatus: 504, wantCode: proto.CodeUnavailable},
		{name: "malformed device", device: "../etc", wantStatus: 400, wantCode: proto.CodeBadMessage},
		{name: "unknown field", body: `{"device":"printer-1","x":1}`, wantStatus: 400, wantCode: proto.CodeBadMessage},
		{name: "no token", device: "printer-1", token: "-", wantStatus: 401, wantCode: proto.CodeUnauthorized},
		{name: "wrong token", device: "printer-1", token: "tech-token-alicf", wantStatus: 401, wantCode: proto.CodeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.ReadyTimeout = 200 * time.Millisecond })
			agent := e.agent(agentKey, "printer-1")
			if tt.offline {
				agent.close()
				e.waitLog("agent offline")
			}
			token := techToken
			switch tt.token {
			case "-":
				token = ""
			case "":
			default:
				token = tt.token
			}
			var body any = &proto.CreateSession{Device: tt.device}
			if tt.body != "" {
				body = jsonRaw(tt.body)
			}
			type result struct {
				resp *http.Response
				err  proto.Error
			}
			ch := make(chan result, 1)
			go func() {
				var r result
				r.resp = e.request(http.MethodPost, proto.PathSessions, token, body, nil, &r.err)
				ch <- r
			}()
			if tt.agentReply != nil {
				env := agent.next(proto.TypeSessionOpen)
				tt.agentReply(agent, env.Session)
			}
			r := <-ch
			if r.resp.StatusCode != tt.wantStatus || r.err.Code != tt.wantCode {
				t.Errorf("POST = %d %+v, want %d %s", r.resp.StatusCode, r.err, tt.wantStatus, tt.wantCode)
			}
			if tt.name == "timeout" {
				// The agent is told the session it never accepted is over.
				agent.next(proto.TypeSessionOpen)
				var end proto.SessionEnd
				agent.nextData(proto.TypeSessionEnd, &end)
			}
		})
	}
}

// jsonRaw is a request body sent verbatim.
type jsonRaw string

func (j jsonRaw) MarshalJSON() ([]byte, error) { return []byte(j), nil }

func TestDeleteSession(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	client, _ := e.client(info.Token, dialOpts{})

	path := proto.PathSessions + "/" + info.Session
	if resp := e.request(http.MethodDelete, path, bobToken, nil, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("DELETE by another user = %d, want 404", resp.StatusCode)
	}
	if resp := e.request(http.MethodDelete, path, "", nil, nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("DELETE without token = %d, want 401", resp.StatusCode)
	}
	if resp := e.request(http.MethodDelete, path, techToken, nil, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE = %d, want 204", resp.StatusCode)
	}
	for _, p := range []*peer{agent, client} {
		var end proto.SessionEnd
		p.nextData(proto.TypeSessionEnd, &end)
		if end.Reason != proto.EndByClient {
			t.Errorf("end reason %s, want client", end.Reason)
		}
	}
	client.waitClosed()
	if resp := e.request(http.MethodDelete, path, techToken, nil, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("second DELETE = %d, want 404", resp.StatusCode)
	}
}

func TestDevices(t *testing.T) {
	e := newEnv(t, nil)
	a1 := e.agent(agentKey, "printer-1", "plc-7")
	e.agent(agentKey2, "camera-2")
	a1.close()
	e.waitLog(`msg="agent offline" agent=agent-1`)

	var list proto.DeviceList
	if resp := e.request(http.MethodGet, proto.PathDevices, techToken, nil, nil, &list); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET devices = %d", resp.StatusCode)
	}
	want := []struct {
		id, agent string
		online    bool
	}{{"camera-2", "agent-2", true}, {"plc-7", "agent-1", false}, {"printer-1", "agent-1", false}}
	if len(list.Devices) != len(want) {
		t.Fatalf("devices %+v", list.Devices)
	}
	for i, w := range want {
		d := list.Devices[i]
		if d.ID != w.id || d.Agent != w.agent || d.Online != w.online {
			t.Errorf("device %d = %+v, want %+v", i, d, w)
		}
	}
	if resp := e.request(http.MethodGet, proto.PathDevices, "wrong", nil, nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET devices with a wrong token = %d, want 401", resp.StatusCode)
	}
}

// TestNewestAgentWins: a second connection of the same agent replaces the
// first, and the first one's live sessions move to it.
func TestNewestAgentWins(t *testing.T) {
	e := newEnv(t, nil)
	old := e.agent(agentKey, "printer-1")
	info := e.open(old, techToken, "printer-1")
	client, _ := e.client(info.Token, dialOpts{})

	newer := e.agent(agentKey, "printer-1")
	old.waitClosed()
	// The agent reconnected (after a network change, say): its session
	// moved to the newer connection, so the client's ICE restart offer
	// reaches the agent there.
	client.send(proto.TypeOffer, info.Session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\no=restart\r\n"})
	var offer proto.SessionDescription
	if env := newer.nextData(proto.TypeOffer, &offer); env.Session != info.Session || offer.SDP != "v=0\r\no=restart\r\n" {
		t.Errorf("newer connection got %+v for session %s", offer, env.Session)
	}
	// An agent that does not know the session (a restarted process) ends it.
	newer.send(proto.TypeSessionEnd, info.Session, &proto.SessionEnd{Reason: proto.EndByAgent, Message: "unknown session"})
	var end proto.SessionEnd
	client.nextData(proto.TypeSessionEnd, &end)
	if end.Reason != proto.EndByAgent {
		t.Errorf("end reason %s, want agent", end.Reason)
	}
	// The newer connection serves new sessions and stays registered.
	e.open(newer, techToken, "printer-1")
}

// TestDeviceDeclaredTwiceInOneScopeIsRefused: two agents of the same scope
// (here: neither assigned to a site) declare one device ID. The first keeps
// it; the second's declaration is refused, logged and reported to it, and
// sessions still go to the first.
func TestDeviceDeclaredTwiceInOneScopeIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	a1 := e.agent(agentKey, "printer-1")
	a2 := e.agent(agentKey2, "printer-1")
	var perr proto.Error
	a2.nextData(proto.TypeError, &perr)
	if perr.Code != proto.CodeForbidden || !strings.Contains(perr.Message, "already declared by another agent") {
		t.Fatalf("second agent told %+v", perr)
	}
	e.waitLog(`msg="device declaration refused: another agent of the same site declared this id first" agent=agent-2 device=printer-1`)
	e.open(a1, techToken, "printer-1")
}

// TestDeviceMovesToAnotherAgentOfTheSiteOnceTheFirstIsGone: an agent that
// replaces another at the same site takes over its device IDs once the old
// one is disconnected.
func TestDeviceMovesToAnotherAgentOfTheSiteOnceTheFirstIsGone(t *testing.T) {
	e := newEnv(t, nil)
	a1 := e.agent(agentKey, "printer-1")
	a1.close()
	e.waitLog(`msg="agent offline" agent=agent-1`)
	a2 := e.agent(agentKey2, "printer-1")
	e.waitLog(`msg="device taken over from an agent of the same site that is offline" agent=agent-2 device=printer-1`)
	e.open(a2, techToken, "printer-1")
}
