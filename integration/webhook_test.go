package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/daemon"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/webhook"
)

// techDo calls signaling's API with the stack's dev technician token and
// decodes a 2xx answer into out.
func techDo(t *testing.T, s *stack.Stack, method, path string, body, out any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.SignalingURL+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.TechToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode, b
}

// hookReceiver is a subscriber's endpoint: it records every delivery and
// fails the first one.
type hookReceiver struct {
	mu    sync.Mutex
	got   []received
	fails int // answer 503 to this many requests first
}

type received struct {
	header http.Header
	body   []byte
	at     time.Time
	code   int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	code := http.StatusOK
	if h.fails > 0 {
		h.fails--
		code = http.StatusServiceUnavailable
	}
	h.got = append(h.got, received{r.Header.Clone(), b, time.Now(), code})
	h.mu.Unlock()
	w.WriteHeader(code)
}

func (h *hookReceiver) all() []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]received(nil), h.got...)
}

// event waits for a delivery of type typ accepted (200) and returns it with
// the earlier attempts of the same delivery.
func (h *hookReceiver) event(t *testing.T, typ string) (proto.WebhookEvent, []received) {
	t.Helper()
	var ok received
	testenv.Eventually(t, 60*time.Second, "a "+typ+" webhook", func() bool {
		for _, r := range h.all() {
			if r.header.Get(proto.WebhookEventHeader) == typ && r.code == http.StatusOK {
				ok = r
				return true
			}
		}
		return false
	})
	var attempts []received
	for _, r := range h.all() {
		if r.header.Get(proto.WebhookDeliveryHeader) == ok.header.Get(proto.WebhookDeliveryHeader) {
			attempts = append(attempts, r)
		}
	}
	var ev proto.WebhookEvent
	if err := json.Unmarshal(ok.body, &ev); err != nil {
		t.Fatal(err)
	}
	return ev, attempts
}

