package peerconn

import (
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// The browser's offer carries a receive-only video section (for Chromium's
// socket buffer, web/session/tunnel.js prime): the peer answers it with one
// codec and no track (nothing is ever sent), and rejects audio.
func TestOfferedMediaCarriesNothing(t *testing.T) {
	api, err := NewAPI(Config{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	agent, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	browser, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer browser.Close()
	if _, err := browser.CreateDataChannel("porthole", nil); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := browser.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := browser.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.SetRemoteDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer, err := agent.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	var media []string
	for _, l := range strings.Split(answer.SDP, "\n") {
		if strings.HasPrefix(l, "m=") {
			media = append(media, strings.TrimSpace(l))
		}
	}
	want := []string{"m=video 9 UDP/TLS/RTP/SAVPF 96", "m=audio 0 UDP/TLS/RTP/SAVPF 0", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel"}
	for _, s := range agent.GetSenders() {
		if s.Track() != nil {
			t.Errorf("the peer sends a %s track", s.Track().Kind())
		}
	}
	if strings.Join(media, "|") != strings.Join(want, "|") {
		t.Fatalf("answer's media sections:\n%s\nwant:\n%s", strings.Join(media, "\n"), strings.Join(want, "\n"))
	}
}
