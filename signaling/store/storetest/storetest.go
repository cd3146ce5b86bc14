// Package storetest is the conformance suite of store.Store: every backend
// runs Run from its own tests and must pass all of it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/store"
)

// Factory opens a fresh, empty store for one test. Reopen closes nothing:
// it opens a second handle on the same data, as a restarted process would
// (the suite closes the first handle before calling it).
type Factory func(t *testing.T) (s store.Store, reopen func() store.Store)

// Run runs the whole suite against the backend that open builds.
func Run(t *testing.T, open Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"Users", testUsers},
		{"UpdateUserIsAtomic", testUpdateUserAtomic},
		{"SitesAndAgents", testSitesAndAgents},
		{"Devices", testDevices},
		{"Inventory", testInventory},
		{"Discovery", testDiscovery},
		{"Tokens", testTokens},
		{"CodesAreSingleUse", testCodes},
		{"CodeConsumedOnceUnderRace", testCodeRace},
		{"Attempts", testAttempts},
		{"AuditChain", testAudit},
		{"NothingLostOnRestart", testRestart},
		// jobs.go
		{"Jobs", testJobs},
		{"JobUpdateIsAtomic", testJobUpdateAtomic},
		{"AppendAuditAtDeduplicates", testAppendAuditAt},
		{"AppendAuditAtUnderRace", testAppendAuditAtRace},
		{"AppendAuditBatch", testAppendAuditBatch},
		{"AppendAuditBatchUnderRace", testAppendAuditBatchRace},
		{"CheckpointsOnlyMoveForward", testCheckpoints},
		{"JobsSurviveRestart", testJobsRestart},
		// webhooks.go
		{"Webhooks", testWebhooks},
		// customer.go
		{"Policies", testPolicies},
		{"Requests", testRequests},
		{"RecordingAppendsInOrderBounded", testRecording},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

var ctx = context.Background()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

func newStore(t *testing.T, open Factory) store.Store {
	s, _ := open(t)
	t.Cleanup(func() { s.Close() })
	return s
}

func testUsers(t *testing.T, open Factory) {
	s := newStore(t, open)
	now := time.Now().UTC().Truncate(time.Second)
	alice := &store.User{ID: "u1", Name: "alice", PasswordHash: "h", Created: now,
		Roles: map[string][]store.Role{"site-a": {store.RoleUser}}}
	must(t, s.CreateUser(ctx, alice))
	wantErr(t, s.CreateUser(ctx, &store.User{ID: "u1", Name: "other"}), store.ErrExists)
	wantErr(t, s.CreateUser(ctx, &store.User{ID: "u2", Name: "alice"}), store.ErrExists)
	must(t, s.CreateUser(ctx, &store.User{ID: "u0", Name: "bob"}))

	got, err := s.User(ctx, "u1")
	must(t, err)
	if got.Name != "alice" || !got.HasRole("site-a", store.RoleUser) || got.HasRole("site-a", store.RoleConfigurer) || !got.Created.Equal(now) {
		t.Fatalf("User = %+v", got)
	}
	got.Name = "mutated" // a copy: the store is unaffected
	if again, _ := s.User(ctx, "u1"); again.Name != "alice" {
		t.Fatal("store returned shared memory")
	}
	byName, err := s.UserByName(ctx, "alice")
	must(t, err)
	if byName.ID != "u1" {
		t.Fatalf("UserByName = %+v", byName)
	}
	_, err = s.User(ctx, "nobody")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.UserByName(ctx, "nobody")
	wantErr(t, err, store.ErrNotFound)

	all, err := s.Users(ctx)
	must(t, err)
	if len(all) != 2 || all[0].Name != "alice" || all[1].Name != "bob" {
		t.Fatalf("Users = %v", all)
	}

	up, err := s.UpdateUser(ctx, "u1", func(u *store.User) error {
		u.Admin = true
		u.Roles["site-b"] = []store.Role{store.RoleConfigurer}
		return nil
	})
	must(t, err)
	if !up.Admin || !up.HasRole("site-b", store.RoleConfigurer) {
		t.Fatalf("UpdateUser = %+v", up)
	}
	boom := errors.New("boom")
	_, err = s.UpdateUser(ctx, "u1", func(u *store.User) error { u.Admin = false; return boom })
	wantErr(t, err, boom)
	if u, _ := s.User(ctx, "u1"); !u.Admin {
		t.Fatal("a failed update was stored")
	}
	_, err = s.UpdateUser(ctx, "u1", func(u *store.User) error { u.Name = "mallory"; return nil })
	wantErr(t, err, store.ErrConflict)
	_, err = s.UpdateUser(ctx, "nobody", func(*store.User) error { return nil })
	wantErr(t, err, store.ErrNotFound)

	must(t, s.PutToken(ctx, &store.Token{Hash: "t1", Kind: store.TokenLogin, User: "u1"}))
	must(t, s.DeleteUser(ctx, "u1"))
	_, err = s.User(ctx, "u1")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Token(ctx, "t1")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteUser(ctx, "u1"), store.ErrNotFound)
	// The name is free again.
	must(t, s.CreateUser(ctx, &store.User{ID: "u3", Name: "alice"}))
}

