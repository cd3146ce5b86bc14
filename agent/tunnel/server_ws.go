package tunnel

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-dev/porthole/agent/bufpool"
	"github.com/porthole-dev/porthole/internal/redact"
	"github.com/porthole-dev/porthole/proto"
)

// DeviceWebSocket is the agent's WebSocket to the device; gorilla's
// *websocket.Conn implements it. One goroutine reads (NextReader), one
// writes (NextWriter); WriteControl and Close may be called from any.
type DeviceWebSocket interface {
	NextReader() (messageType int, r io.Reader, err error)
	NextWriter(messageType int) (io.WriteCloser, error)
	WriteControl(messageType int, data []byte, deadline time.Time) error
	Close() error
}

var _ DeviceWebSocket = (*websocket.Conn)(nil)

// wsCloseWait bounds how long the agent waits for the other side's close
// frame once one side started the closing handshake.
const wsCloseWait = 5 * time.Second

// wsExchange is the agent side of a WebSocket exchange (proto/websocket.go):
// the loop feeds the client's messages to the device; a goroutine sends
// the device's messages to the client. Each direction has flow control of
// its own: the device's messages are read only as fast as the channel
// drains (a device that floods is slowed to the client's pace by TCP), and
// the client's are written to the device before the next frame is read.
type wsExchange struct {
	out  *outDir
	log  *slog.Logger
	conn DeviceWebSocket
	bufs *bufpool.Pool
	fin  chan struct{}

	start    time.Time
	observed func(ExchangeResult)
	toDevice atomic.Int64
	fromDev  atomic.Int64

	// The client's direction (the loop's goroutine only).
	in proto.WSAssembler
	w  io.WriteCloser // the device message being written

	closeOnce  sync.Once
	clientDone chan struct{} // closed when the client's direction ended
	clientOnce sync.Once
}

func (ss *Session) startWS(ch *Channel, log *slog.Logger, payload []byte) agentExchange {
	o, err := proto.DecodeWSOpen(payload)
	if err != nil {
		return ss.refuse(ch, log, "websocket", err)
	}
	if ss.srv.WebSocket == nil {
		return ss.refuse(ch, log, "websocket", proto.Errorf(proto.CodeUnsupported, "no WebSocket service"))
	}
	start := time.Now()
	observed, err := ss.observe(Exchange{Kind: "http", Stream: int(ch.ID()), Method: http.MethodGet, Target: o.Target, Port: o.Port, Start: start})
	if err != nil {
		return ss.refuse(ch, log, "websocket", asRefusal(err, proto.CodeInternal))
	}
	out := newOutDir(ss.ctx, ch)
	conn, opened, err := ss.srv.WebSocket(out.ctx, o)
	if err != nil {
		out.stopFn()
		err = asRefusal(err, proto.CodeDeviceFailed)
		if observed != nil {
			observed(ExchangeResult{Duration: time.Since(start), Err: err})
		}
		return ss.refuse(ch, log, "websocket", err)
	}
	if opened == nil {
		opened = &proto.WSOpened{}
	}
	x := &wsExchange{out: out, log: log, conn: conn, bufs: ss.bufs, fin: make(chan struct{}), start: start, observed: observed,
		clientDone: make(chan struct{})}
	b, err := proto.EncodeHead(opened)
	if err == nil {
		err = out.send(proto.FrameWSOpened, b)
	}
	if err != nil {
		x.closeConn()
		out.abort(err)
		close(x.fin)
		x.report(err)
		return x
	}
	// Closing the device connection is what unblocks a write to a device
	// that stopped reading, whatever ends the exchange.
	stop := context.AfterFunc(out.ctx, x.closeConn)
	go func() {
		defer close(x.fin)
		defer stop()
		err := x.fromDevice()
		x.closeConn()
		x.report(err)
	}()
	log.Debug("tunnel: websocket opened", "target", redact.Target(o.Target), "port", o.Port, "protocol", opened.Protocol)
	return x
}

func (x *wsExchange) closeConn() { x.closeOnce.Do(func() { _ = x.conn.Close() }) }

func (x *wsExchange) report(err error) {
	if x.observed == nil {
		return
	}
	var pe *proto.Error
	if err != nil && !errors.As(err, &pe) {
		err = proto.Errorf(proto.CodeDeviceFailed, "%v", err)
	}
	x.observed(ExchangeResult{Status: http.StatusSwitchingProtocols, ReqBytes: x.toDevice.Load(),
		RespBytes: x.fromDev.Load(), Duration: time.Since(x.start), Err: err})
}

