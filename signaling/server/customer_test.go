package server

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/accounts"
	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/bus"
)

// custEnv is an authEnv with a site admin on each site, both sites'
// agents online with enabled devices, and the events Notify was told.
type custEnv struct {
	*authEnv
	agentA, agentB *peer
	mu             sync.Mutex
	events         []proto.WebhookEvent
	cookie         map[string]string
}

func newCustEnv(t *testing.T) *custEnv {
	t.Helper()
	ce := &custEnv{cookie: map[string]string{}}
	ce.authEnv = newAuthEnv(t, func(c *Config) {
		c.Notify = func(_ context.Context, ev proto.WebhookEvent) {
			ce.mu.Lock()
			ce.events = append(ce.events, ev)
			ce.mu.Unlock()
		}
	})
	ctx := context.Background()
	m := &accounts.Manager{Store: ce.srv.store, Params: authn.FastParams, Now: ce.clock.Now}
	for name, site := range map[string]string{"sadmin-a": "site-a", "sadmin-b": "site-b"} {
		u, err := m.CreateUser(ctx, "test", accounts.NewUser{Name: name, Password: password})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.SetRoles(ctx, "test", u.ID, site, []string{"siteadmin"}); err != nil {
			t.Fatal(err)
		}
		ce.ids[name] = u.ID
	}
	ce.agentA = ce.agent(agentKey, "printer-a", "printer-a2")
	ce.agentB = ce.agent(agentKey2, "printer-b")
	for _, d := range []struct{ agent, id string }{{"agent-1", "printer-a"}, {"agent-1", "printer-a2"}, {"agent-2", "printer-b"}} {
		if _, err := ce.srv.accounts.SetDeviceEnabled(ctx, "test", d.agent, d.id, "", true); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"admin", "user-a", "conf-a", "user-b", "sadmin-a", "sadmin-b"} {
		ce.cookie[name] = ce.login(name)
	}
	return ce
}

func (ce *custEnv) eventTypes() []string {
	ce.mu.Lock()
	defer ce.mu.Unlock()
	var out []string
	for _, ev := range ce.events {
		out = append(out, ev.Type)
	}
	return out
}

// call sends a request as name and checks the status.
func (ce *custEnv) call(name, method, path string, body, out any, want int) *proto.Error {
	ce.t.Helper()
	var pe proto.Error
	var dst any = &pe
	if out != nil {
		dst = out
	}
	resp := ce.as(ce.cookie[name], method, path, body, dst)
	if resp.StatusCode != want {
		ce.t.Fatalf("%s %s as %s = %d, want %d (%+v)", method, path, name, resp.StatusCode, want, dst)
	}
	return &pe
}

func reqPath(p, id string) string { return strings.Replace(p, "{id}", id, 1) }

