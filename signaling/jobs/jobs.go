// Package jobs keeps every session as an audited job: it records the
// session's lifecycle (from the hub's events) in the store, and stores the
// access log its agent ships — each entry once, in sequence, hash-chained
// in the session's own audit stream with a signed checkpoint of its head.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/internal/redact"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/auditlog"
	"github.com/porthole-dev/porthole/signaling/hub"
	"github.com/porthole-dev/porthole/signaling/store"
)

// Config configures a Recorder.
type Config struct {
	Store  store.Store
	Signer *auditlog.Signer // signs and anchors every append (auditlog.Checkpointed); required
	Logger *slog.Logger     // nil discards
	Node   string
	Now    func() time.Time // nil means time.Now
}

// Recorder writes jobs and access logs. Create it with New and Close it
// after the hub that feeds it.
type Recorder struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []hub.Event
	busy    bool // run is writing a batch
	closing bool
	done    chan struct{}
}

// New starts a recorder: one goroutine that applies hub events to the
// store in order.
func New(cfg Config) (*Recorder, error) {
	if cfg.Store == nil || cfg.Signer == nil {
		return nil, errors.New("jobs: a store and a signer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Store = auditlog.Checkpointed(cfg.Store, cfg.Signer, cfg.Now)
	r := &Recorder{cfg: cfg, log: cfg.Logger, done: make(chan struct{})}
	r.cond = sync.NewCond(&r.mu)
	go r.run()
	return r, nil
}

// Event queues a hub event; it never blocks (hub.Options.Events).
func (r *Recorder) Event(e hub.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		r.log.Error("job event after close; lost", "session", e.Session, "state", e.State)
		return
	}
	r.queue = append(r.queue, e)
	r.cond.Signal()
}

// Close writes the events queued so far and stops the recorder.
func (r *Recorder) Close() {
	r.mu.Lock()
	r.closing = true
	r.cond.Signal()
	r.mu.Unlock()
	<-r.done
}

// Flush waits until every event queued before it is written.
func (r *Recorder) Flush() {
	r.mu.Lock()
	for len(r.queue) > 0 || r.busy {
		r.cond.Wait()
	}
	r.mu.Unlock()
}

func (r *Recorder) run() {
	defer close(r.done)
	r.mu.Lock()
	for {
		for len(r.queue) == 0 && !r.closing {
			r.cond.Wait()
		}
		if len(r.queue) == 0 {
			r.mu.Unlock()
			return
		}
		batch := r.queue
		r.queue = nil
		r.busy = true
		r.mu.Unlock()
		for _, e := range batch {
			r.apply(e)
		}
		r.mu.Lock()
		r.busy = false
		r.cond.Broadcast()
	}
}

const writeTimeout = 10 * time.Second

// apply writes one event to the session's job.
func (r *Recorder) apply(e hub.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	st := r.cfg.Store
	if e.State == hub.EventRequested {
		site := ""
		if a, err := st.Agent(ctx, e.Agent); err == nil {
			site = a.Site
		}
		j := &store.Job{ID: e.Session, Type: store.JobWebpage, User: e.User, Agent: e.Agent, Device: e.Device,
			DeviceName: e.DeviceName, Site: site, Node: r.cfg.Node, State: store.JobRequested, Created: e.Time.UTC(), Expires: e.Expires.UTC(),
			States: []store.JobTransition{{State: store.JobRequested, Time: e.Time.UTC()}}, Approval: e.Approval}
		if err := st.PutJob(ctx, j); err != nil {
			r.log.Error("record job", "session", e.Session, "err", err)
		}
		return
	}
	_, err := st.UpdateJob(ctx, e.Session, func(j *store.Job) error {
		if e.User == "" && j.Agent != e.Agent {
			return errForeign // an agent's report for a session it does not serve
		}
		if j.State == store.JobEnded {
			return errDone
		}
		t := store.JobTransition{Time: e.Time.UTC()}
		switch e.State {
		case hub.EventVerifying:
			t.State = store.JobVerifying
		case hub.EventReady:
			t.State = store.JobReady
		case hub.EventConnected:
			t.State, t.Detail = store.JobConnected, e.Path
			if e.Detail != "" {
				t.Detail = e.Detail
			}
			j.Path = e.Path
			j.Relays = movedTo(j.Relays, e.Relay, t.Time)
		case hub.EventEnded:
			t.State, t.Detail = store.JobEnded, e.Reason
			j.Ended, j.EndReason, j.EndMessage, j.EndedBy = t.Time, e.Reason, e.Message, e.By
			j.Relays = movedTo(j.Relays, "", t.Time)
		default:
			return fmt.Errorf("unknown event %q", e.State)
		}
		j.State = t.State
		if len(j.States) < maxTransitions || t.State == store.JobEnded {
			j.States = append(j.States, t)
		}
		return nil
	})
	switch {
	case err == nil, errors.Is(err, errDone), errors.Is(err, errForeign):
	default:
		r.log.Error("record job state", "session", e.Session, "state", e.State, "err", err)
	}
}

// maxTransitions bounds a job's state history (a flapping path), and
// maxRelays its list of relays.
const (
	maxTransitions = 64
	maxRelays      = 16
)

// movedTo records that at t the session went through relay ("" for no
// relay: a direct path, or the end): the relay it used until then, if
// another, is closed, and relay opened unless it is the current one.
func movedTo(relays []proto.JobRelay, relay string, t time.Time) []proto.JobRelay {
	if n := len(relays); n > 0 && relays[n-1].Until.IsZero() {
		if relays[n-1].Relay == relay {
			return relays
		}
		relays[n-1].Until = t
	}
	if relay == "" || len(relays) >= maxRelays {
		return relays
	}
	return append(relays, proto.JobRelay{Relay: relay, From: t})
}

var (
	errDone    = errors.New("job already ended")
	errForeign = errors.New("not this agent's session")
)

// SweepExpired ends the jobs that a previous run of signaling left open and
// whose time is up: no session outlives its expiry (the agent enforces it
// from its grant), so they ended by then at the latest.
func (r *Recorder) SweepExpired(ctx context.Context) (int, error) {
	now := r.cfg.Now()
	jobs, err := r.cfg.Store.Jobs(ctx, time.Time{}, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, j := range jobs {
		if j.State == store.JobEnded || now.Before(j.Expires) {
			continue
		}
		_, err := r.cfg.Store.UpdateJob(ctx, j.ID, func(j *store.Job) error {
			if j.State == store.JobEnded {
				return errDone
			}
			j.State, j.Ended, j.EndReason = store.JobEnded, j.Expires, string(proto.EndExpired)
			j.EndMessage = "the session's time limit was reached (recorded after a signaling restart)"
			j.States = append(j.States, store.JobTransition{State: store.JobEnded, Time: j.Expires, Detail: j.EndReason})
			j.Relays = movedTo(j.Relays, "", j.Expires)
			return nil
		})
		if err == nil {
			n++
		} else if !errors.Is(err, errDone) {
			return n, err
		}
	}
	return n, nil
}

// Recording stores a chunk of session's terminal recording from agent
// (hub.Options.Recording), bounded by proto.MaxRecording, and returns the
// last chunk number stored, which the agent takes as acknowledged. A chunk
// past the bound (only an agent that ignores it sends one) is dropped and
// acknowledged, so the recording stays bounded.
func (r *Recorder) Recording(ctx context.Context, agent, session string, c *proto.RecordingChunk) (uint64, error) {
	j, err := r.Job(ctx, session)
	if errors.Is(err, store.ErrNotFound) {
		return 0, proto.Errorf(proto.CodeSessionNotFound, "no session %s", session)
	}
	if err != nil {
		return 0, proto.Errorf(proto.CodeUnavailable, "recording: %v", err)
	}
	if j.Agent != agent {
		return 0, proto.Errorf(proto.CodeSessionNotFound, "no session %s for this agent", session)
	}
	head, err := r.cfg.Store.AppendRecording(ctx, session, c.Seq, []byte(c.Data), proto.MaxRecording)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrConflict):
		r.log.Warn("terminal recording gap", "session", session, "agent", agent, "chunk", c.Seq, "stored", head)
	case errors.Is(err, store.ErrBadRecord):
		r.log.Warn("terminal recording over its bound: chunk dropped", "session", session, "agent", agent, "chunk", c.Seq, "limit_bytes", proto.MaxRecording)
	default:
		return 0, proto.Errorf(proto.CodeUnavailable, "recording: %v", err)
	}
	return head, nil
}

