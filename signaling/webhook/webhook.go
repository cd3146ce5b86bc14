// Package webhook tells a site's subscribers what happens to its sessions:
// every proto.WebhookEvent of the site is POSTed as JSON to each
// subscription whose filter takes it, signed with HMAC-SHA256 under the
// subscription's secret (Sign, Verify), retried with exponential backoff
// and jitter while the endpoint fails, and recorded in the subscription's
// bounded delivery log in the store.
//
// Notify never blocks: events go to a bounded queue, and when it is full
// the event is dropped with a log line and a counted metric (the hub emits
// session events under its lock). In a cluster each event is delivered by
// the node that emits it: a hub event comes from the node that owns the
// session, an approval from the node that served the request, so no event
// is seen by two nodes and nothing needs electing; the delivery logs live
// in the shared store, so every node's API shows them. An event whose node
// dies before it is delivered is lost (at most once per node, not a
// queue that survives restarts).
//
// Endpoints are called through a client that refuses private, loopback
// and link-local destinations at connect time (unless Config.AllowPrivate)
// and never follows redirects.
package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/store"
)

// Defaults of Config's zero values.
const (
	DefaultQueue       = 1024
	DefaultInFlight    = 16
	DefaultMaxAttempts = 6
	DefaultBaseDelay   = 10 * time.Second
	DefaultMaxDelay    = 10 * time.Minute
	DefaultTimeout     = 10 * time.Second
	DefaultKeep        = 100
)

// Config configures a Dispatcher.
type Config struct {
	Store  store.WebhookStore // required
	Logger *slog.Logger       // nil discards
	// Metrics, if set, gets porthole_signaling_webhook_* counters.
	Metrics prometheus.Registerer
	// AllowPrivate lets endpoints be loopback, private or link-local
	// addresses, and plain http to loopback: an operator's flag for tests
	// and development. Off, a site admin cannot make signaling call its
	// internal network.
	AllowPrivate bool
	Queue        int           // events waiting for delivery; DefaultQueue
	InFlight     int           // deliveries at once; DefaultInFlight
	MaxAttempts  int           // attempts per delivery; DefaultMaxAttempts
	BaseDelay    time.Duration // the first retry's wait (before jitter); DefaultBaseDelay
	MaxDelay     time.Duration // the longest wait; DefaultMaxDelay
	Timeout      time.Duration // per attempt; DefaultTimeout
	Keep         int           // deliveries kept per subscription; DefaultKeep
	Now          func() time.Time
	// After waits between attempts; nil means time.After. Tests pass one
	// that fires at once and records the waits.
	After func(time.Duration) <-chan time.Time
	// Jitter returns a number in [0, 1); nil means math/rand/v2.
	Jitter func() float64
	// Client, if set, replaces the delivery client (tests of the client
	// itself use the default).
	Client *http.Client
}

// Stats counts what a Dispatcher did.
type Stats struct {
	Dropped, Delivered, Failed, Retried uint64
}

// job is one queued event, for every matching subscription of its site or
// only for the subscription named (a test event).
type job struct {
	ev   proto.WebhookEvent
	only *store.Webhook
}

// Dispatcher delivers webhook events. Create it with New, Close it after
// the last Notify.
type Dispatcher struct {
	cfg      Config
	log      *slog.Logger
	client   *http.Client
	queue    chan job
	sem      chan struct{}
	ctx      context.Context // cancelled once Close's grace is over
	cancel   context.CancelFunc
	stopping chan struct{} // closed by Close: no more retries
	done     chan struct{}
	wg       sync.WaitGroup // deliveries

	mu      sync.Mutex
	cond    *sync.Cond
	pending int // events queued plus deliveries not finished
	closed  bool
	stats   Stats

	mDropped    prometheus.Counter
	mDeliveries *prometheus.CounterVec // result: delivered, failed, retried
}

// New starts a dispatcher: one goroutine that takes events off the queue
// and one per delivery in flight.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Store == nil {
		return nil, errors.New("webhook: a store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.Queue, DefaultQueue)
	def(&cfg.InFlight, DefaultInFlight)
	def(&cfg.MaxAttempts, DefaultMaxAttempts)
	def(&cfg.Keep, DefaultKeep)
	defd(&cfg.BaseDelay, DefaultBaseDelay)
	defd(&cfg.MaxDelay, DefaultMaxDelay)
	defd(&cfg.Timeout, DefaultTimeout)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.Jitter == nil {
		cfg.Jitter = mrand.Float64
	}
	d := &Dispatcher{cfg: cfg, log: cfg.Logger, client: cfg.Client, queue: make(chan job, cfg.Queue),
		sem: make(chan struct{}, cfg.InFlight), done: make(chan struct{}), stopping: make(chan struct{})}
	if d.client == nil {
		d.client = newClient(cfg.AllowPrivate)
	}
	d.cond = sync.NewCond(&d.mu)
	d.mDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "porthole_signaling_webhook_events_dropped_total",
		Help: "Webhook events dropped because the delivery queue was full.",
	})
	d.mDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "porthole_signaling_webhook_deliveries_total",
		Help: "Webhook delivery attempts by result: delivered, retried (failed, another attempt follows), failed (given up).",
	}, []string{"result"})
	if cfg.Metrics != nil {
		for _, c := range []prometheus.Collector{d.mDropped, d.mDeliveries} {
			if err := cfg.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("webhook metrics: %w", err)
			}
		}
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	go d.run()
	return d, nil
}

