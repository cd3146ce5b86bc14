package server

import (
	"context"
	"net/http"
	"testing"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/accounts"
)

// TestRoleActionMatrix runs every action of the API as every role,
// including users of the other site, and checks each is allowed or refused
// with the right status: 404 where the caller may not even see the object.
func TestRoleActionMatrix(t *testing.T) {
	e := newAuthEnv(t, nil)
	agentA := e.agent(agentKey, "printer-a")  // agent-1, site-a
	agentB := e.agent(agentKey2, "printer-b") // agent-2, site-b
	ctx := context.Background()
	// printer-a is enabled, printer-b (site b) too; printer-a2 stays disabled.
	for _, d := range []struct{ agent, id string }{{"agent-1", "printer-a"}, {"agent-2", "printer-b"}} {
		if _, err := e.srv.accounts.SetDeviceEnabled(ctx, "test", d.agent, d.id, "", true); err != nil {
			t.Fatal(err)
		}
	}
	spare, err := e.srv.accounts.CreateUser(ctx, "test", accountsNewUser("spare"))
	if err != nil {
		t.Fatal(err)
	}
	cookies := map[string]string{}
	for _, u := range testUsers {
		cookies[u.name] = e.login(u.name)
	}

	type action struct {
		name   string
		method string
		path   string
		body   any
		agent  *peer // answers session.open when the session may open
	}
	actions := []action{
		{"list devices", "GET", proto.PathDevices, nil, nil},
		{"enable own-site device", "PATCH", "/v1/devices/printer-a", &proto.DeviceUpdate{Enabled: ptr(true)}, nil},
		{"enable other-site device", "PATCH", "/v1/devices/printer-b", &proto.DeviceUpdate{Enabled: ptr(true)}, nil},
		{"open own-site enabled device", "POST", proto.PathSessions, &proto.CreateSession{Device: "printer-a"}, agentA},
		{"open other-site device", "POST", proto.PathSessions, &proto.CreateSession{Device: "printer-b"}, agentB},
		{"list users", "GET", proto.PathUsers, nil, nil},
		{"create user", "POST", proto.PathUsers, &proto.NewUser{Name: "new-user", Password: password}, nil},
		{"grant role", "PUT", "/v1/users/{spare}/roles/site-a", &proto.RoleUpdate{Roles: []string{"user"}}, nil},
		{"create site", "POST", proto.PathSites, &proto.NewSite{Name: "New site"}, nil},
		{"list agents", "GET", proto.PathAgents, nil, nil},
		{"assign agent", "PUT", "/v1/agents/agent-9", &proto.AgentUpdate{Site: "site-a"}, nil},
		{"read audit log", "GET", proto.PathAudit, nil, nil},
	}
	// want[action][role] = status; the admin's mutations are undone by
	// nothing, so each role works on its own object names where it matters.
	want := map[string]map[string]int{
		"list devices":                 {"admin": 200, "conf-a": 200, "user-a": 200, "both-a": 200, "user-b": 200, "conf-b": 200, "nobody": 200},
		"enable own-site device":       {"admin": 200, "conf-a": 200, "user-a": 403, "both-a": 200, "user-b": 404, "conf-b": 404, "nobody": 404},
		"enable other-site device":     {"admin": 200, "conf-a": 404, "user-a": 404, "both-a": 404, "user-b": 403, "conf-b": 200, "nobody": 404},
		"open own-site enabled device": {"admin": 403, "conf-a": 403, "user-a": 201, "both-a": 201, "user-b": 404, "conf-b": 404, "nobody": 404},
		"open other-site device":       {"admin": 403, "conf-a": 404, "user-a": 404, "both-a": 404, "user-b": 201, "conf-b": 403, "nobody": 404},
		"list users":                   {"admin": 200, "conf-a": 403, "user-a": 403, "both-a": 403, "user-b": 403, "conf-b": 403, "nobody": 403},
		"create user":                  {"admin": 201, "conf-a": 403, "user-a": 403, "both-a": 403, "user-b": 403, "conf-b": 403, "nobody": 403},
		"grant role":                   {"admin": 200, "conf-a": 403, "user-a": 403, "both-a": 403, "user-b": 403, "conf-b": 403, "nobody": 403},
		"create site":                  {"admin": 201, "conf-a": 403, "user-a": 403, "both-a": 403, "user-b": 403, "conf-b": 403, "nobody": 403},
		"list agents":                  {"admin": 200, "conf-a": 403, "user-a": 403, "both-a": 403, "user-b": 403, "conf-b": 403, "nobody": 403},
		"assign agent":                 {"admin": 200, "conf-a": 403, "user-a": 403, "both-a": 403, "user-b": 403, "conf-b": 403, "nobody": 403},
		"read audit log":               {"admin": 200, "conf-a": 403, "user-a": 403, "both-a": 403, "user-b": 403, "conf-b": 403, "nobody": 403},
	}
	for _, a := range actions {
		for _, u := range testUsers {
			t.Run(a.name+"/"+u.name, func(t *testing.T) {
				path := a.path
				if path == "/v1/users/{spare}/roles/site-a" {
					path = "/v1/users/" + spare.ID + "/roles/site-a"
				}
				body := a.body
				switch b := body.(type) {
				case *proto.NewUser:
					body = &proto.NewUser{Name: b.Name + "-" + u.name, Password: b.Password}
				case *proto.NewSite:
					body = &proto.NewSite{Name: b.Name + " " + u.name}
				}
				expect := want[a.name][u.name]
				var done chan struct{}
				if a.agent != nil && expect == 201 {
					done = make(chan struct{})
					go func() {
						defer close(done)
						var open proto.SessionOpen
						env := a.agent.nextData(proto.TypeSessionOpen, &open)
						a.agent.send(proto.TypeSessionReady, env.Session, struct{}{})
					}()
				}
				var perr proto.Error
				resp := e.as(cookies[u.name], a.method, path, body, &perr)
				if done != nil {
					<-done
				}
				if resp.StatusCode != expect {
					t.Fatalf("%s %s as %s = %d (%s), want %d", a.method, path, u.name, resp.StatusCode, perr.Message, expect)
				}
				if expect == 404 && perr.Code != proto.CodeNotFound {
					t.Fatalf("404 with code %q", perr.Code)
				}
			})
		}
	}

	// Visibility: each caller lists exactly the devices of their sites.
	for _, tc := range []struct {
		user string
		want []string
	}{
		{"admin", []string{"printer-a", "printer-b"}},
		{"conf-a", []string{"printer-a"}},
		{"user-a", []string{"printer-a"}},
		{"user-b", []string{"printer-b"}},
		{"nobody", nil},
	} {
		var list proto.DeviceList
		e.as(cookies[tc.user], http.MethodGet, proto.PathDevices, nil, &list)
		var got []string
		for _, d := range list.Devices {
			got = append(got, d.ID)
		}
		if len(got) != len(tc.want) || (len(got) > 0 && (got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1])) {
			t.Errorf("%s sees %v, want %v", tc.user, got, tc.want)
		}
	}
}