func testUpdateUserAtomic(t *testing.T, open Factory) {
	s := newStore(t, open)
	must(t, s.CreateUser(ctx, &store.User{ID: "u1", Name: "alice"}))
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := s.UpdateUser(ctx, "u1", func(u *store.User) error { u.TOTPLastStep++; return nil })
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if u, _ := s.User(ctx, "u1"); u.TOTPLastStep != n {
		t.Fatalf("after %d concurrent increments: %d", n, u.TOTPLastStep)
	}
}

func testSitesAndAgents(t *testing.T, open Factory) {
	s := newStore(t, open)
	must(t, s.CreateSite(ctx, &store.Site{ID: "b", Name: "B"}))
	must(t, s.CreateSite(ctx, &store.Site{ID: "a", Name: "A"}))
	wantErr(t, s.CreateSite(ctx, &store.Site{ID: "a", Name: "again"}), store.ErrExists)
	sites, err := s.Sites(ctx)
	must(t, err)
	if len(sites) != 2 || sites[0].ID != "a" || sites[1].ID != "b" {
		t.Fatalf("Sites = %v", sites)
	}
	if site, err := s.Site(ctx, "a"); err != nil || site.Name != "A" {
		t.Fatalf("Site = %v, %v", site, err)
	}
	_, err = s.Site(ctx, "zzz")
	wantErr(t, err, store.ErrNotFound)

	wantErr(t, s.PutAgent(ctx, &store.Agent{ID: "ag1", Site: "nope"}), store.ErrNotFound)
	must(t, s.PutAgent(ctx, &store.Agent{ID: "ag2", Site: "a"}))
	must(t, s.PutAgent(ctx, &store.Agent{ID: "ag1", Site: "b"}))
	must(t, s.PutAgent(ctx, &store.Agent{ID: "ag1", Site: "a", Name: "moved"}))
	a, err := s.Agent(ctx, "ag1")
	must(t, err)
	if a.Site != "a" || a.Name != "moved" {
		t.Fatalf("Agent = %+v", a)
	}
	agents, err := s.Agents(ctx)
	must(t, err)
	if len(agents) != 2 || agents[0].ID != "ag1" || agents[1].ID != "ag2" {
		t.Fatalf("Agents = %v", agents)
	}
	_, err = s.Agent(ctx, "ag9")
	wantErr(t, err, store.ErrNotFound)

	wantErr(t, s.DeleteSite(ctx, "a"), store.ErrConflict)
	must(t, s.DeleteSite(ctx, "b"))
	wantErr(t, s.DeleteSite(ctx, "b"), store.ErrNotFound)
	must(t, s.PutAgent(ctx, &store.Agent{ID: "ag1"}))
	must(t, s.PutAgent(ctx, &store.Agent{ID: "ag2"}))
	must(t, s.DeleteSite(ctx, "a"))
}

func testDevices(t *testing.T, open Factory) {
	s := newStore(t, open)
	_, err := s.Device(ctx, "ag1", "printer-1")
	wantErr(t, err, store.ErrNotFound)
	d, err := s.UpdateDevice(ctx, "ag1", "printer-1", func(d *store.Device) error {
		if d.Enabled {
			return errors.New("a new device must start disabled")
		}
		d.Enabled, d.UpdatedBy = true, "u1"
		return nil
	})
	must(t, err)
	if !d.Enabled || d.Agent != "ag1" || d.ID != "printer-1" {
		t.Fatalf("UpdateDevice = %+v", d)
	}
	// Same device ID under another agent is another device.
	if _, err := s.Device(ctx, "ag2", "printer-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("device of another agent: %v", err)
	}
	got, err := s.Device(ctx, "ag1", "printer-1")
	must(t, err)
	if !got.Enabled || got.UpdatedBy != "u1" {
		t.Fatalf("Device = %+v", got)
	}
}