// TestApprovalFlow: a device of a site that needs approval is refused
// until a site admin approves the technician's request; the approval opens
// one session, shortened to the requested length, and the job records it.
func TestApprovalFlow(t *testing.T) {
	ce := newCustEnv(t)
	ce.call("sadmin-a", "PUT", reqPath(proto.PathSitePolicy, "site-a"), &proto.SitePolicy{RequireApproval: true}, nil, 200)
	var ov proto.Overview
	ce.call("user-a", "GET", proto.PathOverview, nil, &ov, 200)
	if d := ov.Sites[0].Devices[0]; !d.NeedsApproval || d.CanAdminister {
		t.Fatalf("device as the technician sees it: %+v", d)
	}
	if pe := ce.call("user-a", "POST", proto.PathSessions, &proto.CreateSession{Device: "printer-a"}, nil, 403); pe.Code != proto.CodeApprovalRequired {
		t.Fatalf("open without approval: %+v", pe)
	}
	for _, bad := range []proto.NewRequest{
		{Device: "printer-a", Minutes: 10},
		{Device: "printer-a", Reason: "toner", Minutes: 31},
		{Device: "printer-a", Reason: "toner"},
	} {
		ce.call("user-a", "POST", proto.PathRequests, &bad, nil, 400)
	}
	ce.call("user-b", "POST", proto.PathRequests, &proto.NewRequest{Device: "printer-a", Reason: "x", Minutes: 5}, nil, 404)
	var rv proto.RequestView
	ce.call("user-a", "POST", proto.PathRequests, &proto.NewRequest{Device: "printer-a", Reason: "toner alarm", Minutes: 15}, &rv, 201)
	if rv.State != proto.RequestPending || rv.Site != "site-a" || rv.CanDecide {
		t.Fatalf("new request %+v", rv)
	}
	decide := reqPath(proto.PathDecision, rv.ID)
	ce.call("sadmin-b", "GET", reqPath(proto.PathRequest, rv.ID), nil, nil, 404)
	ce.call("sadmin-b", "POST", decide, &proto.Decision{Approve: true}, nil, 404)
	ce.call("user-a", "POST", decide, &proto.Decision{Approve: true}, nil, 403)
	ce.call("admin", "POST", decide, &proto.Decision{Approve: true}, nil, 403)
	var list proto.RequestList
	ce.call("sadmin-a", "GET", proto.PathRequests+"?state=pending", nil, &list, 200)
	if len(list.Requests) != 1 || !list.Requests[0].CanDecide || list.Requests[0].UserName != "user-a" || list.Requests[0].Reason != "toner alarm" {
		t.Fatalf("site admin's pending requests: %+v", list)
	}
	// Still refused while pending.
	ce.call("user-a", "POST", proto.PathSessions, &proto.CreateSession{Device: "printer-a"}, nil, 403)
	ce.call("sadmin-a", "POST", decide, &proto.Decision{Approve: true, Comment: "go ahead"}, &rv, 200)
	if rv.State != proto.RequestApproved || rv.DeciderName != "sadmin-a" || rv.Comment != "go ahead" {
		t.Fatalf("approved %+v", rv)
	}
	ce.call("sadmin-a", "POST", decide, &proto.Decision{Approve: false}, nil, 409)

	info := ce.openAs(ce.agentA, ce.cookie["user-a"], "printer-a")
	if got := info.Expires.Sub(ce.clock.Now()); got != 15*time.Minute {
		t.Fatalf("approved session lasts %v, want the requested 15m", got)
	}
	ce.srv.recorder.Flush()
	var job proto.JobView
	ce.call("sadmin-a", "GET", reqPath(proto.PathJob, info.Session), nil, &job, 200)
	if job.ApprovalRequest != rv.ID || job.ApprovedBy != ce.ids["sadmin-a"] || job.ApprovedByName != "sadmin-a" ||
		job.ApprovalReason != "toner alarm" || job.ApprovalComment != "go ahead" {
		t.Fatalf("job's approval: %+v", job)
	}
	// Used once: the next open needs a new approval.
	ce.call("user-a", "POST", proto.PathSessions, &proto.CreateSession{Device: "printer-a"}, nil, 403)
	ce.call("user-a", "GET", reqPath(proto.PathRequest, rv.ID), nil, &rv, 200)
	if rv.State != proto.RequestUsed {
		t.Fatalf("request after the session: %s", rv.State)
	}
	want := []string{proto.WebhookPolicyRefused, proto.WebhookSessionRequested, proto.WebhookPolicyRefused,
		proto.WebhookSessionApproved, proto.WebhookPolicyRefused}
	if got := ce.eventTypes(); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	// The policy change and the decision are in the admin audit log.
	var audit proto.AuditList
	ce.call("admin", "GET", proto.PathAudit, nil, &audit, 200)
	var actions []string
	for _, e := range audit.Entries {
		actions = append(actions, e.Action)
		if e.Action == "policy.site" && !strings.Contains(e.Detail["after"], `"requireApproval":true`) {
			t.Errorf("policy audit detail %v", e.Detail)
		}
	}
	for _, a := range []string{"policy.site", "request.create", "request.approve"} {
		if !slices.Contains(actions, a) {
			t.Errorf("no %s in the audit log %v", a, actions)
		}
	}
}

