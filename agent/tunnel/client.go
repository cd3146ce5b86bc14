package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/porthole-dev/porthole/proto"
)

// DefaultMaxChannels is the client's default cap on data channels.
const DefaultMaxChannels = 32

// DrainTimeout bounds how long a cancelled exchange waits for the peer's
// terminal frame before the channel is dropped instead of reused.
const DrainTimeout = 5 * time.Second

// ErrClientClosed is returned by a Client after Close.
var ErrClientClosed = errors.New("tunnel: client closed")

// ClientConfig configures a Client.
type ClientConfig struct {
	// MaxChannels caps the data channels the client keeps open (busy or
	// idle); an exchange waits for a free one beyond it. 0 means
	// DefaultMaxChannels.
	MaxChannels int
	// Logger; nil discards.
	Logger *slog.Logger
}

// Client is the technician side of the tunnel: an http.RoundTripper and a
// TCP dialer over a pool of data channels of one peer connection.
type Client struct {
	pc  *webrtc.PeerConnection
	log *slog.Logger
	max int

	tokens chan struct{} // one per live channel (opening, idle or busy)
	idle   chan *Channel // capacity max, so a put never blocks

	mu        sync.Mutex
	live      map[*Channel]struct{}
	changedCh chan struct{}

	waiting, opening atomic.Int64

	closeOnce sync.Once
	closed    chan struct{}

	opened, dropped, exchanges atomic.Int64
}

var _ http.RoundTripper = (*Client)(nil)

// NewClient returns a Client over pc. Call it before creating the offer:
// it creates the first data channel at once, so the offer carries the
// data section and the first request finds a channel open. The Client
// does not own pc; close the Client before pc.
func NewClient(pc *webrtc.PeerConnection, cfg ClientConfig) *Client {
	if cfg.MaxChannels <= 0 {
		cfg.MaxChannels = DefaultMaxChannels
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		pc:        pc,
		log:       log,
		max:       cfg.MaxChannels,
		tokens:    make(chan struct{}, cfg.MaxChannels),
		idle:      make(chan *Channel, cfg.MaxChannels),
		live:      map[*Channel]struct{}{},
		changedCh: make(chan struct{}),
		closed:    make(chan struct{}),
	}
	c.tokens <- struct{}{}
	c.opening.Add(1)
	if err := c.open(); err != nil {
		c.opening.Add(-1)
		<-c.tokens
		log.Warn("tunnel: create first data channel", "err", err)
	}
	return c
}

// ClientStats counts a client's data channels.
type ClientStats struct {
	Opened    int64 // data channels created since NewClient
	Dropped   int64 // channels closed after a failed exchange
	Live      int   // channels opening, idle or busy
	Idle      int   // channels waiting in the pool
	Exchanges int64 // exchanges started
}

// Stats returns the client's counters.
func (c *Client) Stats() ClientStats {
	return ClientStats{
		Opened:    c.opened.Load(),
		Dropped:   c.dropped.Load(),
		Live:      len(c.tokens),
		Idle:      len(c.idle),
		Exchanges: c.exchanges.Load(),
	}
}

// open creates a data channel; once open it joins the idle pool. The
// caller holds a token for it.
func (c *Client) open() error {
	ordered := true
	dc, err := c.pc.CreateDataChannel(Label, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return fmt.Errorf("tunnel: create data channel: %w", err)
	}
	c.opened.Add(1)
	dc.OnOpen(func() {
		defer c.changed()
		c.opening.Add(-1)
		ch, err := Detach(dc)
		if err != nil {
			c.log.Warn("tunnel: open data channel", "err", err)
			_ = dc.Close()
			<-c.tokens
			return
		}
		c.mu.Lock()
		select {
		case <-c.closed:
			c.mu.Unlock()
			ch.Close()
			<-c.tokens
			return
		default:
		}
		c.live[ch] = struct{}{}
		c.mu.Unlock()
		c.idle <- ch
	})
	return nil
}

// get returns an idle channel. It opens a new one only while fewer
// channels are opening than callers are waiting, within the cap; else it
// waits for one to come back.
func (c *Client) get(ctx context.Context) (*Channel, error) {
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	for {
		changed := c.changedSignal()
		select {
		case ch := <-c.idle:
			if c.usable(ch) {
				return ch, nil
			}
			continue
		default:
		}
		if c.opening.Load() < c.waiting.Load() {
			select {
			case c.tokens <- struct{}{}:
				c.opening.Add(1)
				if err := c.open(); err != nil {
					c.opening.Add(-1)
					<-c.tokens
					return nil, err
				}
				continue
			default:
			}
		}
		select {
		case ch := <-c.idle:
			if c.usable(ch) {
				return ch, nil
			}
			continue
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closed:
			return nil, ErrClientClosed
		}
	}
}

// usable reports whether an idle channel taken from the pool is still
// open; a closed one is dropped.
func (c *Client) usable(ch *Channel) bool {
	if ch.isClosed() {
		c.drop(ch)
		return false
	}
	return true
}

// changedSignal returns a channel closed at the next change of the pool
// (a slot freed or an open finished).
func (c *Client) changedSignal() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changedCh
}

func (c *Client) changed() {
	c.mu.Lock()
	close(c.changedCh)
	c.changedCh = make(chan struct{})
	c.mu.Unlock()
}

// put returns a channel whose exchange completed to the pool.
func (c *Client) put(ch *Channel) {
	ch.setReadDeadline(time.Time{})
	select {
	case <-c.closed:
		c.drop(ch)
		return
	default:
	}
	c.idle <- ch
}

