// Package peering runs the WebRTC half of one session over signaling: the
// offer/answer exchange and trickle ICE in both directions. The agent
// daemon and the technician CLI both use it, so the two peers follow the
// same rules for ordering candidates against descriptions.
package peering

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/porthole-dev/porthole/proto"
)

// MaxPendingCandidates bounds the remote candidates held while the remote
// description is not set yet; a peer that sends more is misbehaving.
const MaxPendingCandidates = 64

// SendFunc sends one signaling message of this session.
type SendFunc func(typ proto.MsgType, payload any) error

// Peer couples a PeerConnection to a session's signaling messages.
type Peer struct {
	pc   *webrtc.PeerConnection
	send SendFunc

	mu        sync.Mutex
	remoteSet bool
	pending   []webrtc.ICECandidateInit
}

// New wires pc's local candidates to send and returns the Peer. Call it
// before creating an offer or answer so no candidate is missed.
func New(pc *webrtc.PeerConnection, send SendFunc) *Peer {
	p := &Peer{pc: pc, send: send}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			// End of gathering: an empty candidate, as browsers send it.
			_ = send(proto.TypeCandidate, &proto.Candidate{})
			return
		}
		init := c.ToJSON()
		_ = send(proto.TypeCandidate, &proto.Candidate{
			Candidate:        init.Candidate,
			SDPMid:           init.SDPMid,
			SDPMLineIndex:    init.SDPMLineIndex,
			UsernameFragment: init.UsernameFragment,
		})
	})
	return p
}

// RemoteSet reports whether a remote description was applied. The agent
// uses it to recognise a restarted client: a second offer on the same
// session means a new browser page, which needs a new peer connection.
func (p *Peer) RemoteSet() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.remoteSet
}

// Offer creates and sends an offer (the technician side offers).
func (p *Peer) Offer() error {
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set local offer: %w", err)
	}
	return p.send(proto.TypeOffer, &proto.SessionDescription{Type: "offer", SDP: offer.SDP})
}

// Handle applies one signaling message of the session: an offer (answered
// at once), an answer, or a candidate. Other types return an error.
func (p *Peer) Handle(env *proto.Envelope) error {
	switch env.Type {
	case proto.TypeOffer:
		var d proto.SessionDescription
		if err := proto.DecodeData(env, &d); err != nil {
			return err
		}
		if d.Type != "offer" {
			return proto.Errorf(proto.CodeBadMessage, "offer message carries a %s", d.Type)
		}
		if err := p.setRemote(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: d.SDP}); err != nil {
			return err
		}
		answer, err := p.pc.CreateAnswer(nil)
		if err != nil {
			return fmt.Errorf("create answer: %w", err)
		}
		if err := p.pc.SetLocalDescription(answer); err != nil {
			return fmt.Errorf("set local answer: %w", err)
		}
		return p.send(proto.TypeAnswer, &proto.SessionDescription{Type: "answer", SDP: answer.SDP})
	case proto.TypeAnswer:
		var d proto.SessionDescription
		if err := proto.DecodeData(env, &d); err != nil {
			return err
		}
		if d.Type != "answer" {
			return proto.Errorf(proto.CodeBadMessage, "answer message carries a %s", d.Type)
		}
		return p.setRemote(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: d.SDP})
	case proto.TypeCandidate:
		var c proto.Candidate
		if err := proto.DecodeData(env, &c); err != nil {
			return err
		}
		if c.Candidate == "" {
			return nil // end of the peer's gathering; pion needs no marker
		}
		init := webrtc.ICECandidateInit{
			Candidate:        c.Candidate,
			SDPMid:           c.SDPMid,
			SDPMLineIndex:    c.SDPMLineIndex,
			UsernameFragment: c.UsernameFragment,
		}
		p.mu.Lock()
		if !p.remoteSet {
			if len(p.pending) >= MaxPendingCandidates {
				p.mu.Unlock()
				return proto.Errorf(proto.CodeTooLarge, "more than %d candidates before the description", MaxPendingCandidates)
			}
			p.pending = append(p.pending, init)
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
		return p.addCandidate(init)
	}
	return proto.Errorf(proto.CodeUnsupported, "%s is not a peering message", env.Type)
}

func (p *Peer) setRemote(d webrtc.SessionDescription) error {
	if err := p.pc.SetRemoteDescription(d); err != nil {
		return proto.Errorf(proto.CodeBadMessage, "remote %s refused: %v", d.Type, err)
	}
	p.mu.Lock()
	pending := p.pending
	p.pending = nil
	p.remoteSet = true
	p.mu.Unlock()
	var errs []error
	for _, c := range pending {
		errs = append(errs, p.addCandidate(c))
	}
	return errors.Join(errs...)
}

func (p *Peer) addCandidate(c webrtc.ICECandidateInit) error {
	if err := p.pc.AddICECandidate(c); err != nil {
		return proto.Errorf(proto.CodeBadMessage, "candidate refused: %v", err)
	}
	return nil
}

// WaitConnected blocks until pc is connected, fails, or ctx ends.
func WaitConnected(ctx context.Context, pc *webrtc.PeerConnection) error {
	ch := make(chan webrtc.PeerConnectionState, 8)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		select {
		case ch <- s:
		default:
		}
	})
	if pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the peer connection: %w", context.Cause(ctx))
		case s := <-ch:
			switch s {
			case webrtc.PeerConnectionStateConnected:
				return nil
			case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
				return fmt.Errorf("peer connection %s", s)
			}
		}
	}
}
