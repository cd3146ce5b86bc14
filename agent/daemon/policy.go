package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/internal/redact"
	"github.com/porthole-dev/porthole/proto"
)

// The site's own policy (issue 18).
//
// The agent's file may set a policy for the whole site ("policy" at the
// top) and for a device ("policy" in its entry, which then replaces the
// site's for that device):
//
//	"policy": {"requireApproval": true, "readOnly": true,
//	           "deny": ["/firmware"], "allow": ["/"], "ports": [80, 22]}
//
// It is a floor that signaling cannot lower. A session whose grant lacks
// a site admin's approval is refused when the policy requires one; a
// grant whose scope is wider than the policy (not read-only when the
// policy is, a denied prefix it does not deny, an allow prefix or a port
// outside the policy's) is refused too, as a sign that signaling and the
// site disagree. A grant without any scope is served under the site's
// policy alone. Every request and stream of a session is then checked
// against both the grant's scope and the site's policy (proto's
// GrantScope.CheckRequest, CheckPort); a refusal never reaches the
// device, answers with a page or an error that says why, and is in the
// access log as refused with its reason.
//
// Without an enrollment there are no grants: the policy still bounds
// every session, and a policy that requires approval refuses them all.

// PolicyConfig is a site's or a device's own policy: requireApproval,
// readOnly, allow, deny, ports. The agent declares it in hello.
type PolicyConfig = proto.AgentPolicy

// validatePolicy checks a policy of the file.
func validatePolicy(p *PolicyConfig, where string) error {
	if p == nil {
		return nil
	}
	if err := p.GrantScope.Validate(); err != nil {
		msg := err.Error()
		var pe *proto.Error
		if errors.As(err, &pe) {
			msg = pe.Message
		}
		return fmt.Errorf("%s policy: %s", where, msg)
	}
	return nil
}

// policyOf is the policy that holds for d: its own, else the site's.
func (a *Agent) policyOf(d *device) *PolicyConfig {
	if d.cfg.Policy != nil {
		return d.cfg.Policy
	}
	return a.cfg.Policy
}

// checkPolicy holds a verified grant (nil without an enrollment) against
// the policy of d and returns the scopes the session is held to.
func (a *Agent) checkPolicy(session string, d *device, g *proto.Grant) (*sessionPolicy, *proto.Error) {
	pol := a.policyOf(d)
	sp := &sessionPolicy{actions: d.cfg.Actions}
	if pol != nil {
		sp.scopes = append(sp.scopes, &pol.GrantScope)
	}
	if g != nil && g.Scope != nil {
		sp.scopes = append(sp.scopes, g.Scope)
	}
	if pol == nil {
		return sp, nil
	}
	refuse := func(format string, args ...any) (*sessionPolicy, *proto.Error) {
		err := proto.Errorf(proto.CodeForbidden, format, args...)
		a.log.Warn("session refused by the site's policy", "session", session, "device", d.cfg.ID, "reason", err.Message)
		return nil, err
	}
	if pol.RequireApproval {
		switch {
		case a.cfg.Enrollment == nil:
			return refuse("device %s requires a site admin's approval, which only a signed grant carries, and this agent is not enrolled", d.cfg.ID)
		case g == nil || g.Approval == nil:
			return refuse("device %s requires a site admin's approval and the session's grant carries none", d.cfg.ID)
		}
	}
	if g != nil && g.Scope != nil {
		if why := g.Scope.Within(&pol.GrantScope); why != "" {
			return refuse("the grant's scope is wider than the site's policy for device %s: %s", d.cfg.ID, why)
		}
	}
	return sp, nil
}

// sessionPolicy is what a session is held to: every scope (the site's,
// the grant's) must allow an exchange.
type sessionPolicy struct {
	scopes  []*proto.GrantScope
	actions []string // the device's action paths (DeviceConfig.Actions)
}

// methodOverrides are the request header fields some web frameworks take
// a request's real method from.
var methodOverrides = []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

