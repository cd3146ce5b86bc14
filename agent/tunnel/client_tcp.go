package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// Stream is a TCP connection to a declared port of the device, carried by
// one data channel. Read and Write may be used from different goroutines.
type Stream struct {
	x    *exchange
	port int

	pending []byte // guarded by x.rmu
	rerr    error  // guarded by x.rmu

	closeOnce sync.Once
}

var _ io.ReadWriteCloser = (*Stream)(nil)

// DialTCP opens a TCP connection to a declared port of the session's
// device. A refusal (port_not_allowed, device_failed, …) is an error
// wrapping the agent's *proto.Error.
func (c *Client) DialTCP(ctx context.Context, port int) (*Stream, error) {
	return c.Dial(ctx, &proto.TCPOpen{Port: port})
}

// Dial opens a TCP connection as o asks (DialTCP with options, such as a
// view-only VNC stream).
func (c *Client) Dial(ctx context.Context, o *proto.TCPOpen) (*Stream, error) {
	port := o.Port
	payload, err := proto.EncodeHead(o)
	if err != nil {
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("tunnel: %w", proto.Errorf(proto.CodeBadRequest, "port %d out of range", port))
	}
	ch, err := c.get(ctx)
	if err != nil {
		return nil, err
	}
	x := c.newExchange(ch)
	if err := x.send(ctx, proto.FrameTCPOpen, payload); err != nil {
		x.finish()
		return nil, err
	}
	stopCancel := context.AfterFunc(ctx, func() { x.abort(proto.Errorf(proto.CodeCanceled, "dial cancelled")) })
	defer stopCancel()
	f, err := x.recv()
	if err != nil {
		x.abort(err)
		x.finish()
		return nil, ctxErr(ctx, fmt.Errorf("tunnel: dial port %d: %w", port, err))
	}
	switch f.Type {
	case proto.FrameTCPOpened:
		if ctx.Err() != nil { // cancelled just as the agent connected
			s := &Stream{x: x, port: port}
			_ = s.Close()
			return nil, ctx.Err()
		}
		return &Stream{x: x, port: port}, nil
	case proto.FrameAbort:
		x.abort(proto.Errorf(proto.CodeCanceled, "refused"))
		x.finish()
		return nil, ctxErr(ctx, abortError(fmt.Sprintf("dial port %d", port), f.Payload))
	default:
		x.markBroken()
		x.abort(proto.Errorf(proto.CodeBadMessage, "unexpected %s frame", f.Type))
		x.finish()
		return nil, fmt.Errorf("tunnel: unexpected %s frame instead of tcp-opened", f.Type)
	}
}

// Read reads stream bytes; io.EOF once the device side half-closed.
func (s *Stream) Read(p []byte) (int, error) {
	x := s.x
	x.rmu.Lock()
	defer x.rmu.Unlock()
	for len(s.pending) == 0 {
		if s.rerr != nil {
			return 0, s.rerr
		}
		f, err := x.recv()
		if err != nil {
			s.rerr = fmt.Errorf("tunnel: stream read: %w", err)
			x.abort(err)
			continue
		}
		switch f.Type {
		case proto.FrameData:
			s.pending = f.Payload
		case proto.FrameEnd:
			s.rerr = io.EOF
			s.maybeFinish()
		case proto.FrameAbort:
			s.rerr = abortError("stream aborted", f.Payload)
			x.abort(proto.Errorf(proto.CodeCanceled, "peer aborted"))
			x.finish()
		default:
			x.markBroken()
			s.rerr = fmt.Errorf("tunnel: unexpected %s frame in a stream", f.Type)
			x.abort(s.rerr)
			x.finish()
		}
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// maybeFinish releases the channel once both directions ended cleanly.
func (s *Stream) maybeFinish() {
	s.x.wmu.Lock()
	both := s.x.outEnded && s.x.inEnded.Load()
	s.x.wmu.Unlock()
	if both {
		s.x.finish()
	}
}

// Write sends p as data frames, waiting for flow control. It fails after
// CloseWrite, Close or an abort by either side.
func (s *Stream) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p
		if len(chunk) > proto.MaxChunk {
			chunk = chunk[:proto.MaxChunk]
		}
		if err := s.x.send(context.Background(), proto.FrameData, chunk); err != nil {
			if errors.Is(err, errDirectionEnded) || errors.Is(err, errStopped) {
				err = net.ErrClosed
			}
			return n, fmt.Errorf("tunnel: stream write: %w", err)
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// CloseWrite half-closes the stream: the device sees EOF, and Read keeps
// returning what it still sends.
func (s *Stream) CloseWrite() error {
	if err := s.x.send(context.Background(), proto.FrameEnd, nil); err != nil {
		return fmt.Errorf("tunnel: close write: %w", err)
	}
	if s.x.inEnded.Load() {
		s.x.rmu.Lock()
		s.maybeFinish()
		s.x.rmu.Unlock()
	}
	return nil
}

// Close ends the stream. If either direction is still open it aborts the
// exchange and waits (at most DrainTimeout) for the agent's terminal frame,
// so the channel can be reused.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		x := s.x
		x.abort(proto.Errorf(proto.CodeCanceled, "stream closed"))
		x.rmu.Lock()
		defer x.rmu.Unlock()
		x.drain()
		if s.rerr == nil {
			s.rerr = net.ErrClosed
		}
		s.pending = nil
		x.finish()
	})
	return nil
}

// Port returns the device port the stream is connected to.
func (s *Stream) Port() int { return s.port }

// LocalAddr and RemoteAddr make Stream usable where a net.Conn's addresses
// are logged.
func (s *Stream) LocalAddr() net.Addr { return tunnelAddr("technician") }

// RemoteAddr names the device port.
func (s *Stream) RemoteAddr() net.Addr { return tunnelAddr(fmt.Sprintf("device:%d", s.port)) }

// SetReadDeadline bounds the next reads; an expired deadline breaks the
// stream (the channel is then dropped on Close, not reused).
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.x.ch.setReadDeadline(t)
	return nil
}