// TestDeniedAndExpiredRequestsNeverReachTheAgent: after a denial and an
// expiry the agent's next session.open is the one for a device without
// approval, so neither refused open reached it.
func TestDeniedAndExpiredRequestsNeverReachTheAgent(t *testing.T) {
	ce := newCustEnv(t)
	ce.call("sadmin-a", "PUT", reqPath(proto.PathDevicePolicy, "printer-a"), &proto.DevicePolicy{RequireApproval: true}, nil, 200)
	var denied, expired proto.RequestView
	ce.call("user-a", "POST", proto.PathRequests, &proto.NewRequest{Device: "printer-a", Reason: "one", Minutes: 5}, &denied, 201)
	ce.call("sadmin-a", "POST", reqPath(proto.PathDecision, denied.ID), &proto.Decision{Comment: "not today"}, &denied, 200)
	if denied.State != proto.RequestDenied {
		t.Fatalf("denied %+v", denied)
	}
	ce.call("user-a", "POST", proto.PathSessions, &proto.CreateSession{Device: "printer-a"}, nil, 403)

	ce.call("user-a", "POST", proto.PathRequests, &proto.NewRequest{Device: "printer-a", Reason: "two", Minutes: 5}, &expired, 201)
	ce.clock.Add(proto.RequestAnswerWithin + time.Second)
	ce.call("user-a", "GET", reqPath(proto.PathRequest, expired.ID), nil, &expired, 200)
	if expired.State != proto.RequestExpired {
		t.Fatalf("unanswered request after 10 minutes: %s", expired.State)
	}
	ce.call("sadmin-a", "POST", reqPath(proto.PathDecision, expired.ID), &proto.Decision{Approve: true}, nil, 409)
	ce.call("user-a", "POST", proto.PathSessions, &proto.CreateSession{Device: "printer-a"}, nil, 403)

	// An approval not used in time expires too.
	var late proto.RequestView
	ce.call("user-a", "POST", proto.PathRequests, &proto.NewRequest{Device: "printer-a", Reason: "three", Minutes: 5}, &late, 201)
	ce.call("sadmin-a", "POST", reqPath(proto.PathDecision, late.ID), &proto.Decision{Approve: true}, nil, 200)
	ce.clock.Add(proto.ApprovalUseWithin + time.Second)
	ce.call("user-a", "POST", proto.PathSessions, &proto.CreateSession{Device: "printer-a"}, nil, 403)

	info := ce.openAs(ce.agentA, ce.cookie["user-a"], "printer-a2") // fails unless its open is the agent's next message
	if info.Device != "printer-a2" {
		t.Fatalf("opened %s", info.Device)
	}
	got := ce.eventTypes()
	for _, w := range []string{proto.WebhookSessionDenied, proto.WebhookSessionExpired} {
		if !slices.Contains(got, w) {
			t.Errorf("no %s in %v", w, got)
		}
	}
	if n := len(ce.srv.hub.LiveSessions()); n != 1 {
		t.Fatalf("%d live sessions, want 1", n)
	}
}

