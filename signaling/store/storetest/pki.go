package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/signaling/store"
)

// PKIFactory opens a fresh, empty PKI store for one test whose clock is
// now, and arranges for it to be closed when the test ends.
type PKIFactory func(t *testing.T, now func() time.Time) store.PKI

// RunPKI runs the conformance suite of store.PKI.
func RunPKI(t *testing.T, open PKIFactory) {
	tests := []struct {
		name string
		fn   func(*testing.T, PKIFactory)
	}{
		{"EnrollTokensAreSingleUse", testEnrollTokens},
		{"EnrollTokenConsumedOnceUnderRace", testEnrollTokenRace},
		{"EnrollTokensExpire", testEnrollTokenExpiry},
		{"AgentCerts", testAgentCerts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func testEnrollTokens(t *testing.T, open PKIFactory) {
	c := newClock()
	s := open(t, c.now)
	tok := &store.EnrollToken{Hash: "h1", Site: "site-a", Agent: "agent-1", CreatedBy: "admin",
		Created: c.now().UTC().Truncate(time.Second), Expires: c.now().Add(time.Hour)}
	must(t, s.PutEnrollToken(ctx, tok))
	wantErr(t, s.PutEnrollToken(ctx, tok), store.ErrExists)
	wantErr(t, s.PutEnrollToken(ctx, &store.EnrollToken{Hash: "h2"}), store.ErrBadRecord)
	list, err := s.EnrollTokens(ctx)
	must(t, err)
	if len(list) != 1 || list[0].Hash != "h1" {
		t.Fatalf("EnrollTokens = %+v", list)
	}
	got, err := s.ConsumeEnrollToken(ctx, "h1")
	must(t, err)
	if got.Site != "site-a" || got.Agent != "agent-1" || !got.Created.Equal(tok.Created) {
		t.Fatalf("consumed %+v", got)
	}
	_, err = s.ConsumeEnrollToken(ctx, "h1")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.ConsumeEnrollToken(ctx, "never")
	wantErr(t, err, store.ErrNotFound)
	list, err = s.EnrollTokens(ctx)
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("used token still listed: %+v", list)
	}
}

func testEnrollTokenRace(t *testing.T, open PKIFactory) {
	c := newClock()
	s := open(t, c.now)
	must(t, s.PutEnrollToken(ctx, &store.EnrollToken{Hash: "h", Site: "s", Agent: "a", Expires: c.now().Add(time.Hour)}))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := s.ConsumeEnrollToken(ctx, "h"); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("token consumed %d times", wins.Load())
	}
}

func testEnrollTokenExpiry(t *testing.T, open PKIFactory) {
	c := newClock()
	s := open(t, c.now)
	must(t, s.PutEnrollToken(ctx, &store.EnrollToken{Hash: "h", Site: "s", Agent: "a", Expires: c.now().Add(time.Minute)}))
	c.advance(time.Minute)
	list, err := s.EnrollTokens(ctx)
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("expired token listed: %+v", list)
	}
	_, err = s.ConsumeEnrollToken(ctx, "h")
	wantErr(t, err, store.ErrNotFound)
}

func testAgentCerts(t *testing.T, open PKIFactory) {
	c := newClock()
	s := open(t, c.now)
	_, err := s.AgentCert(ctx, "agent-1")
	wantErr(t, err, store.ErrNotFound)
	got, err := s.UpdateAgentCert(ctx, "agent-1", func(a *store.AgentCert) error {
		if a.Serial != "" || a.Agent != "agent-1" {
			t.Errorf("fresh record %+v", a)
		}
		a.Site, a.Serial, a.Expires = "site-a", "01", c.now().Add(time.Hour)
		return nil
	})
	must(t, err)
	if !got.Good("01") || got.Good("02") || got.Good("") {
		t.Fatalf("Good wrong for %+v", got)
	}
	_, err = s.UpdateAgentCert(ctx, "agent-1", func(a *store.AgentCert) error {
		a.PrevSerial, a.Serial = a.Serial, "02"
		return nil
	})
	must(t, err)
	got, err = s.AgentCert(ctx, "agent-1")
	must(t, err)
	if !got.Good("01") || !got.Good("02") || got.Site != "site-a" {
		t.Fatalf("after renewal %+v", got)
	}
	boom := errors.New("boom")
	_, err = s.UpdateAgentCert(ctx, "agent-1", func(a *store.AgentCert) error { a.Revoked = true; return boom })
	wantErr(t, err, boom)
	_, err = s.UpdateAgentCert(ctx, "agent-1", func(a *store.AgentCert) error { a.Agent = "other"; return nil })
	wantErr(t, err, store.ErrConflict)
	got, err = s.UpdateAgentCert(ctx, "agent-1", func(a *store.AgentCert) error {
		a.Revoked, a.RevokedBy, a.RevokedAt = true, "admin", c.now()
		return nil
	})
	must(t, err)
	if got.Good("01") || got.Good("02") {
		t.Fatal("a revoked agent's certificates are still good")
	}
	got.Site = "mutated" // a copy
	again, err := s.AgentCert(ctx, "agent-1")
	must(t, err)
	if again.Site != "site-a" || !again.Revoked {
		t.Fatalf("stored %+v", again)
	}
}
