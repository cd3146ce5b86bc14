package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/proto"
)

// policyDevice is a device that records every request it gets.
type policyDevice struct {
	port int
	mu   sync.Mutex
	seen []string // "METHOD path body"
}

func (d *policyDevice) saw() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.seen...)
}

func startPolicyDevice(t *testing.T) *policyDevice {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &policyDevice{port: ln.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/status" && r.URL.RawQuery == "" {
			fmt.Fprint(w, `{"serial":"SER-1"}`)
			return
		}
		b, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		d.seen = append(d.seen, r.Method+" "+r.URL.RequestURI()+" "+string(b))
		d.mu.Unlock()
		fmt.Fprint(w, "ok")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return d
}

func policyAgent(t *testing.T, site, dev *PolicyConfig, actions []string) (*harness, *policyDevice) {
	t.Helper()
	d := startPolicyDevice(t)
	h := startAgent(t, []DeviceConfig{{ID: "printer-1", Address: "127.0.0.1", Policy: dev, Actions: actions,
		Services: []proto.Service{{Kind: proto.ServiceWeb, Port: d.port}, {Kind: proto.ServiceSSH, Port: 22}, {Kind: proto.ServiceTCP, Port: 9100}},
		Expect:   deviceid.Expect{Serial: "SER-1", HTTPProbe: &deviceid.HTTPProbe{Path: "/status", Pattern: `"serial":"([^"]+)"`}}}}, nil,
		func(c *Config) { c.Policy = site })
	return h, d
}

// TestGrantRefusedBelowTheSitePolicy: the agent refuses a grant that
// lacks the approval its own policy requires or whose scope is wider than
// its policy, before anything on the LAN is touched.
func TestGrantRefusedBelowTheSitePolicy(t *testing.T) {
	site := &PolicyConfig{RequireApproval: true, GrantScope: proto.GrantScope{ReadOnly: true, Deny: []string{"/firmware"},
		Allow: []string{"/status", "/settings"}, Ports: []int{80, 22}}}
	h, _ := policyAgent(t, site, nil, nil)
	approval := &proto.GrantApproval{Request: "req-1", By: "alice", At: time.Now().Unix(), Reason: "toner"}
	narrow := &proto.GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Allow: []string{"/status"}, Ports: []int{80}}
	with := func(session string, a *proto.GrantApproval, s *proto.GrantScope) string {
		g := validGrant(session, "printer-1", time.Minute)
		g.Approval, g.Scope = a, s
		return h.grant(g)
	}
	for i, tc := range []struct {
		name     string
		approval *proto.GrantApproval
		scope    *proto.GrantScope
		text     string // "" opens
	}{
		{"no approval", nil, narrow, "approval and the session's grant carries none"},
		{"not read-only", approval, &proto.GrantScope{Deny: []string{"/firmware"}, Allow: []string{"/status"}, Ports: []int{80}}, "not read-only"},
		{"deny missing", approval, &proto.GrantScope{ReadOnly: true, Allow: []string{"/status"}, Ports: []int{80}}, "denies /firmware and the grant does not"},
		{"allow wider", approval, &proto.GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Allow: []string{"/"}, Ports: []int{80}}, "outside what the site allows"},
		{"allow all", approval, &proto.GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Ports: []int{80}}, "allows every path"},
		{"port outside", approval, &proto.GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Allow: []string{"/status"}, Ports: []int{80, 5900}}, "port 5900"},
		{"every port", approval, &proto.GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Allow: []string{"/status"}}, "every port"},
		{"narrower", approval, narrow, ""},
		{"no scope: the site's floor holds", approval, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess := fmt.Sprintf("sesspolicy%06d", i)
			env := h.open(sess, "printer-1", with(sess, tc.approval, tc.scope))
			if tc.text == "" {
				if env.Type != proto.TypeSessionReady {
					t.Fatalf("answer %s", env.Type)
				}
				h.send(proto.TypeSessionEnd, sess, &proto.SessionEnd{Reason: proto.EndByClient})
				return
			}
			wantRefusal(t, env, proto.CodeForbidden, tc.text)
		})
	}
}

