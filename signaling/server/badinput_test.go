package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/bus"
	"github.com/porthole-dev/porthole/signaling/hub"
)

func TestOversizeFrameDisconnects(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	a := e.open(agent, techToken, "printer-1")
	b := e.open(agent, techToken, "printer-1")
	ca, _ := e.client(a.Token, dialOpts{})
	cb, _ := e.client(b.Token, dialOpts{})

	ca.sendRaw([]byte(`{"v":1,"type":"candidate","session":"` + a.Session + `","data":{"candidate":"` +
		strings.Repeat("x", proto.MaxSignalMessage) + `"}}`))
	if code := closeCode(ca.waitClosed()); code != websocket.CloseMessageTooBig {
		t.Errorf("close code %d, want 1009", code)
	}
	e.waitLog("message over size limit")

	// The other session is unaffected.
	cb.send(proto.TypeOffer, b.Session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\n"})
	if env := agent.next(proto.TypeOffer); env.Session != b.Session {
		t.Fatalf("offer for %s", env.Session)
	}
}

func TestBadMessagesAreRefused(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	a := e.open(agent, techToken, "printer-1")
	b := e.open(agent, techToken, "printer-1")
	// Each client case uses a fresh connection (the newest replaces the
	// last), so the cases do not add up to a persistent offender.
	var ca *peer
	const client = "client"

	deep := strings.Repeat("[", proto.MaxJSONDepth+1) + strings.Repeat("]", proto.MaxJSONDepth+1)
	tests := []struct {
		name        string
		from        any // client, or the agent peer
		raw         string
		wantCode    proto.Code
		wantSession string
	}{
		{"malformed JSON", client, `{"v":1,"type":"offer",`, proto.CodeBadMessage, ""},
		{"deep nesting", client, `{"v":1,"type":"offer","session":"` + a.Session + `","data":` + deep + `}`, proto.CodeBadMessage, ""},
		{"unknown type", client, `{"v":1,"type":"teleport","session":"` + a.Session + `"}`, proto.CodeUnsupported, ""},
		{"wrong version", client, `{"v":2,"type":"offer","session":"` + a.Session + `"}`, proto.CodeUnsupported, ""},
		{"invalid payload", client, `{"v":1,"type":"offer","session":"` + a.Session + `","data":{"type":"offer","sdp":""}}`, proto.CodeBadMessage, a.Session},
		{"unknown payload field", client, `{"v":1,"type":"candidate","session":"` + a.Session + `","data":{"candidate":"","evil":1}}`, proto.CodeBadMessage, a.Session},
		{"another session (client)", client, `{"v":1,"type":"offer","session":"` + b.Session + `","data":{"type":"offer","sdp":"v=0"}}`, proto.CodeSessionNotFound, b.Session},
		{"client sends an answer", client, `{"v":1,"type":"answer","session":"` + a.Session + `","data":{"type":"answer","sdp":"v=0"}}`, proto.CodeBadMessage, a.Session},
		{"client opens a session", client, `{"v":1,"type":"session.open","data":{"device":"printer-1"}}`, proto.CodeUnsupported, ""},
		{"hello twice", client, `{"v":1,"type":"hello","data":{"role":"client"}}`, proto.CodeBadMessage, ""},
		{"binary-ish garbage", client, "\x01{", proto.CodeBadMessage, ""},
		{"duplicate key", client, `{"v":1,"type":"candidate","session":"` + a.Session + `","session":"` + b.Session + `","data":{"candidate":""}}`, proto.CodeBadMessage, ""},
		{"duplicate payload key", client, `{"v":1,"type":"candidate","session":"` + a.Session + `","data":{"candidate":"","candidate":"x"}}`, proto.CodeBadMessage, ""},
		{"lone surrogate escape", client, `{"v":1,"type":"candidate","session":"` + a.Session + `","data":{"candidate":"\ud800"}}`, proto.CodeBadMessage, ""},
		{"agent names an unknown session", agent, `{"v":1,"type":"answer","session":"zzzzzzzzzzzzzzzz","data":{"type":"answer","sdp":"v=0"}}`, proto.CodeSessionNotFound, "zzzzzzzzzzzzzzzz"},
		{"agent sends an offer", agent, `{"v":1,"type":"offer","session":"` + a.Session + `","data":{"type":"offer","sdp":"v=0"}}`, proto.CodeBadMessage, a.Session},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := agent
			if tt.from == client {
				ca, _ = e.client(a.Token, dialOpts{})
				from = ca
			}
			from.sendRaw([]byte(tt.raw))
			env := from.nextError(tt.wantCode)
			if env.Session != tt.wantSession {
				t.Errorf("error envelope session %q, want %q", env.Session, tt.wantSession)
			}
			// The connection still works: a valid message is relayed.
			if from == ca {
				ca.send(proto.TypeCandidate, a.Session, &proto.Candidate{Candidate: ""})
				agent.next(proto.TypeCandidate)
			} else {
				if ca == nil {
					ca, _ = e.client(a.Token, dialOpts{})
				}
				agent.send(proto.TypeCandidate, a.Session, &proto.Candidate{Candidate: ""})
				ca.next(proto.TypeCandidate)
			}
		})
		if t.Failed() {
			return
		}
	}
	e.waitLog(`msg="message refused"`)
}

