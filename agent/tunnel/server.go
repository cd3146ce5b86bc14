package tunnel

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"

	"github.com/porthole-dev/porthole/agent/bufpool"
	"github.com/porthole-dev/porthole/proto"
)

// Server limits.
const (
	// DefaultServerMaxChannels caps the channels a peer may have open at
	// once when Server.MaxChannels is 0.
	DefaultServerMaxChannels = 64
	// MaxChannelsPerSession caps the channels a peer may open over a
	// session's lifetime: pion keeps every closed channel in memory, so a
	// peer that keeps opening new ones is refused rather than allowed to
	// grow the agent.
	MaxChannelsPerSession = 4096
)

// Server is the agent side of the tunnel. Its fields are read-only once
// serving; one Server may serve many peer connections.
type Server struct {
	// HTTP returns the handler for requests to a port of the device (0:
	// its web port). A *proto.Error return refuses the request with that
	// code (port_not_allowed for an undeclared port).
	HTTP func(port int) (http.Handler, error)
	// RequestContext, if set, derives the context of each HTTP request the
	// handler gets from what its head says beyond the HTTP request itself
	// (head.ClientOrigin: deviceproxy.WithClientOrigin).
	RequestContext func(ctx context.Context, head *proto.RequestHead) context.Context
	// DialTCP connects to a declared port of the device. A *proto.Error
	// return refuses with that code; other errors become device_failed.
	// Nil refuses every TCP stream.
	DialTCP func(ctx context.Context, port int) (net.Conn, error)
	// WebSocket opens the device WebSocket a page asked for
	// (proto.WSOpen) and says what the device answered. A *proto.Error
	// return refuses with that code. Nil refuses every WebSocket.
	WebSocket func(ctx context.Context, open *proto.WSOpen) (DeviceWebSocket, *proto.WSOpened, error)
	// SSH logs in to the device's SSH service on a declared port and
	// starts a shell on a pty (the agent is the SSH client). A
	// *proto.Error return refuses with that code. Nil refuses every
	// terminal.
	SSH func(ctx context.Context, open *proto.SSHOpen) (Terminal, *proto.SSHOpened, error)
	// Logger; nil discards.
	Logger *slog.Logger
	// MaxChannels caps the data channels a peer may have open at once; 0
	// means DefaultServerMaxChannels.
	MaxChannels int
	// Observe, if set, is called before each exchange is served (after
	// its request was checked). An error refuses the exchange with its
	// code (the agent's access log is full, say: nothing is served that
	// cannot be recorded); otherwise the returned function, if not nil,
	// is called once with the outcome when the exchange ended.
	Observe func(Exchange) (func(ExchangeResult), error)
}

// Serve serves pc's tunnel channels until ctx ends, then closes them and
// returns once every goroutine it started has returned. It registers
// pc.OnDataChannel; to be sure no channel is missed, call Start before
// setting the remote description and Wait later, or call Serve on its own
// goroutine before signaling starts.
func (s *Server) Serve(ctx context.Context, pc *webrtc.PeerConnection) {
	s.Start(ctx, pc).Wait()
}

// Start registers pc.OnDataChannel and returns at once; the Session serves
// channels until ctx ends. Call it before SetRemoteDescription.
func (s *Server) Start(ctx context.Context, pc *webrtc.PeerConnection) *Session {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxCh := s.MaxChannels
	if maxCh <= 0 {
		maxCh = DefaultServerMaxChannels
	}
	ss := &Session{srv: s, log: log, ctx: ctx, max: maxCh, chans: map[*Channel]struct{}{}, bufs: bufpool.New(), frames: bufpool.NewFrames()}
	pc.OnDataChannel(ss.onDataChannel)
	context.AfterFunc(ctx, ss.shutdown)
	return ss
}

// Session serves the tunnel of one peer connection.
type Session struct {
	srv *Server
	log *slog.Logger
	ctx context.Context
	max int

	mu     sync.Mutex
	closed bool
	open   int
	chans  map[*Channel]struct{}
	wg     sync.WaitGroup

	accepted, refused, exchanges atomic.Int64

	bufs   *bufpool.Pool // copies from the device to the channel
	frames *bufpool.Pool // outgoing frames of every channel
}

// SessionStats counts a session's channels and exchanges.
type SessionStats struct {
	Accepted  int64 // channels accepted
	Refused   int64 // channels refused (label, caps, shutdown)
	Open      int   // channels open now
	Exchanges int64 // exchanges started (refused ones included)
}

// Stats returns the session's counters.
func (ss *Session) Stats() SessionStats {
	ss.mu.Lock()
	open := ss.open
	ss.mu.Unlock()
	return SessionStats{
		Accepted:  ss.accepted.Load(),
		Refused:   ss.refused.Load(),
		Open:      open,
		Exchanges: ss.exchanges.Load(),
	}
}

