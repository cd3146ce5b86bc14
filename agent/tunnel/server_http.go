package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/porthole-dev/porthole/internal/redact"
	"github.com/porthole-dev/porthole/proto"
)

// errHandlerDone closes the request body pipe once the handler returned.
var errHandlerDone = errors.New("tunnel: handler returned")

// httpExchange is the agent side of one HTTP exchange: the loop feeds the
// request body into a pipe the handler reads; the handler's response goes
// out as FrameResponse, FrameData… and FrameEnd.
type httpExchange struct {
	out  *outDir
	log  *slog.Logger
	pr   *io.PipeReader // nil when the request has no body
	pw   *io.PipeWriter
	want int64 // declared length, -1 unknown
	fin  chan struct{}

	start    time.Time
	observed func(ExchangeResult) // Server.Observe's, or nil
	gotN     atomic.Int64         // request body bytes received; read by the observer on the handler's goroutine
}

// startHTTP starts an HTTP exchange whose handler runs through spawn.
func (ss *Session) startHTTP(ch *Channel, log *slog.Logger, payload []byte, spawn func(func())) agentExchange {
	head, err := proto.DecodeRequestHead(payload)
	if err != nil {
		return ss.refuse(ch, log, "request", err)
	}
	if ss.srv.HTTP == nil {
		return ss.refuse(ch, log, "request", proto.Errorf(proto.CodePortNotAllowed, "no HTTP service"))
	}
	h, err := ss.srv.HTTP(head.Port)
	if err != nil {
		return ss.refuse(ch, log, "request", asRefusal(err, proto.CodeInternal))
	}
	out := newOutDir(ss.ctx, ch)
	var body io.ReadCloser = http.NoBody
	var pr *io.PipeReader
	var pw *io.PipeWriter
	if head.ContentLength != 0 {
		pr, pw = io.Pipe()
		body = pr
	}
	ctx := out.ctx
	if ss.srv.RequestContext != nil {
		ctx = ss.srv.RequestContext(ctx, head)
	}
	req, err := NewRequest(ctx, head, body)
	if err != nil {
		out.stopFn()
		return ss.refuse(ch, log, "request", err)
	}
	start := time.Now()
	observed, err := ss.observe(Exchange{Kind: "http", Stream: int(ch.ID()), Method: head.Method, Target: head.Target, Port: head.Port, Start: start, Via: proto.ViaWebRTC})
	if err != nil {
		out.stopFn()
		return ss.refuse(ch, log, "request", asRefusal(err, proto.CodeInternal))
	}
	x := &httpExchange{
		out:      out,
		log:      log,
		pr:       pr,
		pw:       pw,
		want:     head.ContentLength,
		fin:      make(chan struct{}),
		start:    start,
		observed: observed,
	}
	log.Debug("tunnel: request", "method", head.Method, "target", redact.Target(head.Target), "port", head.Port)
	spawn(func() { x.serve(h, req) })
	return x
}

// NewRequest builds the request a device handler gets for a tunnelled (or
// otherwise carried) request head, with body as its body (http.NoBody for
// none) and ctx as its context. The head must have passed
// proto.RequestHead.Validate; a target that is not origin-form is refused
// with bad_request.
func NewRequest(ctx context.Context, head *proto.RequestHead, body io.ReadCloser) (*http.Request, error) {
	u, err := url.ParseRequestURI(head.Target)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return nil, proto.Errorf(proto.CodeBadRequest, "request target is not origin-form")
	}
	hdr := head.Header
	if hdr == nil {
		hdr = http.Header{}
	}
	return (&http.Request{
		Method:        head.Method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		Body:          body,
		ContentLength: head.ContentLength,
		RequestURI:    head.Target,
	}).WithContext(ctx), nil
}

// serve runs the handler and ends the agent's direction.
func (x *httpExchange) serve(h http.Handler, req *http.Request) {
	defer close(x.fin)
	defer x.out.stopFn()
	res := ServeHTTP(h, req, frameSink{x.out}, x.log)
	if x.pr != nil {
		_ = x.pr.CloseWithError(errHandlerDone)
	}
	if x.observed != nil {
		res.ReqBytes, res.Duration, res.Context = x.gotN.Load(), time.Since(x.start), req.Context()
		x.observed(res)
	}
}

// ResponseSink receives a response ServeHTTP produces: at most one head,
// body chunks of 1 to proto.MaxChunk bytes, then End, or Abort at any
// point instead. An error from Head, Data or End stops the response; the
// sink is then aborted with it.
type ResponseSink interface {
	Head(h *proto.ResponseHead) error
	Data(p []byte) error
	End() error
	Abort(err error)
}

// frameSink sends a response as tunnel frames on a data channel.
type frameSink struct{ out *outDir }

func (f frameSink) Head(h *proto.ResponseHead) error {
	payload, err := proto.EncodeHead(h)
	if err != nil {
		return fmt.Errorf("device response head: %w", err)
	}
	return f.out.send(proto.FrameResponse, payload)
}
func (f frameSink) Data(p []byte) error { return f.out.send(proto.FrameData, p) }
func (f frameSink) End() error          { return f.out.send(proto.FrameEnd, nil) }
func (f frameSink) Abort(err error)     { f.out.abort(err) }