// TestDevicePolicyReplacesTheSites: a device's own policy holds instead of
// the site's default.
func TestDevicePolicyReplacesTheSites(t *testing.T) {
	h, _ := policyAgent(t, &PolicyConfig{RequireApproval: true}, &PolicyConfig{GrantScope: proto.GrantScope{Deny: []string{"/x"}}}, nil)
	if env := h.open("sessdevpolicy001", "printer-1", h.grant(validGrant("sessdevpolicy001", "printer-1", time.Minute))); env.Type != proto.TypeSessionReady {
		t.Fatalf("device policy without approval: %s", env.Type)
	}
}

// entries waits for n access-log entries of the harness's sessions.
func (h *harness) entries(n int) []proto.AccessEntry {
	h.t.Helper()
	var out []proto.AccessEntry
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, env := range h.logs {
			var l proto.AccessLog
			if proto.DecodeData(env, &l) == nil {
				out = append(out, l.Entries...)
				h.send(proto.TypeAccessAck, env.Session, &proto.AccessAck{Seq: l.Entries[len(l.Entries)-1].Seq})
			}
		}
		h.logs = nil
		if len(out) >= n {
			return out
		}
		if env := h.next(); env.Type == proto.TypeAccessLog {
			h.logs = append(h.logs, env)
		}
	}
	h.t.Fatalf("access log has %d entries, want %d", len(out), n)
	return nil
}

// TestPolicyOnTheDataPath: path rules on every spelling of a denied path,
// refusals answered with a page (a browser) or JSON (anything else) and
// logged as refused, changes flagged, forms and queries redacted.
func TestPolicyOnTheDataPath(t *testing.T) {
	h, d := policyAgent(t, nil, &PolicyConfig{GrantScope: proto.GrantScope{Deny: []string{"/firmware"}}}, []string{"/cgi-bin/reset"})
	const sess = "sesspolicypath01"
	if env := h.open(sess, "printer-1", h.grant(validGrant(sess, "printer-1", time.Minute))); env.Type != proto.TypeSessionReady {
		t.Fatalf("open: %s", env.Type)
	}
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	browser := http.Header{"Accept": {"text/html,application/xhtml+xml"}, "Content-Type": {"application/x-www-form-urlencoded"}}
	id := uint64(0)
	do := func(method, target string, hdr http.Header, body string) *fetchAnswer {
		id++
		return h.fetch(sess, id, method, target, hdr, body)
	}
	a := do("POST", "/settings", form, "hostname=p1&admin_password=hunter2&community=priv4te")
	if a.head.Status != 200 {
		t.Fatalf("settings: %d", a.head.Status)
	}
	var attempts []string
	for _, target := range []string{"/firmware", "/%66irmware", "//firmware", "/./firmware", "/a/../firmware", "/FIRMWARE", "/firmware;x=1",
		"/a%2f..%2ffirmware", "/%2566irmware"} {
		a = do("POST", target, form, "image=x")
		if a.head == nil {
			// Refused before the policy sees it (not an absolute path).
			if a.abort == nil || a.abort.Error.Code != proto.CodeBadRequest {
				t.Fatalf("%s: no answer %+v", target, a.abort)
			}
			continue
		}
		if a.head.Status != 403 || !strings.Contains(a.body.String(), "refuses /firmware") || a.head.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q", target, a.head.Status, a.body.String())
		}
		attempts = append(attempts, target)
	}
	a = do("GET", "/firmware/", browser, "")
	if a.head.Status != 403 || !strings.Contains(a.body.String(), "<h1>Refused by the site's policy</h1>") || !strings.HasPrefix(a.head.Header.Get("Content-Type"), "text/html") {
		t.Errorf("page: %d %q", a.head.Status, a.body.String())
	}
	do("GET", "/cgi-bin/reset?now=1", nil, "")
	do("GET", "/status?page=2&token=t0ps3cret", nil, "")
	for _, s := range d.saw() {
		if strings.Contains(strings.ToLower(s), "firmware") {
			t.Errorf("the device saw a refused request: %s", s)
		}
	}
	entries := h.entries(1 + len(attempts) + 3)
	byURL := map[string]proto.AccessEntry{}
	for _, e := range entries {
		byURL[e.Method+" "+e.URL] = e
	}
	st := byURL["POST /settings"]
	if !st.Change || st.Refused != "" || st.Form == nil || st.Form.Encoding != proto.FormURLEncoded {
		t.Fatalf("settings entry %+v", st)
	}
	for _, f := range st.Form.Fields {
		if f.Name == "hostname" && f.Value != "p1" || f.Name != "hostname" && (!f.Redacted || f.Value != "") {
			t.Errorf("field %+v", f)
		}
	}
	for _, target := range attempts {
		e := byURL["POST "+target]
		if !e.Change || !strings.Contains(e.Refused, "refuses /firmware") || e.Error != proto.CodeForbidden || e.Status != 403 {
			t.Errorf("refused entry %s: %+v", target, e)
		}
		if e.Form == nil || len(e.Form.Fields) != 1 || e.Form.Fields[0].Name != "image" {
			t.Errorf("refused entry's form %s: %+v", target, e.Form)
		}
	}
	if e := byURL["GET /cgi-bin/reset?now=1"]; !e.Change {
		t.Errorf("action not flagged: %+v", e)
	}
	if e, ok := byURL["GET /status?page=2&token=%5Bredacted%5D"]; !ok || e.Change {
		t.Errorf("query not redacted or flagged: %+v", byURL)
	}
	b, _ := json.Marshal(entries)
	for _, secret := range []string{"hunter2", "priv4te", "t0ps3cret"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("%s in the access log: %s", secret, b)
		}
	}
}