// AccessLog stores a batch of agent's access log for session
// (hub.Options.AccessLog): each entry whose sequence number is the next
// one of the session's stream, skipping those already stored; the store
// (auditlog.Checkpointed) signs and anchors the stream's head before the
// batch counts as stored. It returns the highest sequence number
// stored, which the agent takes as acknowledged.
func (r *Recorder) AccessLog(ctx context.Context, agent, session string, l *proto.AccessLog) (uint64, error) {
	st := r.cfg.Store
	j, err := r.Job(ctx, session)
	if errors.Is(err, store.ErrNotFound) {
		return 0, proto.Errorf(proto.CodeSessionNotFound, "no session %s", session)
	}
	if err != nil {
		return 0, proto.Errorf(proto.CodeUnavailable, "access log: %v", err)
	}
	if j.Agent != agent {
		return 0, proto.Errorf(proto.CodeSessionNotFound, "no session %s for this agent", session)
	}
	stream := store.SessionStream(session)
	batch := make([]*store.AuditEntry, len(l.Entries))
	for i := range l.Entries {
		batch[i] = ToAudit(j, &l.Entries[i])
	}
	// One store transaction for the whole batch: entries already stored
	// (re-sent after a reconnect) are skipped, and a gap stops the batch
	// (the agent re-sends from what we acknowledge).
	stored, err := st.AppendAuditBatch(ctx, stream, batch)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrConflict):
		r.log.Warn("access log gap", "session", session, "agent", agent, "stored", len(stored))
	default:
		return 0, proto.Errorf(proto.CodeUnavailable, "access log: %v", err)
	}
	var head *store.AuditEntry
	var add store.Job // totals of the entries stored now
	var screen int64  // of add.TCP, the streams to the device's VNC service
	var term int64    // of add.TCP, the streams (terminals) to its SSH service
	k := 0
	for i := range l.Entries {
		e := &l.Entries[i]
		if k == len(stored) || stored[k].Seq != e.Seq {
			continue // not stored now
		}
		head = stored[k]
		k++
		if e.Kind == proto.AccessTCP {
			add.TCP++
			switch e.Service {
			case proto.ServiceVNC:
				screen++
			case proto.ServiceSSH:
				term++
			}
		} else {
			add.Requests++
		}
		add.ReqBytes += e.ReqBytes
		add.RespBytes += e.RespBytes
		add.LogSeq = e.Seq
		if e.Change {
			add.Changes++
		}
		if e.Refused != "" {
			add.Refused++
		}
	}
	if head != nil {
		_, err := st.UpdateJob(ctx, session, func(j *store.Job) error {
			j.Requests += add.Requests
			j.TCP += add.TCP
			j.ReqBytes += add.ReqBytes
			j.RespBytes += add.RespBytes
			j.LogSeq = max(j.LogSeq, add.LogSeq)
			j.Changes += add.Changes
			j.Refused += add.Refused
			switch {
			case term > 0 || j.Type == store.JobTerminal:
				// A terminal on the device's SSH service (the session
				// window's own pages are requests of the session too).
				j.Type = store.JobTerminal
			case j.TCP > 0 && j.Requests == 0 && screen == add.TCP && (j.TCP == add.TCP || j.Type == store.JobScreen):
				// Every stream so far went to the device's VNC service:
				// its screen (the type says so for the earlier batches).
				j.Type = store.JobScreen
			case j.TCP > 0 && j.Requests == 0:
				j.Type = store.JobPort
			default:
				j.Type = store.JobWebpage
			}
			return nil
		})
		if err != nil {
			r.log.Error("update job totals", "session", session, "err", err)
		}
	}
	// The acknowledgement is the stream's real head, wherever the job's
	// counter stands.
	ack := max(j.LogSeq, add.LogSeq)
	for {
		more, err := st.Audit(ctx, stream, ack, 1000)
		if err != nil {
			return 0, proto.Errorf(proto.CodeUnavailable, "access log: %v", err)
		}
		if len(more) == 0 {
			return ack, nil
		}
		ack = more[len(more)-1].Seq
	}
}

