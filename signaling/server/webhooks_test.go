package server

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/accounts"
	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/hub"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
	"github.com/porthole-dev/porthole/signaling/webhook"
)

// withWebhooks gives the server a dispatcher on its own store.
func withWebhooks(t *testing.T, allowPrivate bool) func(*Config) {
	return func(cfg *Config) {
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "porthole.db"), boltstore.Options{Now: cfg.Now})
		if err != nil {
			t.Fatal(err)
		}
		d, err := webhook.New(webhook.Config{Store: st, AllowPrivate: allowPrivate})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close(); st.Close() }) // after the server's Close (cleanups run last first)
		cfg.Store, cfg.Webhooks, cfg.Notify = st, d, d.Notify
	}
}

// TestWebhookAPIIsForAdminsAndSiteAdmins: admins and a site's site admins
// manage its webhooks; a site admin of another site gets 404 (as does a
// user with no role there), a configurer or technician of the site 403.
func TestWebhookAPIIsForAdminsAndSiteAdmins(t *testing.T) {
	e := newAuthEnv(t, withWebhooks(t, false))
	ctx := context.Background()
	m := &accounts.Manager{Store: e.srv.store, Params: authn.FastParams, Now: e.clock.Now}
	for name, site := range map[string]string{"sa-a": "site-a", "sa-b": "site-b"} {
		u, err := m.CreateUser(ctx, "test", accounts.NewUser{Name: name, Password: password})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.SetRoles(ctx, "test", u.ID, site, []string{proto.RoleSiteAdmin}); err != nil {
			t.Fatal(err)
		}
	}
	cookie := map[string]string{}
	for _, n := range []string{"admin", "sa-a", "sa-b", "conf-a", "user-a", "nobody"} {
		cookie[n] = e.login(n)
	}
	base := "/v1/sites/site-a/webhooks"
	var created proto.WebhookCreated
	if resp := e.as(cookie["sa-a"], "POST", base, &proto.NewWebhook{URL: "https://hooks.example.com/a", Events: []string{proto.WebhookSessionStarted}}, &created); resp.StatusCode != http.StatusCreated {
		t.Fatalf("site admin creates: %d", resp.StatusCode)
	}
	if created.Secret == "" || created.CreatedBy == "" || len(created.Events) != 1 {
		t.Fatalf("created %+v", created)
	}
	one := base + "/" + created.ID
	for _, tc := range []struct {
		who, method, path string
		body              any
		want              int
	}{
		{"admin", "GET", base, nil, 200},
		{"sa-a", "GET", base, nil, 200},
		{"sa-a", "GET", one + "/deliveries", nil, 200},
		{"admin", "GET", one + "/deliveries", nil, 200},
		{"sa-b", "GET", base, nil, 404},
		{"sa-b", "GET", one + "/deliveries", nil, 404},
		{"sa-b", "POST", base, &proto.NewWebhook{URL: "https://hooks.example.com/b"}, 404},
		{"sa-b", "DELETE", one, nil, 404},
		{"sa-b", "GET", "/v1/sites/site-b/webhooks/" + created.ID + "/deliveries", nil, 404}, // another site's id
		{"nobody", "GET", base, nil, 404},
		{"conf-a", "GET", base, nil, 403},
		{"user-a", "POST", base, &proto.NewWebhook{URL: "https://hooks.example.com/u"}, 403},
		{"admin", "GET", "/v1/sites/nope/webhooks", nil, 404},
		{"sa-a", "POST", base, &proto.NewWebhook{URL: "http://hooks.example.com/a"}, 400},
		{"sa-a", "POST", base, &proto.NewWebhook{URL: "https://169.254.169.254/latest/meta-data"}, 400},
		{"sa-a", "POST", base, &proto.NewWebhook{URL: "https://10.0.0.5/hook"}, 400},
		{"sa-a", "POST", base, &proto.NewWebhook{URL: "https://hooks.example.com/a", Events: []string{"session.exploded"}}, 400},
		{"sa-a", "POST", one + "/test", nil, 202},
	} {
		if resp := e.as(cookie[tc.who], tc.method, tc.path, tc.body, nil); resp.StatusCode != tc.want {
			t.Errorf("%s %s %s = %d, want %d", tc.who, tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	var list proto.WebhookList
	e.as(cookie["admin"], "GET", base, nil, &list)
	if len(list.Webhooks) != 1 || list.Webhooks[0].ID != created.ID {
		t.Fatalf("list %+v", list)
	}
	if resp := e.as(cookie["sa-a"], "DELETE", one, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	entries, err := e.srv.store.Audit(ctx, accounts.AuditStream, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, en := range entries {
		if strings.HasPrefix(en.Action, "webhook.") {
			actions = append(actions, en.Action+"@"+en.Site)
		}
	}
	if strings.Join(actions, " ") != "webhook.create@site-a webhook.test@site-a webhook.delete@site-a" {
		t.Fatalf("audited %v", actions)
	}
}

// TestSessionEventsBecomeWebhooks: the first connection of a session is
// session.started (later ones are path changes), an admin's end is
// session.terminated, any other end session.ended; sessions of no site
// notify nobody.
func TestSessionEventsBecomeWebhooks(t *testing.T) {
	var mu sync.Mutex
	var got []proto.WebhookEvent
	e := newEnv(t, func(cfg *Config) {
		cfg.Notify = func(_ context.Context, ev proto.WebhookEvent) { mu.Lock(); got = append(got, ev); mu.Unlock() }
	})
	exp := time.Unix(1_800_000_000, 0)
	ev := func(session, state, reason, by string) hub.Event {
		return hub.Event{Session: session, State: state, Site: "site-a", Device: "d1", User: "u1", Reason: reason, By: by, Expires: exp, Time: exp.Add(-time.Minute)}
	}
	for _, h := range []hub.Event{
		ev("s1", hub.EventRequested, "", ""), ev("s1", hub.EventReady, "", ""),
		ev("s1", hub.EventConnected, "", ""), ev("s1", hub.EventConnected, "", ""), // a path change
		ev("s1", hub.EventEnded, string(proto.EndByClient), ""),
		ev("s2", hub.EventConnected, "", ""), ev("s2", hub.EventEnded, string(proto.EndByAdmin), "root"),
		{Session: "s3", State: hub.EventConnected}, // no site
	} {
		e.srv.sessionWebhook(h)
	}
	mu.Lock()
	defer mu.Unlock()
	var types []string
	for _, g := range got {
		types = append(types, g.Session+":"+g.Type)
	}
	if strings.Join(types, " ") != "s1:session.started s1:session.ended s2:session.started s2:session.terminated" {
		t.Fatalf("webhooks %v", types)
	}
	if got[0].Until != exp.UTC() || got[0].Device != "d1" || got[0].User != "u1" || got[0].ID == "" ||
		got[1].Reason != string(proto.EndByClient) || got[3].By != "root" {
		t.Fatalf("events %+v", got)
	}
	if len(e.srv.hookStarted) != 0 {
		t.Fatalf("started sessions kept after their end: %v", e.srv.hookStarted)
	}
}