// drop closes a channel and frees its slot.
func (c *Client) drop(ch *Channel) {
	ch.Close()
	c.mu.Lock()
	_, ok := c.live[ch]
	delete(c.live, ch)
	c.mu.Unlock()
	if ok {
		c.dropped.Add(1)
		<-c.tokens
		c.changed()
	}
}

// Close closes every channel of the client; exchanges in progress fail.
// It does not close the peer connection.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		close(c.closed)
		chans := channelList(c.live)
		c.mu.Unlock()
		closeChannels(chans)
	})
	return nil
}

// exchange is the client side of one exchange on a channel.
type exchange struct {
	c  *Client
	ch *Channel

	stopOnce sync.Once
	stop     chan struct{} // closed by abort: releases writers waiting on flow control

	wmu        sync.Mutex
	outEnded   bool // our direction ended (End or Abort sent)
	cancelSent bool // a FrameAbort was sent after our FrameEnd
	finished   bool // channel released: nothing more may be written
	broken     bool // the channel is in an unknown state

	inEnded atomic.Bool // the peer's direction ended

	rmu     sync.Mutex // one reader at a time
	release sync.Once

	bodyOnce  sync.Once
	bodyClose func() // closes the request body still being sent, if any
}

func (c *Client) newExchange(ch *Channel) *exchange {
	c.exchanges.Add(1)
	return &exchange{c: c, ch: ch, stop: make(chan struct{})}
}

var errDirectionEnded = errors.New("tunnel: direction already ended")

// send writes one frame in our direction, with flow control.
func (x *exchange) send(ctx context.Context, t proto.FrameType, payload []byte) error {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	if x.finished || x.outEnded {
		return errDirectionEnded
	}
	if err := x.ch.write(ctx, x.stop, t, payload, true); err != nil {
		if !errors.Is(err, errStopped) {
			x.broken = true
		}
		return err
	}
	if t == proto.FrameEnd || t == proto.FrameAbort || t == proto.FrameWSClose {
		x.outEnded = true
	}
	return nil
}

// abort stops the exchange from our side: it ends our direction with
// FrameAbort or, if it already ended with FrameEnd and the peer's has not,
// sends the one cancelling FrameAbort. Reads then drain until the peer's
// terminal frame, bounded by DrainTimeout.
func (x *exchange) abort(err error) {
	x.stopOnce.Do(func() { close(x.stop) })
	x.wmu.Lock()
	defer x.wmu.Unlock()
	if x.finished {
		return
	}
	switch {
	case !x.outEnded:
		x.outEnded = true
	case !x.cancelSent && !x.inEnded.Load():
		x.cancelSent = true
	default:
		return
	}
	if wErr := x.ch.write(context.Background(), nil, proto.FrameAbort, abortPayload(err), false); wErr != nil {
		x.broken = true
		return
	}
	if !x.inEnded.Load() {
		x.ch.setReadDeadline(time.Now().Add(DrainTimeout))
	}
}

// recv reads the next frame of the peer's direction.
func (x *exchange) recv() (proto.Frame, error) {
	if x.inEnded.Load() {
		return proto.Frame{}, errDirectionEnded
	}
	f, err := x.ch.ReadFrame()
	if err != nil {
		x.markBroken()
		return f, err
	}
	if f.Type == proto.FrameEnd || f.Type == proto.FrameAbort || f.Type == proto.FrameWSClose {
		x.inEnded.Store(true)
	}
	return f, nil
}

func (x *exchange) markBroken() {
	x.wmu.Lock()
	x.broken = true
	x.wmu.Unlock()
}

// drain reads and discards the peer's frames until its terminal frame.
// The caller holds rmu.
func (x *exchange) drain() {
	for !x.inEnded.Load() {
		f, err := x.recv()
		if err != nil {
			return
		}
		switch f.Type {
		case proto.FrameData, proto.FrameEnd, proto.FrameAbort, proto.FrameWSMessage, proto.FrameWSClose:
		default:
			x.markBroken()
			return
		}
	}
}

// finish ends the exchange: it aborts our direction if still open (the
// peer's has ended), then returns the channel to the pool if both
// directions ended cleanly, or drops it.
func (x *exchange) finish() {
	x.release.Do(func() {
		if x.bodyClose != nil {
			x.bodyOnce.Do(x.bodyClose)
		}
		if x.inEnded.Load() {
			x.wmu.Lock()
			open := !x.outEnded
			x.wmu.Unlock()
			if open {
				x.abort(proto.Errorf(proto.CodeCanceled, "response complete"))
			}
		}
		x.wmu.Lock()
		x.finished = true
		reuse := !x.broken && x.outEnded && x.inEnded.Load()
		x.wmu.Unlock()
		if reuse {
			x.c.put(x.ch)
		} else {
			x.c.drop(x.ch)
		}
	})
}

// abortError turns a received FrameAbort into an error wrapping its
// *proto.Error.
func abortError(what string, payload []byte) error {
	return fmt.Errorf("tunnel: %s: %w", what, proto.DecodeAbort(payload))
}

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

// ctxErr prefers the context's error when the context ended, keeping err
// in the chain.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

// sendBody streams a request body as data frames, then FrameEnd; a body
// that fails or does not match its declared length aborts the exchange.
func (x *exchange) sendBody(ctx context.Context, body io.ReadCloser, length int64) {
	defer x.bodyOnce.Do(x.bodyClose)
	bp := getChunk()
	defer putChunk(bp)
	buf := *bp
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
