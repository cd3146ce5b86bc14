package tunnel

import (
	"context"
	"time"
)

// Exchange describes an exchange about to be served, for Server.Observe.
type Exchange struct {
	Kind   string // "http" or "tcp" (proto.AccessHTTP, proto.AccessTCP)
	Stream int    // the data channel's ID
	Method string // HTTP only
	Target string // HTTP only: the origin-form request target
	Port   int    // the device port (0: its web port)
	Start  time.Time
	Via    string // the path it took: proto.ViaWebRTC, or proto.ViaSignaling (agent/fallback)
	// ViewOnly: a TCP stream the agent filters to a VNC viewer's
	// picture messages (agent/rfbfilter).
	ViewOnly bool
}

// ExchangeResult is how an exchange ended.
type ExchangeResult struct {
	Status    int   // HTTP status sent; 0 if none
	ReqBytes  int64 // request body, or bytes to the device for TCP
	RespBytes int64 // response body, or bytes from the device
	Duration  time.Duration
	Err       error // non-nil when it did not complete
	// Context is an HTTP request's context as its handler saw it (what
	// Server.RequestContext made), so the observer can read what the
	// handler recorded there; nil for other exchanges.
	Context context.Context
}

type viewOnlyKey struct{}

// ViewOnly reports whether the context Server.DialTCP got is a stream the
// tunnel keeps view-only (rfbfilter drops the viewer's input), so a
// policy may allow it where it allows only viewing.
func ViewOnly(ctx context.Context) bool {
	v, _ := ctx.Value(viewOnlyKey{}).(bool)
	return v
}

// observe asks srv.Observe about x: it returns the function to call with
// the outcome (nil without an observer) or the refusal.
func (ss *Session) observe(x Exchange) (func(ExchangeResult), error) {
	if ss.srv.Observe == nil {
		return nil, nil
	}
	return ss.srv.Observe(x)
}
