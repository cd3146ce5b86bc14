package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"

	"github.com/porthole-dev/porthole/agent/bufpool"
	"github.com/porthole-dev/porthole/proto"
)

// Label is the data-channel label of tunnel channels; the agent refuses
// channels with any other label.
const Label = "porthole"

// Flow-control marks of a channel's SCTP send buffer (pion counts the
// bytes queued and those sent but not yet acknowledged): a write waits
// while more than the high mark is buffered and resumes once it drained to
// a quarter of it. The high mark is the window the path needs to carry
// windowRate at the least smoothed round-trip time of the last 10–20 s
// (rttFloor), between MinHighWater and HighWater. A fixed 4 MiB overflowed Chromium's UDP socket (2 MiB in the
// kernel's accounting, see web/session/tunnel.js prime) whenever its
// network service was descheduled: 400–3000 datagrams dropped per 64 MiB
// download on loopback, none with 1 MiB; a 50 ms path needs about 3 MiB.
const (
	HighWater    = 4 << 20 // the most, for long paths
	LowWater     = HighWater / 4
	MinHighWater = 1 << 20
	windowRate   = 64 << 20 // bytes per second
)

// ErrChannelClosed is returned by operations on a closed channel.
var ErrChannelClosed = errors.New("tunnel: channel closed")

// errStopped is returned by a write that was abandoned because its
// exchange is being aborted.
var errStopped = errors.New("tunnel: exchange aborted")

// flowControl is what a detached pion data channel offers for flow control
// (*datachannel.DataChannel implements it).
type flowControl interface {
	BufferedAmount() uint64
	SetBufferedAmountLowThreshold(th uint64)
	OnBufferedAmountLow(f func())
}

// Channel is one detached data channel speaking the tunnel frame protocol.
// One goroutine at a time may call ReadFrame; WriteFrame is safe for
// concurrent use.
type Channel struct {
	dc   *webrtc.DataChannel
	sctp *webrtc.SCTPTransport // its smoothed RTT sizes the window; nil: HighWater
	rtt  rttFloor              // the least of that RTT lately
	rwc  datachannel.ReadWriteCloser
	flow flowControl
	rbuf []byte
	// frames lends the buffers outgoing frames are assembled in; its
	// owner (the Client or Session) shares it among its channels.
	frames *bufpool.Pool

	lowMu  sync.Mutex
	lowGen chan struct{} // closed and replaced each time the send buffer drains to LowWater

	closeOnce sync.Once
	closed    chan struct{}
}

// Detach detaches an open data channel and wraps it; frames (from
// bufpool.NewFrames, shared by the channels of one owner) lends the
// buffers its outgoing frames are assembled in. Call it from the
// channel's OnOpen handler (or after it ran); it fails if the peer
// connection's API was not built with detached data channels
// (agent/peerconn does that).
func Detach(dc *webrtc.DataChannel, frames *bufpool.Pool) (*Channel, error) {
	rwc, err := dc.DetachWithDeadline()
	if err != nil {
		return nil, fmt.Errorf("tunnel: detach data channel: %w", err)
	}
	flow, ok := rwc.(flowControl)
	if !ok {
		_ = rwc.Close()
		return nil, errors.New("tunnel: detached data channel has no buffered amount")
	}
	c := &Channel{
		dc:     dc,
		sctp:   dc.Transport(),
		rwc:    rwc,
		flow:   flow,
		rbuf:   make([]byte, proto.MaxFrame),
		frames: frames,
		lowGen: make(chan struct{}),
		closed: make(chan struct{}),
	}
	flow.SetBufferedAmountLowThreshold(MinHighWater / 4)
	// Called on the SCTP association's goroutine: must not block.
	flow.OnBufferedAmountLow(c.drained)
	return c, nil
}

func (c *Channel) drained() {
	c.lowMu.Lock()
	close(c.lowGen)
	c.lowGen = make(chan struct{})
	c.lowMu.Unlock()
}

func (c *Channel) lowSignal() <-chan struct{} {
	c.lowMu.Lock()
	defer c.lowMu.Unlock()
	return c.lowGen
}

// ID returns the SCTP stream id of the channel, for logs.
func (c *Channel) ID() uint16 {
	if id := c.dc.ID(); id != nil {
		return *id
	}
	return 0
}

// ReadFrame reads and parses one frame. The payload aliases the channel's
// read buffer and is valid until the next ReadFrame. A message larger than
// proto.MaxFrame fails with an error wrapping both io.ErrShortBuffer and
// proto.ErrTooLarge; the channel cannot be read any further after it.
func (c *Channel) ReadFrame() (proto.Frame, error) {
	n, err := c.rwc.Read(c.rbuf)
	if err != nil {
		if errors.Is(err, io.ErrShortBuffer) {
			return proto.Frame{}, fmt.Errorf("%w: %w", io.ErrShortBuffer,
				proto.Errorf(proto.CodeTooLarge, "tunnel message over %d bytes", proto.MaxFrame))
		}
		select {
		case <-c.closed:
			return proto.Frame{}, ErrChannelClosed
		default:
		}
		return proto.Frame{}, err
	}
	return proto.ParseFrame(c.rbuf[:n])
}

// WriteFrame sends one frame, first waiting while the send buffer is above
// HighWater. It returns early with ctx's error, or ErrChannelClosed.
func (c *Channel) WriteFrame(ctx context.Context, t proto.FrameType, payload []byte) error {
	return c.write(ctx, nil, t, payload, true)
}