// TestReadOnlySession: only GET and HEAD reach the device; a form's
// POST gets the page that says why; terminals and streams are refused.
func TestReadOnlySession(t *testing.T) {
	h, d := policyAgent(t, &PolicyConfig{GrantScope: proto.GrantScope{ReadOnly: true}}, nil, nil)
	const sess = "sessreadonly0001"
	if env := h.open(sess, "printer-1", h.grant(validGrant(sess, "printer-1", time.Minute))); env.Type != proto.TypeSessionReady {
		t.Fatalf("open: %s", env.Type)
	}
	browser := http.Header{"Accept": {"text/html"}, "Content-Type": {"application/x-www-form-urlencoded"}}
	if a := h.fetch(sess, 1, "GET", "/settings", nil, ""); a.head.Status != 200 {
		t.Fatalf("GET: %d", a.head.Status)
	}
	if a := h.fetch(sess, 2, "HEAD", "/settings", nil, ""); a.head.Status != 200 {
		t.Fatalf("HEAD: %d", a.head.Status)
	}
	a := h.fetch(sess, 3, "POST", "/settings", browser, url.Values{"dns1": {"9.9.9.9"}}.Encode())
	if a.head.Status != 403 || !strings.Contains(a.body.String(), "This session is read-only: the site&#39;s policy allows viewing, not changes") {
		t.Fatalf("POST: %d %s", a.head.Status, a.body.String())
	}
	for _, m := range []string{"PUT", "DELETE", "PATCH", "OPTIONS"} {
		if a := h.fetch(sess, 4, m, "/settings", nil, ""); a.head.Status != 403 {
			t.Errorf("%s: %d", m, a.head.Status)
		}
	}
	if a := h.fetch(sess, 5, "GET", "/settings", http.Header{"X-Http-Method-Override": {"delete"}}, ""); a.head.Status != 403 ||
		!strings.Contains(a.body.String(), "X-HTTP-Method-Override: DELETE refused") {
		t.Errorf("method override: %d %s", a.head.Status, a.body.String())
	}
	if s := d.saw(); len(s) != 2 || !strings.HasPrefix(s[0], "GET ") || !strings.HasPrefix(s[1], "HEAD ") {
		t.Fatalf("the device saw %q", s)
	}
	s := h.agent.session(sess)
	if why := s.policy.stream(5900, true); why != "" {
		t.Errorf("watching the screen refused: %s", why)
	}
	if why := s.policy.stream(5900, false); !strings.Contains(why, "read-only") {
		t.Errorf("VNC with input allowed: %q", why)
	}
	for _, port := range []int{22, 9100} {
		_, err := h.agent.guardDialTCP(s)(context.Background(), port)
		var rf *refusal
		if !errors.As(err, &rf) || proto.CodeOf(err) != proto.CodeForbidden || !strings.Contains(rf.pe.Message, "read-only") {
			t.Errorf("stream to %d: %v", port, err)
		}
		// As the tunnel reports it: the stream's entry is refused, with why.
		done, oerr := h.agent.observe(s)(tunnel.Exchange{Kind: proto.AccessTCP, Port: port, Start: time.Now()})
		if oerr != nil {
			t.Fatal(oerr)
		}
		done(tunnel.ExchangeResult{Err: err})
	}
	_, _, err := h.agent.guardWebSocket(s)(context.Background(), &proto.WSOpen{Target: "/ws/status"})
	if !strings.Contains(fmt.Sprint(err), "live connections") {
		t.Errorf("WebSocket in a read-only session: %v", err)
	}
	entries := h.entries(10)
	for _, e := range entries[8:] {
		if e.Kind != proto.AccessTCP || e.Error != proto.CodeForbidden || !strings.Contains(e.Refused, "read-only") {
			t.Errorf("refused stream entry %+v", e)
		}
	}
	post := entries[2]
	if post.Method != "POST" || !post.Change || !strings.HasPrefix(post.Refused, proto.ReadOnlyRefusal) || post.Form == nil || post.Form.Fields[0].Value != "9.9.9.9" {
		t.Fatalf("refused POST entry %+v", post)
	}
}

