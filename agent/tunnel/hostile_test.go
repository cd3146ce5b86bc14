package tunnel_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"

	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/agent/tunnel/tunneltest"
	"github.com/porthole-dev/porthole/proto"
)

func echoServerHandler() *tunnel.Server {
	return &tunnel.Server{HTTP: func(port int) (http.Handler, error) {
		if port != 0 {
			return nil, proto.Errorf(proto.CodePortNotAllowed, "port %d", port)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(append([]byte(r.URL.Path+":"), b...))
		}), nil
	}}
}

// rawChannel opens a data channel the test drives byte by byte.
func rawChannel(t *testing.T, pc *webrtc.PeerConnection) datachannel.ReadWriteCloserDeadliner {
	t.Helper()
	dc, err := pc.CreateDataChannel(tunnel.Label, nil)
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan datachannel.ReadWriteCloserDeadliner, 1)
	dc.OnOpen(func() {
		rwc, err := dc.DetachWithDeadline()
		if err != nil {
			t.Error(err)
			_ = dc.Close()
			return
		}
		opened <- rwc
	})
	select {
	case rwc := <-opened:
		t.Cleanup(func() { _ = rwc.Close() })
		return rwc
	case <-time.After(10 * time.Second):
		t.Fatal("raw channel did not open")
	}
	return nil
}

func frame(t proto.FrameType, payload []byte) []byte { return proto.AppendFrame(nil, t, payload) }

func mustHead(t *testing.T, v any) []byte {
	b, err := proto.EncodeHead(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readOutcome reads the agent's answer: an abort's code, a response, or
// "closed" when the agent closed the channel.
func readOutcome(t *testing.T, rwc datachannel.ReadWriteCloserDeadliner) (proto.Frame, string) {
	t.Helper()
	_ = rwc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = rwc.SetReadDeadline(time.Time{}) }() // stops pion's deadline goroutine
	buf := make([]byte, 1<<16)
	n, err := rwc.Read(buf)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return proto.Frame{}, "closed"
		}
		t.Fatalf("read: %v", err)
	}
	f, err := proto.ParseFrame(buf[:n])
	if err != nil {
		t.Fatalf("agent sent a bad frame: %v", err)
	}
	if f.Type == proto.FrameAbort {
		return f, string(proto.DecodeAbort(f.Payload).Code)
	}
	return f, f.Type.String()
}