// Wait blocks until the session's context ended and every goroutine it
// started returned.
func (ss *Session) Wait() {
	<-ss.ctx.Done()
	ss.shutdown() // sets closed under mu: no wg.Add after this
	ss.wg.Wait()
}

func (ss *Session) shutdown() {
	ss.mu.Lock()
	ss.closed = true
	chans := channelList(ss.chans)
	ss.mu.Unlock()
	closeChannels(chans)
}

// onDataChannel runs on pion's accept goroutine, which waits for it: it
// only checks the caps and registers the open handler.
func (ss *Session) onDataChannel(dc *webrtc.DataChannel) {
	refuse := func(why string) {
		ss.refused.Add(1)
		ss.log.Info("tunnel: data channel refused", "label", dc.Label(), "reason", why)
		_ = dc.Close()
	}
	if dc.Label() != Label || !dc.Ordered() || dc.MaxRetransmits() != nil || dc.MaxPacketLifeTime() != nil {
		refuse("not an ordered reliable porthole channel")
		return
	}
	ss.mu.Lock()
	switch {
	case ss.closed:
		ss.mu.Unlock()
		refuse("session closed")
		return
	case ss.open >= ss.max:
		ss.mu.Unlock()
		refuse("too many open channels")
		return
	case ss.accepted.Load() >= MaxChannelsPerSession:
		ss.mu.Unlock()
		refuse("too many channels in this session")
		return
	}
	ss.open++
	ss.accepted.Add(1)
	ss.mu.Unlock()
	dc.OnOpen(func() {
		ss.mu.Lock()
		if ss.closed {
			ss.open--
			ss.mu.Unlock()
			_ = dc.Close()
			return
		}
		ss.wg.Add(1) // never after Wait saw closed
		ss.mu.Unlock()
		ch, err := Detach(dc, ss.frames)
		if err != nil {
			ss.log.Warn("tunnel: detach", "err", err)
			_ = dc.Close()
			ss.channelDone(nil)
			return
		}
		ss.mu.Lock()
		closed := ss.closed
		ss.chans[ch] = struct{}{}
		ss.mu.Unlock()
		if closed {
			ch.Close()
		}
		go ss.serveChannel(ch)
	})
}

func (ss *Session) channelDone(ch *Channel) {
	ss.mu.Lock()
	if ch != nil {
		delete(ss.chans, ch)
	}
	ss.open--
	ss.mu.Unlock()
	ss.wg.Done()
}

// agentExchange is the agent side of one exchange: the loop in
// serveChannel feeds it the client's direction; it produces its own.
type agentExchange interface {
	data(p []byte) error    // a data frame of the client's direction; an error is fatal for the channel
	end() error             // the client's direction ended
	aborted(e *proto.Error) // the client's direction ended abnormally
	cancel(err error)       // stop: end our direction with FrameAbort if still open
	done() <-chan struct{}  // our direction ended and the exchange's goroutines returned
}

// serveChannel reads the client's frames and drives one exchange at a
// time; see the state machine in proto/tunnel.go.
func (ss *Session) serveChannel(ch *Channel) {
	defer ss.channelDone(ch)
	defer ch.Close()
	log := ss.log.With("channel", ch.ID())
	var handlers handlerWorker
	defer handlers.stop()

	var x agentExchange
	inEnded := false
	stop := func(err error) {
		if x != nil {
			x.cancel(err)
			<-x.done()
		}
	}
	fatal := func(err error) {
		code := proto.CodeOf(err)
		log.Info("tunnel: protocol violation, closing channel", "code", code, "err", err)
		if x != nil {
			stop(err)
		} else {
			_ = ch.write(context.Background(), nil, proto.FrameAbort, abortPayload(err), false)
		}
	}
	for {
		f, err := ch.ReadFrame()
		if err != nil {
			var pe *proto.Error
			if errors.As(err, &pe) && !ch.isClosed() {
				fatal(err)
				return
			}
			stop(proto.Errorf(proto.CodeCanceled, "channel closed"))
			return
		}
		if x != nil && inEnded {
			switch f.Type {
			case proto.FrameAbort:
				// A cancel sent after the client's FrameEnd.
				x.cancel(proto.Errorf(proto.CodeCanceled, "cancelled by the client"))
				continue
			case proto.FrameRequest, proto.FrameTCPOpen, proto.FrameWSOpen, proto.FrameSSHOpen:
				// The client saw our terminal frame; the exchange is over.
				<-x.done()
				x = nil
			default:
				fatal(proto.Errorf(proto.CodeBadMessage, "%s frame after the request ended", f.Type))
				return
			}
		}
		if x == nil {
			switch f.Type {
			case proto.FrameRequest:
				x = ss.startHTTP(ch, log, f.Payload, handlers.run)
			case proto.FrameTCPOpen:
				x = ss.startTCP(ch, log, f.Payload)
			case proto.FrameWSOpen:
				x = ss.startWS(ch, log, f.Payload)
			case proto.FrameSSHOpen:
				x = ss.startSSH(ch, log, f.Payload)
			case proto.FrameAbort:
				// A late cancel of an exchange that was already over.
				continue
			default:
				fatal(proto.Errorf(proto.CodeBadMessage, "%s frame before a request", f.Type))
				return
			}
			inEnded = false
			ss.exchanges.Add(1)
			continue
		}
		switch f.Type {
		case proto.FrameData:
			if err := x.data(f.Payload); err != nil {
				fatal(err)
				return
			}
		case proto.FrameEnd:
			inEnded = true
			if err := x.end(); err != nil {
				fatal(err)
				return
			}
		case proto.FrameAbort:
			inEnded = true
			x.aborted(proto.DecodeAbort(f.Payload))
		case proto.FrameSSHResize:
			if err := sshResize(x, f.Payload); err != nil {
				fatal(err)
				return
			}
		case proto.FrameWSMessage, proto.FrameWSClose:
			ws, ok := x.(*wsExchange)
			if !ok {
				if _, refusedWS := x.(refused); refusedWS {
					if f.Type == proto.FrameWSClose {
						inEnded = true
					}
					continue // a refused WebSocket's frames are drained
				}
				fatal(proto.Errorf(proto.CodeBadMessage, "%s frame outside a websocket exchange", f.Type))
				return
			}
			var err error
			if f.Type == proto.FrameWSMessage {
				err = ws.message(f.Payload)
			} else {
				inEnded = true
				err = ws.closed(f.Payload)
			}
			if err != nil {
				fatal(err)
				return
			}
		default:
			fatal(proto.Errorf(proto.CodeBadMessage, "%s frame inside an exchange", f.Type))
			return
		}
	}
}