func testInventory(t *testing.T, open Factory) {
	s := newStore(t, open)
	list, err := s.Devices(ctx, "ag1")
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("Devices of a new agent = %v", list)
	}
	seen := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, id := range []string{"zebra", "printer-1", "cam"} {
		_, err := s.UpdateDevice(ctx, "ag1", id, func(d *store.Device) error {
			d.Adopted, d.Addr, d.MAC, d.Serial = id != "cam", "192.0.2.20", "02:00:5e:10:00:01", "SN-"+id
			d.Services = []proto.Service{{Kind: proto.ServiceWeb, Port: 80, Scheme: "http"}}
			d.Declared = &proto.Device{ID: id, Health: &proto.DeviceHealth{Reachable: true}}
			d.LastSeen = seen
			return nil
		})
		must(t, err)
	}
	_, err = s.UpdateDevice(ctx, "ag2", "other", func(d *store.Device) error { d.Adopted = true; return nil })
	must(t, err)
	list, err = s.Devices(ctx, "ag1")
	must(t, err)
	var ids []string
	for _, d := range list {
		ids = append(ids, d.ID)
	}
	if strings.Join(ids, ",") != "cam,printer-1,zebra" {
		t.Fatalf("Devices(ag1) = %v, want cam,printer-1,zebra (sorted, this agent's only)", ids)
	}
	p := list[1]
	if !p.Adopted || p.Serial != "SN-printer-1" || len(p.Services) != 1 || p.Services[0].Port != 80 ||
		p.Declared == nil || p.Declared.Health == nil || !p.Declared.Health.Reachable || !p.LastSeen.Equal(seen) {
		t.Fatalf("round trip lost fields: %+v", p)
	}
	must(t, s.DeleteDevice(ctx, "ag1", "zebra"))
	wantErr(t, s.DeleteDevice(ctx, "ag1", "zebra"), store.ErrNotFound)
	_, err = s.Device(ctx, "ag1", "zebra")
	wantErr(t, err, store.ErrNotFound)
	list, err = s.Devices(ctx, "ag1")
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("after delete: %d devices", len(list))
	}
	// Deleted and adopted again: a fresh record, listed again.
	_, err = s.UpdateDevice(ctx, "ag1", "zebra", func(d *store.Device) error {
		if d.Adopted || d.Serial != "" {
			return errors.New("a deleted device came back with its old record")
		}
		return nil
	})
	must(t, err)
	if list, _ = s.Devices(ctx, "ag1"); len(list) != 3 {
		t.Fatalf("after re-adding: %d devices", len(list))
	}
}

func testDiscovery(t *testing.T, open Factory) {
	s := newStore(t, open)
	_, err := s.Discovery(ctx, "ag1")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.PutDiscovery(ctx, &store.Discovery{}), store.ErrBadRecord)
	d := &store.Discovery{Agent: "ag1", Scan: "scan-1", Scope: []string{"192.0.2.0/24"}, Started: time.Now().UTC().Truncate(time.Second),
		Probes: 263, Devices: []proto.Discovered{{Addr: "192.0.2.20", MAC: "02:00:5e:10:00:01", Model: "HP LaserJet", Serial: "CNB1",
			Services: []proto.DiscoveredService{{Kind: proto.ServiceWeb, Port: 80, Title: "EWS"}}}}}
	must(t, s.PutDiscovery(ctx, d))
	d2 := *d
	d2.Scan, d2.Devices = "scan-2", nil
	must(t, s.PutDiscovery(ctx, &d2))
	got, err := s.Discovery(ctx, "ag1")
	must(t, err)
	if got.Scan != "scan-2" || len(got.Devices) != 0 {
		t.Fatalf("the latest scan replaces the last: %+v", got)
	}
	must(t, s.PutDiscovery(ctx, d))
	got, err = s.Discovery(ctx, "ag1")
	must(t, err)
	if got.Probes != 263 || len(got.Devices) != 1 || got.Devices[0].Services[0].Title != "EWS" || !got.Started.Equal(d.Started) {
		t.Fatalf("Discovery = %+v", got)
	}
	if _, err := s.Discovery(ctx, "ag2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another agent's discovery: %v", err)
	}
}