func TestHostileFramesOnlyHurtTheirChannel(t *testing.T) {
	p := tunneltest.NewPairConfig(t, echoServerHandler(), tunneltest.Config{
		// Let the client send messages larger than the agent advertises.
		AnswerSDP:  tunneltest.RaiseMaxMessageSize(1 << 16),
		PeerLogger: peerLogger(t),
	})
	hc := &http.Client{Transport: p.Client}
	check := func(step string) {
		t.Helper()
		resp, err := hc.Post("http://dev/ok", "text/plain", bytes.NewReader([]byte(step)))
		if err != nil {
			t.Fatalf("after %s: %v", step, err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(b) != "/ok:"+step {
			t.Fatalf("after %s: got %q", step, b)
		}
	}
	check("start")

	fatal := []struct {
		name string
		msg  []byte
		code proto.Code
	}{
		{"oversize message", frame(proto.FrameData, bytes.Repeat([]byte{'x'}, proto.MaxFrame+1000)), proto.CodeTooLarge},
		{"unknown frame type", []byte{0x7f, 1, 2, 3}, proto.CodeBadMessage},
		{"data before head", frame(proto.FrameData, []byte("x")), proto.CodeBadMessage},
		{"end before head", frame(proto.FrameEnd, nil), proto.CodeBadMessage},
		{"data chunk over 16 KiB", frame(proto.FrameData, bytes.Repeat([]byte{'x'}, proto.MaxChunk+1)), proto.CodeBadMessage},
		{"empty message", []byte{}, proto.CodeBadMessage},
	}
	for _, tc := range fatal {
		t.Run(tc.name, func(t *testing.T) {
			rwc := rawChannel(t, p.ClientPC)
			if _, err := rwc.Write(tc.msg); err != nil {
				t.Fatal(err)
			}
			_, got := readOutcome(t, rwc)
			if got != string(tc.code) && got != "closed" {
				t.Fatalf("agent answered %s, want abort %s or a closed channel", got, tc.code)
			}
			if got == string(tc.code) {
				// After the abort the agent closes the channel.
				if _, next := readOutcome(t, rwc); next != "closed" {
					t.Fatalf("after the abort: %s, want closed", next)
				}
			}
			check(tc.name)
		})
	}

	refusals := []struct {
		name string
		head []byte
		code proto.Code
	}{
		{"malformed head JSON", []byte(`{"method":"GET","target":`), proto.CodeBadMessage},
		{"unknown head field", []byte(`{"method":"GET","target":"/","contentLength":0,"evil":1}`), proto.CodeBadMessage},
		{"absolute-form target", mustHead(t, proto.RequestHead{Method: "GET", Target: "http://10.0.0.1/"}), proto.CodeBadRequest},
		{"CONNECT", mustHead(t, proto.RequestHead{Method: "CONNECT", Target: "/"}), proto.CodeBadRequest},
		{"undeclared port", mustHead(t, proto.RequestHead{Method: "GET", Target: "/", Port: 22}), proto.CodePortNotAllowed},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			rwc := rawChannel(t, p.ClientPC)
			if _, err := rwc.Write(frame(proto.FrameRequest, tc.head)); err != nil {
				t.Fatal(err)
			}
			if _, err := rwc.Write(frame(proto.FrameEnd, nil)); err != nil {
				t.Fatal(err)
			}
			if _, got := readOutcome(t, rwc); got != string(tc.code) {
				t.Fatalf("agent answered %s, want abort %s", got, tc.code)
			}
			// A refusal ends the exchange; the channel serves the next one.
			if _, err := rwc.Write(frame(proto.FrameRequest, mustHead(t, proto.RequestHead{Method: "GET", Target: "/again"}))); err != nil {
				t.Fatal(err)
			}
			if _, err := rwc.Write(frame(proto.FrameEnd, nil)); err != nil {
				t.Fatal(err)
			}
			if _, got := readOutcome(t, rwc); got != "response" {
				t.Fatalf("next exchange on the channel: %s, want a response", got)
			}
			check(tc.name)
		})
	}

	t.Run("body longer than declared", func(t *testing.T) {
		rwc := rawChannel(t, p.ClientPC)
		_, _ = rwc.Write(frame(proto.FrameRequest, mustHead(t, proto.RequestHead{Method: "POST", Target: "/", ContentLength: 2})))
		_, _ = rwc.Write(frame(proto.FrameData, []byte("abc")))
		outcome := ""
		for range 4 { // a response head may come first
			f, got := readOutcome(t, rwc)
			if f.Type == proto.FrameResponse || f.Type == proto.FrameData {
				continue
			}
			outcome = got
			break
		}
		if outcome != string(proto.CodeBadMessage) && outcome != "closed" && outcome != string(proto.CodeCanceled) {
			t.Fatalf("agent answered %s", outcome)
		}
		check("body longer than declared")
	})

	if st := p.Client.Stats(); st.Dropped != 0 || st.Opened != 1 {
		t.Errorf("the well-behaved client's channel was affected: %+v", st)
	}
}

func TestFirstFrameOnNewChannelIsNotLost(t *testing.T) {
	p := tunneltest.NewPair(t, echoServerHandler())
	head := frame(proto.FrameRequest, mustHead(t, proto.RequestHead{Method: "GET", Target: "/first"}))
	for i := range 100 {
		// Write the head and End from OnOpen, before the agent can
		// possibly have detached its side.
		dc, err := p.ClientPC.CreateDataChannel(tunnel.Label, nil)
		if err != nil {
			t.Fatal(err)
		}
		opened := make(chan datachannel.ReadWriteCloserDeadliner, 1)
		dc.OnOpen(func() {
			rwc, err := dc.DetachWithDeadline()
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = rwc.Write(head)
			_, _ = rwc.Write(frame(proto.FrameEnd, nil))
			opened <- rwc
		})
		var rwc datachannel.ReadWriteCloserDeadliner
		select {
		case rwc = <-opened:
		case <-time.After(10 * time.Second):
			t.Fatalf("channel %d did not open", i)
		}
		if f, got := readOutcome(t, rwc); got != "response" {
			t.Fatalf("channel %d: %s %q, want a response", i, got, f.Payload)
		}
		_ = rwc.Close()
	}
}

func TestAgentCapsChannelsPerPeer(t *testing.T) {
	srv := echoServerHandler()
	srv.MaxChannels = 2
	p := tunneltest.NewPair(t, srv) // the client's first channel is one of the two
	a := rawChannel(t, p.ClientPC)
	b := rawChannel(t, p.ClientPC)
	if _, got := readOutcome(t, b); got != "closed" {
		t.Fatalf("third channel: %s, want closed", got)
	}
	if _, err := a.Write(frame(proto.FrameRequest, mustHead(t, proto.RequestHead{Method: "GET", Target: "/a"}))); err != nil {
		t.Fatal(err)
	}
	_, _ = a.Write(frame(proto.FrameEnd, nil))
	if _, got := readOutcome(t, a); got != "response" {
		t.Fatalf("second channel: %s, want a response", got)
	}
	if st := p.Session.Stats(); st.Refused != 1 || st.Accepted != 2 {
		t.Fatalf("session stats %+v", st)
	}
}
