package sigclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/porthole-dev/porthole/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSendWaitWaitsInsteadOfDisconnecting: a peer that stops reading fills
// the bulk queue; SendWait then waits (and gives up with its context)
// rather than closing the connection, and control messages queued
// meanwhile are written before the bulk ones once the peer reads again.
func TestSendWaitWaitsInsteadOfDisconnecting(t *testing.T) {
	release := make(chan struct{})
	got := make(chan string, 1024)
	up := websocket.Upgrader{Subprotocols: []string{proto.SocketProtocol}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		<-release
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			env, err := proto.Decode(b)
			if err == nil {
				got <- string(env.Type)
			}
		}
	}))
	defer srv.Close()
	defer close(release) // before srv.Close: the handler must return

	c, err := Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), Options{BulkQueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := &proto.FetchData{ID: 1, Data: make([]byte, proto.FetchChunk)}
	sent := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.SendWait(ctx, proto.TypeFetchData, "abcdefgh12345678", big)
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("SendWait after %d messages: %v", sent, err)
			}
			break
		}
		if sent++; sent > 10_000 {
			t.Fatal("SendWait never waited")
		}
	}
	select {
	case <-c.Done():
		t.Fatalf("a full bulk queue closed the connection: %v", c.Err())
	default:
	}
	// A control message still goes out, ahead of the bulk ones queued.
	if err := c.Send(proto.TypeSessionEnd, "abcdefgh12345678", &proto.SessionEnd{Reason: proto.EndByAgent}); err != nil {
		t.Fatal(err)
	}
	release <- struct{}{}
	deadline := time.After(10 * time.Second)
	var order []string
	for len(order) < sent+1 {
		select {
		case typ := <-got:
			order = append(order, typ)
		case <-deadline:
			t.Fatalf("got %d of %d messages", len(order), sent+1)
		}
	}
	// Messages already in the socket's buffers go first; the control
	// message overtakes everything still in the bulk queue.
	pos := -1
	for i, typ := range order {
		if typ == string(proto.TypeSessionEnd) {
			pos = i
		}
	}
	if pos < 0 || pos > sent-4 {
		t.Fatalf("control message written at %d of %d (bulk queue of 4)", pos, len(order))
	}
}
