package tunnel

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porthole-dev/porthole/agent/bufpool"
	"github.com/porthole-dev/porthole/agent/rfbfilter"
	"github.com/porthole-dev/porthole/proto"
)

// tcpExchange is the agent side of a TCP stream: the loop writes the
// client's data to the device connection; a goroutine sends what the
// device sends. FrameEnd from the client half-closes the device
// connection; the device's EOF becomes our FrameEnd.
type tcpExchange struct {
	out  *outDir
	log  *slog.Logger
	conn io.ReadWriteCloser // a net.Conn, or a Terminal for SSH
	bufs *bufpool.Pool
	fin  chan struct{}
	// view, when set, keeps the stream view-only: the client's bytes
	// reach the device through it (viewBuf is its output's room).
	view    *rfbfilter.Filter
	viewBuf []byte

	start     time.Time
	observed  func(ExchangeResult) // Server.Observe's, or nil
	toDevice  atomic.Int64
	fromDev   atomic.Int64
	closeOnce sync.Once

	mu       sync.Mutex
	inDone   bool // the client's direction ended
	outDone  bool // our direction ended
	discard  bool // the device stopped accepting data
	canceled bool
}

func (ss *Session) startTCP(ch *Channel, log *slog.Logger, payload []byte) agentExchange {
	o, err := proto.DecodeTCPOpen(payload)
	if err != nil {
		return ss.refuse(ch, log, "tcp stream", err)
	}
	if ss.srv.DialTCP == nil {
		return ss.refuse(ch, log, "tcp stream", proto.Errorf(proto.CodePortNotAllowed, "no TCP forwarding"))
	}
	start := time.Now()
	observed, err := ss.observe(Exchange{Kind: "tcp", Stream: int(ch.ID()), Port: o.Port, Start: start, Via: proto.ViaWebRTC, ViewOnly: o.ViewOnly})
	if err != nil {
		return ss.refuse(ch, log, "tcp stream", asRefusal(err, proto.CodeInternal))
	}
	out := newOutDir(ss.ctx, ch)
	dctx := out.ctx
	if o.ViewOnly {
		dctx = context.WithValue(dctx, viewOnlyKey{}, true)
	}
	conn, err := ss.srv.DialTCP(dctx, o.Port)
	if err != nil {
		out.stopFn()
		err = asRefusal(err, proto.CodeDeviceFailed)
		if observed != nil {
			observed(ExchangeResult{Duration: time.Since(start), Err: err})
		}
		return ss.refuse(ch, log, "tcp stream", err)
	}
	x := &tcpExchange{out: out, log: log, conn: conn, bufs: ss.bufs, fin: make(chan struct{}), start: start, observed: observed}
	if o.ViewOnly {
		x.view = &rfbfilter.Filter{}
	}
	if err := out.send(proto.FrameTCPOpened, nil); err != nil {
		out.stopFn()
		x.closeOnce.Do(func() { x.record(err) })
		_ = conn.Close()
		close(x.fin)
		return x
	}
	log.Debug("tunnel: tcp stream", "port", o.Port, "viewOnly", o.ViewOnly)
	go x.fromDevice()
	return x
}

// fromDevice sends what the device sends, then our FrameEnd at its EOF.
func (x *tcpExchange) fromDevice() {
	defer close(x.fin)
	buf := x.bufs.Get()
	defer x.bufs.Put(buf)
	for {
		n, err := x.conn.Read(buf)
		x.fromDev.Add(int64(n))
		if n > 0 {
			if sErr := x.out.send(proto.FrameData, buf[:n]); sErr != nil {
				x.out.abort(proto.Errorf(proto.CodeCanceled, "stream stopped"))
				break
			}
		}
		if err == io.EOF {
			if sErr := x.out.send(proto.FrameEnd, nil); sErr != nil {
				x.out.abort(sErr)
			}
			break
		}
		if err != nil {
			x.mu.Lock()
			canceled := x.canceled
			x.mu.Unlock()
			if canceled {
				x.out.abort(proto.Errorf(proto.CodeCanceled, "stream cancelled"))
			} else {
				x.out.abort(proto.Errorf(proto.CodeDeviceFailed, "read from device: %v", err))
			}
			break
		}
	}
	x.mu.Lock()
	x.outDone = true
	both := x.inDone
	x.mu.Unlock()
	if both {
		x.close()
	}
}

func (x *tcpExchange) close() {
	_ = x.conn.Close()
	x.out.stopFn()
	x.closeOnce.Do(func() {
		x.mu.Lock()
		var err error
		if x.canceled {
			err = proto.Errorf(proto.CodeCanceled, "stream stopped")
		}
		x.mu.Unlock()
		x.record(err)
	})
}

// record reports the stream's outcome to the observer, once.
func (x *tcpExchange) record(err error) {
	if x.observed != nil {
		x.observed(ExchangeResult{ReqBytes: x.toDevice.Load(), RespBytes: x.fromDev.Load(), Duration: time.Since(x.start), Err: err})
	}
}

func (x *tcpExchange) data(p []byte) error {
	x.mu.Lock()
	discard := x.discard
	x.mu.Unlock()
	if discard {
		return nil
	}
	if x.view != nil {
		var ferr error
		// The filter's output is never longer than its input.
		x.viewBuf, ferr = x.view.Write(x.viewBuf[:0], p)
		p = x.viewBuf
		if ferr != nil {
			x.log.Warn("tunnel: view-only stream stopped", "err", ferr)
			if len(p) > 0 {
				_, _ = x.conn.Write(p)
			}
			x.stop(proto.Errorf(proto.CodeForbidden, "%v", ferr))
			return nil
		}
		if len(p) == 0 {
			return nil
		}
	}
	n, err := x.conn.Write(p)
	x.toDevice.Add(int64(n))
	if err != nil {
		x.mu.Lock()
		x.discard = true
		outDone := x.outDone
		x.mu.Unlock()
		if outDone {
			// Our direction already ended, so it cannot carry the
			// failure: closing the channel does.
			return proto.Errorf(proto.CodeDeviceFailed, "write to device: %v", err)
		}
		x.stop(proto.Errorf(proto.CodeDeviceFailed, "write to device: %v", err))
	}
	return nil
}

func (x *tcpExchange) end() error {
	x.mu.Lock()
	x.inDone = true
	both := x.outDone
	x.mu.Unlock()
	if both {
		x.close()
		return nil
	}
	if cw, ok := x.conn.(closeWriter); ok {
		if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			x.log.Debug("tunnel: half-close device connection", "err", err)
		}
	}
	return nil
}

func (x *tcpExchange) aborted(*proto.Error) {
	x.mu.Lock()
	x.inDone = true
	x.mu.Unlock()
	x.stop(proto.Errorf(proto.CodeCanceled, "stream aborted by the client"))
}

func (x *tcpExchange) cancel(err error) { x.stop(err) }

// stop ends our direction with FrameAbort (if open) and closes the device
// connection, which ends fromDevice.
func (x *tcpExchange) stop(err error) {
	x.mu.Lock()
	x.canceled = true
	x.mu.Unlock()
	x.out.abort(err)
	x.close()
}

func (x *tcpExchange) done() <-chan struct{} { return x.fin }
