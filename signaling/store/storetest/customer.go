package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/store"
)

// testPolicies: a site's and a device's policy are kept, changed
// atomically and survive a restart.
func testPolicies(t *testing.T, open Factory) {
	s, reopen := open(t)
	now := time.Now().UTC().Truncate(time.Second)
	must(t, s.CreateSite(ctx, &store.Site{ID: "acme", Name: "ACME", Created: now}))
	_, err := s.UpdateSite(ctx, "nope", func(*store.Site) error { return nil })
	wantErr(t, err, store.ErrNotFound)
	sp := &proto.SitePolicy{RequireApproval: true, TimeZone: "Europe/Berlin",
		Windows: []proto.TimeWindow{{Days: []string{"mon", "fri"}, From: "08:00", To: "18:00"}}, UpdatedBy: "u1", Updated: now}
	got, err := s.UpdateSite(ctx, "acme", func(site *store.Site) error { site.Policy = sp; return nil })
	must(t, err)
	if got.Name != "ACME" || got.Policy == nil || !got.Policy.RequireApproval {
		t.Fatalf("updated site %+v", got)
	}
	_, err = s.UpdateSite(ctx, "acme", func(site *store.Site) error { site.ID = "other"; return nil })
	wantErr(t, err, store.ErrConflict)
	boom := errors.New("boom")
	_, err = s.UpdateSite(ctx, "acme", func(site *store.Site) error { site.Policy = nil; return boom })
	wantErr(t, err, boom)

	dp := &proto.DevicePolicy{ReadOnly: true, Deny: []string{"/firmware"}, Ports: []int{443}}
	_, err = s.UpdateDevice(ctx, "a1", "printer", func(d *store.Device) error { d.Policy = dp; return nil })
	must(t, err)

	s.Close()
	s = reopen()
	defer s.Close()
	site, err := s.Site(ctx, "acme")
	must(t, err)
	if site.Policy == nil || site.Policy.TimeZone != "Europe/Berlin" || len(site.Policy.Windows) != 1 || site.Policy.Windows[0].To != "18:00" {
		t.Fatalf("site policy after restart: %+v", site.Policy)
	}
	d, err := s.Device(ctx, "a1", "printer")
	must(t, err)
	if d.Policy == nil || !d.Policy.ReadOnly || d.Policy.Deny[0] != "/firmware" || d.Policy.Ports[0] != 443 {
		t.Fatalf("device policy after restart: %+v", d.Policy)
	}
}

// testRequests: approval requests are listed per site in creation order,
// from a time on, and change state once under a race.
func testRequests(t *testing.T, open Factory) {
	s := newStore(t, open)
	base := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	for i, site := range []string{"acme", "acme", "other", "acme"} {
		r := &store.Request{ID: fmt.Sprintf("r%d", i), Site: site, Agent: "a1", Device: "printer", User: "u1", Reason: "why",
			Minutes: 10, State: proto.RequestPending, Created: base.Add(time.Duration(i) * time.Minute), Expires: base.Add(time.Hour)}
		must(t, s.PutRequest(ctx, r))
	}
	wantErr(t, s.PutRequest(ctx, &store.Request{ID: "r0", Site: "acme", Created: base}), store.ErrExists)
	wantErr(t, s.PutRequest(ctx, &store.Request{ID: "x"}), store.ErrBadRecord)
	_, err := s.Request(ctx, "nope")
	wantErr(t, err, store.ErrNotFound)

	list, err := s.Requests(ctx, "acme", time.Time{})
	must(t, err)
	if got := requestIDs(list); got != "r0 r1 r3" {
		t.Fatalf("acme's requests: %s", got)
	}
	list, err = s.Requests(ctx, "acme", base.Add(time.Minute))
	must(t, err)
	if got := requestIDs(list); got != "r1 r3" {
		t.Fatalf("acme's requests since 9:01: %s", got)
	}
	list, err = s.Requests(ctx, "nobody", time.Time{})
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("requests of a site without any: %v", requestIDs(list))
	}
	_, err = s.UpdateRequest(ctx, "r0", func(r *store.Request) error { r.Site = "other"; return nil })
	wantErr(t, err, store.ErrConflict)

	// Ten deciders race for one pending request: exactly one wins.
	errDecided := errors.New("decided already")
	var wg sync.WaitGroup
	wins := make(chan string, 10)
	for i := range 10 {
		wg.Go(func() {
			_, err := s.UpdateRequest(ctx, "r1", func(r *store.Request) error {
				if r.State != proto.RequestPending {
					return errDecided
				}
				r.State, r.DecidedBy = proto.RequestApproved, fmt.Sprintf("admin%d", i)
				return nil
			})
			if err == nil {
				wins <- "win"
			} else if !errors.Is(err, errDecided) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(wins)
	if n := len(wins); n != 1 {
		t.Fatalf("%d deciders won", n)
	}
	r, err := s.Request(ctx, "r1")
	must(t, err)
	if r.State != proto.RequestApproved || r.DecidedBy == "" || !r.Created.Equal(base.Add(time.Minute)) {
		t.Fatalf("decided request %+v", r)
	}
}

func requestIDs(list []*store.Request) string {
	out := ""
	for i, r := range list {
		if i > 0 {
			out += " "
		}
		out += r.ID
	}
	return out
}