// ServeHTTP runs h for req and sends the response to sink, applying the
// tunnel's response rules (hop-by-hop fields removed, header fields
// capped, informational responses dropped, cookies to mirror in the head).
// It is shared by the data-channel tunnel and the signaling fallback, so a
// request is answered the same way whichever path it took. The result has
// Status, RespBytes and Err set.
func ServeHTTP(h http.Handler, req *http.Request, sink ResponseSink, log *slog.Logger) ExchangeResult {
	rw := &responseWriter{sink: sink, header: http.Header{}}
	panicked := runHandler(h, rw, req, log)
	if panicked && rw.err == nil {
		rw.err = proto.Errorf(proto.CodeDeviceFailed, "response from the device failed")
	}
	switch {
	case panicked:
		sink.Abort(proto.Errorf(proto.CodeDeviceFailed, "response from the device failed"))
	case rw.err != nil:
		sink.Abort(rw.err)
	default:
		if !rw.wroteHeader {
			rw.WriteHeader(http.StatusOK)
		}
		if rw.err != nil {
			sink.Abort(rw.err)
		} else if err := sink.End(); err != nil {
			rw.err = err
			sink.Abort(err)
		}
	}
	return ExchangeResult{Status: rw.status, RespBytes: rw.written, Err: rw.err}
}

func runHandler(h http.Handler, rw *responseWriter, req *http.Request, log *slog.Logger) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			if r != http.ErrAbortHandler {
				log.Error("tunnel: handler panic", "panic", r, "stack", string(debug.Stack()))
			}
		}
	}()
	h.ServeHTTP(rw, req)
	return false
}

func (x *httpExchange) data(p []byte) error {
	if x.pw == nil {
		return proto.Errorf(proto.CodeBadMessage, "data for a request without body")
	}
	if got := x.gotN.Add(int64(len(p))); x.want >= 0 && got > x.want {
		return proto.Errorf(proto.CodeBadMessage, "request body longer than its declared length %d", x.want)
	}
	// Blocks until the handler consumed p (flow control towards the
	// client); fails once the handler is done, and the rest is discarded.
	_, _ = x.pw.Write(p)
	return nil
}

func (x *httpExchange) end() error {
	if x.pw != nil {
		if x.want >= 0 && x.gotN.Load() < x.want {
			_ = x.pw.CloseWithError(io.ErrUnexpectedEOF)
		} else {
			_ = x.pw.Close()
		}
	}
	return nil
}

func (x *httpExchange) aborted(e *proto.Error) {
	if x.pw != nil {
		_ = x.pw.CloseWithError(e)
	}
	x.out.abort(proto.Errorf(proto.CodeCanceled, "request aborted by the client"))
}

func (x *httpExchange) cancel(err error) {
	if x.pw != nil {
		_ = x.pw.CloseWithError(err)
	}
	x.out.abort(err)
}

func (x *httpExchange) done() <-chan struct{} { return x.fin }

// responseWriter hands the handler's response to a ResponseSink.
type responseWriter struct {
	sink        ResponseSink
	header      http.Header
	cookies     []string // for ResponseHead.Cookies
	deleted     []string // for ResponseHead.DeletedCookies
	legacyTLS   *proto.LegacyTLS
	wroteHeader bool
	err         error
	status      int   // the status sent
	written     int64 // response body bytes sent
}

var _ http.Flusher = (*responseWriter)(nil)

// MirrorCookies adds "name=value" pairs to the response head's cookies,
// which the browser side mirrors into its own store (the device's
// Set-Cookie stays in the agent's jar). It implements
// deviceproxy.CookieMirror; calls after the header was written are lost.
func (w *responseWriter) MirrorCookies(pairs []string) {
	if w.wroteHeader {
		return
	}
	for _, c := range pairs {
		if len(w.cookies) < proto.MaxHeaders {
			w.cookies = append(w.cookies, c)
		}
	}
}

// DeleteCookies names cookies the browser side should delete from its own
// store (deviceproxy.CookieDeleter).
func (w *responseWriter) DeleteCookies(names []string) {
	if w.wroteHeader {
		return
	}
	for _, n := range names {
		if len(w.deleted) < proto.MaxHeaders {
			w.deleted = append(w.deleted, n)
		}
	}
}

// ReportLegacyTLS marks the response as carried over legacy TLS
// (deviceproxy.LegacyTLSReporter).
func (w *responseWriter) ReportLegacyTLS(l *proto.LegacyTLS) {
	if !w.wroteHeader {
		w.legacyTLS = l
	}
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader || w.err != nil {
		return
	}
	if code >= 100 && code <= 199 {
		return // informational responses are not forwarded; 101 cannot be served
	}
	if code < 200 || code > 999 {
		w.err = proto.Errorf(proto.CodeDeviceFailed, "invalid status %d", code)
		return
	}
	w.wroteHeader = true
	hdr := w.header.Clone()
	proto.StripHopByHop(hdr)
	n := 0
	for _, vs := range hdr {
		n += len(vs)
	}
	if n > proto.MaxHeaders {
		w.err = proto.Errorf(proto.CodeTooLarge, "device response has %d header fields, limit %d", n, proto.MaxHeaders)
		return
	}
	if len(hdr) == 0 {
		hdr = nil
	}
	if err := w.sink.Head(&proto.ResponseHead{Status: code, Header: hdr, Cookies: w.cookies,
		DeletedCookies: w.deleted, TLS: w.legacyTLS}); err != nil {
		w.err = err
		return
	}
	w.status = code
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		chunk := p
		if len(chunk) > proto.MaxChunk {
			chunk = chunk[:proto.MaxChunk]
		}
		if err := w.sink.Data(chunk); err != nil {
			w.err = err
			return n, err
		}
		n += len(chunk)
		w.written += int64(len(chunk))
		p = p[len(chunk):]
	}
	return n, nil
}

// Flush is a no-op: every Write is sent at once.
func (w *responseWriter) Flush() {}
