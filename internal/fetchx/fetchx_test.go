package fetchx

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-dev/porthole/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wire connects two exchanges through the real encoding, as a signaling
// connection would, and counts what crosses it.
type wire struct {
	t        *testing.T
	mu       sync.Mutex
	a, b     *Exchange
	sent     map[proto.MsgType]int
	violated error
}

func fresh(typ proto.MsgType) proto.Validator {
	switch typ {
	case proto.TypeFetchRequest:
		return &proto.FetchRequest{}
	case proto.TypeFetchResponse:
		return &proto.FetchResponse{}
	case proto.TypeFetchData:
		return &proto.FetchData{}
	case proto.TypeFetchEnd:
		return &proto.FetchEnd{}
	case proto.TypeFetchAbort:
		return &proto.FetchAbort{}
	case proto.TypeFetchCredit:
		return &proto.FetchCredit{}
	}
	return nil
}

// sender returns the Sender of one side, delivering to the other.
func (w *wire) sender(toB bool) Sender {
	return func(ctx context.Context, typ proto.MsgType, payload proto.Validator) error {
		b, err := proto.Encode(typ, "abcdefgh12345678", payload)
		if err != nil {
			return err
		}
		env, err := proto.Decode(b)
		if err != nil {
			return err
		}
		v := fresh(env.Type)
		if err := proto.DecodeData(env, v); err != nil {
			return err
		}
		w.mu.Lock()
		w.sent[typ]++
		to := w.a
		if toB {
			to = w.b
		}
		w.mu.Unlock()
		if err := to.Deliver(typ, v); err != nil {
			w.mu.Lock()
			w.violated = err
			w.mu.Unlock()
			to.Abort(err)
		}
		return nil
	}
}

func (w *wire) count(typ proto.MsgType) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sent[typ]
}

// pair returns the requesting side (signaling) and the serving side (the
// agent), connected.
func pair(t *testing.T, idle time.Duration) (*Exchange, *Exchange, *wire) {
	w := &wire{t: t, sent: map[proto.MsgType]int{}}
	w.a = New(7, w.sender(true), idle)
	w.b = New(7, w.sender(false), idle)
	t.Cleanup(func() { w.a.Close(); w.b.Close() })
	return w.a, w.b, w
}

func readAll(ctx context.Context, x *Exchange) ([]byte, error) {
	var out []byte
	for {
		p, err := x.Read(ctx)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, p...)
	}
}

