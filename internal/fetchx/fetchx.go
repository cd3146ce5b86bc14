// Package fetchx is one end of a proto fetch.* exchange: an HTTP exchange
// carried over signaling connections (proto/fetch.go), with its credit
// window in both directions.
//
// The same type serves both ends. Signaling opens an exchange and sends the
// request (SendHead with a FetchRequest, Write, End) while it reads the
// response (Head, Read); the agent reads the request and sends the
// response the same way. The owner routes the peer's messages for the
// exchange to Deliver, which never blocks: a peer that sends more than the
// window allows, or out of order, is a protocol violation Deliver reports.
//
// Two goroutines may use an Exchange at once: one sending (SendHead, Write,
// End) and one receiving (Head, Read). Abort and Close may be called from
// any goroutine.
package fetchx

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// Sender sends one fetch message of the exchange to the peer. It may block
// while the connection's queue is full, until ctx ends.
type Sender func(ctx context.Context, typ proto.MsgType, payload proto.Validator) error

// Errors of the local side.
var (
	// ErrClosed is returned by operations after Close or Abort.
	ErrClosed = errors.New("fetchx: exchange closed")
	// errDone is wait's: the exchange stopped while waiting.
	errDone = errors.New("fetchx: exchange stopped")
)

// event is one item of the peer's direction.
type event struct {
	head  proto.Validator // *proto.FetchRequest or *proto.FetchResponse
	data  []byte
	end   bool
	abort *proto.Error
}

// Exchange is one end of an exchange. Create it with New.
type Exchange struct {
	id   uint64
	send Sender
	idle time.Duration

	mu         sync.Mutex
	in         []event // the peer's direction, not yet read
	queued     int     // data events in `in`
	uncredited int     // chunks read but not yet credited
	lastRead   bool    // Read returned a chunk not yet counted as consumed
	gotHead    bool
	inEnded    bool // the peer's end or abort arrived
	credits    int  // chunks we may still send
	outEnded   bool // our end or abort was sent
	stopped    error
	inSignal   chan struct{}
	outSignal  chan struct{}
	done       chan struct{} // closed by Close or Abort
	doneOnce   sync.Once
	cancelSent bool
	local      bool // stopped by Abort or Close here: queued events are dropped
	peerAbort  *proto.Error
}

// New returns an exchange with ID id that sends with send. Read and the
// credit waits of Write fail with device_timeout after idle without
// progress (proto.FetchIdleTimeout when zero).
func New(id uint64, send Sender, idle time.Duration) *Exchange {
	if idle <= 0 {
		idle = proto.FetchIdleTimeout
	}
	return &Exchange{id: id, send: send, idle: idle, credits: proto.FetchWindow,
		inSignal: make(chan struct{}, 1), outSignal: make(chan struct{}, 1), done: make(chan struct{})}
}

// ID is the exchange's ID.
func (x *Exchange) ID() uint64 { return x.id }

// Done is closed once the exchange stopped: closed or aborted here, or
// aborted by the peer (whose abort Head or Read still return).
func (x *Exchange) Done() <-chan struct{} { return x.done }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Deliver hands the exchange one message from the peer. It never blocks.
// An error is a protocol violation: abort the exchange with it.
func (x *Exchange) Deliver(typ proto.MsgType, payload proto.Validator) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.stopped != nil {
		return nil // late messages of an exchange that is over are ignored
	}
	violation := func(format string, args ...any) error {
		return proto.Errorf(proto.CodeBadMessage, "%s: "+format, append([]any{typ}, args...)...)
	}
	switch m := payload.(type) {
	case *proto.FetchCredit:
		if x.credits+m.N > proto.FetchWindow {
			return violation("credit beyond the window")
		}
		x.credits += m.N
		signal(x.outSignal)
		return nil
	case *proto.FetchAbort:
		if x.inEnded {
			// One abort after the peer's own end means "stop sending".
			if x.outEnded {
				return nil
			}
			x.stopped = proto.Errorf(m.Code, "%s", m.Message)
			signal(x.outSignal)
			x.doneOnce.Do(func() { close(x.done) })
			return nil
		}
		x.inEnded = true
		e := m.Error
		x.peerAbort = &e
		x.in = append(x.in, event{abort: &e})
		signal(x.inSignal)
		signal(x.outSignal) // our direction stops too
		x.doneOnce.Do(func() { close(x.done) })
		return nil
	}
	if x.inEnded {
		return violation("after the end of its direction")
	}
	switch m := payload.(type) {
	case *proto.FetchRequest, *proto.FetchResponse:
		if x.gotHead {
			return violation("a second head")
		}
		x.gotHead = true
		x.in = append(x.in, event{head: m})
	case *proto.FetchData:
		if !x.gotHead {
			return violation("data before the head")
		}
		held := x.queued + x.uncredited
		if x.lastRead {
			held++ // the chunk the reader holds is not credited yet either
		}
		if held >= proto.FetchWindow {
			return violation("more than %d chunks without credit", proto.FetchWindow)
		}
		x.queued++
		x.in = append(x.in, event{data: m.Data})
	case *proto.FetchEnd:
		if !x.gotHead {
			return violation("end before the head")
		}
		x.inEnded = true
		x.in = append(x.in, event{end: true})
	default:
		return violation("unexpected message")
	}
	signal(x.inSignal)
	return nil
}