// TestInvalidUTF8TextFrameCloses1007: a text frame that is not UTF-8 fails
// the connection with 1007 (RFC 6455 §8.1), and the agent and another
// session are unaffected.
func TestInvalidUTF8TextFrameCloses1007(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	a := e.open(agent, techToken, "printer-1")
	b := e.open(agent, techToken, "printer-1")
	ca, _ := e.client(a.Token, dialOpts{})
	cb, _ := e.client(b.Token, dialOpts{})
	ca.sendRaw([]byte("{\"v\":1,\"type\":\"candidate\",\"session\":\"" + a.Session + "\",\"data\":{\"candidate\":\"\xff\xfe\"}}"))
	if code := closeCode(ca.waitClosed()); code != websocket.CloseInvalidFramePayloadData {
		t.Errorf("close code %d, want 1007", code)
	}
	e.waitLog("text message is not valid UTF-8; disconnected")
	cb.send(proto.TypeCandidate, b.Session, &proto.Candidate{Candidate: ""})
	if env := agent.next(proto.TypeCandidate); env.Session != b.Session {
		t.Fatalf("candidate for %s", env.Session)
	}
}

func TestPersistentOffenderDisconnected(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	a := e.open(agent, techToken, "printer-1")
	b := e.open(agent, techToken, "printer-1")
	ca, _ := e.client(a.Token, dialOpts{})
	cb, _ := e.client(b.Token, dialOpts{})

	for range 20 {
		ca.sendRaw([]byte(`{"v":1,"type":"offer","session":"` + b.Session + `","data":{"type":"offer","sdp":"v=0"}}`))
	}
	if code := closeCode(ca.waitClosed()); code != websocket.ClosePolicyViolation {
		t.Errorf("close code %d, want 1008", code)
	}
	e.waitLog("too many bad messages")

	// Nothing reached session b's agent side, and b still works.
	cb.send(proto.TypeOffer, b.Session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\nb"})
	var d proto.SessionDescription
	if env := agent.nextData(proto.TypeOffer, &d); env.Session != b.Session || d.SDP != "v=0\r\nb" {
		t.Fatalf("agent got %s %+v first", env.Session, d)
	}
}

func TestSlowReaderDoesNotBlockOthers(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxQueue = 4 })
	agent := e.agent(agentKey, "printer-1")
	a := e.open(agent, techToken, "printer-1")
	b := e.open(agent, techToken, "printer-1")
	// The slow client joins and then never reads again.
	slow, _, err := e.dial(proto.PathSessionSocket, dialOpts{header: bearerHeader(a.Token), noRead: true, smallBuffer: true})
	if err != nil {
		t.Fatal(err)
	}
	slow.sendRaw([]byte(`{"v":1,"type":"hello","data":{"role":"client"}}`))
	e.waitLog(`msg="client joined" session=` + a.Session)
	cb, _ := e.client(b.Token, dialOpts{})

	// Flood the slow client until signaling gives up on it; its small
	// receive buffer keeps the flood short.
	sdp := "v=0\r\n" + strings.Repeat("a=x\r\n", (proto.MaxSDP-10)/5)
	const full = "send queue full; disconnecting slow peer"
	for i := 0; !strings.Contains(e.logs.String(), full); i++ {
		if i == 5000 {
			t.Fatal("the slow client was never disconnected")
		}
		agent.send(proto.TypeAnswer, a.Session, &proto.SessionDescription{Type: "answer", SDP: sdp})
	}
	// Another session's client still gets its messages at once.
	start := time.Now()
	agent.send(proto.TypeCandidate, b.Session, &proto.Candidate{Candidate: ""})
	cb.next(proto.TypeCandidate)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("delivery to another client took %v", d)
	}
	// Signaling dropped the slow connection (the session waits for a new one).
	e.waitLog(`msg="client disconnected; waiting for it to rejoin" session=` + a.Session)
}