// TestWebhooksDeliverSessionEventsSigned: a site's subscriber receives
// session.started, session.ended and session.terminated of real sessions
// (through `porthole http`, the last one ended with the jobs terminate
// API) on a real HTTP server, each signed with the secret the API showed
// once; the first delivery fails and is retried under the same delivery
// id; the delivery log, a test event and the admin audit say so.
func TestWebhooksDeliverSessionEventsSigned(t *testing.T) {
	s := stack.Start(t, stack.Options{SignalingArgs: []string{"--webhook-allow-private", "--webhook-retry-delay", "200ms"}})
	recv := &hookReceiver{fails: 1}
	srv := httptest.NewServer(recv)
	defer srv.Close()

	base := strings.Replace(proto.PathWebhooks, "{site}", stack.SiteID, 1)
	var created proto.WebhookCreated
	if code, b := techDo(t, s, http.MethodPost, base, proto.NewWebhook{URL: srv.URL + "/porthole"}, &created); code != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", code, b)
	}
	if !strings.HasPrefix(created.Secret, "whsec_") || created.Site != stack.SiteID {
		t.Fatalf("created %+v", created)
	}
	if code, b := techDo(t, s, http.MethodPost, base, proto.NewWebhook{URL: "http://hooks.example.com/x"}, nil); code != http.StatusBadRequest {
		t.Fatalf("plain http to a non-loopback host: %d %s, want 400", code, b)
	}
	var list proto.WebhookList
	if code, b := techDo(t, s, http.MethodGet, base, nil, &list); code != http.StatusOK || len(list.Webhooks) != 1 || strings.Contains(string(b), created.Secret) {
		t.Fatalf("list: %d %s (the secret must not be shown again)", code, b)
	}

	verify := func(rs []received) {
		t.Helper()
		for _, r := range rs {
			if err := webhook.Verify(created.Secret, r.header.Get(proto.WebhookSignatureHeader), r.body, time.Now(), 5*time.Minute); err != nil {
				t.Fatalf("delivery %s: %v", r.header.Get(proto.WebhookDeliveryHeader), err)
			}
		}
	}

	// Session 1: connects, then the technician closes it.
	cli, m := startCLI(t, s, `serving \S+ web page at (http://\S+/)`, "http", stack.DeviceID, "--listen", "127.0.0.1:0")
	if resp, _ := get(t, http.DefaultClient, m[1]); resp.StatusCode != http.StatusOK {
		t.Fatalf("device page through the tunnel: %d", resp.StatusCode)
	}
	started, attempts := recv.event(t, proto.WebhookSessionStarted)
	if started.Site != stack.SiteID || started.Device != stack.DeviceID || started.Session == "" || started.Until.IsZero() {
		t.Fatalf("session.started %+v", started)
	}
	if len(attempts) != 2 || attempts[0].code != http.StatusServiceUnavailable || !bytes.Equal(attempts[0].body, attempts[1].body) {
		t.Fatalf("session.started: %d attempts, want a failed one then the accepted retry with the same body", len(attempts))
	}
	verify(attempts)
	startedDelivery := attempts[0].header.Get(proto.WebhookDeliveryHeader)
	if err := cli.Stop(10 * time.Second); err != nil {
		t.Logf("cli: %v", err)
	}
	ended, attempts := recv.event(t, proto.WebhookSessionEnded)
	if ended.Session != started.Session || ended.Reason == "" {
		t.Fatalf("session.ended %+v", ended)
	}
	verify(attempts)

	// Session 2: terminated by an administrator through the jobs API.
	_, m = startCLI(t, s, `serving \S+ web page at (http://\S+/)`, "http", stack.DeviceID, "--listen", "127.0.0.1:0")
	get(t, http.DefaultClient, m[1])
	var second proto.WebhookEvent
	testenv.Eventually(t, 60*time.Second, "the second session.started", func() bool {
		for _, r := range recv.all() {
			var ev proto.WebhookEvent
			if json.Unmarshal(r.body, &ev) == nil && ev.Type == proto.WebhookSessionStarted && ev.Session != started.Session {
				second = ev
				return true
			}
		}
		return false
	})
	if code, b := techDo(t, s, http.MethodPost, strings.Replace(proto.PathJobTerminate, "{id}", second.Session, 1), nil, nil); code != http.StatusOK {
		t.Fatalf("terminate: %d %s", code, b)
	}
	term, attempts := recv.event(t, proto.WebhookSessionTerminated)
	if term.Session != second.Session || term.By != "tech" || term.Reason != string(proto.EndByAdmin) {
		t.Fatalf("session.terminated %+v", term)
	}
	verify(attempts)

	// A test event, then the delivery log as the API shows it.
	hook := base + "/" + created.ID
	if code, b := techDo(t, s, http.MethodPost, hook+"/test", nil, nil); code != http.StatusAccepted {
		t.Fatalf("test: %d %s", code, b)
	}
	_, attempts = recv.event(t, proto.WebhookTest)
	verify(attempts)
	var log proto.WebhookDeliveryList
	testenv.Eventually(t, 10*time.Second, "the delivery log", func() bool {
		log = proto.WebhookDeliveryList{}
		techDo(t, s, http.MethodGet, hook+"/deliveries", nil, &log)
		return len(log.Deliveries) >= 5
	})
	var first *proto.WebhookDelivery
	for i, d := range log.Deliveries {
		if d.Status != "delivered" {
			t.Errorf("delivery %+v not delivered", d)
		}
		if d.ID == startedDelivery {
			first = &log.Deliveries[i]
		}
	}
	if first == nil || first.Attempts != 2 || first.Code != http.StatusOK || first.Event != proto.WebhookSessionStarted {
		t.Fatalf("the retried delivery in the log: %+v (log %+v)", first, log.Deliveries)
	}
	if log.Deliveries[0].Event != proto.WebhookTest {
		t.Errorf("newest delivery %+v, want the test event", log.Deliveries[0])
	}

	// The admin audit records the subscription.
	var audit proto.AuditList
	techDo(t, s, http.MethodGet, proto.PathAudit, nil, &audit)
	actions := map[string]bool{}
	for _, e := range audit.Entries {
		actions[e.Action] = true
	}
	if !actions["webhook.create"] || !actions["webhook.test"] {
		t.Fatalf("audit actions %v, want webhook.create and webhook.test", actions)
	}
	if code, b := techDo(t, s, http.MethodDelete, hook, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", code, b)
	}
}