// Start records that the head of the peer's direction arrived before the
// exchange existed (the agent creates its exchange from fetch.request).
func (x *Exchange) Start() {
	x.mu.Lock()
	x.gotHead = true
	x.mu.Unlock()
}

// wait blocks until c is signalled, ctx ends, the exchange stops, or idle
// passes.
func (x *Exchange) wait(ctx context.Context, c chan struct{}, idle time.Duration) error {
	t := time.NewTimer(idle)
	defer t.Stop()
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-x.done:
		return errDone // the caller looks at what is queued and why it stopped
	case <-t.C:
		return proto.Errorf(proto.CodeDeviceTimeout, "no progress for %s", idle)
	}
}

// next returns the next event of the peer's direction.
func (x *Exchange) next(ctx context.Context, idle time.Duration) (event, error) {
	for {
		x.mu.Lock()
		if x.stopped != nil && (len(x.in) == 0 || x.local) {
			err := x.stopped
			x.mu.Unlock()
			return event{}, err
		}
		if len(x.in) > 0 {
			ev := x.in[0]
			x.in[0] = event{}
			x.in = x.in[1:]
			if ev.data != nil {
				x.queued--
			}
			x.mu.Unlock()
			return ev, nil
		}
		x.mu.Unlock()
		if err := x.wait(ctx, x.inSignal, idle); err == errDone {
			x.mu.Lock()
			empty, err := len(x.in) == 0, x.stopErrLocked()
			x.mu.Unlock()
			if empty {
				return event{}, err
			}
		} else if err != nil {
			return event{}, err
		}
	}
}

// stopErrLocked is why a stopped exchange stopped.
func (x *Exchange) stopErrLocked() error {
	switch {
	case x.stopped != nil:
		return x.stopped // why it was stopped (too_large, say)
	case x.peerAbort != nil:
		return x.peerAbort
	}
	return ErrClosed
}

// Head waits up to timeout for the head of the peer's direction: a
// *proto.FetchResponse for the side that sent the request. A peer that
// aborted instead returns its *proto.Error.
func (x *Exchange) Head(ctx context.Context, timeout time.Duration) (proto.Validator, error) {
	ev, err := x.next(ctx, timeout)
	switch {
	case err != nil:
		return nil, err
	case ev.abort != nil:
		return nil, ev.abort
	case ev.head == nil:
		return nil, proto.Errorf(proto.CodeBadMessage, "exchange %d: no head", x.id)
	}
	return ev.head, nil
}

// Read returns the next chunk of the peer's body, io.EOF at its end, or the
// peer's *proto.Error if it aborted. The chunk is the caller's until the
// next Read, which credits it to the peer.
func (x *Exchange) Read(ctx context.Context) ([]byte, error) {
	if err := x.creditRead(ctx); err != nil {
		return nil, err
	}
	ev, err := x.next(ctx, x.idle)
	switch {
	case err != nil:
		return nil, err
	case ev.abort != nil:
		return nil, ev.abort
	case ev.end:
		return nil, io.EOF
	case ev.head != nil:
		return nil, proto.Errorf(proto.CodeBadMessage, "exchange %d: head inside the body", x.id)
	}
	x.mu.Lock()
	x.lastRead = true
	x.mu.Unlock()
	return ev.data, nil
}

// creditRead counts the chunk the last Read returned as consumed, and
// sends credit once half the window is consumed: the peer never waits on a
// window we have drained.
func (x *Exchange) creditRead(ctx context.Context) error {
	x.mu.Lock()
	if x.lastRead {
		x.lastRead = false
		x.uncredited++
	}
	n := 0
	if x.uncredited >= proto.FetchWindow/2 && x.stopped == nil {
		n, x.uncredited = x.uncredited, 0
	}
	x.mu.Unlock()
	if n == 0 {
		return nil
	}
	return x.send(ctx, proto.TypeFetchCredit, &proto.FetchCredit{ID: x.id, N: n})
}

// SendHead sends the head of our direction: a *proto.FetchRequest or
// *proto.FetchResponse whose ID the exchange sets.
func (x *Exchange) SendHead(ctx context.Context, head proto.Validator) error {
	switch h := head.(type) {
	case *proto.FetchRequest:
		h.ID = x.id
		return x.sendOut(ctx, proto.TypeFetchRequest, h, false)
	case *proto.FetchResponse:
		h.ID = x.id
		return x.sendOut(ctx, proto.TypeFetchResponse, h, false)
	}
	return proto.Errorf(proto.CodeInternal, "fetchx: %T is not a head", head)
}

