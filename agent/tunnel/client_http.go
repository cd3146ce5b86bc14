package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/porthole-dev/porthole/proto"
)

type portKey struct{}

// WithPort returns a context whose requests through Client.RoundTrip go to
// the given declared port of the device instead of its web port.
func WithPort(ctx context.Context, port int) context.Context {
	return context.WithValue(ctx, portKey{}, port)
}

func portFrom(ctx context.Context) int {
	p, _ := ctx.Value(portKey{}).(int)
	return p
}

type clientOriginKey struct{}

// WithClientOrigin returns a context whose requests through
// Client.RoundTrip (and DialWebSocket) say they come from pages served on
// origin (proto.RequestHead.ClientOrigin): the agent turns an Origin or
// Referer on it into the device's own, passes any other unchanged, and
// rewrites the device's absolute URLs to it.
func WithClientOrigin(ctx context.Context, origin string) context.Context {
	return context.WithValue(ctx, clientOriginKey{}, origin)
}

// ClientOriginOf returns what WithClientOrigin put in ctx, or "".
func ClientOriginOf(ctx context.Context) string {
	o, _ := ctx.Value(clientOriginKey{}).(string)
	return o
}

func requestHead(req *http.Request) (*proto.RequestHead, error) {
	h := req.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	// Framing and the device's Host come from the tunnel, not the caller.
	proto.StripHopByHop(h, "Content-Length", "Host")
	if len(h) == 0 {
		h = nil
	}
	cl := req.ContentLength
	if req.Body == nil || req.Body == http.NoBody {
		cl = 0
	} else if cl == 0 {
		cl = -1 // a client request with a body and length 0 means unknown
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	head := &proto.RequestHead{
		Method:        method,
		Target:        req.URL.RequestURI(),
		Header:        h,
		ContentLength: cl,
		Port:          portFrom(req.Context()),
	}
	head.ClientOrigin = ClientOriginOf(req.Context())
	if err := head.Validate(); err != nil {
		return nil, err
	}
	return head, nil
}

// RoundTrip sends req through the tunnel to the device's web port (or the
// port set with WithPort). The agent picks the device address and Host;
// req.URL's scheme and host are ignored. A refusal by the agent is an
// error wrapping its *proto.Error.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	closeBody := func() {
		if req.Body != nil {
			_ = req.Body.Close()
		}
	}
	head, err := requestHead(req)
	if origin := ClientOriginOf(ctx); err == nil && origin != "" {
		head.ClientOrigin = origin
		err = head.Validate()
	}
	if err != nil {
		closeBody()
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	payload, err := proto.EncodeHead(head)
	if err != nil {
		closeBody()
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	ch, err := c.get(ctx)
	if err != nil {
		closeBody()
		return nil, err
	}
	x := c.newExchange(ch)
	if err := x.send(ctx, proto.FrameRequest, payload); err != nil {
		x.finish()
		closeBody()
		return nil, err
	}
	stopCancel := context.AfterFunc(ctx, func() { x.abort(proto.Errorf(proto.CodeCanceled, "request cancelled")) })
	if head.ContentLength == 0 {
		closeBody()
		_ = x.send(ctx, proto.FrameEnd, nil)
	} else {
		body := req.Body
		x.bodyClose = func() { _ = body.Close() }
		go x.sendBody(ctx, body, head.ContentLength)
	}

	x.rmu.Lock()
	f, err := x.recv()
	if err == nil && f.Type == proto.FrameData {
		err = proto.Errorf(proto.CodeBadMessage, "data before response head")
	}
	if err != nil {
		x.markBroken()
		x.rmu.Unlock()
		stopCancel()
		x.abort(err)
		x.finish()
		return nil, ctxErr(ctx, err)
	}
	switch f.Type {
	case proto.FrameResponse:
		rh, err := proto.DecodeResponseHead(f.Payload)
		if err != nil {
			x.markBroken()
			x.rmu.Unlock()
			stopCancel()
			x.abort(err)
			x.finish()
			return nil, fmt.Errorf("tunnel: response head: %w", err)
		}
		x.rmu.Unlock()
		hdr := rh.Header
		if hdr == nil {
			hdr = http.Header{}
		}
		// Cookies the agent mirrors (its jar keeps the device's Set-Cookie)
		// reach an HTTP client as cookies of the whole local origin.
		for _, c := range rh.Cookies {
			hdr.Add("Set-Cookie", c+"; Path=/")
		}
		for _, name := range rh.DeletedCookies {
			hdr.Add("Set-Cookie", name+"=; Path=/; Max-Age=0")
		}
		cl := int64(-1)
		if v := hdr.Get("Content-Length"); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				cl = n
			}
		}
		if req.Method == http.MethodHead {
			cl = 0
		}
		return &http.Response{
			Status:        fmt.Sprintf("%d %s", rh.Status, http.StatusText(rh.Status)),
			StatusCode:    rh.Status,
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        hdr,
			Body:          &responseBody{x: x, ctx: ctx, stopCancel: stopCancel},
			ContentLength: cl,
			Request:       req,
		}, nil
	case proto.FrameAbort:
		x.rmu.Unlock()
		stopCancel()
		x.abort(proto.Errorf(proto.CodeCanceled, "refused by the agent"))
		x.finish()
		return nil, ctxErr(ctx, abortError("request refused", f.Payload))
	default:
		x.markBroken()
		x.rmu.Unlock()
		stopCancel()
		x.abort(proto.Errorf(proto.CodeBadMessage, "unexpected %s frame", f.Type))
		x.finish()
		return nil, fmt.Errorf("tunnel: unexpected %s frame instead of a response head", f.Type)
	}
}