// write sends a frame; with wait it first waits for the send buffer to
// drain below HighWater, giving up on ctx, stop or close.
func (c *Channel) write(ctx context.Context, stop <-chan struct{}, t proto.FrameType, payload []byte, wait bool) error {
	if len(payload) > proto.MaxFramePayload {
		return proto.Errorf(proto.CodeTooLarge, "frame payload of %d bytes", len(payload))
	}
	for wait && c.flow.BufferedAmount() > MinHighWater {
		high := c.highWater()
		if c.flow.BufferedAmount() <= high {
			break
		}
		// Resume at a quarter of the mark (the threshold is the channel's:
		// concurrent writers set about the same value).
		c.flow.SetBufferedAmountLowThreshold(high / 4)
		low := c.lowSignal()
		if c.flow.BufferedAmount() <= high/4 {
			continue
		}
		select {
		case <-low:
		case <-stop:
			return errStopped
		case <-c.closed:
			return ErrChannelClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-c.closed:
		return ErrChannelClosed
	default:
	}
	bp := c.frames.Borrow()
	msg := proto.AppendFrame((*bp)[:0], t, payload)
	_, err := c.rwc.Write(msg) // pion copies msg before returning
	*bp = msg
	c.frames.Return(bp)
	if err != nil {
		c.Close()
		return fmt.Errorf("tunnel: write %s frame: %w", t, err)
	}
	return nil
}

// highWater is the channel's high mark now: windowRate times the SCTP
// association's smoothed RTT (zero before the first measurement), within
// MinHighWater and HighWater.
func (c *Channel) highWater() uint64 {
	if c.sctp == nil {
		return HighWater
	}
	return windowFor(c.rtt.observe(time.Now(), c.sctp.Stats().SmoothedRoundTripTime))
}

// rttFloorPeriod is how long a least RTT is remembered: between one and
// two periods, so a path that became longer (a switch to a relay) gets
// its window within seconds.
const rttFloorPeriod = 10 * time.Second

// rttFloor is a windowed minimum of the smoothed RTT. The window follows
// the path's RTT, not the queueing on it: when the receiver falls behind
// (Chromium's network service descheduled on a loaded machine) its RTT
// grows with the queue, and a window that grew with it put more in flight
// than the receiver's socket holds, which then dropped datagrams.
type rttFloor struct {
	mu         sync.Mutex
	cur, prev  float64 // least sample of this period and of the one before; 0: none
	curStarted time.Time
}

// observe records a sample (seconds; ≤ 0 or NaN: none yet) and returns
// the least of the last one to two periods, or the sample if there is none.
func (f *rttFloor) observe(now time.Time, srtt float64) float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(f.curStarted) >= rttFloorPeriod {
		f.prev, f.cur, f.curStarted = f.cur, 0, now
	}
	if srtt > 0 && (f.cur == 0 || srtt < f.cur) {
		f.cur = srtt
	}
	least := f.cur
	if f.prev > 0 && (least == 0 || f.prev < least) {
		least = f.prev
	}
	if least == 0 {
		return srtt
	}
	return least
}

// windowFor is the high mark for a smoothed RTT in seconds.
func windowFor(srtt float64) uint64 {
	if !(srtt > 0) { // none yet, or NaN
		return MinHighWater
	}
	w := srtt * windowRate
	if w >= HighWater {
		return HighWater
	}
	return max(uint64(w), MinHighWater)
}

// setReadDeadline bounds the next reads (zero: no bound).
func (c *Channel) setReadDeadline(t time.Time) {
	if d, ok := c.rwc.(datachannel.ReadDeadliner); ok {
		_ = d.SetReadDeadline(t)
	}
}

// Done is closed when the channel is closed.
func (c *Channel) Done() <-chan struct{} { return c.closed }

func (c *Channel) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// Close closes the channel (an SCTP stream reset, so frames already sent
// are still delivered first) and unblocks its readers and writers.
func (c *Channel) Close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		_ = c.dc.Close()
		_ = c.rwc.Close()
		c.setReadDeadline(time.Unix(1, 0))
	})
}

// channelList returns the channels of set; the caller holds the lock
// guarding it.
func channelList(set map[*Channel]struct{}) []*Channel {
	chans := make([]*Channel, 0, len(set))
	for ch := range set {
		chans = append(chans, ch)
	}
	return chans
}

// closeChannels closes every channel of chans.
func closeChannels(chans []*Channel) {
	for _, ch := range chans {
		ch.Close()
	}
}

// abortPayload encodes err as a FrameAbort payload: its proto code (or
// internal) and a message cut to proto.MaxText.
func abortPayload(err error) []byte {
	var pe *proto.Error
	e := &proto.Error{Code: proto.CodeInternal}
	if errors.As(err, &pe) {
		e.Code, e.Message = pe.Code, pe.Message
	} else if err != nil {
		e.Message = err.Error()
	}
	if !e.Code.Known() {
		e.Code = proto.CodeInternal
	}
	if len(e.Message) > proto.MaxText {
		e.Message = e.Message[:proto.MaxText]
	}
	b, mErr := proto.EncodeHead(e)
	if mErr != nil {
		b, _ = proto.EncodeHead(&proto.Error{Code: e.Code})
	}
	return b
}

// addrs for Stream's net.Conn-like methods.
type tunnelAddr string

func (a tunnelAddr) Network() string { return "porthole" }
func (a tunnelAddr) String() string  { return string(a) }

var _ net.Addr = tunnelAddr("")
