// Package negotiate runs the WebRTC half of one session over signaling: the
// offer/answer exchange and trickle ICE in both directions, on a peer
// connection built by agent/peerconn. The agent daemon and the technician
// CLI both use it, so the two peers follow the same rules for ordering
// candidates against descriptions.
package negotiate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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

	mu          sync.Mutex
	remoteSet   bool
	pending     []webrtc.ICECandidateInit
	localTypes  map[string]bool // candidate types gathered here
	remoteTypes map[string]bool // candidate types the other side sent
}

// New wires pc's local candidates to send and returns the Peer. Call it
// before creating an offer or answer so no candidate is missed.
func New(pc *webrtc.PeerConnection, send SendFunc) *Peer {
	p := &Peer{pc: pc, send: send, localTypes: map[string]bool{}, remoteTypes: map[string]bool{}}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			// End of gathering: an empty candidate, as browsers send it.
			_ = send(proto.TypeCandidate, &proto.Candidate{})
			return
		}
		p.mu.Lock()
		p.localTypes[c.Typ.String()] = true
		p.mu.Unlock()
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
// uses it, with Renegotiates, to recognise a restarted client: a second
// offer from a new browser page needs a new peer connection.
func (p *Peer) RemoteSet() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.remoteSet
}

// CandidateTypes lists the ICE candidate types gathered here and those
// the other side sent (host, srflx, prflx, relay), sorted: what ICE had to
// work with, for logs and for explaining a relayed path.
func (p *Peer) CandidateTypes() (local, remote []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := func(m map[string]bool) []string {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	return keys(p.localTypes), keys(p.remoteTypes)
}

// candidateType is the "typ" field of an SDP candidate attribute.
func candidateType(c string) string {
	f := strings.Fields(c)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "typ" {
			return f[i+1]
		}
	}
	return ""
}

// Offer creates and sends an offer (the technician side offers).
func (p *Peer) Offer() error { return p.offer(nil) }

// Restart sends an offer with new ICE credentials (an ICE restart) on the
// established connection: both sides gather afresh and check new pairs,
// while DTLS, SCTP and every data channel carry on. Candidates that arrive
// before the answer wait for it, as at the start.
//
// While an earlier restart offer is still unanswered (it may have been
// lost, say while the agent itself reconnected to signaling), Restart sends
// that offer again, with the candidates gathered for it since, instead of
// a new one.
func (p *Peer) Restart() error {
	p.mu.Lock()
	p.remoteSet = false
	p.mu.Unlock()
	if p.pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		if d := p.pc.LocalDescription(); d != nil {
			return p.send(proto.TypeOffer, &proto.SessionDescription{Type: "offer", SDP: d.SDP})
		}
	}
	return p.offer(&webrtc.OfferOptions{ICERestart: true})
}

func (p *Peer) offer(opts *webrtc.OfferOptions) error {
	offer, err := p.pc.CreateOffer(opts)
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
		if t := candidateType(c.Candidate); t != "" {
			p.mu.Lock()
			p.remoteTypes[t] = true
			p.mu.Unlock()
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

// Renegotiates reports whether env, an offer, comes from the same peer as
// the remote description already applied — the same DTLS certificate
// fingerprint — so it renegotiates this connection (an ICE restart after a
// network change). A reloaded page or a restarted client has a new
// certificate and so a new fingerprint: it needs a new peer connection.
func (p *Peer) Renegotiates(env *proto.Envelope) bool {
	var d proto.SessionDescription
	if env.Type != proto.TypeOffer || proto.DecodeData(env, &d) != nil {
		return false
	}
	cur := p.pc.RemoteDescription()
	if cur == nil {
		return false
	}
	a, b := Fingerprints(cur.SDP), Fingerprints(d.SDP)
	return len(a) > 0 && slices.Equal(a, b)
}

// Fingerprints returns the DTLS certificate fingerprints of an SDP
// ("a=fingerprint:" lines, session or media level), normalised and sorted.
func Fingerprints(sdp string) []string {
	var out []string
	for line := range strings.Lines(sdp) {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=fingerprint:")
		if ok {
			out = append(out, strings.ToLower(strings.Join(strings.Fields(v), " ")))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