// NewID returns a random id with prefix ("ev_", "dl_", "wh_").
func NewID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + fmt.Sprintf("%x", b)
}

// NewSecret returns a fresh subscription secret.
func NewSecret() string { return "whsec_" + rand.Text() + rand.Text() }

// Notify queues ev for its site's subscribers, setting its ID and Time if
// they are empty. It never blocks: with the queue full the event is
// dropped, logged and counted. It has the signature of server.Config.Notify.
func (d *Dispatcher) Notify(_ context.Context, ev proto.WebhookEvent) {
	d.enqueue(job{ev: ev})
}

// Test queues a test event for subscription w alone, whatever its filter,
// and returns it.
func (d *Dispatcher) Test(w *store.Webhook, by string) proto.WebhookEvent {
	ev := proto.WebhookEvent{ID: NewID("ev_"), Type: proto.WebhookTest, Time: d.cfg.Now().UTC(), Site: w.Site, By: by}
	d.enqueue(job{ev: ev, only: w})
	return ev
}

func (d *Dispatcher) enqueue(j job) {
	if j.ev.ID == "" {
		j.ev.ID = NewID("ev_")
	}
	if j.ev.Time.IsZero() {
		j.ev.Time = d.cfg.Now().UTC()
	}
	if j.ev.Site == "" {
		return // no site, no subscribers
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	select {
	case d.queue <- j:
		d.pending++
	default:
		d.stats.Dropped++
		d.mDropped.Inc()
		d.log.Warn("webhook queue full; event dropped", "event", j.ev.Type, "id", j.ev.ID, "site", j.ev.Site, "session", j.ev.Session)
	}
}

// done marks n pending units finished.
func (d *Dispatcher) finish(n int) {
	d.mu.Lock()
	d.pending -= n
	if d.pending == 0 {
		d.cond.Broadcast()
	}
	d.mu.Unlock()
}

// Flush waits until every event queued before it is delivered or given up.
func (d *Dispatcher) Flush() {
	d.mu.Lock()
	for d.pending > 0 {
		d.cond.Wait()
	}
	d.mu.Unlock()
}

// Stats returns the counts so far.
func (d *Dispatcher) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Close stops taking events, makes one attempt (or finishes the one under
// way) for each event already queued, within Config.Timeout and a second,
// abandons the deliveries that would wait for a retry (their log says
// pending, abandoned) and returns once every goroutine has stopped.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	close(d.queue)
	close(d.stopping)
	d.mu.Unlock()
	// Events queued before Close (a node's sessions end as it stops) get
	// their attempt under way or the first one, for a bounded time.
	drained := make(chan struct{})
	go func() { <-d.done; d.wg.Wait(); close(drained) }()
	grace := time.NewTimer(d.cfg.Timeout + time.Second)
	defer grace.Stop()
	select {
	case <-drained:
	case <-grace.C:
	}
	d.cancel()
	<-drained
}

func (d *Dispatcher) run() {
	defer close(d.done)
	for j := range d.queue {
		hooks := d.subscribers(j)
		body, err := json.Marshal(&j.ev)
		if err != nil {
			hooks = nil
		}
		for _, w := range hooks {
			if !d.acquire() {
				break // closing
			}
			d.mu.Lock()
			d.pending++
			d.mu.Unlock()
			d.wg.Add(1)
			go func() {
				defer func() { <-d.sem; d.wg.Done(); d.finish(1) }()
				d.deliver(w, j.ev, body)
			}()
		}
		d.finish(1)
	}
}

// acquire takes a delivery slot, waiting while InFlight deliveries run;
// false once the dispatcher is closing.
func (d *Dispatcher) acquire() bool {
	select {
	case d.sem <- struct{}{}:
		if d.ctx.Err() != nil {
			<-d.sem
			return false
		}
		return true
	case <-d.ctx.Done():
		return false
	}
}

// subscribers lists the subscriptions that take j's event.
func (d *Dispatcher) subscribers(j job) []*store.Webhook {
	if j.only != nil {
		return []*store.Webhook{j.only}
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.Timeout)
	defer cancel()
	all, err := d.cfg.Store.Webhooks(ctx, j.ev.Site)
	if err != nil {
		d.log.Error("webhook subscriptions unknown; event dropped", "site", j.ev.Site, "event", j.ev.Type, "err", err)
		return nil
	}
	var out []*store.Webhook
	for _, w := range all {
		if len(w.Events) == 0 || slices.Contains(w.Events, j.ev.Type) {
			out = append(out, w)
		}
	}
	return out
}

// deliver sends one event to one subscription until it is accepted, fails
// for good or runs out of attempts, recording each attempt.
func (d *Dispatcher) deliver(w *store.Webhook, ev proto.WebhookEvent, body []byte) {
	now := d.cfg.Now().UTC()
	rec := &store.WebhookDelivery{ID: NewID("dl_"), Webhook: w.ID, Event: ev.Type, EventID: ev.ID, Status: store.DeliveryPending,
		Created: now, Updated: now}
	log := d.log.With("webhook", w.ID, "site", w.Site, "delivery", rec.ID, "event", ev.Type, "session", ev.Session)
	for attempt := 1; ; attempt++ {
		code, err := d.attempt(w, rec.ID, ev.Type, body)
		rec.Attempts, rec.Code, rec.Updated, rec.LastError = attempt, code, d.cfg.Now().UTC(), ""
		retry := false
		switch {
		case err == nil:
			rec.Status = store.DeliveryDelivered
		case d.ctx.Err() != nil:
			// Signaling is stopping: the delivery stays pending in the log.
			rec.LastError = "abandoned: signaling stopped"
			d.record(log, rec)
			return
		default:
			rec.LastError = errorText(err)
			retry = retryable(code, err) && attempt < d.cfg.MaxAttempts
			rec.Status = store.DeliveryFailed
			if retry {
				rec.Status = store.DeliveryPending
			}
		}
		if !d.record(log, rec) {
			log.Info("webhook removed; delivery stopped", "attempts", attempt)
			return
		}
		switch {
		case err == nil:
			d.count("delivered", func(s *Stats) { s.Delivered++ })
			log.Info("webhook delivered", "attempts", attempt, "code", code)
			return
		case !retry:
			d.count("failed", func(s *Stats) { s.Failed++ })
			log.Warn("webhook delivery failed", "attempts", attempt, "code", code, "err", rec.LastError)
			return
		}
		d.count("retried", func(s *Stats) { s.Retried++ })
		abandon := func() {
			rec.LastError += "; abandoned: signaling stopped"
			d.record(log, rec)
			log.Warn("webhook delivery abandoned: signaling stopped", "attempts", attempt)
		}
		select {
		case <-d.stopping:
			abandon()
			return
		default:
		}
		wait := Backoff(attempt, d.cfg.BaseDelay, d.cfg.MaxDelay, d.cfg.Jitter())
		log.Info("webhook attempt failed; retrying", "attempt", attempt, "code", code, "err", rec.LastError, "wait", wait)
		select {
		case <-d.cfg.After(wait):
		case <-d.stopping:
			abandon()
			return
		}
	}
}

func (d *Dispatcher) count(result string, f func(*Stats)) {
	d.mDeliveries.WithLabelValues(result).Inc()
	d.mu.Lock()
	f(&d.stats)
	d.mu.Unlock()
}

// record stores rec in its subscription's log, and reports false when the
// subscription is gone (its deliveries stop).
func (d *Dispatcher) record(log *slog.Logger, rec *store.WebhookDelivery) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Timeout)
	defer cancel()
	err := d.cfg.Store.PutDelivery(ctx, rec, d.cfg.Keep)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		log.Error("record webhook delivery", "err", err)
	}
	return true
}

