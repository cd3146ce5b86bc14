package relayprobe

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stunServer answers binding requests on a loopback UDP socket until the
// test ends.
func stunServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if req.Decode() != nil {
				continue
			}
			res := stun.MustBuild(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: from.(*net.UDPAddr).IP, Port: from.(*net.UDPAddr).Port}, stun.Fingerprint)
			_, _ = pc.WriteTo(res.Raw, from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().String()
}

// silentPort is a UDP port that never answers.
func silentPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

func TestMeasureReportsRoundTripsAndFailures(t *testing.T) {
	live, dead := stunServer(t), silentPort(t)
	urls := []string{
		"turn:" + live + "?transport=udp",
		"turns:" + live + "?transport=tcp", // not probed: TLS
		"stun:" + live,
		"turn:" + dead,
		"http://" + live, // not an ICE URL
	}
	start := time.Now()
	got := Measure(context.Background(), urls, Options{Attempts: 2, Timeout: 200 * time.Millisecond})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if len(got) != 3 {
		t.Fatalf("results %+v, want 3", got)
	}
	for i, want := range []string{urls[0], urls[2], urls[3]} {
		if got[i].URL != want {
			t.Errorf("result %d for %s, want %s", i, got[i].URL, want)
		}
	}
	for _, r := range got[:2] {
		if r.Failed || r.RTTMS <= 0 || r.RTTMS > 200 {
			t.Errorf("%s: %+v, want a round trip", r.URL, r)
		}
	}
	if !got[2].Failed || got[2].RTTMS != 0 {
		t.Errorf("silent relay: %+v, want failed", got[2])
	}
}

func TestMeasureStopsWithItsContext(t *testing.T) {
	dead := silentPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := Measure(ctx, []string{"turn:" + dead}, Options{Timeout: time.Hour})
	if len(got) != 1 || !got[0].Failed {
		t.Fatalf("got %+v", got)
	}
}

func TestTarget(t *testing.T) {
	for _, tc := range []struct{ in, network, addr string }{
		{"turn:relay.example:3479", "udp", "relay.example:3479"},
		{"turn:relay.example", "udp", "relay.example:3478"},
		{"turn:relay.example:3478?transport=tcp", "tcp", "relay.example:3478"},
		{"stun:[2001:db8::1]:3478", "udp", "[2001:db8::1]:3478"},
		{"turns:relay.example:5349?transport=tcp", "", ""},
		{"turn:relay.example:3478?transport=sctp", "", ""},
		{"turn::3478", "", ""},
	} {
		network, addr, ok := target(tc.in)
		if ok != (tc.network != "") || network != tc.network || addr != tc.addr {
			t.Errorf("%s: %s %s %v", tc.in, network, addr, ok)
		}
	}
}