// TestTimeWindowRefusesAndNamesTheNextWindow: outside the site's windows a
// session and a request are refused with the next window in the site's
// zone; inside, a session ends with its window.
func TestTimeWindowRefusesAndNamesTheNextWindow(t *testing.T) {
	ce := newCustEnv(t)
	// The clock starts on Friday 15 January 2027, 08:00 UTC (09:00 in Berlin).
	if d := ce.clock.Now().UTC(); d.Weekday() != time.Friday || d.Hour() != 8 {
		t.Fatalf("clock starts %v", d)
	}
	sp := &proto.SitePolicy{TimeZone: "Europe/Berlin", Windows: []proto.TimeWindow{{Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "08:00", To: "18:00"}}}
	ce.call("sadmin-a", "PUT", reqPath(proto.PathSitePolicy, "site-a"), sp, nil, 200)
	ce.call("sadmin-a", "PUT", reqPath(proto.PathSitePolicy, "site-a"), &proto.SitePolicy{TimeZone: "Nowhere/Land"}, nil, 400)
	ce.call("user-b", "PUT", reqPath(proto.PathSitePolicy, "site-a"), sp, nil, 404)
	ce.call("user-a", "PUT", reqPath(proto.PathSitePolicy, "site-a"), sp, nil, 403)
	var got proto.SitePolicy
	ce.call("user-a", "GET", reqPath(proto.PathSitePolicy, "site-a"), nil, &got, 200)
	if len(got.Windows) != 1 || got.UpdatedBy != ce.ids["sadmin-a"] {
		t.Fatalf("policy as the technician reads it: %+v", got)
	}

	ce.clock.Add(8*time.Hour + 50*time.Minute) // 17:50 in Berlin
	info := ce.openAs(ce.agentA, ce.cookie["user-a"], "printer-a")
	if d := info.Expires.Sub(ce.clock.Now()); d != 10*time.Minute {
		t.Fatalf("a session at 17:50 lasts %v, want until the window closes at 18:00", d)
	}
	ce.clock.Add(24 * time.Hour) // Saturday
	for _, name := range []string{"user-a", "user-b", "sadmin-a"} {
		ce.cookie[name] = ce.login(name) // the logins of Friday have ended
	}
	pe := ce.call("user-a", "POST", proto.PathSessions, &proto.CreateSession{Device: "printer-a"}, nil, 403)
	if pe.Code != proto.CodeOutsideWindow || !strings.Contains(pe.Message, "Mon 18 Jan 08:00") || !strings.Contains(pe.Message, "Europe/Berlin") {
		t.Fatalf("refusal outside the window: %+v", pe)
	}
	ce.call("sadmin-a", "PUT", reqPath(proto.PathSitePolicy, "site-a"), &proto.SitePolicy{RequireApproval: true, TimeZone: sp.TimeZone, Windows: sp.Windows}, nil, 200)
	pe = ce.call("user-a", "POST", proto.PathRequests, &proto.NewRequest{Device: "printer-a", Reason: "weekend", Minutes: 5}, nil, 403)
	if pe.Code != proto.CodeOutsideWindow {
		t.Fatalf("request outside the window: %+v", pe)
	}
	// Site b has no windows.
	ce.openAs(ce.agentB, ce.cookie["user-b"], "printer-b")
}