// TestWebhooksInAClusterDeliverOnce: two signaling nodes on one Redis, the
// agent on n0 and the technician and the subscription's API on n1. The
// session lives on n0 (its owner), which alone emits and delivers its
// events: the subscriber gets session.started and session.ended once
// each, and n1's API shows the log n0 wrote.
func TestWebhooksInAClusterDeliverOnce(t *testing.T) {
	redisAddr := testenv.StartRedis(t)
	bin := stack.Build(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	devPort := startDemoDevicePort(t, ctx, bin)
	const techToken = "cluster-hook-token"
	keys := map[string]string{"hook-agent": "hook-agent-key-0123456789"}
	n0 := startNode(t, ctx, bin, dir, "redis://"+redisAddr, "n0", techToken, keys, "--webhook-allow-private")
	n1 := startNode(t, ctx, bin, dir, "redis://"+redisAddr, "n1", techToken, keys, "--webhook-allow-private")
	call := func(n *clusterNode, method, path string, body, out any) int {
		t.Helper()
		code, b := techDo(t, &stack.Stack{SignalingURL: n.url, TechToken: techToken}, method, path, body, out)
		if code/100 != 2 {
			t.Logf("%s %s on %s: %d %s", method, path, n.name, code, b)
		}
		return code
	}
	if code := call(n1, http.MethodPost, proto.PathSites, proto.NewSite{ID: "hq", Name: "HQ"}, nil); code != http.StatusCreated {
		t.Fatalf("create site: %d", code)
	}
	if code := call(n1, http.MethodPut, "/v1/agents/hook-agent", proto.AgentUpdate{Site: "hq"}, nil); code != http.StatusOK {
		t.Fatalf("assign agent: %d", code)
	}
	recv := &hookReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	var created proto.WebhookCreated
	if code := call(n1, http.MethodPost, "/v1/sites/hq/webhooks", proto.NewWebhook{URL: srv.URL}, &created); code != http.StatusCreated {
		t.Fatalf("create webhook: %d", code)
	}

	a, err := daemon.New(daemon.Config{Server: n0.url, Key: keys["hook-agent"], LoopbackOnly: true, Logger: slog.New(slog.DiscardHandler),
		Devices: []daemon.DeviceConfig{{ID: "hook-printer", Address: "127.0.0.1", HTTPPort: devPort}}})
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(ctx)
	var awg sync.WaitGroup
	defer func() { acancel(); awg.Wait() }()
	awg.Go(func() { _ = a.Run(actx) })
	testenv.Eventually(t, 30*time.Second, "the device online on n1", func() bool { return deviceOnline(ctx, n1.url, techToken, "hook-printer") })

	sess, err := openSession(ctx, n1.url, techToken, "hook-printer")
	if err != nil {
		t.Fatal(err)
	}
	if err := getPage(ctx, sess); err != nil {
		t.Fatal(err)
	}
	started, _ := recv.event(t, proto.WebhookSessionStarted)
	sess.Close()
	ended, _ := recv.event(t, proto.WebhookSessionEnded)
	if started.Site != "hq" || ended.Session != started.Session {
		t.Fatalf("started %+v ended %+v", started, ended)
	}
	var log proto.WebhookDeliveryList
	testenv.Eventually(t, 10*time.Second, "both deliveries in n1's log", func() bool {
		log = proto.WebhookDeliveryList{}
		call(n1, http.MethodGet, "/v1/sites/hq/webhooks/"+created.ID+"/deliveries", nil, &log)
		return len(log.Deliveries) >= 2 && log.Deliveries[0].Status == "delivered" && log.Deliveries[1].Status == "delivered"
	})
	got := recv.all()
	ids := map[string]bool{}
	for _, r := range got {
		ids[r.header.Get(proto.WebhookDeliveryHeader)] = true
		if err := webhook.Verify(created.Secret, r.header.Get(proto.WebhookSignatureHeader), r.body, time.Now(), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 || len(ids) != 2 || len(log.Deliveries) != 2 {
		t.Fatalf("%d requests (%d delivery ids), %d deliveries logged: want each event once", len(got), len(ids), len(log.Deliveries))
	}
}