func TestPongDeadline(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.PingInterval = 20 * time.Millisecond
		c.PongWait = 200 * time.Millisecond
	})
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	mute, _ := e.client(info.Token, dialOpts{setup: func(ws *websocket.Conn) {
		ws.SetPingHandler(func(string) error { return nil }) // never pong
	}})
	start := time.Now()
	mute.waitClosed()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("closed after %v", d)
	}
	e.waitLog("no pong in time")

	// The agent, which answers pings, has outlived a pong wait and still works.
	c2, _ := e.client(info.Token, dialOpts{})
	c2.send(proto.TypeCandidate, info.Session, &proto.Candidate{Candidate: ""})
	agent.next(proto.TypeCandidate)
}

func TestHelloTimeout(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.PingInterval = 20 * time.Millisecond
		c.PongWait = 200 * time.Millisecond
	})
	// Answering pings does not keep a connection that never says hello.
	p, _, err := e.dial(proto.PathAgentSocket, dialOpts{header: bearerHeader(agentKey)})
	if err != nil {
		t.Fatal(err)
	}
	p.waitClosed()
	e.waitLog("no hello in time")
}

// floodCandidates sends up to n valid candidates (about 300 bytes each) on
// session from c as fast as the socket takes them, and stops when the
// connection is closed. It returns how many it sent.
func floodCandidates(c *peer, session string, n int) int {
	msg := []byte(`{"v":1,"type":"candidate","session":"` + session + `","data":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 ` +
		strings.Repeat("9", 200) + ` typ host","sdpMid":"0","sdpMLineIndex":0}}`)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for i := range n {
		c.ws.SetWriteDeadline(time.Now().Add(wait))
		if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			return i
		}
	}
	return n
}

// slowAgent is an agent whose reader falls behind at once: a tiny TCP
// receive buffer, and nothing drains what it read until the test does.
func (e *env) slowAgent(key string, devices ...string) *peer {
	e.t.Helper()
	p, resp, err := e.dial(proto.PathAgentSocket, dialOpts{header: bearerHeader(key), smallBuffer: true})
	if err != nil {
		e.t.Fatalf("agent dial: %v (%v)", err, status(resp))
	}
	var devs []proto.Device
	for _, d := range devices {
		devs = append(devs, proto.Device{ID: d, Ports: []int{80}, HTTPPort: 80})
	}
	p.send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Software: "test-agent", Devices: devs})
	p.nextData(proto.TypeWelcome, &proto.Welcome{})
	return p
}

// checkOtherSessionWorks proves session b (another user's, on the same
// agent) is untouched: its offer reaches the agent and the agent's answer
// reaches its client, with nothing in between saying the agent went away.
func checkOtherSessionWorks(t *testing.T, agent, cb *peer, b proto.SessionInfo) {
	t.Helper()
	cb.send(proto.TypeOffer, b.Session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\nb"})
	for {
		env := agent.nextAny()
		if env.Type == proto.TypeOffer && env.Session == b.Session {
			break
		}
		if env.Session == b.Session {
			t.Fatalf("session b's agent got %s first", env.Type)
		}
	}
	agent.send(proto.TypeAnswer, b.Session, &proto.SessionDescription{Type: "answer", SDP: "v=0\r\nb"})
	if env := cb.nextAny(); env.Type != proto.TypeAnswer {
		t.Fatalf("session b's client got %s, want the answer", env.Type)
	}
}

// TestCandidateFloodKeepsTheSharedAgent: one technician floods valid
// candidates on their own session while the agent reads slowly. Signaling
// refuses the flood with rate_limited (the session's rate limit, or its
// share of the agent's queue, whichever the flood meets first) and drops the
// flooder; the agent stays connected and another user's session on it works.
func TestCandidateFloodKeepsTheSharedAgent(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.slowAgent(agentKey, "printer-1")
	a := e.open(agent, techToken, "printer-1")
	b := e.open(agent, bobToken, "printer-1")
	ca, _ := e.client(a.Token, dialOpts{})
	cb, _ := e.client(b.Token, dialOpts{})

	sent := floodCandidates(ca, a.Session, 5000)
	t.Logf("the flooder got %d candidates out before its connection closed", sent)
	if strings.Contains(e.logs.String(), `send queue full; disconnecting slow peer" agent=agent-1`) {
		t.Fatal("signaling dropped the shared agent for one session's flood")
	}
	if env := ca.nextError(proto.CodeRateLimited); env.Session != a.Session {
		t.Errorf("rate_limited error for session %q, want %s", env.Session, a.Session)
	}
	checkOtherSessionWorks(t, agent, cb, b)
}

// TestAgentQueueFullEndsTheFloodingSession: with the rate limits out of the
// way, one session's messages fill its share of a slow agent's queue; that
// session is ended with a clear message, the agent is not dropped, and
// another user's session on the agent works.
func TestAgentQueueFullEndsTheFloodingSession(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Limits = hub.Limits{SessionRate: 1e9, SessionBurst: 1e9, MaxCandidates: 1e9, ClientRate: 1e9, ClientBurst: 1e9}
	})
	agent := e.slowAgent(agentKey, "printer-1")
	a := e.open(agent, techToken, "printer-1")
	b := e.open(agent, bobToken, "printer-1")
	ca, _ := e.client(a.Token, dialOpts{})
	cb, _ := e.client(b.Token, dialOpts{})

	floodCandidates(ca, a.Session, 5000)
	e.waitLog("agent queue full with this session's messages; ending the session, keeping the agent")
	var end proto.SessionEnd
	for {
		env := ca.nextAny()
		if env.Type == proto.TypeSessionEnd {
			_ = proto.DecodeData(env, &end)
			break
		}
	}
	if end.Reason != proto.EndError || !strings.Contains(end.Message, "faster than the agent reads") {
		t.Errorf("flooding session ended with %+v", end)
	}
	if strings.Contains(e.logs.String(), `send queue full; disconnecting slow peer" agent=agent-1`) {
		t.Fatal("signaling dropped the shared agent")
	}
	checkOtherSessionWorks(t, agent, cb, b)
}

