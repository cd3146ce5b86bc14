// Package tunneltest connects a tunnel Client and Server in process over
// real pion peer connections on loopback UDP, for tests of the tunnel and
// of the packages built on it.
package tunneltest

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/porthole-dev/porthole/agent/peerconn"
	"github.com/porthole-dev/porthole/agent/tunnel"
)

// ConnectTimeout bounds the in-process connection setup.
const ConnectTimeout = 15 * time.Second

// Config tunes a Pair.
type Config struct {
	// Client configures the technician side.
	Client tunnel.ClientConfig
	// AnswerSDP, if set, rewrites the agent's answer before the client
	// applies it (tests use it to make the client ignore the agent's
	// advertised max-message-size).
	AnswerSDP func(sdp string) string
	// PeerLogger receives both peer connections' pion logs; nil discards.
	PeerLogger *slog.Logger
}

// Pair is a connected technician peer (Client) and agent peer (Session).
type Pair struct {
	Client   *tunnel.Client
	Session  *tunnel.Session
	ClientPC *webrtc.PeerConnection
	AgentPC  *webrtc.PeerConnection

	cancel context.CancelFunc
	closed bool
}

// NewPair connects a Client to srv. Everything is closed by t.Cleanup (or
// earlier by Close).
func NewPair(t testing.TB, srv *tunnel.Server) *Pair {
	t.Helper()
	return NewPairConfig(t, srv, Config{})
}

// NewPairConfig is NewPair with options.
func NewPairConfig(t testing.TB, srv *tunnel.Server, cfg Config) *Pair {
	t.Helper()
	pcfg := peerconn.Config{LoopbackOnly: true, Logger: cfg.PeerLogger}
	cpc, err := peerconn.NewPeerConnection(pcfg)
	if err != nil {
		t.Fatalf("client peer connection: %v", err)
	}
	apc, err := peerconn.NewPeerConnection(pcfg)
	if err != nil {
		_ = cpc.Close()
		t.Fatalf("agent peer connection: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pair{ClientPC: cpc, AgentPC: apc, cancel: cancel}
	t.Cleanup(p.Close)

	p.Session = srv.Start(ctx, apc)
	p.Client = tunnel.NewClient(cpc, cfg.Client)

	connected := make(chan struct{})
	cpc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			select {
			case <-connected:
			default:
				close(connected)
			}
		}
	})
	if err := signal(cpc, apc, cfg.AnswerSDP); err != nil {
		t.Fatalf("signaling: %v", err)
	}
	select {
	case <-connected:
	case <-time.After(ConnectTimeout):
		t.Fatalf("peers did not connect within %v", ConnectTimeout)
	}
	return p
}

// signal exchanges offer and answer with complete candidate lists.
func signal(cpc, apc *webrtc.PeerConnection, mungeAnswer func(string) string) error {
	offer, err := cpc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(cpc)
	if err := cpc.SetLocalDescription(offer); err != nil {
		return err
	}
	if err := waitGathered(gathered); err != nil {
		return err
	}
	if err := apc.SetRemoteDescription(*cpc.LocalDescription()); err != nil {
		return err
	}
	answer, err := apc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gathered = webrtc.GatheringCompletePromise(apc)
	if err := apc.SetLocalDescription(answer); err != nil {
		return err
	}
	if err := waitGathered(gathered); err != nil {
		return err
	}
	ans := *apc.LocalDescription()
	if mungeAnswer != nil {
		ans.SDP = mungeAnswer(ans.SDP)
	}
	return cpc.SetRemoteDescription(ans)
}

func waitGathered(done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-time.After(ConnectTimeout):
		return context.DeadlineExceeded
	}
}

// RaiseMaxMessageSize rewrites an SDP's a=max-message-size to n, for
// AnswerSDP.
func RaiseMaxMessageSize(n int) func(string) string {
	return func(sdp string) string {
		lines := strings.Split(sdp, "\r\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "a=max-message-size:") {
				lines[i] = "a=max-message-size:" + strconv.Itoa(n)
			}
		}
		return strings.Join(lines, "\r\n")
	}
}

// Close closes the client, ends the agent session and waits for it, and
// closes both peer connections.
func (p *Pair) Close() {
	if p.closed {
		return
	}
	p.closed = true
	if p.Client != nil {
		_ = p.Client.Close()
	}
	p.cancel()
	if p.Session != nil {
		p.Session.Wait()
	}
	_ = p.ClientPC.Close()
	_ = p.AgentPC.Close()
}
