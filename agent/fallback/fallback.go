// Package fallback serves the HTTP exchanges signaling carries over the
// agent's own signaling connection (proto/fetch.go): the requests of the
// device's page that the browser sends to the device origin's server
// instead of the service worker (synchronous XHR, favicons, hard reloads).
//
// A request that takes this path is served exactly like one that came over
// a data channel: the same device handler of the session (its proxy,
// rules, cookie jar and credentials), the same response rules
// (tunnel.ServeHTTP), the same access log through the same Observe hook,
// the entry marked proto.ViaSignaling. Only the transport differs: fetch.*
// messages with a credit window (internal/fetchx), so a slow browser slows
// the agent's reads from the device and never fills the signaling
// connection.
package fallback

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/internal/fetchx"
	"github.com/porthole-dev/porthole/internal/redact"
	"github.com/porthole-dev/porthole/proto"
)

// Config configures a session's fallback server.
type Config struct {
	// HTTP returns the session's handler for a port of the device (0: its
	// web port), as tunnel.Server.HTTP does.
	HTTP func(port int) (http.Handler, error)
	// RequestContext, if set, derives each request's context from its head
	// (its ClientOrigin), as tunnel.Server.RequestContext does.
	RequestContext func(ctx context.Context, head *proto.RequestHead) context.Context
	// Observe is the session's access-log hook, as tunnel.Server.Observe:
	// an error refuses the exchange with its code.
	Observe func(tunnel.Exchange) (func(tunnel.ExchangeResult), error)
	// Logger; nil discards.
	Logger *slog.Logger
	// Idle bounds each wait for progress of an exchange; zero means
	// proto.FetchIdleTimeout.
	Idle time.Duration
}

// Server serves one session's fallback exchanges. Create it with New.
type Server struct {
	cfg Config
	log *slog.Logger
	ctx context.Context // the session's life

	mu        sync.Mutex
	closed    bool
	exchanges map[uint64]*fetchx.Exchange
	wg        sync.WaitGroup
}

// New returns a server for a session whose life is ctx: when it ends, every
// exchange is aborted.
func New(ctx context.Context, cfg Config) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log, ctx: ctx, exchanges: map[uint64]*fetchx.Exchange{}}
}

// Handle takes one fetch message of the session from signaling, received on
// a connection whose life is conn and on which send sends. It never blocks:
// a new request is served on its own goroutine.
func (s *Server) Handle(conn context.Context, env *proto.Envelope, send fetchx.Sender) {
	if env.Type == proto.TypeFetchRequest {
		s.open(conn, env, send)
		return
	}
	v, id, err := decodeFollowUp(env)
	if err != nil {
		s.log.Info("fallback: bad message from signaling", "type", env.Type, "err", err)
		return
	}
	s.mu.Lock()
	x := s.exchanges[id]
	s.mu.Unlock()
	if x == nil {
		return // an exchange that is over: late messages are expected
	}
	if err := x.Deliver(env.Type, v); err != nil {
		s.log.Info("fallback: protocol violation by signaling; exchange aborted", "exchange", id, "err", err)
		go x.Abort(err) // Abort may wait to send: not on the reader
	}
}

// decodeFollowUp decodes a fetch message that continues an exchange.
func decodeFollowUp(env *proto.Envelope) (proto.Validator, uint64, error) {
	var v proto.Validator
	var id *uint64
	switch env.Type {
	case proto.TypeFetchData:
		m := &proto.FetchData{}
		v, id = m, &m.ID
	case proto.TypeFetchEnd:
		m := &proto.FetchEnd{}
		v, id = m, &m.ID
	case proto.TypeFetchAbort:
		m := &proto.FetchAbort{}
		v, id = m, &m.ID
	case proto.TypeFetchCredit:
		m := &proto.FetchCredit{}
		v, id = m, &m.ID
	default:
		return nil, 0, proto.Errorf(proto.CodeBadMessage, "agents are not sent %s", env.Type)
	}
	if err := proto.DecodeData(env, v); err != nil {
		return nil, 0, err
	}
	return v, *id, nil
}

func (s *Server) open(conn context.Context, env *proto.Envelope, send fetchx.Sender) {
	var head proto.FetchRequest
	if err := proto.DecodeData(env, &head); err != nil {
		s.log.Info("fallback: request refused", "exchange", head.ID, "code", proto.CodeOf(err), "err", err)
		if head.ID != 0 {
			s.refuse(head.ID, send, err)
		}
		return
	}
	x := fetchx.New(head.ID, send, s.cfg.Idle)
	x.Start()
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		s.refuse(head.ID, send, proto.Errorf(proto.CodeSessionEnded, "the session has ended"))
		return
	case s.exchanges[head.ID] != nil:
		s.mu.Unlock()
		s.log.Info("fallback: exchange id reused by signaling", "exchange", head.ID)
		return
	case len(s.exchanges) >= proto.MaxFetchesPerSession:
		s.mu.Unlock()
		s.refuse(head.ID, send, proto.Errorf(proto.CodeRateLimited, "%d requests of this session are already carried by signaling", proto.MaxFetchesPerSession))
		return
	}
	s.exchanges[head.ID] = x
	s.wg.Add(1)
	s.mu.Unlock()
	go s.serve(conn, x, &head)
}

// refuse answers a request that is not served with an abort, off the
// caller's goroutine (sending may wait).
func (s *Server) refuse(id uint64, send fetchx.Sender, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Go(func() {
		x := fetchx.New(id, send, s.cfg.Idle)
		x.Start()
		x.Abort(err)
	})
}