// TestSiteAdminSeesNothingOfAnotherSite is the site admin's API matrix: the
// admin of site a gets 404 (or 403 where the object's existence is no
// secret to them) on everything of site b, and may end site a's sessions.
func TestSiteAdminSeesNothingOfAnotherSite(t *testing.T) {
	ce := newCustEnv(t)
	infoA := ce.openAs(ce.agentA, ce.cookie["user-a"], "printer-a")
	infoB := ce.openAs(ce.agentB, ce.cookie["user-b"], "printer-b")
	ce.call("sadmin-b", "PUT", reqPath(proto.PathSitePolicy, "site-b"), &proto.SitePolicy{RequireApproval: true}, nil, 200)
	var reqB proto.RequestView
	ce.call("user-b", "POST", proto.PathRequests, &proto.NewRequest{Device: "printer-b", Reason: "b", Minutes: 5}, &reqB, 201)
	ce.srv.recorder.Flush()

	cases := []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"device of b", "PATCH", "/v1/devices/printer-b", &proto.DeviceUpdate{Enabled: ptr(false)}, 404},
		{"device policy of b", "GET", reqPath(proto.PathDevicePolicy, "printer-b"), nil, 404},
		{"set device policy of b", "PUT", reqPath(proto.PathDevicePolicy, "printer-b"), &proto.DevicePolicy{ReadOnly: true}, 404},
		{"site policy of b", "GET", reqPath(proto.PathSitePolicy, "site-b"), nil, 404},
		{"set site policy of b", "PUT", reqPath(proto.PathSitePolicy, "site-b"), &proto.SitePolicy{}, 404},
		{"job of b", "GET", reqPath(proto.PathJob, infoB.Session), nil, 404},
		{"job log of b", "GET", reqPath(proto.PathJobLog, infoB.Session), nil, 404},
		{"job export of b", "GET", reqPath(proto.PathJobExport, infoB.Session), nil, 404},
		{"terminate b", "POST", reqPath(proto.PathJobTerminate, infoB.Session), nil, 404},
		{"request of b", "GET", reqPath(proto.PathRequest, reqB.ID), nil, 404},
		{"decide b", "POST", reqPath(proto.PathDecision, reqB.ID), &proto.Decision{Approve: true}, 404},
		{"withdraw b", "DELETE", reqPath(proto.PathRequest, reqB.ID), nil, 404},
		{"discovered of b", "GET", "/v1/sites/site-b/discovered", nil, 404},
		{"open b", "POST", proto.PathSessions, &proto.CreateSession{Device: "printer-b"}, 404},
		{"users", "GET", proto.PathUsers, nil, 403},
		{"admin audit (their site's part)", "GET", proto.PathAudit, nil, 200},
		{"roles", "PUT", "/v1/users/" + ce.ids["user-b"] + "/roles/site-b", &proto.RoleUpdate{Roles: []string{"user"}}, 403},
		// Their own site: the customer sees but does not open.
		{"open a", "POST", proto.PathSessions, &proto.CreateSession{Device: "printer-a"}, 403},
		{"device policy of a", "GET", reqPath(proto.PathDevicePolicy, "printer-a"), nil, 200},
		{"set device policy of a", "PUT", reqPath(proto.PathDevicePolicy, "printer-a"), &proto.DevicePolicy{Deny: []string{"/firmware"}}, 200},
		{"job of a", "GET", reqPath(proto.PathJob, infoA.Session), nil, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var pe proto.Error
			resp := ce.as(ce.cookie["sadmin-a"], tc.method, tc.path, tc.body, &pe)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s = %d (%s), want %d", tc.method, tc.path, resp.StatusCode, pe.Message, tc.want)
			}
			if tc.want == 404 && pe.Code != proto.CodeNotFound {
				t.Fatalf("404 with code %q", pe.Code)
			}
		})
	}
	// Lists hold only site a.
	var ov proto.Overview
	ce.call("sadmin-a", "GET", proto.PathOverview, nil, &ov, 200)
	if len(ov.Sites) != 1 || ov.Sites[0].ID != "site-a" || len(ov.Sites[0].Devices) != 2 || !ov.Sites[0].Devices[0].CanAdminister || ov.Sites[0].Devices[0].CanOpen {
		t.Fatalf("site admin's overview: %+v", ov)
	}
	var jobs proto.JobList
	ce.call("sadmin-a", "GET", proto.PathJobs, nil, &jobs, 200)
	if len(jobs.Jobs) != 1 || jobs.Jobs[0].ID != infoA.Session || !jobs.Jobs[0].Live {
		t.Fatalf("site admin's jobs: %+v", jobs)
	}
	// The admin log: only site a's entries, and site b's policy change is
	// not among them.
	var audit proto.AuditList
	ce.call("sadmin-a", "GET", proto.PathAudit, nil, &audit, 200)
	for _, e := range audit.Entries {
		if e.Site != "site-a" {
			t.Fatalf("site admin of a reads %+v", e)
		}
	}
	ce.call("user-a", "GET", proto.PathAudit, nil, nil, 403)
	var reqs proto.RequestList
	ce.call("sadmin-a", "GET", proto.PathRequests, nil, &reqs, 200)
	if len(reqs.Requests) != 0 {
		t.Fatalf("site admin of a sees requests %+v", reqs)
	}
	// Ending a session on their site: technicians and configurers may not.
	ce.call("user-a", "POST", reqPath(proto.PathJobTerminate, infoA.Session), nil, nil, 403)
	ce.call("conf-a", "POST", reqPath(proto.PathJobTerminate, infoA.Session), nil, nil, 403)
	var job proto.JobView
	ce.call("sadmin-a", "POST", reqPath(proto.PathJobTerminate, infoA.Session), nil, &job, 200)
	if job.Live || job.EndedBy != ce.ids["sadmin-a"] || job.EndReason != string(proto.EndByAdmin) {
		t.Fatalf("terminated job %+v", job)
	}
	ce.agentA.next(proto.TypeSessionEnd)
	// Site b's session is untouched.
	if !ce.srv.hub.SessionLive(infoB.Session) {
		t.Fatal("site b's session ended")
	}
}