func testTokens(t *testing.T, open Factory) {
	s := newStore(t, open)
	now := time.Now()
	tok := func(hash string, kind store.TokenKind, user string, exp time.Time) *store.Token {
		return &store.Token{Hash: hash, Kind: kind, User: user, Created: now, Expires: exp}
	}
	must(t, s.PutToken(ctx, tok("l1", store.TokenLogin, "u1", now.Add(time.Hour))))
	must(t, s.PutToken(ctx, tok("a1", store.TokenAPI, "u1", time.Time{})))
	must(t, s.PutToken(ctx, tok("m1", store.TokenMFA, "u1", now.Add(time.Minute))))
	must(t, s.PutToken(ctx, tok("l2", store.TokenLogin, "u2", now.Add(time.Hour))))
	must(t, s.PutToken(ctx, tok("x1", store.TokenLogin, "u1", now.Add(-time.Second))))
	wantErr(t, s.PutToken(ctx, tok("l1", store.TokenLogin, "u3", now.Add(time.Hour))), store.ErrExists)

	if got, err := s.Token(ctx, "a1"); err != nil || got.Kind != store.TokenAPI || got.User != "u1" {
		t.Fatalf("Token = %+v, %v", got, err)
	}
	_, err := s.Token(ctx, "x1")
	wantErr(t, err, store.ErrNotFound) // expired
	_, err = s.Token(ctx, "zz")
	wantErr(t, err, store.ErrNotFound)

	all, err := s.UserTokens(ctx, "u1")
	must(t, err)
	if len(all) != 3 {
		t.Fatalf("UserTokens = %d tokens, want 3 live ones", len(all))
	}
	api, err := s.UserTokens(ctx, "u1", store.TokenAPI)
	must(t, err)
	if len(api) != 1 || api[0].Hash != "a1" {
		t.Fatalf("UserTokens(api) = %v", api)
	}
	n, err := s.DeleteUserTokens(ctx, "u1", store.TokenLogin, store.TokenMFA)
	must(t, err)
	if n < 2 {
		t.Fatalf("DeleteUserTokens = %d, want at least 2", n)
	}
	if _, err := s.Token(ctx, "l1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("login token survived DeleteUserTokens")
	}
	if _, err := s.Token(ctx, "a1"); err != nil {
		t.Fatal("API token deleted with the login tokens")
	}
	if _, err := s.Token(ctx, "l2"); err != nil {
		t.Fatal("another user's token was deleted")
	}
	must(t, s.DeleteToken(ctx, "a1"))
	wantErr(t, s.DeleteToken(ctx, "a1"), store.ErrNotFound)
}

func testCodes(t *testing.T, open Factory) {
	s := newStore(t, open)
	now := time.Now()
	c := &store.Code{Hash: "c1", User: "u1", ClientID: "sess", RedirectURI: "http://x/cb", Challenge: "ch", Session: "sess", Expires: now.Add(time.Minute)}
	must(t, s.PutCode(ctx, c))
	wantErr(t, s.PutCode(ctx, c), store.ErrExists)

	got, err := s.ConsumeCode(ctx, "c1", "tok-1")
	must(t, err)
	if got.User != "u1" || got.Challenge != "ch" || got.RedirectURI != "http://x/cb" || got.Session != "sess" || got.Issued != "tok-1" {
		t.Fatalf("ConsumeCode = %+v", got)
	}
	again, err := s.ConsumeCode(ctx, "c1", "tok-2")
	wantErr(t, err, store.ErrCodeUsed)
	if again == nil || again.Issued != "tok-1" {
		t.Fatalf("replayed code = %+v, want the first issue recorded", again)
	}
	_, err = s.ConsumeCode(ctx, "nope", "tok")
	wantErr(t, err, store.ErrNotFound)

	must(t, s.PutCode(ctx, &store.Code{Hash: "c2", Expires: now.Add(-time.Millisecond)}))
	_, err = s.ConsumeCode(ctx, "c2", "tok")
	wantErr(t, err, store.ErrNotFound)
}

