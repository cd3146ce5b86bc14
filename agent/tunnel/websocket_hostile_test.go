package tunnel_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// TestHostileWebSocketFrames: WebSocket frames out of place, a WebSocket
// to an undeclared port or another host, and a message that changes type
// midway each hurt only their own channel (or exchange), never the agent
// or the other channels.
func TestHostileWebSocketFrames(t *testing.T) {
	wd := &wsDevice{}
	d := newDevice(t, wd.handler(), deviceOptions{})
	check := func(step string) {
		t.Helper()
		resp, err := d.http.Get("http://device/login")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("after %s: %v %v", step, resp, err)
		}
		resp.Body.Close()
	}
	msg := func(binary, final bool, data string) []byte {
		return frame(proto.FrameWSMessage, proto.AppendWSMessage(nil, binary, final, []byte(data)))
	}
	open := mustHead(t, proto.WSOpen{Target: "/ws/echo"})

	fatal := []struct {
		name   string
		frames [][]byte
	}{
		{"message before open", [][]byte{msg(false, true, "x")}},
		{"close before open", [][]byte{frame(proto.FrameWSClose, nil)}},
		{"message inside an HTTP exchange", [][]byte{frame(proto.FrameRequest, mustHead(t, proto.RequestHead{Method: "POST", Target: "/login", ContentLength: 1})), msg(false, true, "x")}},
		{"data frame inside a websocket", [][]byte{frame(proto.FrameWSOpen, open), frame(proto.FrameData, []byte("x"))}},
		{"type change mid-message", [][]byte{frame(proto.FrameWSOpen, open), msg(false, false, "a"), msg(true, true, "b")}},
		{"unknown message flags", [][]byte{frame(proto.FrameWSOpen, open), frame(proto.FrameWSMessage, []byte{0x80, 'x'})}},
		{"close inside a message", [][]byte{frame(proto.FrameWSOpen, open), msg(false, false, "a"), frame(proto.FrameWSClose, nil)}},
	}
	for _, tc := range fatal {
		t.Run(tc.name, func(t *testing.T) {
			rwc := rawChannel(t, d.pair.ClientPC)
			for _, f := range tc.frames {
				if _, err := rwc.Write(f); err != nil {
					t.Fatal(err)
				}
			}
			// The agent may answer the open (or the request) first; then
			// it aborts and closes the channel.
			deadline := time.Now().Add(10 * time.Second)
			for {
				f, got := readOutcome(t, rwc)
				if got == "closed" {
					break
				}
				if f.Type != proto.FrameWSOpened && f.Type != proto.FrameResponse && f.Type != proto.FrameData &&
					f.Type != proto.FrameEnd && f.Type != proto.FrameAbort && f.Type != proto.FrameWSMessage {
					t.Fatalf("unexpected %s", got)
				}
				if time.Now().After(deadline) {
					t.Fatal("channel not closed")
				}
			}
			check(tc.name)
		})
	}

	refusals := []struct {
		name string
		open []byte
		code proto.Code
	}{
		{"undeclared port", mustHead(t, proto.WSOpen{Target: "/ws/echo", Port: 25}), proto.CodePortNotAllowed},
		{"absolute target", []byte(`{"target":"ws://10.0.0.1/ws"}`), proto.CodeBadRequest},
		{"scheme-relative target", []byte(`{"target":"//10.0.0.1/ws"}`), proto.CodeBadRequest},
		{"host field", []byte(`{"target":"/ws/echo","host":"10.0.0.1"}`), proto.CodeBadMessage},
		{"device does not upgrade", mustHead(t, proto.WSOpen{Target: "/login"}), proto.CodeDeviceFailed},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			rwc := rawChannel(t, d.pair.ClientPC)
			if _, err := rwc.Write(frame(proto.FrameWSOpen, tc.open)); err != nil {
				t.Fatal(err)
			}
			if _, got := readOutcome(t, rwc); got != string(tc.code) {
				t.Fatalf("agent answered %s, want abort %s", got, tc.code)
			}
			// The client ends its direction; the channel serves the next
			// exchange, a WebSocket that works.
			_, _ = rwc.Write(frame(proto.FrameAbort, mustHead(t, proto.Error{Code: proto.CodeCanceled})))
			if _, err := rwc.Write(frame(proto.FrameWSOpen, open)); err != nil {
				t.Fatal(err)
			}
			if _, got := readOutcome(t, rwc); got != "ws-opened" {
				t.Fatalf("next exchange: %s, want ws-opened", got)
			}
			check(tc.name)
		})
	}
	if st := d.pair.Client.Stats(); st.Dropped != 0 {
		t.Errorf("the well-behaved client's channels were affected: %+v", st)
	}
}