func TestDisabledDeviceCannotBeOpened(t *testing.T) {
	e := newAuthEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	user, conf := e.login("user-a"), e.login("conf-a")

	var ov proto.Overview
	e.as(user, http.MethodGet, proto.PathOverview, nil, &ov)
	if len(ov.Sites) != 1 || ov.Sites[0].ID != "site-a" || len(ov.Sites[0].Devices) != 1 {
		t.Fatalf("overview = %+v", ov)
	}
	if d := ov.Sites[0].Devices[0]; d.Enabled || d.CanOpen || d.CanConfigure || !d.Online {
		t.Fatalf("new device = %+v: want online, disabled, not openable", d)
	}
	var perr proto.Error
	if r := e.as(user, http.MethodPost, proto.PathSessions, &proto.CreateSession{Device: "printer-1"}, &perr); r.StatusCode != 403 {
		t.Fatalf("open a disabled device = %d", r.StatusCode)
	}
	var v proto.DeviceView
	if r := e.as(conf, http.MethodPatch, "/v1/devices/printer-1", &proto.DeviceUpdate{Enabled: ptr(true)}, &v); r.StatusCode != 200 || !v.Enabled {
		t.Fatalf("enable = %d %+v", r.StatusCode, v)
	}
	e.as(user, http.MethodGet, proto.PathOverview, nil, &ov)
	if d := ov.Sites[0].Devices[0]; !d.Enabled || !d.CanOpen || d.CanConfigure {
		t.Fatalf("enabled device as user = %+v", d)
	}
	info := e.openAs(agent, user, "printer-1")
	if info.Token == "" || info.ShellOrigin == "" {
		t.Fatalf("session = %+v", info)
	}
	// Disabled again: no new sessions.
	e.as(conf, http.MethodPatch, "/v1/devices/printer-1", &proto.DeviceUpdate{Enabled: ptr(false)}, nil)
	if r := e.as(user, http.MethodPost, proto.PathSessions, &proto.CreateSession{Device: "printer-1"}, nil); r.StatusCode != 403 {
		t.Fatalf("open after disabling = %d", r.StatusCode)
	}
}

func TestDevTokensNeedDevMode(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.InsecureDevTokens, c.TechnicianTokens = false, nil })
	if r := e.request(http.MethodGet, proto.PathDevices, techToken, nil, nil, nil); r.StatusCode != 401 {
		t.Fatalf("dev token without dev mode = %d, want 401", r.StatusCode)
	}
}

func accountsNewUser(name string) accounts.NewUser {
	return accounts.NewUser{Name: name, Password: password}
}

// openAs creates a session as a cookie user; agent accepts it.
func (e *authEnv) openAs(agent *peer, secret, device string) proto.SessionInfo {
	e.t.Helper()
	type result struct {
		resp *http.Response
		info proto.SessionInfo
	}
	ch := make(chan result, 1)
	go func() {
		var r result
		r.resp = e.request(http.MethodPost, proto.PathSessions, "", &proto.CreateSession{Device: device}, withCookie(sameOrigin(), secret), &r.info)
		ch <- r
	}()
	var open proto.SessionOpen
	env := agent.nextData(proto.TypeSessionOpen, &open)
	agent.send(proto.TypeSessionReady, env.Session, struct{}{})
	r := <-ch
	if r.resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("POST /v1/sessions = %d, want 201", r.resp.StatusCode)
	}
	return r.info
}

// TestDuplicatesAreRefusedWithExists: a name or ID that is taken is its own
// stable code (409 exists), so the app can say which field to change
// instead of showing a generic bad_message.
func TestDuplicatesAreRefusedWithExists(t *testing.T) {
	e := newAuthEnv(t, nil)
	admin := e.login("admin")
	for _, c := range []struct {
		name, path string
		body       any
	}{
		{"user", proto.PathUsers, &proto.NewUser{Name: "user-a", Password: password}},
		{"site", proto.PathSites, &proto.NewSite{ID: "site-a", Name: "Again"}},
	} {
		var pe proto.Error
		resp := e.as(admin, http.MethodPost, c.path, c.body, &pe)
		if resp.StatusCode != http.StatusConflict || pe.Code != proto.CodeExists {
			t.Errorf("duplicate %s: %d %+v, want 409 exists", c.name, resp.StatusCode, pe)
		}
	}
}