// TestHelloDeclaresTheDevicePolicy: signaling learns each device's policy
// from hello, and a malformed policy stops the agent at start.
func TestHelloDeclaresTheDevicePolicy(t *testing.T) {
	pol := &PolicyConfig{RequireApproval: true, GrantScope: proto.GrantScope{ReadOnly: true, Deny: []string{"/firmware"}}}
	hello := startAgentWithHello(t, []DeviceConfig{
		{ID: "p1", Address: "127.0.0.1", Policy: pol},
		{ID: "p2", Address: "127.0.0.1"},
	})
	got := map[string]*proto.AgentPolicy{}
	for _, d := range hello.Devices {
		got[d.ID] = d.Policy
	}
	if p := got["p1"]; p == nil || !p.RequireApproval || !p.ReadOnly || len(p.Deny) != 1 || got["p2"] != nil {
		t.Fatalf("declared policies %+v", got)
	}
	for _, bad := range []DeviceConfig{
		{ID: "p1", Address: "127.0.0.1", Policy: &PolicyConfig{GrantScope: proto.GrantScope{Deny: []string{"firmware"}}}},
		{ID: "p1", Address: "127.0.0.1", Policy: &PolicyConfig{GrantScope: proto.GrantScope{Ports: []int{70000}}}},
		{ID: "p1", Address: "127.0.0.1", Actions: []string{"reset"}},
	} {
		if _, err := New(Config{Key: "k", Server: "http://x", Devices: []DeviceConfig{bad}}); err == nil || !strings.Contains(err.Error(), "device p1") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, err := New(Config{Key: "k", Server: "http://x", Policy: &PolicyConfig{GrantScope: proto.GrantScope{Allow: []string{""}}}}); err == nil ||
		!strings.Contains(err.Error(), "site policy") {
		t.Errorf("bad site policy: %v", err)
	}
}

// TestUnenrolledAgentRefusesWhenApprovalIsRequired: without an enrollment
// no grant can carry an approval.
func TestUnenrolledAgentRefusesWhenApprovalIsRequired(t *testing.T) {
	a, err := New(Config{Key: "k", Server: "http://x", Devices: []DeviceConfig{{ID: "p1", Address: "127.0.0.1",
		Policy: &PolicyConfig{RequireApproval: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := a.device("p1")
	if _, perr := a.checkPolicy("sessunenrolled01", d, nil); perr == nil || perr.Code != proto.CodeForbidden || !strings.Contains(perr.Message, "not enrolled") {
		t.Fatalf("refusal %v", perr)
	}
}
