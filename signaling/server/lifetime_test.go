package server

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/porthole-dev/porthole/proto"
)

func TestSessionExpires(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SessionTTL = 300 * time.Millisecond })
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	client, _ := e.client(info.Token, dialOpts{})

	for _, p := range []*peer{agent, client} {
		var end proto.SessionEnd
		env := p.nextData(proto.TypeSessionEnd, &end)
		if end.Reason != proto.EndExpired || env.Session != info.Session {
			t.Errorf("end %+v for %s, want expired for %s", end, env.Session, info.Session)
		}
	}
	client.waitClosed()
	if _, resp, err := e.dial(proto.PathSessionSocket, dialOpts{header: bearerHeader(info.Token)}); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("expired token: %v, want 401", status(resp))
	}
	// A late message from the agent is answered session_ended and is not
	// held against it.
	for range 20 {
		agent.send(proto.TypeCandidate, info.Session, &proto.Candidate{Candidate: ""})
		agent.nextError(proto.CodeSessionEnded)
	}
	e.open(agent, techToken, "printer-1")
}

func TestAgentLostEndsSessions(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AgentGrace = -1 })
	agent := e.agent(agentKey, "printer-1")
	a := e.open(agent, techToken, "printer-1")
	b := e.open(agent, techToken, "printer-1")
	ca, _ := e.client(a.Token, dialOpts{})
	cb, _ := e.client(b.Token, dialOpts{})
	agent.close()
	for _, c := range []*peer{ca, cb} {
		var end proto.SessionEnd
		c.nextData(proto.TypeSessionEnd, &end)
		if end.Reason != proto.EndAgentLost {
			t.Errorf("end reason %s, want agent_lost", end.Reason)
		}
		c.waitClosed()
	}
}

func TestClientRejoinsWithinGrace(t *testing.T) {
	e := newEnv(t, nil) // 30 s grace
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	first, _ := e.client(info.Token, dialOpts{})
	first.close()
	e.waitLog("client disconnected; waiting for it to rejoin")

	second, _ := e.client(info.Token, dialOpts{}) // a reloaded browser
	second.send(proto.TypeOffer, info.Session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\n"})
	agent.next(proto.TypeOffer)
	agent.send(proto.TypeAnswer, info.Session, &proto.SessionDescription{Type: "answer", SDP: "v=0\r\n"})
	second.next(proto.TypeAnswer)
}

func TestClientLostAfterGrace(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ClientGrace = 100 * time.Millisecond })
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	client, _ := e.client(info.Token, dialOpts{})
	client.close()
	var end proto.SessionEnd
	agent.nextData(proto.TypeSessionEnd, &end)
	if end.Reason != proto.EndClientLost {
		t.Errorf("end reason %s, want client_lost", end.Reason)
	}
}

func TestNewestClientWins(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	first, _ := e.client(info.Token, dialOpts{})
	second, _ := e.client(info.Token, dialOpts{})
	if code := closeCode(first.waitClosed()); code != websocket.CloseNormalClosure {
		t.Errorf("replaced client closed with %d", code)
	}
	agent.send(proto.TypeCandidate, info.Session, &proto.Candidate{Candidate: ""})
	second.next(proto.TypeCandidate)
}

func TestCloseAnswersPendingRequests(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	done := make(chan *http.Response, 1)
	go func() {
		var pe proto.Error
		done <- e.request(http.MethodPost, proto.PathSessions, techToken, &proto.CreateSession{Device: "printer-1"}, nil, &pe)
	}()
	agent.next(proto.TypeSessionOpen)
	e.srv.Close()
	if resp := <-done; resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("pending POST answered %d, want 504", resp.StatusCode)
	}
	var end proto.SessionEnd
	agent.nextData(proto.TypeSessionEnd, &end)
	if code := closeCode(agent.waitClosed()); code != websocket.CloseGoingAway {
		t.Errorf("agent closed with %d, want 1001", code)
	}
}