func (x *Exchange) sendOut(ctx context.Context, typ proto.MsgType, payload proto.Validator, final bool) error {
	x.mu.Lock()
	switch {
	case x.stopped != nil:
		err := x.stopped
		x.mu.Unlock()
		return err
	case x.outEnded:
		x.mu.Unlock()
		return ErrClosed
	}
	if final {
		x.outEnded = true
	}
	x.mu.Unlock()
	return x.send(ctx, typ, payload)
}

// Write sends p as body chunks, waiting for credit as the window fills.
// It fails with the peer's error if the peer aborted.
func (x *Exchange) Write(ctx context.Context, p []byte) error {
	for len(p) > 0 {
		chunk := p[:min(len(p), proto.FetchChunk)]
		p = p[len(chunk):]
		for {
			x.mu.Lock()
			if err := x.outErrLocked(); err != nil {
				x.mu.Unlock()
				return err
			}
			if x.credits > 0 {
				x.credits--
				x.mu.Unlock()
				break
			}
			x.mu.Unlock()
			if err := x.wait(ctx, x.outSignal, x.idle); err == errDone {
				x.mu.Lock()
				err := x.outErrLocked()
				if err == nil {
					err = x.stopErrLocked()
				}
				x.mu.Unlock()
				return err
			} else if err != nil {
				return err
			}
		}
		// The message owns its bytes: the caller may reuse p.
		if err := x.sendOut(ctx, proto.TypeFetchData, &proto.FetchData{ID: x.id, Data: append([]byte(nil), chunk...)}, false); err != nil {
			return err
		}
	}
	return nil
}

// outErrLocked is why our direction cannot go on: we stopped, or the peer
// aborted (its abort is queued for the reader, and stops us too).
func (x *Exchange) outErrLocked() error {
	if x.stopped != nil {
		return x.stopped
	}
	if x.outEnded {
		return ErrClosed
	}
	if x.peerAbort != nil {
		return proto.Errorf(proto.CodeCanceled, "the other side aborted: %s", x.peerAbort.Code)
	}
	return nil
}

// End sends the end of our direction.
func (x *Exchange) End(ctx context.Context) error {
	return x.sendOut(ctx, proto.TypeFetchEnd, &proto.FetchEnd{ID: x.id}, true)
}

// abortWait bounds how long Abort may wait for room to send its abort.
const abortWait = 2 * time.Second

// Abort stops the exchange: the peer gets a fetch.abort with err's code if
// our direction is still open, or (once) to cancel its direction if ours
// ended but its did not. Operations in progress return. It is idempotent.
func (x *Exchange) Abort(err error) {
	pe := &proto.Error{Code: proto.CodeOf(err), Message: err.Error()}
	var e *proto.Error
	if errors.As(err, &e) {
		pe.Message = e.Message
	}
	if len(pe.Message) > proto.MaxText {
		pe.Message = pe.Message[:proto.MaxText]
	}
	x.mu.Lock()
	tell := false
	if x.stopped == nil {
		x.stopped = pe
	}
	x.local = true
	if !x.outEnded || (!x.inEnded && !x.cancelSent) {
		tell = true
		x.outEnded, x.cancelSent = true, true
	}
	x.mu.Unlock()
	x.doneOnce.Do(func() { close(x.done) })
	if tell {
		ctx, cancel := context.WithTimeout(context.Background(), abortWait)
		defer cancel()
		_ = x.send(ctx, proto.TypeFetchAbort, &proto.FetchAbort{ID: x.id, Error: *pe})
	}
}

// Over reports whether both directions ended (or the exchange stopped).
func (x *Exchange) Over() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stopped != nil || (x.outEnded && x.inEnded)
}

// Drop ends the exchange without telling the peer, whatever state it is
// in: for a side whose answer is complete and that expects nothing more of
// the peer but its end (a request without a body), which may still be on
// its way and is then ignored.
func (x *Exchange) Drop() {
	x.mu.Lock()
	if x.stopped == nil {
		x.stopped = ErrClosed
	}
	x.local = true
	x.mu.Unlock()
	x.doneOnce.Do(func() { close(x.done) })
}

// Close ends the exchange. One whose directions are not both complete is
// aborted with canceled.
func (x *Exchange) Close() {
	if !x.Over() {
		x.Abort(proto.Errorf(proto.CodeCanceled, "exchange closed"))
		return
	}
	x.mu.Lock()
	if x.stopped == nil {
		x.stopped = ErrClosed
	}
	x.local = true
	x.mu.Unlock()
	x.doneOnce.Do(func() { close(x.done) })
}