// Job returns job id; one whose session's events are still queued is
// written first.
func (r *Recorder) Job(ctx context.Context, id string) (*store.Job, error) {
	j, err := r.cfg.Store.Job(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		r.Flush()
		j, err = r.cfg.Store.Job(ctx, id)
	}
	return j, err
}

// ToAudit turns an access entry of job j into its stored form.
func ToAudit(j *store.Job, e *proto.AccessEntry) *store.AuditEntry {
	d := map[string]string{
		"kind":       e.Kind,
		"reqBytes":   strconv.FormatInt(e.ReqBytes, 10),
		"respBytes":  strconv.FormatInt(e.RespBytes, 10),
		"durationUs": strconv.FormatInt(e.DurationUS, 10),
		"stream":     strconv.Itoa(e.Stream),
	}
	if e.Method != "" {
		d["method"] = e.Method
	}
	if e.URL != "" {
		d["url"] = e.URL
	}
	if e.Port != 0 {
		d["port"] = strconv.Itoa(e.Port)
	}
	if e.Status != 0 {
		d["status"] = strconv.Itoa(e.Status)
	}
	if e.Error != "" {
		d["error"] = string(e.Error)
	}
	if e.Via != "" {
		d["via"] = e.Via // absent from entries older than the fallback: their hashes stay
	}
	if e.Service != "" {
		d["service"] = string(e.Service)
	}
	if e.ViewOnly {
		d["viewOnly"] = "true"
	}
	// What changed (issue 18), each absent when unset so older entries'
	// hashes stay. The agent redacted the URL and the form; they are
	// redacted here again, so an older agent's secrets never reach the
	// store either.
	if e.URL != "" {
		d["url"] = redact.Target(e.URL)
	}
	if e.Change {
		d["change"] = "true"
	}
	if e.Refused != "" {
		d["refused"] = e.Refused
	}
	if f := redact.Fields(e.Form); f != nil {
		b, _ := json.Marshal(f)
		d["form"] = string(b)
	}
	target := d["url"]
	if e.Kind == proto.AccessTCP {
		target = "port " + strconv.Itoa(e.Port)
	}
	return &store.AuditEntry{Seq: e.Seq, Time: e.Time.UTC(), Actor: j.User, Action: "access." + e.Kind,
		Target: target, Site: j.Site, Detail: d}
}

// FromAudit turns a stored access-log entry back into an access entry.
func FromAudit(a *store.AuditEntry) proto.AccessEntry {
	d := a.Detail
	i := func(k string) int64 { n, _ := strconv.ParseInt(d[k], 10, 64); return n }
	return proto.AccessEntry{Seq: a.Seq, Kind: d["kind"], Time: a.Time, Method: d["method"], URL: redact.Target(d["url"]),
		Port: int(i("port")), Status: int(i("status")), ReqBytes: i("reqBytes"), RespBytes: i("respBytes"),
		DurationUS: i("durationUs"), Stream: int(i("stream")), Error: proto.Code(d["error"]), Via: d["via"],
		Service: proto.ServiceKind(d["service"]), ViewOnly: d["viewOnly"] == "true",
		Change: d["change"] == "true", Refused: d["refused"], Form: formOf(d["form"])}
}

// formOf decodes a stored form ("" for none).
func formOf(s string) *proto.AccessForm {
	if s == "" {
		return nil
	}
	var f proto.AccessForm
	if json.Unmarshal([]byte(s), &f) != nil {
		return nil
	}
	return redact.Fields(&f)
}