// nextAny returns the next message, whatever its type.
func (p *peer) nextAny() *proto.Envelope {
	p.t.Helper()
	select {
	case env := <-p.in:
		return env
	case <-time.After(wait):
		p.t.Fatalf("no message within %v", wait)
	}
	return nil
}

// TestAPIRefusesDuplicateKeysAndInvalidUTF8: the JSON bodies of the API are
// checked as strictly as the wire messages.
func TestAPIRefusesDuplicateKeysAndInvalidUTF8(t *testing.T) {
	e := newEnv(t, nil)
	e.agent(agentKey, "printer-1")
	for _, body := range []string{
		`{"device":"printer-1","device":"printer-2"}`,
		"{\"device\":\"printer-\xff\"}",
	} {
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+proto.PathSessions, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+techToken)
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var perr proto.Error
		_ = json.NewDecoder(resp.Body).Decode(&perr)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(perr.Message, "repeats the key") && !strings.Contains(perr.Message, "UTF-8") {
			t.Errorf("POST %q = %d %+v, want 400 naming the problem", body, resp.StatusCode, perr)
		}
	}
}

// countingBus counts the bridge frames a node sends over the bus.
type countingBus struct {
	bus.Bus
	frames atomic.Int64
}

func (c *countingBus) Send(node string, msg []byte) bool {
	if bytes.Contains(msg, []byte(`"k":"frame"`)) {
		c.frames.Add(1)
	}
	return c.Bus.Send(node, msg)
}

// TestCandidateFloodOnABridgedSocketStaysOffTheBus: in a cluster, a
// technician whose socket reached node n1 for a session owned by n2 floods
// candidates. The bus between the nodes carries every session between them,
// so n1 — which holds the real socket — applies the connection's rate limit
// itself: frames past it are refused there (rate_limited) and never cross,
// the flooder is disconnected, and another user's bridged session on the
// same agent works.
func TestCandidateFloodOnABridgedSocketStaysOffTheBus(t *testing.T) {
	network := bus.NewNetwork()
	counted := &countingBus{Bus: network.Join("n1")}
	t.Cleanup(func() { _ = counted.Close() })
	edge := newEnv(t, func(c *Config) { c.Node, c.Bus = "n1", counted })
	owner := newEnv(t, func(c *Config) {
		c.Node, c.Bus, c.Store = "n2", network.Join("n2"), edge.srv.store
		t.Cleanup(func() { _ = c.Bus.Close() })
	})
	agent := owner.agent(agentKey, "printer-1")
	a := edge.open(agent, techToken, "printer-1")
	b := edge.open(agent, bobToken, "printer-1")
	ca, _ := edge.client(a.Token, dialOpts{})
	cb, _ := edge.client(b.Token, dialOpts{})

	before := counted.frames.Load()
	start := time.Now()
	sent := floodCandidates(ca, a.Session, 5000)
	elapsed := time.Since(start)
	crossed := counted.frames.Load() - before
	// What the bucket lets through: the burst, the rate over the flood's
	// duration, and a frame of slack.
	limit := int64(hub.DefaultClientBurst + hub.DefaultClientRate*elapsed.Seconds() + 1)
	t.Logf("the flooder wrote %d candidates in %v; %d frames crossed the bus (bucket: %d)", sent, elapsed.Round(time.Millisecond), crossed, limit)
	if crossed > limit {
		t.Errorf("%d of the flood's frames crossed the bus, want at most %d", crossed, limit)
	}
	if env := ca.nextError(proto.CodeRateLimited); env.Session != a.Session {
		t.Errorf("rate_limited error for session %q, want %s", env.Session, a.Session)
	}
	checkOtherSessionWorks(t, agent, cb, b)
}
