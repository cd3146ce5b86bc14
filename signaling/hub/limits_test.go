package hub

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// fakeClock is an injected clock for the token buckets.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// expectRefused reads the next message from p and checks it is a
// rate_limited error saying want.
func expectRefused(t *testing.T, p *peer, want string) {
	t.Helper()
	var e proto.Error
	recv(t, p, proto.TypeError, &e)
	if e.Code != proto.CodeRateLimited || !strings.Contains(e.Message, want) {
		t.Fatalf("error %+v, want rate_limited saying %q", e, want)
	}
}

// TestSessionRateLimitAndCandidateCap runs a session's token bucket on an
// injected clock: the burst passes, the next is refused until time refills
// the bucket, and past MaxCandidates nothing more passes at any rate. The
// agent receives exactly what was allowed.
func TestSessionRateLimitAndCandidateCap(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := newBubble(t, Options{Now: clk.now, MaxBadMessages: 100,
		Limits: Limits{SessionRate: 1, SessionBurst: 3, MaxCandidates: 5}})
	agent := helloAgent(t, b)
	info, client := openReady(t, b, agent)
	cand := func(i int) *proto.Candidate {
		return &proto.Candidate{Candidate: "candidate:" + string(rune('0'+i)) + " 1 udp 1 192.0.2.1 9 typ host"}
	}
	got := 0
	pass := func(i int) {
		t.Helper()
		send(t, client, proto.TypeCandidate, info.Session, cand(i))
		recv(t, agent, proto.TypeCandidate, nil)
		got++
	}
	for i := range 3 {
		pass(i)
	}
	send(t, client, proto.TypeCandidate, info.Session, cand(3))
	expectRefused(t, client, "too many signaling messages for session")
	clk.add(time.Second) // one token back
	pass(4)
	send(t, client, proto.TypeCandidate, info.Session, cand(5))
	expectRefused(t, client, "too many signaling messages for session")
	clk.add(10 * time.Second)
	pass(6) // the fifth candidate through
	send(t, client, proto.TypeCandidate, info.Session, cand(7))
	expectRefused(t, client, "has sent 5 candidates")
	clk.add(time.Hour)
	send(t, client, proto.TypeCandidate, info.Session, cand(8))
	expectRefused(t, client, "has sent 5 candidates")
	// An offer still passes: the cap is on candidates.
	send(t, client, proto.TypeOffer, info.Session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\n"})
	recv(t, agent, proto.TypeOffer, nil)
	if got != 5 {
		t.Fatalf("agent got %d candidates, want 5", got)
	}
}

// TestConnectionRateLimit: a client connection's own bucket refuses the
// message past its burst, whatever session it names, with a clear error.
func TestConnectionRateLimit(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := newBubble(t, Options{Now: clk.now, MaxBadMessages: 100,
		Limits: Limits{ClientRate: 1, ClientBurst: 2, SessionRate: 100, SessionBurst: 100}})
	agent := helloAgent(t, b)
	info, client := openReady(t, b, agent)
	for range 2 {
		send(t, client, proto.TypeCandidate, info.Session, &proto.Candidate{})
		recv(t, agent, proto.TypeCandidate, nil)
	}
	send(t, client, proto.TypeCandidate, info.Session, &proto.Candidate{})
	expectRefused(t, client, "too many messages on this connection")
	clk.add(time.Second)
	send(t, client, proto.TypeCandidate, info.Session, &proto.Candidate{})
	recv(t, agent, proto.TypeCandidate, nil)
}