// TestApprovalAcrossNodes: the technician and the site admin use node n1,
// the device's agent is on n2. The approval given on n1 is consumed on n2
// (its Prepare hook reads the shared store), the session lasts the
// requested length, and n2's job records the approval.
func TestApprovalAcrossNodes(t *testing.T) {
	network := bus.NewNetwork()
	join := func(node string) func(*Config) {
		return func(c *Config) {
			c.Node, c.Bus = node, network.Join(node)
			t.Cleanup(func() { _ = c.Bus.Close() })
		}
	}
	e := newAuthEnv(t, join("n1"))
	n2 := newEnv(t, func(c *Config) {
		join("n2")(c)
		c.Store, c.Now = e.srv.store, e.clock.Now
	})
	agent := n2.agent(agentKey, "printer-a")
	ctx := context.Background()
	if _, err := e.srv.accounts.SetDeviceEnabled(ctx, "test", "agent-1", "printer-a", "", true); err != nil {
		t.Fatal(err)
	}
	m := &accounts.Manager{Store: e.srv.store, Params: authn.FastParams, Now: e.clock.Now}
	u, err := m.CreateUser(ctx, "test", accounts.NewUser{Name: "sadmin-a", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetRoles(ctx, "test", u.ID, "site-a", []string{"siteadmin"}); err != nil {
		t.Fatal(err)
	}
	tech, admin := e.login("user-a"), e.login("sadmin-a")
	if r := e.as(admin, "PUT", reqPath(proto.PathDevicePolicy, "printer-a"), &proto.DevicePolicy{RequireApproval: true, ReadOnly: true}, nil); r.StatusCode != 200 {
		t.Fatalf("set policy = %d", r.StatusCode)
	}
	var pe proto.Error
	if r := e.as(tech, "POST", proto.PathSessions, &proto.CreateSession{Device: "printer-a"}, &pe); r.StatusCode != 403 || pe.Code != proto.CodeApprovalRequired {
		t.Fatalf("open across nodes without approval = %d %+v", r.StatusCode, pe)
	}
	var rv proto.RequestView
	if r := e.as(tech, "POST", proto.PathRequests, &proto.NewRequest{Device: "printer-a", Reason: "across", Minutes: 7}, &rv); r.StatusCode != 201 {
		t.Fatalf("request = %d", r.StatusCode)
	}
	if r := e.as(admin, "POST", reqPath(proto.PathDecision, rv.ID), &proto.Decision{Approve: true}, nil); r.StatusCode != 200 {
		t.Fatalf("approve = %d", r.StatusCode)
	}
	info := e.openAs(agent, tech, "printer-a")
	if d := info.Expires.Sub(e.clock.Now()); d != 7*time.Minute {
		t.Fatalf("the session lasts %v, want 7m", d)
	}
	n2.srv.recorder.Flush()
	var job proto.JobView
	if r := e.as(admin, "GET", reqPath(proto.PathJob, info.Session), nil, &job); r.StatusCode != 200 || job.ApprovalRequest != rv.ID || job.ApprovedBy != u.ID {
		t.Fatalf("job across nodes = %d %+v", r.StatusCode, job)
	}
}

// TestUnreadRequestsExpireWithTheirWebhook: a request nobody reads expires
// in the sweep, announced once however often the sweep runs.
func TestUnreadRequestsExpireWithTheirWebhook(t *testing.T) {
	ce := newCustEnv(t)
	ce.call("sadmin-a", "PUT", reqPath(proto.PathSitePolicy, "site-a"), &proto.SitePolicy{RequireApproval: true}, nil, 200)
	ce.call("user-a", "POST", proto.PathRequests, &proto.NewRequest{Device: "printer-a", Reason: "r", Minutes: 5}, nil, 201)
	ctx := context.Background()
	if n, err := ce.srv.ExpireRequests(ctx); err != nil || n != 0 {
		t.Fatalf("sweep before the expiry: %d %v", n, err)
	}
	ce.clock.Add(proto.RequestAnswerWithin)
	for i, want := range []int{1, 0} {
		n, err := ce.srv.ExpireRequests(ctx)
		if err != nil || n != want {
			t.Fatalf("sweep %d: %d %v, want %d", i+1, n, err, want)
		}
	}
	expired := 0
	for _, typ := range ce.eventTypes() {
		if typ == proto.WebhookSessionExpired {
			expired++
		}
	}
	if expired != 1 {
		t.Fatalf("%d session.expired events, want 1: %v", expired, ce.eventTypes())
	}
}

// TestPolicyAndRequestInputsAreChecked: what the policy and request
// endpoints refuse, and with which status.
func TestPolicyAndRequestInputsAreChecked(t *testing.T) {
	ce := newCustEnv(t)
	sitePolicy, devicePolicy := reqPath(proto.PathSitePolicy, "site-a"), reqPath(proto.PathDevicePolicy, "printer-a")
	// printer-a2 needs no approval yet.
	ce.call("user-a", "POST", proto.PathRequests, &proto.NewRequest{Device: "printer-a2", Reason: "r", Minutes: 5}, nil, 409)
	ce.call("sadmin-a", "PUT", devicePolicy, &proto.DevicePolicy{RequireApproval: true}, nil, 200)
	var mine proto.RequestView
	ce.call("user-a", "POST", proto.PathRequests, &proto.NewRequest{Device: "printer-a", Reason: "r", Minutes: 5}, &mine, 201)
	long := strings.Repeat("x", proto.MaxApprovalMsg+1)
	cases := []struct {
		name, who, method, path string
		body                    any
		want                    int
	}{
		{"unknown time zone", "sadmin-a", "PUT", sitePolicy, &proto.SitePolicy{TimeZone: "Atlantis/Capital"}, 400},
		{"window backwards", "sadmin-a", "PUT", sitePolicy, &proto.SitePolicy{Windows: []proto.TimeWindow{{Days: []string{"mon"}, From: "18:00", To: "08:00"}}}, 400},
		{"unknown day", "sadmin-a", "PUT", sitePolicy, &proto.SitePolicy{Windows: []proto.TimeWindow{{Days: []string{"someday"}, From: "08:00", To: "09:00"}}}, 400},
		{"unknown field", "sadmin-a", "PUT", sitePolicy, map[string]any{"requireApproval": true, "bypass": true}, 400},
		{"relative path rule", "sadmin-a", "PUT", devicePolicy, &proto.DevicePolicy{Deny: []string{"firmware"}}, 400},
		{"port 0", "sadmin-a", "PUT", devicePolicy, &proto.DevicePolicy{Ports: []int{0}}, 400},
		{"configurer sets a policy", "conf-a", "PUT", devicePolicy, &proto.DevicePolicy{}, 403},
		{"technician sets a policy", "user-a", "PUT", sitePolicy, &proto.SitePolicy{}, 403},
		{"admin sets a policy", "admin", "PUT", sitePolicy, &proto.SitePolicy{}, 200},
		{"comment too long", "sadmin-a", "POST", reqPath(proto.PathDecision, mine.ID), &proto.Decision{Comment: long}, 413},
		{"unknown request", "sadmin-a", "GET", reqPath(proto.PathRequest, "nope"), nil, 404},
		{"withdraw another's", "sadmin-a", "DELETE", reqPath(proto.PathRequest, mine.ID), nil, 403},
		{"withdraw one's own", "user-a", "DELETE", reqPath(proto.PathRequest, mine.ID), nil, 204},
		{"withdraw twice", "user-a", "DELETE", reqPath(proto.PathRequest, mine.ID), nil, 409},
		{"answer a withdrawn one", "sadmin-a", "POST", reqPath(proto.PathDecision, mine.ID), &proto.Decision{Approve: true}, 409},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var pe proto.Error
			if r := ce.as(ce.cookie[tc.who], tc.method, tc.path, tc.body, &pe); r.StatusCode != tc.want {
				t.Fatalf("%s %s as %s = %d (%s), want %d", tc.method, tc.path, tc.who, r.StatusCode, pe.Message, tc.want)
			}
		})
	}
	// At most five waiting requests per technician.
	for i := range maxPendingPerUser {
		ce.call("user-a", "POST", proto.PathRequests, &proto.NewRequest{Device: "printer-a", Reason: "again", Minutes: 5 + i}, nil, 201)
	}
	ce.call("user-a", "POST", proto.PathRequests, &proto.NewRequest{Device: "printer-a", Reason: "one more", Minutes: 5}, nil, 429)
}