// overridden says why a read-only session refuses a request that names
// another method in a header, or "".
func (p *sessionPolicy) overridden(h http.Header) string {
	for _, s := range p.scopes {
		if !s.ReadOnly {
			continue
		}
		for _, k := range methodOverrides {
			if v := h.Get(k); v != "" && !proto.SafeMethod(strings.ToUpper(v)) {
				return proto.ReadOnlyRefusal + " (" + k + ": " + strings.ToUpper(v) + " refused)"
			}
		}
	}
	return ""
}

// request says why an HTTP request is refused, or "".
func (p *sessionPolicy) request(method, target string, port int) string {
	for _, s := range p.scopes {
		if why := s.CheckRequest(method, target); why != "" {
			return why
		}
		if len(s.Ports) > 0 && !containsInt(s.Ports, port) {
			return fmt.Sprintf("The site's policy does not allow port %d in this session", port)
		}
	}
	return ""
}

// websocket says why a WebSocket is refused, or "": its path like a
// request's, and none in a read-only session (messages go both ways).
func (p *sessionPolicy) websocket(target string, port int) string {
	for _, s := range p.scopes {
		if s.ReadOnly {
			return "This session is read-only: the site's policy allows viewing, not live connections that can send changes"
		}
	}
	return p.request(http.MethodGet, target, port)
}

// stream says why a TCP stream (SSH, VNC, a forwarded port) is refused.
// watching is a view-only stream to the device's VNC service (the tunnel
// drops the viewer's input): a read-only session may watch the screen.
func (p *sessionPolicy) stream(port int, watching bool) string {
	for _, s := range p.scopes {
		if watching && s.ReadOnly {
			narrower := *s
			narrower.ReadOnly = false
			if why := narrower.CheckPort(port); why != "" {
				return why
			}
			continue
		}
		if why := s.CheckPort(port); why != "" {
			return why
		}
	}
	return ""
}

// change reports whether a request changes the device's state: a method
// other than GET, HEAD and OPTIONS, or a GET with a query to an action.
func (p *sessionPolicy) change(method, target string) bool {
	switch method {
	case http.MethodGet, http.MethodHead:
		_, q, _ := strings.Cut(target, "?")
		return q != "" && proto.CoversPath(p.actions, target)
	case http.MethodOptions:
		return false
	}
	return true
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// refusal is a policy refusal: the observer records its reason.
type refusal struct{ pe *proto.Error }

func (r *refusal) Error() string { return r.pe.Error() }
func (r *refusal) Unwrap() error { return r.pe }

func refused(why string) error {
	return &refusal{pe: &proto.Error{Code: proto.CodeForbidden, Message: why}}
}

// exchangeNote is what a session's handler records about one HTTP
// request for its access-log entry; it rides in the request's context.
type exchangeNote struct {
	mu      sync.Mutex
	refused string
	form    *proto.AccessForm
}

type noteKey struct{}

func withNote(ctx context.Context) context.Context {
	return context.WithValue(ctx, noteKey{}, &exchangeNote{})
}

func noteOf(ctx context.Context) *exchangeNote {
	if ctx == nil {
		return nil
	}
	n, _ := ctx.Value(noteKey{}).(*exchangeNote)
	return n
}

// requestContext is the session's RequestContext: the client's origin
// and a note for the access log.
func requestContext(ctx context.Context, head *proto.RequestHead) context.Context {
	return withNote(clientOrigin(ctx, head))
}

// maxRefusedBody is how much of a refused request's body is read to
// record its form (a refused upload's file name).
const maxRefusedBody = 64 << 10

// guardHTTP is the session's HTTP service: every request is held to the
// session's policy before the device's handler sees it, and a form
// submission's fields are recorded (redacted) as the handler streams it.
func (a *Agent) guardHTTP(s *session) func(port int) (http.Handler, error) {
	return func(port int) (http.Handler, error) {
		h, err := s.proxy.Handler(port)
		if err != nil {
			return nil, err
		}
		if port == 0 {
			port = s.device.cfg.HTTPPort
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			target := r.RequestURI
			if target == "" {
				target = r.URL.RequestURI()
			}
			note := noteOf(r.Context())
			change := s.policy.change(r.Method, target)
			why := s.policy.request(r.Method, target, port)
			if why == "" {
				why = s.policy.overridden(r.Header)
			}
			if why != "" {
				a.log.Info("request refused by policy", "session", s.id, "device", s.device.cfg.ID, "method", r.Method,
					"target", redact.Target(target), "reason", why)
				if note != nil {
					form := recordForm(r, io.LimitReader(r.Body, maxRefusedBody))
					note.mu.Lock()
					note.refused, note.form = why, form
					note.mu.Unlock()
				}
				writeRefusal(w, r, why)
				return
			}
			if note == nil || !change || r.Body == nil || r.Body == http.NoBody || redact.Encoding(r.Header.Get("Content-Type")) == "" {
				h.ServeHTTP(w, r)
				return
			}
			pr, pw := io.Pipe()
			done := make(chan *proto.AccessForm, 1)
			go func() { done <- redact.Form(r.Header.Get("Content-Type"), pr) }()
			r.Body = &teeBody{ReadCloser: r.Body, w: pw}
			defer func() {
				_ = pw.Close()
				form := <-done
				note.mu.Lock()
				note.form = form
				note.mu.Unlock()
			}()
			h.ServeHTTP(w, r)
		}), nil
	}
}