// errStatus is an answer that is not 2xx.
type errStatus struct{ code int }

func (e errStatus) Error() string {
	if e.code >= 300 && e.code < 400 {
		return "the endpoint answered " + strconv.Itoa(e.code) + " " + http.StatusText(e.code) + " (redirects are not followed)"
	}
	return "the endpoint answered " + strconv.Itoa(e.code) + " " + http.StatusText(e.code)
}

// retryable: no answer, a 5xx, 408 or 429. Any other answer (a redirect,
// a 4xx) will not change by asking again.
func retryable(code int, err error) bool {
	if errors.Is(err, ErrRefusedDestination) {
		return false
	}
	return code == 0 || code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// attempt POSTs body once and returns the status (0 without an answer).
func (d *Dispatcher) attempt(w *store.Webhook, delivery, typ string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "porthole-webhook/1")
	req.Header.Set(proto.WebhookEventHeader, typ)
	req.Header.Set(proto.WebhookDeliveryHeader, delivery)
	req.Header.Set(proto.WebhookSignatureHeader, Sign(w.Secret, d.cfg.Now(), body))
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, errStatus{resp.StatusCode}
	}
	return resp.StatusCode, nil
}

// CheckURL validates a subscription's endpoint under this dispatcher's
// AllowPrivate (the package's CheckURL).
func (d *Dispatcher) CheckURL(raw string) error {
	_, err := CheckURL(raw, d.cfg.AllowPrivate)
	return err
}
