package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/porthole-dev/porthole/agent/bufpool"
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

	bufs   *bufpool.Pool // request-body copies
	frames *bufpool.Pool // outgoing frames of every channel
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
		bufs:      bufpool.New(),
		frames:    bufpool.NewFrames(),
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

// ctxErr prefers the context's error when the context ended, keeping err
// in the chain.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}