// recordForm reads a form from body (nil when it is none).
func recordForm(r *http.Request, body io.Reader) *proto.AccessForm {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	return redact.Form(r.Header.Get("Content-Type"), body)
}

// teeBody copies what the device's handler reads of a body to w (the
// form recorder), which never holds it up for long: the recorder always
// drains. A write after the recorder is closed is dropped.
type teeBody struct {
	io.ReadCloser
	w *io.PipeWriter
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if n > 0 {
		_, _ = t.w.Write(p[:n])
	}
	return n, err
}

// writeRefusal answers a refused request: a page for a browser's
// navigation, JSON for everything else.
func writeRefusal(w http.ResponseWriter, r *http.Request, why string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Porthole-Refused", "policy")
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Refused by the site's policy</title>`+
			`<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;color:#1f2328}`+
			`h1{font-size:1.4em}p.why{border-left:4px solid #cf222e;padding:.5em 1em;background:#fff5f5}</style></head><body>`+
			`<h1>Refused by the site's policy</h1><p class="why" id="porthole-refusal">`+html.EscapeString(why)+`</p>`+
			`<p>Nothing was sent to the device. The site's administrators set this policy; ask them if the change is needed.</p>`+
			`</body></html>`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	b, _ := json.Marshal(map[string]string{"error": string(proto.CodeForbidden), "message": why})
	_, _ = w.Write(b)
}

// guardDialTCP is the session's TCP service (streams and terminals),
// held to its policy.
func (a *Agent) guardDialTCP(s *session) func(ctx context.Context, port int) (net.Conn, error) {
	return func(ctx context.Context, port int) (net.Conn, error) {
		watching := tunnel.ViewOnly(ctx) && serviceOn(s.device.cfg.Services, port) == proto.ServiceVNC
		if why := s.policy.stream(port, watching); why != "" {
			a.log.Info("stream refused by policy", "session", s.id, "device", s.device.cfg.ID, "port", port, "reason", why)
			return nil, refused(why)
		}
		return s.proxy.DialTCP(ctx, port)
	}
}

// guardWebSocket is the session's WebSocket service, held to its policy.
func (a *Agent) guardWebSocket(s *session) func(ctx context.Context, o *proto.WSOpen) (tunnel.DeviceWebSocket, *proto.WSOpened, error) {
	return func(ctx context.Context, o *proto.WSOpen) (tunnel.DeviceWebSocket, *proto.WSOpened, error) {
		port := o.Port
		if port == 0 {
			port = s.device.cfg.HTTPPort
		}
		if why := s.policy.websocket(o.Target, port); why != "" {
			a.log.Info("websocket refused by policy", "session", s.id, "device", s.device.cfg.ID, "target", redact.Target(o.Target), "reason", why)
			return nil, nil, refused(why)
		}
		c, opened, err := s.proxy.DialWebSocket(ctx, o)
		if err != nil {
			return nil, nil, err // not a typed nil in the interface
		}
		return c, opened, nil
	}
}
