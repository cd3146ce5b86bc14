package daemon

import (
	"net"
	"testing"

	"github.com/pion/stun/v3"

	"github.com/porthole-dev/porthole/proto"
)

// TestAgentReportsRelayRoundTrips: a welcome that lists relays gets a
// relay.rtt back with a round trip for the one that answers STUN and a
// failure for the one that does not.
func TestAgentReportsRelayRoundTrips(t *testing.T) {
	live, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := live.ReadFrom(buf)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if req.Decode() == nil {
				res := stun.MustBuild(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess)
				_, _ = live.WriteTo(res.Raw, from)
			}
		}
	}()
	t.Cleanup(func() { live.Close(); dead.Close(); <-done })

	h := startAgent(t, nil, nil, func(c *Config) { c.Region = "eu-west" })
	urls := []string{"turn:" + live.LocalAddr().String() + "?transport=udp", "turn:" + dead.LocalAddr().String()}
	h.send(proto.TypeWelcome, "", &proto.Welcome{ID: testAgentID, Relays: urls})
	env := h.next()
	var r proto.RelayRTT
	if env.Type != proto.TypeRelayRTT || proto.DecodeData(env, &r) != nil || len(r.Relays) != 2 {
		t.Fatalf("got %s %s", env.Type, env.Data)
	}
	if r.Relays[0].URL != urls[0] || r.Relays[0].Failed || r.Relays[0].RTTMS <= 0 {
		t.Errorf("live relay: %+v", r.Relays[0])
	}
	if r.Relays[1].URL != urls[1] || !r.Relays[1].Failed {
		t.Errorf("silent relay: %+v", r.Relays[1])
	}
}

func TestAgentRefusesAMalformedRegion(t *testing.T) {
	if _, err := New(Config{Server: "https://x", Key: "k", Region: "EU West"}); err == nil {
		t.Fatal("accepted")
	}
}
