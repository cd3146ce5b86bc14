package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"

	"github.com/porthole-dev/porthole/agent/peerconn"
	"github.com/porthole-dev/porthole/agent/tunnel"
)

// connectTimeout bounds an in-process peer connection setup.
const connectTimeout = 20 * time.Second

// PairOptions shape an in-process technician ↔ agent pair on loopback.
type PairOptions struct {
	// Delay is the one-way delay of the media path (a UDPDelay between
	// the peers); 0 connects them directly.
	Delay time.Duration
	// SignalDelay is added once to the offer and once to the answer, as
	// a signaling round trip would.
	SignalDelay time.Duration
	// RelayProcess runs the delay relay in a child process, so that its
	// CPU is not counted as this process's.
	RelayProcess bool
}

// Pair is two connected peer connections, optionally through a delay
// relay.
type Pair struct {
	Client, Agent *webrtc.PeerConnection
	relay         *UDPDelay
	relayProc     *relayProcess
}

// newPeers creates the two peer connections.
func newPeers() (*webrtc.PeerConnection, *webrtc.PeerConnection, error) {
	cfg := peerconn.Config{LoopbackOnly: true}
	c, err := peerconn.NewPeerConnection(cfg)
	if err != nil {
		return nil, nil, err
	}
	a, err := peerconn.NewPeerConnection(cfg)
	if err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	return c, a, nil
}

// connect runs offer/answer between p.Client and p.Agent. With a delay,
// the offer carries no candidates (the agent learns the client as
// peer-reflexive through the relay) and the answer's candidate is
// rewritten to the relay, so every packet crosses it.
func (p *Pair) connect(opts PairOptions) error {
	offer, err := p.Client.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(p.Client)
	if err := p.Client.SetLocalDescription(offer); err != nil {
		return err
	}
	if err := wait(gathered); err != nil {
		return err
	}
	osdp := p.Client.LocalDescription().SDP
	if opts.Delay > 0 {
		osdp = stripCandidates(osdp)
	}
	time.Sleep(opts.SignalDelay)
	if err := p.Agent.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: osdp}); err != nil {
		return err
	}
	answer, err := p.Agent.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gathered = webrtc.GatheringCompletePromise(p.Agent)
	if err := p.Agent.SetLocalDescription(answer); err != nil {
		return err
	}
	if err := wait(gathered); err != nil {
		return err
	}
	asdp := p.Agent.LocalDescription().SDP
	if opts.Delay > 0 {
		target, err := hostCandidate(asdp)
		if err != nil {
			return err
		}
		var addr string
		if opts.RelayProcess {
			if p.relayProc, err = startRelayProcess("udp", target, opts.Delay); err != nil {
				return err
			}
			addr = p.relayProc.Addr
		} else {
			if p.relay, err = NewUDPDelay(target, opts.Delay); err != nil {
				return err
			}
			addr = p.relay.Addr().String()
		}
		asdp = rewriteCandidate(asdp, target, addr)
	}
	time.Sleep(opts.SignalDelay)
	return p.Client.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: asdp})
}

func wait(done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-time.After(connectTimeout):
		return errors.New("ICE gathering did not complete")
	}
}