// fromDevice sends the device's messages until it closes, then ends our
// direction: FrameWSClose after a closing handshake, FrameAbort when the
// connection broke. It returns nil for a clean close.
func (x *wsExchange) fromDevice() error {
	bufA, bufB := x.bufs.Get(), x.bufs.Get()
	defer x.bufs.Put(bufA)
	defer x.bufs.Put(bufB)
	frame := make([]byte, 0, 1+proto.MaxChunk)
	for {
		typ, r, err := x.conn.NextReader()
		if err != nil {
			return x.deviceClosed(err)
		}
		binary := typ == websocket.BinaryMessage
		// One chunk of look-ahead tells which chunk is the last.
		cur, next := bufA, bufB
		n, rerr := io.ReadFull(r, cur)
		for {
			final := rerr != nil
			var m int
			if !final {
				m, rerr = io.ReadFull(r, next)
				final = m == 0 && rerr != nil
			}
			if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
				return x.deviceClosed(rerr)
			}
			frame = proto.AppendWSMessage(frame[:0], binary, final, cur[:n])
			if err := x.out.send(proto.FrameWSMessage, frame); err != nil {
				return err
			}
			x.fromDev.Add(int64(n))
			if final {
				break
			}
			cur, next, n = next, cur, m
		}
	}
}

// deviceClosed ends our direction after the device's connection ended.
func (x *wsExchange) deviceClosed(err error) error {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		c := proto.WSClose{Code: ce.Code, Reason: ce.Text}
		if c.Code == websocket.CloseNoStatusReceived || !proto.ValidWSCloseCode(c.Code) {
			c = proto.WSClose{}
		}
		if len(c.Reason) > proto.MaxWSReason {
			c.Reason = c.Reason[:proto.MaxWSReason]
		}
		b, _ := proto.EncodeHead(&c)
		if sErr := x.out.send(proto.FrameWSClose, b); sErr != nil {
			x.out.abort(sErr)
			return sErr
		}
		// The closing handshake is the client's to finish; give it a
		// bounded time before the exchange's goroutine returns.
		select {
		case <-x.clientDone:
		case <-x.out.ctx.Done():
		case <-time.After(wsCloseWait):
		}
		return nil
	case errors.Is(err, websocket.ErrReadLimit):
		_ = x.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(proto.WSCloseTooBig, "message too big"), time.Now().Add(time.Second))
		e := proto.Errorf(proto.CodeTooLarge, "the device sent a WebSocket message over %d bytes", proto.MaxWSMessage)
		x.out.abort(e)
		return e
	}
	e := proto.Errorf(proto.CodeDeviceFailed, "the device's WebSocket broke: %v", err)
	if x.out.ctx.Err() != nil {
		e = proto.Errorf(proto.CodeCanceled, "websocket closed")
	}
	x.out.abort(e)
	return e
}

func (x *wsExchange) clientEnded() { x.clientOnce.Do(func() { close(x.clientDone) }) }

// message is one FrameWSMessage of the client's direction: it is written
// to the device before the next frame is read (flow control towards the
// device). An error is fatal for the channel.
func (x *wsExchange) message(payload []byte) error {
	c, err := proto.ParseWSMessage(payload)
	if err != nil {
		return err
	}
	first, err := x.in.Add(c)
	if err != nil {
		if proto.CodeOf(err) == proto.CodeTooLarge {
			_ = x.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(proto.WSCloseTooBig, ""), time.Now().Add(time.Second))
		}
		return err
	}
	if first {
		typ := websocket.TextMessage
		if c.Binary {
			typ = websocket.BinaryMessage
		}
		if x.w, err = x.conn.NextWriter(typ); err != nil {
			x.w = nil
		}
	}
	if x.w != nil && len(c.Data) > 0 {
		if _, err := x.w.Write(c.Data); err != nil {
			x.w = nil // the device is gone: fromDevice ends our direction
		}
		x.toDevice.Add(int64(len(c.Data)))
	}
	if c.Final && x.w != nil {
		if err := x.w.Close(); err != nil {
			x.log.Debug("tunnel: websocket write to the device", "err", err)
		}
		x.w = nil
	}
	return nil
}

// closed is the client's FrameWSClose: start or finish the closing
// handshake with the device.
func (x *wsExchange) closed(payload []byte) error {
	c, err := proto.DecodeWSClose(payload)
	if err != nil {
		return err
	}
	if x.in.InMessage() {
		return proto.Errorf(proto.CodeBadMessage, "websocket close inside a message")
	}
	msg := websocket.FormatCloseMessage(websocket.CloseNoStatusReceived, "")
	if c.Code != 0 {
		msg = websocket.FormatCloseMessage(c.Code, c.Reason)
	}
	_ = x.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	x.clientEnded()
	// The device answers with its close frame, which fromDevice turns
	// into ours; one that never does is dropped after wsCloseWait.
	go func() {
		select {
		case <-x.fin:
		case <-time.After(wsCloseWait):
			x.closeConn()
		}
	}()
	return nil
}

func (x *wsExchange) data([]byte) error {
	return proto.Errorf(proto.CodeBadMessage, "data frame in a websocket exchange")
}

func (x *wsExchange) end() error {
	return proto.Errorf(proto.CodeBadMessage, "end frame in a websocket exchange")
}

func (x *wsExchange) aborted(*proto.Error) {
	x.clientEnded()
	x.closeConn()
	x.out.abort(proto.Errorf(proto.CodeCanceled, "websocket aborted by the client"))
}

func (x *wsExchange) cancel(err error) {
	x.clientEnded()
	x.closeConn()
	x.out.abort(err)
}

func (x *wsExchange) done() <-chan struct{} { return x.fin }
