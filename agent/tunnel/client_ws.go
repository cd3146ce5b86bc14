package tunnel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// WebSocketCloseError is how a WebSocket closed with a closing handshake:
// the code (proto.WSCloseNoStatus when the close carried none) and reason.
type WebSocketCloseError struct {
	Code   int
	Reason string
}

func (e *WebSocketCloseError) Error() string {
	return fmt.Sprintf("tunnel: websocket closed: %d %s", e.Code, e.Reason)
}

// WebSocket is a device WebSocket carried over the tunnel (the client side
// of proto/websocket.go). One goroutine may read and one may write at a
// time; Close may be called from any.
type WebSocket struct {
	x      *exchange
	opened *proto.WSOpened
	in     proto.WSAssembler

	wmu       sync.Mutex // one message at a time
	closeOnce sync.Once
	closeErr  error
	readErr   error // sticky, under x.rmu
}

// DialWebSocket opens a WebSocket to the device through the agent:
// open.Target is the path and query, open.Port a declared port (0: the web
// port). The agent dials the device itself. A refusal is an error wrapping
// its *proto.Error.
func (c *Client) DialWebSocket(ctx context.Context, open proto.WSOpen) (*WebSocket, error) {
	if open.ClientOrigin == "" {
		open.ClientOrigin = ClientOriginOf(ctx)
	}
	if err := open.Validate(); err != nil {
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	payload, err := proto.EncodeHead(&open)
	if err != nil {
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	ch, err := c.get(ctx)
	if err != nil {
		return nil, err
	}
	x := c.newExchange(ch)
	if err := x.send(ctx, proto.FrameWSOpen, payload); err != nil {
		x.finish()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { x.abort(proto.Errorf(proto.CodeCanceled, "websocket cancelled")) })
	x.rmu.Lock()
	f, err := x.recv()
	x.rmu.Unlock()
	stop()
	if err != nil {
		x.abort(err)
		x.finish()
		return nil, ctxErr(ctx, err)
	}
	switch f.Type {
	case proto.FrameWSOpened:
		o, err := proto.DecodeWSOpened(f.Payload)
		if err != nil {
			x.markBroken()
			x.abort(err)
			x.finish()
			return nil, fmt.Errorf("tunnel: websocket opened: %w", err)
		}
		return &WebSocket{x: x, opened: o}, nil
	case proto.FrameAbort:
		x.abort(proto.Errorf(proto.CodeCanceled, "refused by the agent"))
		x.finish()
		return nil, ctxErr(ctx, abortError("websocket refused", f.Payload))
	default:
		x.markBroken()
		x.abort(proto.Errorf(proto.CodeBadMessage, "unexpected %s frame", f.Type))
		x.finish()
		return nil, fmt.Errorf("tunnel: unexpected %s frame instead of websocket opened", f.Type)
	}
}

// Opened is what the agent said when the device accepted: the chosen
// subprotocol, cookies to mirror, legacy TLS.
func (w *WebSocket) Opened() *proto.WSOpened { return w.opened }

// Protocol is the subprotocol the device chose.
func (w *WebSocket) Protocol() string { return w.opened.Protocol }

// WriteMessage sends one message in chunks of at most proto.MaxChunk,
// waiting while the channel's buffer is above its high-water mark.
func (w *WebSocket) WriteMessage(ctx context.Context, binary bool, data []byte) error {
	if len(data) > proto.MaxWSMessage {
		return proto.Errorf(proto.CodeTooLarge, "websocket message of %d bytes, limit %d", len(data), proto.MaxWSMessage)
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	bp := w.x.ch.frames.Borrow()
	defer w.x.ch.frames.Return(bp)
	for {
		chunk := data
		if len(chunk) > proto.MaxChunk {
			chunk = chunk[:proto.MaxChunk]
		}
		data = data[len(chunk):]
		*bp = proto.AppendWSMessage((*bp)[:0], binary, len(data) == 0, chunk)
		if err := w.x.send(ctx, proto.FrameWSMessage, *bp); err != nil {
			return err
		}
		if len(data) == 0 {
			return nil
		}
	}
}

// ReadMessage returns the next whole message (bounded by
// proto.MaxWSMessage). After the device closed it returns a
// *WebSocketCloseError, having answered the close as a browser does;
// after the connection broke, an error wrapping the agent's *proto.Error.
func (w *WebSocket) ReadMessage() (binary bool, data []byte, err error) {
	x := w.x
	x.rmu.Lock()
	defer x.rmu.Unlock()
	if w.readErr != nil {
		return false, nil, w.readErr
	}
	for {
		f, err := x.recv()
		if err != nil {
			return false, nil, w.failRead(fmt.Errorf("tunnel: websocket: %w", err))
		}
		switch f.Type {
		case proto.FrameWSMessage:
			c, err := proto.ParseWSMessage(f.Payload)
			if err == nil {
				_, err = w.in.Add(c)
			}
			if err != nil {
				x.markBroken()
				x.abort(err)
				return false, nil, w.failRead(err)
			}
			data = append(data, c.Data...)
			if c.Final {
				return c.Binary, data, nil
			}
		case proto.FrameWSClose:
			c, err := proto.DecodeWSClose(f.Payload)
			if err != nil {
				c = &proto.WSClose{Code: proto.WSCloseProtocol}
			}
			ce := &WebSocketCloseError{Code: c.Code, Reason: c.Reason}
			if ce.Code == 0 {
				ce.Code = proto.WSCloseNoStatus
			}
			// Answer the device's close, as a browser does.
			w.sendClose(c.Code, c.Reason)
			x.finish()
			return false, nil, w.failRead(ce)
		case proto.FrameAbort:
			x.abort(proto.Errorf(proto.CodeCanceled, "websocket broke"))
			x.finish()
			return false, nil, w.failRead(abortError("websocket", f.Payload))
		default:
			x.markBroken()
			x.abort(proto.Errorf(proto.CodeBadMessage, "unexpected %s frame", f.Type))
			x.finish()
			return false, nil, w.failRead(fmt.Errorf("tunnel: unexpected %s frame in a websocket", f.Type))
		}
	}
}

func (w *WebSocket) failRead(err error) error {
	w.readErr = err
	return err
}

func (w *WebSocket) sendClose(code int, reason string) {
	w.closeOnce.Do(func() {
		c := proto.WSClose{Code: code, Reason: reason}
		if c.Code == proto.WSCloseNoStatus {
			c = proto.WSClose{}
		}
		b, err := proto.EncodeHead(&c)
		if err == nil {
			err = w.x.send(context.Background(), proto.FrameWSClose, b)
		}
		w.closeErr = err
	})
}

// Close starts the closing handshake (code 0 sends none) and waits,
// bounded by DrainTimeout, for the device's answer; messages arriving in
// between are discarded. The channel goes back to the pool after a clean
// handshake.
func (w *WebSocket) Close(code int, reason string) error {
	c := proto.WSClose{Code: code, Reason: reason}
	if err := c.Validate(); err != nil {
		return err
	}
	w.wmu.Lock()
	w.sendClose(code, reason)
	w.wmu.Unlock()
	x := w.x
	x.ch.setReadDeadline(time.Now().Add(DrainTimeout))
	x.rmu.Lock()
	defer x.rmu.Unlock()
	if w.readErr == nil {
		x.drain()
		w.readErr = errors.New("tunnel: websocket closed")
	}
	x.finish()
	return w.closeErr
}