// sendBody streams a request body as data frames, then FrameEnd; a body
// that fails or does not match its declared length aborts the exchange.
func (x *exchange) sendBody(ctx context.Context, body io.ReadCloser, length int64) {
	defer x.bodyOnce.Do(x.bodyClose)
	buf := x.c.bufs.Get()
	defer x.c.bufs.Put(buf)
	var sent int64
	for {
		n, err := body.Read(buf)
		if n > 0 {
			sent += int64(n)
			if length >= 0 && sent > length {
				x.abort(proto.Errorf(proto.CodeBadRequest, "request body longer than its Content-Length"))
				return
			}
			if x.send(ctx, proto.FrameData, buf[:n]) != nil {
				return
			}
		}
		switch {
		case err == io.EOF:
			if length >= 0 && sent != length {
				x.abort(proto.Errorf(proto.CodeBadRequest, "request body shorter than its Content-Length"))
				return
			}
			_ = x.send(ctx, proto.FrameEnd, nil)
			return
		case err != nil:
			x.abort(proto.Errorf(proto.CodeCanceled, "request body: %v", err))
			return
		}
	}
}

// responseBody streams the data frames of a response until FrameEnd.
type responseBody struct {
	x          *exchange
	ctx        context.Context
	stopCancel func() bool
	pending    []byte // rest of the current data frame (aliases the read buffer)
	err        error  // sticky
	closed     bool
}

func (b *responseBody) Read(p []byte) (int, error) {
	b.x.rmu.Lock()
	defer b.x.rmu.Unlock()
	for len(b.pending) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		f, err := b.x.recv()
		if err != nil {
			b.fail(ctxErr(b.ctx, fmt.Errorf("tunnel: response body: %w", err)))
			continue
		}
		switch f.Type {
		case proto.FrameData:
			b.pending = f.Payload
		case proto.FrameEnd:
			b.err = io.EOF
			b.done()
		case proto.FrameAbort:
			b.fail(ctxErr(b.ctx, abortError("response aborted", f.Payload)))
		default:
			b.x.markBroken()
			b.fail(fmt.Errorf("tunnel: unexpected %s frame in a response body", f.Type))
		}
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

// fail ends the body with err, aborting our side and releasing the channel.
// The caller holds rmu.
func (b *responseBody) fail(err error) {
	b.err = err
	b.x.abort(err)
	b.done()
}

func (b *responseBody) done() {
	b.pending = nil
	b.stopCancel()
	b.x.finish()
}

// Close before EOF cancels the exchange: it sends FrameAbort and drains
// the response until the agent's terminal frame, then reuses the channel.
func (b *responseBody) Close() error {
	b.x.abort(proto.Errorf(proto.CodeCanceled, "response body closed"))
	b.x.rmu.Lock()
	defer b.x.rmu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.err == nil {
		b.x.drain()
		b.err = errors.New("tunnel: read on closed response body")
		b.done()
	}
	return nil
}