func stripCandidates(sdp string) string {
	lines := strings.Split(sdp, "\r\n")
	out := lines[:0]
	for _, l := range lines {
		if strings.HasPrefix(l, "a=candidate:") || l == "a=end-of-candidates" {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\r\n")
}

// hostCandidate returns ip:port of the first UDP host candidate.
func hostCandidate(sdp string) (string, error) {
	for _, l := range strings.Split(sdp, "\r\n") {
		f := strings.Fields(strings.TrimPrefix(l, "a=candidate:"))
		if strings.HasPrefix(l, "a=candidate:") && len(f) >= 8 && strings.EqualFold(f[2], "udp") && f[7] == "host" {
			return net.JoinHostPort(f[4], f[5]), nil
		}
	}
	return "", errors.New("no UDP host candidate in the SDP")
}

// rewriteCandidate keeps only the candidate at from, pointing it at to.
func rewriteCandidate(sdp, from, to string) string {
	fh, fp, _ := net.SplitHostPort(from)
	th, tp, _ := net.SplitHostPort(to)
	lines := strings.Split(sdp, "\r\n")
	out := lines[:0]
	for _, l := range lines {
		if strings.HasPrefix(l, "a=candidate:") {
			f := strings.Fields(l)
			if len(f) < 6 || f[4] != fh || f[5] != fp {
				continue
			}
			f[4], f[5] = th, tp
			l = strings.Join(f, " ")
		}
		out = append(out, l)
	}
	return strings.Join(out, "\r\n")
}

// Close closes both peers and the relay.
func (p *Pair) Close() {
	if p.Client != nil {
		_ = p.Client.Close()
	}
	if p.Agent != nil {
		_ = p.Agent.Close()
	}
	if p.relay != nil {
		p.relay.Close()
	}
	if p.relayProc != nil {
		p.relayProc.Close()
	}
}

// TunnelPair is a tunnel Client and Server over a Pair.
type TunnelPair struct {
	Pair
	Client  *tunnel.Client
	Session *tunnel.Session
	cancel  context.CancelFunc
}

// NewTunnelPair connects a tunnel client to a server that serves h for
// every port. It returns once the client's first channel is usable (the
// caller times from before the call to measure setup).
func NewTunnelPair(h http.Handler, opts PairOptions) (*TunnelPair, error) {
	c, a, err := newPeers()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	tp := &TunnelPair{Pair: Pair{Client: c, Agent: a}, cancel: cancel}
	srv := &tunnel.Server{HTTP: func(int) (http.Handler, error) { return h, nil }}
	tp.Session = srv.Start(ctx, a)
	tp.Client = tunnel.NewClient(c, tunnel.ClientConfig{})
	if err := tp.connect(opts); err != nil {
		tp.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return tp, nil
}

// Close ends the tunnel and the pair.
func (tp *TunnelPair) Close() {
	if tp.Client != nil {
		_ = tp.Client.Close()
	}
	tp.cancel()
	tp.Session.Wait()
	tp.Pair.Close()
}

// DCPair is one bare detached data channel between the two peers: the
// ceiling of what a tunnel over pion can reach.
type DCPair struct {
	Pair
	ClientDC, AgentDC datachannel.ReadWriteCloser
}

// NewDCPair connects the peers with one ordered reliable data channel.
func NewDCPair(opts PairOptions) (*DCPair, error) {
	c, a, err := newPeers()
	if err != nil {
		return nil, err
	}
	dp := &DCPair{Pair: Pair{Client: c, Agent: a}}
	agentCh := make(chan datachannel.ReadWriteCloser, 1)
	a.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnOpen(func() {
			rwc, err := dc.DetachWithDeadline()
			if err == nil {
				agentCh <- rwc
			}
		})
	})
	dc, err := c.CreateDataChannel("bench", nil)
	if err != nil {
		dp.Close()
		return nil, err
	}
	clientCh := make(chan datachannel.ReadWriteCloser, 1)
	dc.OnOpen(func() {
		rwc, err := dc.DetachWithDeadline()
		if err == nil {
			clientCh <- rwc
		}
	})
	if err := dp.connect(opts); err != nil {
		dp.Close()
		return nil, err
	}
	timeout := time.After(connectTimeout)
	for dp.ClientDC == nil || dp.AgentDC == nil {
		select {
		case dp.ClientDC = <-clientCh:
		case dp.AgentDC = <-agentCh:
		case <-timeout:
			dp.Close()
			return nil, errors.New("data channel did not open")
		}
	}
	return dp, nil
}

// flowWriter writes messages of at most size bytes to a detached channel,
// waiting while more than high bytes are buffered (the tunnel's marks).
type flowWriter struct {
	rwc  datachannel.ReadWriteCloser
	size int
	low  chan struct{}
}

type bufferedAmounter interface {
	BufferedAmount() uint64
	SetBufferedAmountLowThreshold(uint64)
	OnBufferedAmountLow(func())
}

func newFlowWriter(rwc datachannel.ReadWriteCloser, size int) *flowWriter {
	w := &flowWriter{rwc: rwc, size: size, low: make(chan struct{}, 1)}
	if b, ok := rwc.(bufferedAmounter); ok {
		b.SetBufferedAmountLowThreshold(tunnel.LowWater)
		b.OnBufferedAmountLow(func() {
			select {
			case w.low <- struct{}{}:
			default:
			}
		})
	}
	return w
}

// send writes n bytes from buf (reused) in messages.
func (w *flowWriter) send(n int64, buf []byte, deadline time.Time) error {
	b, _ := w.rwc.(bufferedAmounter)
	for n > 0 {
		for b != nil && b.BufferedAmount() > tunnel.HighWater {
			select {
			case <-w.low:
			case <-time.After(time.Until(deadline)):
				return errors.New("flow control wait past the deadline")
			}
		}
		m := min(int64(w.size), n)
		if _, err := w.rwc.Write(buf[:m]); err != nil {
			return err
		}
		n -= m
	}
	return nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