func TestExchangeCarriesBothBodiesIntact(t *testing.T) {
	req, srv, w := pair(t, 0)
	ctx := context.Background()
	reqBody := make([]byte, 100<<10+3)
	respBody := make([]byte, 1<<20+17)
	rand.Read(reqBody)
	rand.Read(respBody)

	var gotReq []byte
	var srvErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		h, err := srv.Head(ctx, time.Second)
		if err != nil {
			srvErr = err
			return
		}
		if fr, ok := h.(*proto.FetchRequest); !ok || fr.Target != "/upload" || fr.ID != 7 {
			srvErr = errors.New("wrong head")
			return
		}
		if gotReq, srvErr = readAll(ctx, srv); srvErr != nil {
			return
		}
		if srvErr = srv.SendHead(ctx, &proto.FetchResponse{ResponseHead: proto.ResponseHead{Status: 201}}); srvErr != nil {
			return
		}
		if srvErr = srv.Write(ctx, respBody); srvErr != nil {
			return
		}
		srvErr = srv.End(ctx)
	}()
	if err := req.SendHead(ctx, &proto.FetchRequest{RequestHead: proto.RequestHead{Method: "POST", Target: "/upload", ContentLength: int64(len(reqBody))}}); err != nil {
		t.Fatal(err)
	}
	if err := req.Write(ctx, reqBody); err != nil {
		t.Fatal(err)
	}
	if err := req.End(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := req.Head(ctx, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if h.(*proto.FetchResponse).Status != 201 {
		t.Fatalf("status %d", h.(*proto.FetchResponse).Status)
	}
	got, err := readAll(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if srvErr != nil {
		t.Fatal(srvErr)
	}
	if !bytes.Equal(gotReq, reqBody) || !bytes.Equal(got, respBody) {
		t.Fatalf("bodies differ: request %d/%d bytes, response %d/%d", len(gotReq), len(reqBody), len(got), len(respBody))
	}
	if !req.Over() || !srv.Over() {
		t.Fatal("exchange not over after both ends")
	}
	if w.violated != nil {
		t.Fatalf("protocol violation: %v", w.violated)
	}
	// 65 response chunks: credits came in batches of half the window.
	if c := w.count(proto.TypeFetchCredit); c < 65/(proto.FetchWindow/2)-2 || c > 65/(proto.FetchWindow/2)+2 {
		t.Fatalf("%d credit messages for 65+7 chunks", c)
	}
}

func TestExchangeWriterWaitsForASlowReader(t *testing.T) {
	req, srv, _ := pair(t, 0)
	ctx := context.Background()
	srv.Start()
	if err := srv.SendHead(ctx, &proto.FetchResponse{ResponseHead: proto.ResponseHead{Status: 200}}); err != nil {
		t.Fatal(err)
	}
	var written atomic.Int64
	wrote := make(chan error, 1)
	go func() {
		chunk := make([]byte, proto.FetchChunk)
		for range 4 * proto.FetchWindow {
			if err := srv.Write(ctx, chunk); err != nil {
				wrote <- err
				return
			}
			written.Add(1)
		}
		wrote <- srv.End(ctx)
	}()
	if _, err := req.Head(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	// Nobody reads: the writer stops at the window.
	deadline := time.Now().Add(2 * time.Second)
	for written.Load() < proto.FetchWindow && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room to overrun, if it would
	if n := written.Load(); n != proto.FetchWindow {
		t.Fatalf("%d chunks written without credit, window %d", n, proto.FetchWindow)
	}
	req.mu.Lock()
	queued := req.queued
	req.mu.Unlock()
	if queued != proto.FetchWindow {
		t.Fatalf("%d chunks queued at the reader", queued)
	}
	got, err := readAll(ctx, req)
	if err != nil || len(got) != 4*proto.FetchWindow*proto.FetchChunk {
		t.Fatalf("read %d bytes: %v", len(got), err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

func TestExchangeRefusesProtocolViolations(t *testing.T) {
	data := func() proto.Validator { return &proto.FetchData{ID: 1, Data: []byte("x")} }
	head := func() proto.Validator {
		return &proto.FetchResponse{ID: 1, ResponseHead: proto.ResponseHead{Status: 200}}
	}
	send := func(context.Context, proto.MsgType, proto.Validator) error { return nil }
	tests := []struct {
		name string
		msgs []proto.Validator
	}{
		{"data before head", []proto.Validator{data()}},
		{"end before head", []proto.Validator{&proto.FetchEnd{ID: 1}}},
		{"second head", []proto.Validator{head(), head()}},
		{"data after end", []proto.Validator{head(), &proto.FetchEnd{ID: 1}, data()}},
		{"window overrun", func() []proto.Validator {
			m := []proto.Validator{head()}
			for range proto.FetchWindow + 1 {
				m = append(m, data())
			}
			return m
		}()},
		{"credit beyond the window", []proto.Validator{&proto.FetchCredit{ID: 1, N: 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := New(1, send, 0)
			defer x.Close()
			var err error
			for i, m := range tc.msgs {
				typ := proto.TypeFetchData
				switch m.(type) {
				case *proto.FetchResponse:
					typ = proto.TypeFetchResponse
				case *proto.FetchEnd:
					typ = proto.TypeFetchEnd
				case *proto.FetchCredit:
					typ = proto.TypeFetchCredit
				}
				if err = x.Deliver(typ, m); err != nil {
					if i != len(tc.msgs)-1 {
						t.Fatalf("message %d refused early: %v", i, err)
					}
				}
			}
			if proto.CodeOf(err) != proto.CodeBadMessage {
				t.Fatalf("accepted (%v)", err)
			}
		})
	}
}

func TestExchangeAbortReachesBothDirections(t *testing.T) {
	req, srv, w := pair(t, 0)
	ctx := context.Background()
	if err := req.SendHead(ctx, &proto.FetchRequest{RequestHead: proto.RequestHead{Method: "POST", Target: "/", ContentLength: -1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Head(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	// The agent refuses: the requester's Head gets the error, and its
	// request body stops too.
	srv.Abort(proto.Errorf(proto.CodeAuditBacklog, "access log full"))
	if _, err := req.Head(ctx, time.Second); proto.CodeOf(err) != proto.CodeAuditBacklog {
		t.Fatalf("head: %v", err)
	}
	if err := req.Write(ctx, []byte("more")); err == nil {
		t.Fatal("write after the peer aborted succeeded")
	}
	req.Abort(proto.Errorf(proto.CodeCanceled, "done"))
	if n := w.count(proto.TypeFetchAbort); n != 2 {
		t.Fatalf("%d aborts crossed, want one each way", n)
	}
	// A cancel after our own end is sent once, and only once.
	req2, srv2, w2 := pair(t, 0)
	_ = req2.SendHead(ctx, &proto.FetchRequest{RequestHead: proto.RequestHead{Method: "GET", Target: "/"}})
	_ = req2.End(ctx)
	req2.Abort(proto.Errorf(proto.CodeCanceled, "the browser went away"))
	req2.Abort(proto.Errorf(proto.CodeCanceled, "again"))
	if n := w2.count(proto.TypeFetchAbort); n != 1 {
		t.Fatalf("%d cancels sent", n)
	}
	if err := srv2.SendHead(ctx, &proto.FetchResponse{ResponseHead: proto.ResponseHead{Status: 200}}); err == nil {
		t.Fatal("the server side kept sending after the cancel")
	}
}

func TestExchangeIdleTimeout(t *testing.T) {
	req, _, _ := pair(t, 30*time.Millisecond)
	ctx := context.Background()
	start := time.Now()
	if _, err := req.Head(ctx, 40*time.Millisecond); proto.CodeOf(err) != proto.CodeDeviceTimeout {
		t.Fatalf("head: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("timed out after %s", d)
	}
	// Write waits for credit no longer than the idle time either.
	w := New(1, func(context.Context, proto.MsgType, proto.Validator) error { return nil }, 30*time.Millisecond)
	defer w.Close()
	err := w.Write(ctx, make([]byte, (proto.FetchWindow+1)*proto.FetchChunk))
	if proto.CodeOf(err) != proto.CodeDeviceTimeout {
		t.Fatalf("write without credit: %v", err)
	}
}

func TestExchangeCloseUnblocksWaiters(t *testing.T) {
	req, _, _ := pair(t, 0)
	errc := make(chan error, 1)
	go func() { _, err := req.Head(context.Background(), time.Minute); errc <- err }()
	time.Sleep(10 * time.Millisecond)
	req.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("head after close succeeded")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Head")
	}
}
