package hub

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// eventLog collects a hub's events.
type eventLog struct {
	mu sync.Mutex
	ev []Event
}

func (l *eventLog) add(e Event) { l.mu.Lock(); l.ev = append(l.ev, e); l.mu.Unlock() }
func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.ev...)
}

// openReady opens a session on printer-1 that agent accepts and a client
// joins.
func openReady(t *testing.T, b *bubble, agent *peer) (*proto.SessionInfo, *peer) {
	t.Helper()
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
	client := b.dial("/client?session=" + info.Session)
	send(t, client, proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient})
	recv(t, client, proto.TypeWelcome, nil)
	recv(t, client, proto.TypeSessionReady, nil)
	return info, client
}

func helloAgent(t *testing.T, b *bubble) *peer {
	t.Helper()
	agent := b.dial("/agent")
	send(t, agent, proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Devices: []proto.Device{{ID: "printer-1"}}})
	recv(t, agent, proto.TypeWelcome, nil)
	return agent
}

// TestJobEventsThroughExpiry: a session's events arrive in order, and
// signaling alone ends it at exactly 30 minutes (the agent here never
// would) with reason expired.
func TestJobEventsThroughExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log eventLog
		b := newBubble(t, Options{Events: log.add})
		agent := helloAgent(t, b)
		start := time.Now()
		info, client := openReady(t, b, agent)
		sent := proto.SessionPath{Path: proto.PathRelay, Local: "relay", Remote: "srflx", Relay: "tls", Proxy: "192.168.1.1:3128", Site: proto.SiteProxyOnly}
		send(t, agent, proto.TypeSessionPath, info.Session, &sent)
		// The technician gets the agent's report: its toolbar shows why.
		var got proto.SessionPath
		recv(t, client, proto.TypeSessionPath, &got)
		if got != sent {
			t.Errorf("technician got path %+v, want %+v", got, sent)
		}
		recv(t, client, proto.TypeSessionEnd, nil)
		synctest.Wait()
		ev := log.all()
		want := []string{EventRequested, EventVerifying, EventReady, EventConnected, EventEnded}
		if len(ev) != len(want) {
			t.Fatalf("%d events %+v, want %v", len(ev), ev, want)
		}
		for i, e := range ev {
			if e.State != want[i] || e.Session != info.Session || e.User != "alice" || e.Agent != "agent-1" || e.Device != "printer-1" {
				t.Errorf("event %d = %+v, want %s", i, e, want[i])
			}
		}
		if ev[3].Path != proto.PathRelay || ev[3].Detail != "relay (TURN/TLS through proxy 192.168.1.1:3128): site allows only an HTTP proxy" {
			t.Errorf("connected path %q, %q", ev[3].Path, ev[3].Detail)
		}
		end := ev[4]
		if end.Reason != string(proto.EndExpired) || end.Time.Sub(start) != 30*time.Minute {
			t.Errorf("ended %v after start with %q, want exactly 30m expired", end.Time.Sub(start), end.Reason)
		}
	})
}

// TestAgentReconnectsWithinGrace: a live session outlives its agent's
// signaling connection for AgentGrace and moves to the new connection;
// without a reconnection it ends with agent_lost when the grace is over.
func TestAgentReconnectsWithinGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log eventLog
		b := newBubble(t, Options{AgentGrace: 30 * time.Second, Events: log.add})
		agent := helloAgent(t, b)
		info, client := openReady(t, b, agent)

		agent.ws.Close()
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if !b.hub.SessionLive(info.Session) {
			t.Fatal("session ended while its agent reconnects")
		}
		agent = helloAgent(t, b)
		send(t, client, proto.TypeOffer, info.Session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\n"})
		if env := recv(t, agent, proto.TypeOffer, nil); env.Session != info.Session {
			t.Fatalf("offer for %s", env.Session)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if !b.hub.SessionLive(info.Session) {
			t.Fatal("session ended after its agent came back")
		}

		agent.ws.Close()
		start := time.Now()
		var end proto.SessionEnd
		recv(t, client, proto.TypeSessionEnd, &end)
		if end.Reason != proto.EndAgentLost || time.Since(start) != 30*time.Second {
			t.Fatalf("ended with %s after %v, want agent_lost after 30s", end.Reason, time.Since(start))
		}
	})
}

