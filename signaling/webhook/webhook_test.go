package webhook

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ctx = context.Background()

func TestSignatureVerifies(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"ev_1","type":"session.started"}`)
	good := Sign("whsec_k", now, body)
	// The README's recipe (HMAC-SHA256 of "<t>." + body, keyed with the
	// secret's bytes), computed independently with Python's hmac.
	if want := "t=1800000000,v1=bdc196be07973b12b95412c0ef45260df55b296ee6d1dd65548f06a3abffb7ce"; good != want {
		t.Fatalf("header %q, want %q", good, want)
	}
	for _, tc := range []struct {
		name, secret, header string
		body                 []byte
		at                   time.Time
		want                 error
	}{
		{"valid", "whsec_k", good, body, now, nil},
		{"within tolerance", "whsec_k", good, body, now.Add(4 * time.Minute), nil},
		{"one of two v1 values", "whsec_k", good + ",v1=" + strings.Repeat("0", 64), body, now, nil},
		{"wrong secret", "whsec_x", good, body, now, ErrBadSignature},
		{"altered body", "whsec_k", good, append([]byte{' '}, body...), now, ErrBadSignature},
		{"altered timestamp", "whsec_k", strings.Replace(good, "t=1800000000", "t=1800000001", 1), body, now, ErrBadSignature},
		{"replayed later", "whsec_k", good, body, now.Add(6 * time.Minute), ErrStale},
		{"from the future", "whsec_k", good, body, now.Add(-6 * time.Minute), ErrStale},
		{"no header", "whsec_k", "", body, now, ErrNoSignature},
		{"no v1", "whsec_k", "t=1800000000", body, now, ErrNoSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Verify(tc.secret, tc.header, tc.body, tc.at, 5*time.Minute); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBackoffSchedule(t *testing.T) {
	base, limit := 10*time.Second, 10*time.Minute
	for _, tc := range []struct {
		attempt int
		jitter  float64
		want    time.Duration
	}{
		{1, 0, 5 * time.Second},
		{1, 0.5, 7500 * time.Millisecond},
		{2, 0, 10 * time.Second},
		{3, 0, 20 * time.Second},
		{4, 0.999999999, 80 * time.Second},
		{6, 0, 160 * time.Second},
		{7, 0, 5 * time.Minute}, // capped at 10 min before jitter
		{50, 0, 5 * time.Minute},
		{50, 1, 10 * time.Minute},
		{2, -3, 10 * time.Second}, // jitter clamped
	} {
		got := Backoff(tc.attempt, base, limit, tc.jitter)
		if d := got - tc.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("Backoff(%d, jitter %v) = %v, want %v", tc.attempt, tc.jitter, got, tc.want)
		}
	}
}

func TestRefusedDestinations(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1": true, "::1": true, "::ffff:127.0.0.1": true, "0.0.0.0": true, "::": true,
		"10.1.2.3": true, "172.16.0.1": true, "192.168.1.1": true, "100.64.0.1": true,
		"169.254.169.254": true, "fe80::1": true, "fc00::1": true, "224.0.0.1": true, "255.255.255.255": true,
		"::ffff:10.0.0.1": true, "64:ff9b::a00:1": true,
		"8.8.8.8": false, "2606:4700:4700::1111": false, "::ffff:8.8.8.8": false,
	} {
		if got := Refused(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Refused(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url          string
		allowPrivate bool
		ok           bool
	}{
		{"https://hooks.example.com/porthole", false, true},
		{"https://hooks.example.com:8443/p?x=1", false, true},
		{"http://hooks.example.com/porthole", false, false},
		{"http://hooks.example.com/porthole", true, false}, // plain http only to loopback
		{"http://127.0.0.1:8080/hook", true, true},
		{"http://localhost:8080/hook", true, true},
		{"http://127.0.0.1:8080/hook", false, false},
		{"https://127.0.0.1/hook", false, false},
		{"https://169.254.169.254/latest", false, false},
		{"https://[::ffff:10.0.0.1]/", false, false},
		{"https://user:pw@hooks.example.com/", false, false},
		{"https://hooks.example.com/#frag", false, false},
		{"ftp://hooks.example.com/", false, false},
		{"/relative", false, false},
		{"https://", false, false},
	} {
		_, err := CheckURL(tc.url, tc.allowPrivate)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q, allowPrivate=%v) = %v, want ok=%v", tc.url, tc.allowPrivate, err, tc.ok)
		}
	}
}

// fixture is a dispatcher on a real store, with waits recorded and fired
// at once.
type fixture struct {
	st     store.Store
	d      *Dispatcher
	mu     sync.Mutex
	waits  []time.Duration
	onWait func() // runs at each wait between attempts
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "s.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st}
	if cfg.Store == nil {
		cfg.Store = st
	}
	if cfg.After == nil {
		cfg.After = f.after
	}
	cfg.Jitter = func() float64 { return 0 }
	f.d, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.d.Close(); st.Close() })
	return f
}

// after records a wait and fires at once.
func (f *fixture) after(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	f.waits = append(f.waits, d)
	hook := f.onWait
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	c := make(chan time.Time, 1)
	c <- time.Time{}
	return c
}

func (f *fixture) hook(t *testing.T, id, url string, events ...string) *store.Webhook {
	t.Helper()
	w := &store.Webhook{ID: id, Site: "site1", URL: url, Events: events, Secret: NewSecret(), Created: time.Now()}
	if err := f.st.PutWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	return w
}

func (f *fixture) deliveries(t *testing.T, id string) []*store.WebhookDelivery {
	t.Helper()
	ds, err := f.st.Deliveries(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

type hit struct {
	header http.Header
	body   []byte
}

// receiver answers with codes in turn (the last one from then on).
func receiver(t *testing.T, codes ...int) (*httptest.Server, func() []hit) {
	var mu sync.Mutex
	var hits []hit
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hits = append(hits, hit{r.Header.Clone(), b})
		code := codes[min(len(hits), len(codes))-1]
		mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []hit { mu.Lock(); defer mu.Unlock(); return append([]hit(nil), hits...) }
}

func TestRetriesKeepTheDeliveryID(t *testing.T) {
	srv, hits := receiver(t, 503, 500, 200)
	f := newFixture(t, Config{AllowPrivate: true, BaseDelay: time.Second, MaxDelay: time.Minute})
	w := f.hook(t, "wh1", srv.URL)
	f.d.Notify(ctx, proto.WebhookEvent{Type: proto.WebhookSessionStarted, Site: "site1", Session: "s1", Device: "d1", User: "u1"})
	f.d.Flush()
	h := hits()
	if len(h) != 3 {
		t.Fatalf("%d attempts, want 3", len(h))
	}
	id := h[0].header.Get(proto.WebhookDeliveryHeader)
	for i, x := range h {
		if got := x.header.Get(proto.WebhookDeliveryHeader); got != id || !strings.HasPrefix(id, "dl_") {
			t.Fatalf("attempt %d: delivery id %q, first was %q", i+1, got, id)
		}
		if x.header.Get(proto.WebhookEventHeader) != proto.WebhookSessionStarted || x.header.Get("Content-Type") != "application/json" {
			t.Fatalf("attempt %d headers %v", i+1, x.header)
		}
		if err := Verify(w.Secret, x.header.Get(proto.WebhookSignatureHeader), x.body, time.Now(), time.Minute); err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	f.mu.Lock()
	waits := f.waits
	f.mu.Unlock()
	if len(waits) != 2 || waits[0] != 500*time.Millisecond || waits[1] != time.Second {
		t.Fatalf("waits %v, want [500ms 1s] (base 1s, no jitter)", waits)
	}
	ds := f.deliveries(t, "wh1")
	if len(ds) != 1 || ds[0].ID != id || ds[0].Status != store.DeliveryDelivered || ds[0].Attempts != 3 || ds[0].Code != 200 || ds[0].LastError != "" {
		t.Fatalf("delivery log %+v", ds)
	}
	if s := f.d.Stats(); s.Delivered != 1 || s.Retried != 2 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestGivesUpAfterMaxAttemptsAndOn4xx(t *testing.T) {
	down, downHits := receiver(t, 503)
	gone, goneHits := receiver(t, 410)
	f := newFixture(t, Config{AllowPrivate: true, MaxAttempts: 4})
	f.hook(t, "down", down.URL)
	f.hook(t, "gone", gone.URL)
	f.d.Notify(ctx, proto.WebhookEvent{Type: proto.WebhookSessionEnded, Site: "site1"})
	f.d.Flush()
	if n := len(downHits()); n != 4 {
		t.Fatalf("503 endpoint: %d attempts, want 4", n)
	}
	if n := len(goneHits()); n != 1 {
		t.Fatalf("410 endpoint: %d attempts, want 1 (not retried)", n)
	}
	if d := f.deliveries(t, "down")[0]; d.Status != store.DeliveryFailed || d.Attempts != 4 || d.Code != 503 || !strings.Contains(d.LastError, "503") {
		t.Fatalf("down log %+v", d)
	}
	if d := f.deliveries(t, "gone")[0]; d.Status != store.DeliveryFailed || d.Attempts != 1 || d.Code != 410 {
		t.Fatalf("gone log %+v", d)
	}
}

func TestEventFilter(t *testing.T) {
	srv, hits := receiver(t, 204)
	f := newFixture(t, Config{AllowPrivate: true})
	f.hook(t, "only-ended", srv.URL, proto.WebhookSessionEnded)
	other := &store.Webhook{ID: "other-site", Site: "site2", URL: srv.URL, Secret: "s", Created: time.Now()}
	if err := f.st.PutWebhook(ctx, other); err != nil {
		t.Fatal(err)
	}
	f.d.Notify(ctx, proto.WebhookEvent{Type: proto.WebhookSessionStarted, Site: "site1"})
	f.d.Notify(ctx, proto.WebhookEvent{Type: proto.WebhookSessionEnded, Site: "site1"})
	f.d.Flush()
	h := hits()
	if len(h) != 1 || h[0].header.Get(proto.WebhookEventHeader) != proto.WebhookSessionEnded {
		t.Fatalf("got %d deliveries, want only session.ended of site1", len(h))
	}
	// A test event goes to the one subscription, whatever its filter.
	w, _ := f.st.Webhook(ctx, "only-ended")
	f.d.Test(w, "u1")
	f.d.Flush()
	if h := hits(); len(h) != 2 || h[1].header.Get(proto.WebhookEventHeader) != proto.WebhookTest {
		t.Fatalf("test event not delivered: %d", len(h))
	}
}

func TestRefusesPrivateDestinationsAtDialTime(t *testing.T) {
	srv, hits := receiver(t, 200)
	f := newFixture(t, Config{}) // AllowPrivate off: the operator's default
	f.hook(t, "wh1", srv.URL)    // stored directly: the API's CheckURL would refuse it already
	f.d.Notify(ctx, proto.WebhookEvent{Type: proto.WebhookSessionStarted, Site: "site1"})
	f.d.Flush()
	if n := len(hits()); n != 0 {
		t.Fatalf("signaling called a loopback endpoint %d times", n)
	}
	d := f.deliveries(t, "wh1")
	if len(d) != 1 || d[0].Status != store.DeliveryFailed || d[0].Attempts != 1 || d[0].LastError != ErrRefusedDestination.Error() {
		t.Fatalf("delivery log %+v, want one refused attempt, not retried", d[0])
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	target, targetHits := receiver(t, 200)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/internal", http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	f := newFixture(t, Config{AllowPrivate: true})
	f.hook(t, "wh1", redirect.URL)
	f.d.Notify(ctx, proto.WebhookEvent{Type: proto.WebhookSessionStarted, Site: "site1"})
	f.d.Flush()
	if n := len(targetHits()); n != 0 {
		t.Fatalf("the redirect was followed (%d requests at its target)", n)
	}
	d := f.deliveries(t, "wh1")[0]
	if d.Status != store.DeliveryFailed || d.Code != http.StatusTemporaryRedirect || d.Attempts != 1 || !strings.Contains(d.LastError, "not followed") {
		t.Fatalf("delivery log %+v", d)
	}
}

// blockingStore holds the dispatcher's goroutine in Webhooks until
// released, so the queue behind it fills.
type blockingStore struct {
	store.WebhookStore
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingStore) Webhooks(ctx context.Context, site string) ([]*store.Webhook, error) {
	b.once.Do(func() { close(b.entered); <-b.release })
	return b.WebhookStore.Webhooks(ctx, site)
}

func TestQueueFullDropsAndCounts(t *testing.T) {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "s.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bs := &blockingStore{WebhookStore: st, entered: make(chan struct{}), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	var logs strings.Builder
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	d, err := New(Config{Store: bs, Queue: 2, AllowPrivate: true, Metrics: reg, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ev := proto.WebhookEvent{Type: proto.WebhookSessionStarted, Site: "site1"}
	d.Notify(ctx, ev)
	<-bs.entered // the first is taken; the queue behind it holds 2
	start := time.Now()
	for range 5 {
		d.Notify(ctx, ev)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Notify blocked for %v", el)
	}
	if s := d.Stats(); s.Dropped != 3 {
		t.Fatalf("dropped %d, want 3", s.Dropped)
	}
	if n := testutil.ToFloat64(d.mDropped); n != 3 {
		t.Fatalf("porthole_signaling_webhook_events_dropped_total = %v, want 3", n)
	}
	if n, err := testutil.GatherAndCount(reg, "porthole_signaling_webhook_events_dropped_total"); err != nil || n != 1 {
		t.Fatalf("the dropped counter is not registered: %d, %v", n, err)
	}
	logMu.Lock()
	lines := strings.Count(logs.String(), "webhook queue full; event dropped")
	logMu.Unlock()
	if lines != 3 {
		t.Fatalf("%d log lines for 3 drops", lines)
	}
	close(bs.release)
	d.Flush()
}

func TestRemovedWebhookStopsRetrying(t *testing.T) {
	srv, hits := receiver(t, 503)
	f := newFixture(t, Config{AllowPrivate: true, MaxAttempts: 6})
	f.hook(t, "wh1", srv.URL)
	f.mu.Lock()
	f.onWait = func() { _ = f.st.DeleteWebhook(ctx, "wh1") }
	f.mu.Unlock()
	f.d.Notify(ctx, proto.WebhookEvent{Type: proto.WebhookSessionStarted, Site: "site1"})
	f.d.Flush()
	// The attempt under way when it was removed is the last.
	if n := len(hits()); n != 2 {
		t.Fatalf("%d attempts after the webhook was removed during the first wait, want 2", n)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestSlowEndpointTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // answers only once signaling gave up
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	f := newFixture(t, Config{AllowPrivate: true, Timeout: 100 * time.Millisecond, MaxAttempts: 2})
	f.hook(t, "wh1", srv.URL)
	f.d.Notify(ctx, proto.WebhookEvent{Type: proto.WebhookSessionStarted, Site: "site1"})
	f.d.Flush()
	d := f.deliveries(t, "wh1")[0]
	if d.Status != store.DeliveryFailed || d.Attempts != 2 || d.LastError != "timed out" || d.Code != 0 {
		t.Fatalf("delivery log %+v, want two timed-out attempts", d)
	}
}

// TestCloseDeliversQueuedEventsAndAbandonsRetries: events queued before
// Close still get their attempt; a delivery that would wait for a retry
// is abandoned at once, pending in the log.
func TestCloseDeliversQueuedEventsAndAbandonsRetries(t *testing.T) {
	ok, okHits := receiver(t, 200)
	down, downHits := receiver(t, 503)
	never := make(chan time.Time) // a retry wait that would never end
	f := newFixture(t, Config{AllowPrivate: true, After: func(time.Duration) <-chan time.Time { return never }})
	f.hook(t, "ok", ok.URL)
	f.hook(t, "down", down.URL)
	f.d.Notify(ctx, proto.WebhookEvent{Type: proto.WebhookSessionEnded, Site: "site1"})
	f.d.Close()
	if n, m := len(okHits()), len(downHits()); n != 1 || m != 1 {
		t.Fatalf("after Close: %d and %d attempts, want 1 each", n, m)
	}
	if d := f.deliveries(t, "ok")[0]; d.Status != store.DeliveryDelivered {
		t.Fatalf("ok: %+v", d)
	}
	if d := f.deliveries(t, "down")[0]; d.Status != store.DeliveryPending || !strings.HasSuffix(d.LastError, "abandoned: signaling stopped") {
		t.Fatalf("down: %+v", d)
	}
}

// BenchmarkNotifyQueueFull is what the hub pays per event when the queue
// is full: a drop, counted and logged (to a discarding logger here).
func BenchmarkNotifyQueueFull(b *testing.B) {
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "s.db"), boltstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	bs := &blockingStore{WebhookStore: st, entered: make(chan struct{}), release: make(chan struct{})}
	d, err := New(Config{Store: bs, Queue: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ev := proto.WebhookEvent{ID: "ev_1", Type: proto.WebhookSessionStarted, Site: "site1", Time: time.Now()}
	d.Notify(ctx, ev)
	<-bs.entered
	d.Notify(ctx, ev) // fills the queue
	b.ResetTimer()
	for b.Loop() {
		d.Notify(ctx, ev)
	}
	b.StopTimer()
	close(bs.release)
}

// BenchmarkNotify is what the hub pays per event with room in the queue.
func BenchmarkNotify(b *testing.B) {
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "s.db"), boltstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	d, err := New(Config{Store: st, Queue: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ev := proto.WebhookEvent{ID: "ev_1", Type: proto.WebhookSessionStarted, Site: "site1", Time: time.Now()}
	for b.Loop() {
		d.Notify(ctx, ev)
	}
	b.StopTimer()
	d.Flush()
}