// handlerWorker runs the HTTP handlers of one channel, one exchange after
// the other, on a goroutine that lives as long as the channel. A goroutine
// per exchange grew its stack anew on every request (runtime.newstack and
// copystack were 5% of the agent's CPU per small GET, issue 21); this one
// grows it once. The channel serves one exchange at a time, so the worker
// is idle whenever run is called.
type handlerWorker struct {
	work   chan func()
	exited chan struct{}
}

func (w *handlerWorker) run(fn func()) {
	if w.work == nil {
		w.work, w.exited = make(chan func()), make(chan struct{})
		go func() {
			defer close(w.exited)
			for fn := range w.work {
				fn()
			}
		}()
	}
	w.work <- fn
}

// stop ends the worker once its handler returned; the caller has waited
// for the exchange to be done.
func (w *handlerWorker) stop() {
	if w.work != nil {
		close(w.work)
		<-w.exited
	}
}

// outDir is the agent's direction of an exchange.
type outDir struct {
	ch     *Channel
	ctx    context.Context // cancelled when the exchange stops
	stopFn context.CancelFunc

	mu    sync.Mutex
	ended bool
}

func newOutDir(parent context.Context, ch *Channel) *outDir {
	ctx, cancel := context.WithCancel(parent)
	return &outDir{ch: ch, ctx: ctx, stopFn: cancel}
}

// send writes a frame with flow control; it fails once the direction ended
// or the exchange stopped.
func (o *outDir) send(t proto.FrameType, payload []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ended {
		return errDirectionEnded
	}
	if err := o.ch.write(o.ctx, nil, t, payload, true); err != nil {
		return err
	}
	if t == proto.FrameEnd || t == proto.FrameAbort || t == proto.FrameWSClose {
		o.ended = true
	}
	return nil
}

// abort stops the exchange and ends the direction with FrameAbort if it is
// still open. It reports whether it sent the abort.
func (o *outDir) abort(err error) bool {
	o.stopFn()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ended {
		return false
	}
	o.ended = true
	_ = o.ch.write(context.Background(), nil, proto.FrameAbort, abortPayload(err), false)
	return true
}

// refused is an exchange refused before it started: our direction already
// ended with FrameAbort; the client's is drained.
type refused struct{}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (refused) data([]byte) error     { return nil }
func (refused) end() error            { return nil }
func (refused) aborted(*proto.Error)  {}
func (refused) cancel(error)          {}
func (refused) done() <-chan struct{} { return closedChan }

func (ss *Session) refuse(ch *Channel, log *slog.Logger, what string, err error) agentExchange {
	log.Info("tunnel: "+what+" refused", "code", proto.CodeOf(err), "err", err)
	_ = ch.write(context.Background(), nil, proto.FrameAbort, abortPayload(err), false)
	return refused{}
}

// asRefusal keeps a *proto.Error as it is and turns other errors into one
// with the given code.
func asRefusal(err error, code proto.Code) error {
	var pe *proto.Error
	if errors.As(err, &pe) {
		return err
	}
	return proto.Errorf(code, "%v", err)
}