// TestRevokedAgentEndsSessionsAtOnce: a revoked agent gets no grace.
func TestRevokedAgentEndsSessionsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{AgentGrace: time.Minute})
		agent := helloAgent(t, b)
		info, client := openReady(t, b, agent)
		start := time.Now()
		b.hub.DisconnectAgent("agent-1", "revoked")
		var end proto.SessionEnd
		recv(t, client, proto.TypeSessionEnd, &end)
		if end.Reason != proto.EndAgentLost || time.Since(start) != 0 || b.hub.SessionLive(info.Session) {
			t.Fatalf("ended with %s after %v", end.Reason, time.Since(start))
		}
	})
}

// TestAdminTerminates: both sides hear reason admin, and the event names
// the admin.
func TestAdminTerminates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log eventLog
		b := newBubble(t, Options{Events: log.add})
		agent := helloAgent(t, b)
		info, client := openReady(t, b, agent)
		if err := b.hub.TerminateSession(info.Session, "root"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []*peer{agent, client} {
			var end proto.SessionEnd
			recv(t, p, proto.TypeSessionEnd, &end)
			if end.Reason != proto.EndByAdmin {
				t.Errorf("reason %s, want admin", end.Reason)
			}
		}
		ev := log.all()
		if last := ev[len(ev)-1]; last.State != EventEnded || last.Reason != string(proto.EndByAdmin) || last.By != "root" {
			t.Fatalf("last event %+v", last)
		}
		if err := b.hub.TerminateSession(info.Session, "root"); err == nil {
			t.Fatal("terminated an ended session")
		}
	})
}

// TestVerificationFailureIsRecorded: an agent refusing a session because
// the device failed its check ends the job with device_verification_failed.
func TestVerificationFailureIsRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log eventLog
		b := newBubble(t, Options{Events: log.add})
		agent := helloAgent(t, b)
		go func() { _, _ = b.hub.OpenSession(t.Context(), "alice", "printer-1") }()
		env := recv(t, agent, proto.TypeSessionOpen, nil)
		send(t, agent, proto.TypeError, env.Session, &proto.Error{Code: proto.CodeDeviceFailed, Message: "MAC address differs"})
		synctest.Wait()
		ev := log.all()
		if last := ev[len(ev)-1]; last.State != EventEnded || last.Reason != ReasonVerificationFailed {
			t.Fatalf("events %+v", ev)
		}
	})
}

// TestAccessLogIsAcknowledged: batches go to Options.AccessLog with the
// agent's identity, and its answer comes back as log.ack.
func TestAccessLogIsAcknowledged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []string
		b := newBubble(t, Options{AccessLog: func(_ context.Context, agent, session string, l *proto.AccessLog) (uint64, error) {
			got = append(got, agent+"/"+session)
			return l.Entries[len(l.Entries)-1].Seq, nil
		}})
		agent := helloAgent(t, b)
		info, _ := openReady(t, b, agent)
		entries := []proto.AccessEntry{
			{Seq: 1, Kind: proto.AccessHTTP, Time: time.Now(), Method: "GET", URL: "/", Status: 200},
			{Seq: 2, Kind: proto.AccessHTTP, Time: time.Now(), Method: "GET", URL: "/a", Status: 200},
		}
		send(t, agent, proto.TypeAccessLog, info.Session, &proto.AccessLog{Entries: entries})
		var ack proto.AccessAck
		recv(t, agent, proto.TypeAccessAck, &ack)
		if ack.Seq != 2 || len(got) != 1 || got[0] != "agent-1/"+info.Session {
			t.Fatalf("ack %d, calls %v", ack.Seq, got)
		}
	})
}
