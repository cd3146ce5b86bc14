package daemon

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// fakeClock runs AfterFunc callbacks when Advance passes their time.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// Advance moves the clock and runs the callbacks now due, in order, on
// the caller's goroutine.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			t.stopped = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// TestAgentEndsSessionAtExactlyThirtyMinutes: the agent alone — signaling
// here never ends the session — closes it when its signed grant expires,
// not a moment before.
func TestAgentEndsSessionAtExactlyThirtyMinutes(t *testing.T) {
	clock := &fakeClock{now: time.Now().Truncate(time.Second)}
	h := startAgent(t, nil, nil, func(c *Config) { c.Clock = clock })
	start := clock.Now()
	g := proto.Grant{Session: "sessexpiry00001", Agent: testAgentID, Device: "printer-1", User: "tech",
		IssuedAt: start.Unix(), Expires: start.Add(30 * time.Minute).Unix()}
	// The envelope claims more; the grant decides.
	h.send(proto.TypeSessionOpen, g.Session, &proto.SessionOpen{Device: "printer-1", User: "tech",
		Expires: start.Add(2 * time.Hour), Grant: h.grant(g)})
	env := h.next()
	var ready proto.SessionReady
	if env.Type != proto.TypeSessionReady || proto.DecodeData(env, &ready) != nil || !ready.Expires.Equal(start.Add(30*time.Minute)) {
		t.Fatalf("answer %s, expires %v", env.Type, ready.Expires)
	}
	clock.Advance(30*time.Minute - time.Millisecond)
	if h.agent.session(g.Session) == nil {
		t.Fatal("session ended before 30 minutes")
	}
	clock.Advance(time.Millisecond)
	if h.agent.session(g.Session) != nil {
		t.Fatal("session still open at 30 minutes")
	}
	end := h.next()
	var e proto.SessionEnd
	if end.Type != proto.TypeSessionEnd || end.Session != g.Session || proto.DecodeData(end, &e) != nil || e.Reason != proto.EndExpired {
		t.Fatalf("got %s %+v, want session.end expired", end.Type, e)
	}
	// A grant at its expiry opens nothing.
	g2 := g
	g2.Session = "sessexpiry00002"
	wantRefusal(t, h.open(g2.Session, "printer-1", h.grant(g2)), proto.CodeSessionEnded, "expired")
}