// TestAgentDeclaredPolicyIsTheFloor: the agent's own policy for a device
// (its file, declared in hello) counts as much as the stored one: the
// device needs approval in the app and at open, and the grant's scope is
// narrowed to it, so the agent never gets a grant it would refuse.
func TestAgentDeclaredPolicyIsTheFloor(t *testing.T) {
	ce := newCustEnv(t)
	ctx := context.Background()
	declared := &proto.AgentPolicy{RequireApproval: true, GrantScope: proto.GrantScope{Deny: []string{"/firmware"}, Ports: []int{80, 443}}}
	// Stored: read-only, and ports 443 and 8443.
	ce.call("sadmin-a", "PUT", reqPath(proto.PathDevicePolicy, "printer-a")+"?agent=agent-1",
		&proto.DevicePolicy{ReadOnly: true, Ports: []int{443, 8443}}, nil, 200)

	_, err := ce.srv.prepareSession(ctx, ce.ids["user-a"], "agent-1", "site-a", "printer-a", declared)
	if proto.CodeOf(err) != proto.CodeApprovalRequired {
		t.Fatalf("open under an agent that requires approval: %v, want approval_required", err)
	}
	// Without the agent's approval requirement the scope is both policies'.
	floor := &proto.AgentPolicy{GrantScope: declared.GrantScope}
	prep, err := ce.srv.prepareSession(ctx, ce.ids["user-a"], "agent-1", "site-a", "printer-a", floor)
	if err != nil {
		t.Fatal(err)
	}
	want := &proto.GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Ports: []int{443}}
	if !reflect.DeepEqual(prep.Scope, want) {
		t.Fatalf("grant scope %+v, want %+v", prep.Scope, want)
	}
	if why := prep.Scope.Within(&floor.GrantScope); why != "" {
		t.Fatalf("the agent would refuse the grant: %s", why)
	}
	// Ports in common with nothing: refused by policy, with why.
	_, err = ce.srv.prepareSession(ctx, ce.ids["user-a"], "agent-1", "site-a", "printer-a", &proto.AgentPolicy{GrantScope: proto.GrantScope{Ports: []int{22}}})
	if proto.CodeOf(err) != proto.CodeForbidden || !strings.Contains(err.Error(), "no port in common") {
		t.Fatalf("disjoint ports: %v", err)
	}
	if got := ce.eventTypes(); !slices.Contains(got, proto.WebhookPolicyRefused) {
		t.Fatalf("no policy.refused event: %v", got)
	}
}

// The app shows the agent's approval requirement before the technician
// tries: agent-2 reconnects declaring it for printer-b.
func TestAgentDeclaredApprovalShowsInTheApp(t *testing.T) {
	ce := newCustEnv(t)
	p, resp, err := ce.dial(proto.PathAgentSocket, dialOpts{header: bearerHeader(agentKey2)})
	if err != nil {
		t.Fatalf("agent dial: %v (%v)", err, status(resp))
	}
	p.send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Software: "test-agent", Devices: []proto.Device{
		{ID: "printer-b", Ports: []int{80}, HTTPPort: 80, Policy: &proto.AgentPolicy{RequireApproval: true}}}})
	var w proto.Welcome
	p.nextData(proto.TypeWelcome, &w)
	var ov proto.Overview
	ce.call("user-b", "GET", proto.PathOverview, nil, &ov, 200)
	if len(ov.Sites) != 1 || len(ov.Sites[0].Devices) != 1 || !ov.Sites[0].Devices[0].NeedsApproval {
		t.Fatalf("the technician's overview does not say printer-b needs approval: %+v", ov)
	}
}