func testCodeRace(t *testing.T, open Factory) {
	s := newStore(t, open)
	must(t, s.PutCode(ctx, &store.Code{Hash: "c", Expires: time.Now().Add(time.Minute)}))
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range n {
		wg.Go(func() {
			_, err := s.ConsumeCode(ctx, "c", fmt.Sprint(i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrCodeUsed):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d concurrent exchanges succeeded, want exactly 1", wins)
	}
}

func testAttempts(t *testing.T, open Factory) {
	s := newStore(t, open)
	for i := 1; i <= 3; i++ {
		n, err := s.Attempt(ctx, "login:alice", time.Hour)
		must(t, err)
		if n != i {
			t.Fatalf("attempt %d counted %d", i, n)
		}
	}
	if n, _ := s.Attempts(ctx, "login:alice"); n != 3 {
		t.Fatalf("Attempts = %d", n)
	}
	if n, _ := s.Attempts(ctx, "login:bob"); n != 0 {
		t.Fatalf("Attempts of another key = %d", n)
	}
	must(t, s.ResetAttempts(ctx, "login:alice"))
	if n, _ := s.Attempts(ctx, "login:alice"); n != 0 {
		t.Fatalf("Attempts after reset = %d", n)
	}
	if n, _ := s.Attempt(ctx, "login:alice", time.Hour); n != 1 {
		t.Fatalf("first attempt after reset counted %d", n)
	}
}

func testAudit(t *testing.T, open Factory) {
	s := newStore(t, open)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			_, err := s.AppendAudit(ctx, "admin", &store.AuditEntry{Actor: "u1", Action: "device.enable", Target: fmt.Sprint(i)})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	e, err := s.AppendAudit(ctx, "other", &store.AuditEntry{Actor: "u2", Action: "role.grant", Detail: map[string]string{"role": "user"}})
	must(t, err)
	if e.Seq != 1 || e.Prev != "" || e.Hash == "" || e.Time.IsZero() {
		t.Fatalf("first entry of a stream = %+v", e)
	}
	all, err := s.Audit(ctx, "admin", 0, 0)
	must(t, err)
	if len(all) != 10 {
		t.Fatalf("%d entries, want 10", len(all))
	}
	if i := store.VerifyChain("", 1, all); i >= 0 {
		t.Fatalf("chain broken at %d", i)
	}
	page, err := s.Audit(ctx, "admin", 4, 3)
	must(t, err)
	if len(page) != 3 || page[0].Seq != 5 || page[2].Seq != 7 {
		t.Fatalf("page = %v", page)
	}
	if i := store.VerifyChain(all[3].Hash, 5, page); i >= 0 {
		t.Fatalf("page does not continue the chain (broken at %d)", i)
	}
	tampered := *all[4]
	tampered.Target = "changed"
	if i := store.VerifyChain("", 1, append(append(all[:4:4], &tampered), all[5:]...)); i != 4 {
		t.Fatalf("tampered entry found at %d, want 4", i)
	}
	none, err := s.Audit(ctx, "nothing", 0, 0)
	must(t, err)
	if len(none) != 0 {
		t.Fatalf("empty stream has %d entries", len(none))
	}
}

func testRestart(t *testing.T, open Factory) {
	s, reopen := open(t)
	now := time.Now()
	must(t, s.CreateSite(ctx, &store.Site{ID: "a", Name: "A"}))
	must(t, s.CreateUser(ctx, &store.User{ID: "u1", Name: "alice", Roles: map[string][]store.Role{"a": {store.RoleConfigurer}}}))
	must(t, s.PutAgent(ctx, &store.Agent{ID: "ag1", Site: "a"}))
	_, err := s.UpdateDevice(ctx, "ag1", "d1", func(d *store.Device) error { d.Enabled = true; return nil })
	must(t, err)
	must(t, s.PutToken(ctx, &store.Token{Hash: "t", Kind: store.TokenAPI, User: "u1", Expires: now.Add(time.Hour)}))
	must(t, s.PutCode(ctx, &store.Code{Hash: "c", Expires: now.Add(time.Minute)}))
	_, err = s.ConsumeCode(ctx, "c", "t")
	must(t, err)
	_, err = s.AppendAudit(ctx, "admin", &store.AuditEntry{Actor: "u1", Action: "x"})
	must(t, err)
	must(t, s.Close())

	s = reopen()
	t.Cleanup(func() { s.Close() })
	if u, err := s.UserByName(ctx, "alice"); err != nil || !u.HasRole("a", store.RoleConfigurer) {
		t.Fatalf("user after restart: %+v, %v", u, err)
	}
	if a, err := s.Agent(ctx, "ag1"); err != nil || a.Site != "a" {
		t.Fatalf("agent after restart: %+v, %v", a, err)
	}
	if d, err := s.Device(ctx, "ag1", "d1"); err != nil || !d.Enabled {
		t.Fatalf("device after restart: %+v, %v", d, err)
	}
	if _, err := s.Token(ctx, "t"); err != nil {
		t.Fatalf("token after restart: %v", err)
	}
	if _, err := s.ConsumeCode(ctx, "c", "again"); !errors.Is(err, store.ErrCodeUsed) {
		t.Fatalf("used code after restart: %v", err)
	}
	if e, err := s.AppendAudit(ctx, "admin", &store.AuditEntry{Actor: "u1", Action: "y"}); err != nil || e.Seq != 2 {
		t.Fatalf("audit after restart: %+v, %v", e, err)
	}
}
