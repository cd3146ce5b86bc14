package daemon

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/agent/accesslog"
	"github.com/porthole-dev/porthole/agent/termrec"
	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/internal/redact"
	"github.com/porthole-dev/porthole/proto"
)

// Clock is the agent's time for session lifetimes. Tests inject a fake to
// end a session at an exact instant; nil means the real clock.
type Clock interface {
	Now() time.Time
	// AfterFunc runs f on its own goroutine after d; the returned
	// function stops it.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Access-log shipping.
const (
	// shipEvery re-checks for entries to ship and batches to resend.
	shipEvery = time.Second
	// resendAfter re-sends a batch that got no acknowledgement.
	resendAfter = 10 * time.Second
)

// observe is the tunnel's Observe for session s: every exchange takes
// room in the access log before it is served (fail-closed) and records
// its entry when it ends.
func (a *Agent) observe(s *session) func(tunnel.Exchange) (func(tunnel.ExchangeResult), error) {
	return func(x tunnel.Exchange) (func(tunnel.ExchangeResult), error) {
		slot, err := a.alog.Begin(s.id)
		if err != nil {
			a.log.Warn("exchange refused: the access log is full", "session", s.id, "stats", a.alog.Stats())
			return nil, err
		}
		port := x.Port
		if port == 0 {
			port = s.device.cfg.HTTPPort
		}
		return func(r tunnel.ExchangeResult) {
			// Query strings leave the agent redacted, as form fields do.
			e := proto.AccessEntry{Kind: x.Kind, Time: x.Start.UTC(), Method: x.Method, URL: truncate(redact.Target(x.Target), proto.MaxTarget), Port: port,
				Status: r.Status, ReqBytes: r.ReqBytes, RespBytes: r.RespBytes,
				DurationUS: r.Duration.Microseconds(), Stream: x.Stream, Via: x.Via, Service: serviceOn(s.device.cfg.Services, port), ViewOnly: x.ViewOnly}
			if x.Kind == proto.AccessHTTP {
				e.Change = s.policy.change(x.Method, x.Target)
			}
			if r.Err != nil {
				e.Error = proto.CodeOf(r.Err)
				var rf *refusal
				if errors.As(r.Err, &rf) {
					e.Refused = truncate(rf.pe.Message, proto.MaxRefusal)
				}
			}
			if n := noteOf(r.Context); n != nil {
				n.mu.Lock()
				if n.refused != "" {
					e.Refused, e.Error = truncate(n.refused, proto.MaxRefusal), proto.CodeForbidden
				}
				e.Form = n.form
				n.mu.Unlock()
			}
			slot.Commit(e)
		}, nil
	}
}

// shipAccessLog sends the access log's due batches on the signaling
// connection whenever there are any, until ctx ends.
func (a *Agent) shipAccessLog(ctx context.Context) {
	ship(ctx, a, a.alog.Notify(), a.alog.Due, a.alog.Rewind, func(b accesslog.Batch) error {
		err := a.send(proto.TypeAccessLog, b.Session, &b.Log)
		if err != nil {
			a.log.Debug("access log not sent; it is sent again after reconnecting", "session", b.Session, "err", err)
		}
		return err
	})
}

// shipRecordings sends the terminal recordings' due chunks on the
// signaling connection whenever there are any, until ctx ends; what a
// dropped connection did not get acknowledged is sent again on the next
// (handle's Rewind on welcome).
func (a *Agent) shipRecordings(ctx context.Context) {
	ship(ctx, a, a.recs.Notify(), a.recs.Due, a.recs.Rewind, func(b termrec.Batch) error {
		err := a.send(proto.TypeRecording, b.Session, &b.Chunk)
		if err != nil {
			a.log.Debug("terminal recording not sent; it is sent again after reconnecting", "session", b.Session, "err", err)
		}
		return err
	})
}

// ship is the loop of both: whenever there is news (notify) or every
// shipEvery, while connected, it sends what due says is due (new, or
// unacknowledged for resendAfter) and rewinds on the first failure, so
// everything goes again on the next connection.
func ship[B any](ctx context.Context, a *Agent, notify <-chan struct{}, due func(time.Time, time.Duration) []B, rewind func(), send func(B) error) {
	t := time.NewTicker(shipEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-notify:
		case <-t.C:
		}
		if !a.connected.Load() {
			continue
		}
		for _, b := range due(time.Now(), resendAfter) {
			if send(b) != nil {
				rewind()
				break
			}
		}
	}
}

// candType is the type word that starts a peerconn.Path description
// ("relay udp 203.0.113.30:40000 …").
func candType(desc string) string {
	t, _, _ := strings.Cut(desc, " ")
	if len(t) > 16 {
		return ""
	}
	return t
}

// serviceOn is the kind of the declared service on port, or "".
func serviceOn(services []proto.Service, port int) proto.ServiceKind {
	for _, sv := range services {
		if sv.Port == port {
			return sv.Kind
		}
	}
	return ""
}