// serve runs one exchange to its end.
func (s *Server) serve(conn context.Context, x *fetchx.Exchange, head *proto.FetchRequest) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.exchanges, x.ID())
		s.mu.Unlock()
		if head.ContentLength == 0 {
			x.Drop() // only the request's end may still come: nothing to cancel
		} else {
			x.Close() // a request body still coming is cancelled
		}
	}()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stop := context.AfterFunc(conn, cancel) // the exchange dies with its connection
	defer stop()
	// Abort, from anywhere, ends the handler's context too.
	go func() {
		select {
		case <-x.Done():
			cancel()
		case <-ctx.Done():
		}
	}()

	log := s.log.With("exchange", x.ID())
	refuse := func(err error) {
		log.Info("fallback: request refused", "method", head.Method, "target", redact.Target(head.Target), "code", proto.CodeOf(err), "err", err)
		x.Abort(err)
	}
	if s.cfg.HTTP == nil {
		refuse(proto.Errorf(proto.CodePortNotAllowed, "no HTTP service"))
		return
	}
	h, err := s.cfg.HTTP(head.Port)
	if err != nil {
		refuse(asRefusal(err))
		return
	}
	body := &bodyReader{ctx: ctx, x: x, want: head.ContentLength}
	var rc io.ReadCloser = body
	if head.ContentLength == 0 {
		rc = http.NoBody
	}
	rctx := ctx
	if s.cfg.RequestContext != nil {
		rctx = s.cfg.RequestContext(ctx, &head.RequestHead)
	}
	req, err := tunnel.NewRequest(rctx, &head.RequestHead, rc)
	if err != nil {
		refuse(err)
		return
	}
	start := time.Now()
	var observed func(tunnel.ExchangeResult)
	if s.cfg.Observe != nil {
		observed, err = s.cfg.Observe(tunnel.Exchange{Kind: proto.AccessHTTP, Method: head.Method, Target: head.Target,
			Port: head.Port, Start: start, Via: proto.ViaSignaling})
		if err != nil {
			refuse(asRefusal(err))
			return
		}
	}
	log.Debug("fallback: request", "method", head.Method, "target", redact.Target(head.Target), "port", head.Port)
	res := tunnel.ServeHTTP(h, req, &sink{ctx: ctx, x: x}, log)
	if observed != nil {
		res.ReqBytes, res.Duration, res.Context = body.got, time.Since(start), req.Context()
		observed(res)
	}
}

// Close aborts every exchange (the session ended) and waits for their
// goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	all := make([]*fetchx.Exchange, 0, len(s.exchanges))
	for _, x := range s.exchanges {
		all = append(all, x)
	}
	s.mu.Unlock()
	for _, x := range all {
		x.Abort(proto.Errorf(proto.CodeSessionEnded, "the session has ended"))
	}
	s.wg.Wait()
}

// InFlight is the number of exchanges being served.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.exchanges)
}

// sink sends the handler's response as fetch messages.
type sink struct {
	ctx context.Context
	x   *fetchx.Exchange
}

func (k *sink) Head(h *proto.ResponseHead) error {
	if err := k.live(); err != nil {
		return err
	}
	// The tunnel's head limit, so both paths refuse the same responses.
	if _, err := proto.EncodeHead(h); err != nil {
		return err
	}
	return k.x.SendHead(k.ctx, &proto.FetchResponse{ResponseHead: *h})
}

func (k *sink) Data(p []byte) error {
	if err := k.live(); err != nil {
		return err
	}
	return k.x.Write(k.ctx, p)
}

// End completes the response, unless the exchange's context ended
// meanwhile (the session or its connection): a handler that returns
// quietly on cancellation must not make a cut-off body look complete.
func (k *sink) End() error {
	if err := k.live(); err != nil {
		return err
	}
	return k.x.End(k.ctx)
}

func (k *sink) Abort(err error) { k.x.Abort(err) }

func (k *sink) live() error {
	if k.ctx.Err() != nil {
		return proto.Errorf(proto.CodeCanceled, "the exchange was cancelled: the session or its signaling connection ended")
	}
	return nil
}

// bodyReader is the request body, read from the exchange as the handler
// consumes it (each chunk is credited to signaling as the next is read).
type bodyReader struct {
	ctx  context.Context
	x    *fetchx.Exchange
	want int64 // declared length, -1 unknown
	got  int64
	buf  []byte
	err  error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		chunk, err := b.x.Read(b.ctx)
		switch {
		case err == io.EOF:
			if b.want >= 0 && b.got < b.want {
				b.err = io.ErrUnexpectedEOF
			} else {
				b.err = io.EOF
			}
			continue
		case err != nil:
			b.err = err
			continue
		}
		b.got += int64(len(chunk))
		if b.want >= 0 && b.got > b.want {
			b.err = proto.Errorf(proto.CodeBadMessage, "request body longer than its declared length %d", b.want)
			b.x.Abort(b.err)
			continue
		}
		if b.got > proto.MaxFetchBody {
			b.err = proto.Errorf(proto.CodeTooLarge, "request body over %d bytes", proto.MaxFetchBody)
			b.x.Abort(b.err)
			continue
		}
		b.buf = chunk
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (b *bodyReader) Close() error { return nil }

// asRefusal keeps a *proto.Error as it is and turns other errors into an
// internal one.
func asRefusal(err error) error {
	var pe *proto.Error
	if errors.As(err, &pe) {
		return err
	}
	return proto.Errorf(proto.CodeInternal, "%v", err)
}
