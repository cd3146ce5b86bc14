package fallback

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/internal/fetchx"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const session = "abcdefgh12345678"

// harness is signaling's side: requests go through the real encoding to
// the agent's Server, answers come back to the exchange that asked.
type harness struct {
	t    *testing.T
	srv  *Server
	conn context.Context

	mu     sync.Mutex
	nextID uint64
	open   map[uint64]*fetchx.Exchange
	fromAg map[proto.MsgType]int

	logMu  sync.Mutex
	logged []tunnel.ExchangeResult
	seen   []tunnel.Exchange
}

func roundTrip(typ proto.MsgType, payload any) (*proto.Envelope, error) {
	b, err := proto.Encode(typ, session, payload)
	if err != nil {
		return nil, err
	}
	return proto.Decode(b)
}

func newHarness(t *testing.T, ctx context.Context, h http.Handler, mod func(*Config)) *harness {
	hs := &harness{t: t, conn: context.Background(), open: map[uint64]*fetchx.Exchange{}, fromAg: map[proto.MsgType]int{}}
	cfg := Config{
		HTTP: func(port int) (http.Handler, error) {
			if port != 0 {
				return nil, proto.Errorf(proto.CodePortNotAllowed, "port %d is not declared", port)
			}
			return h, nil
		},
		Observe: func(x tunnel.Exchange) (func(tunnel.ExchangeResult), error) {
			hs.logMu.Lock()
			hs.seen = append(hs.seen, x)
			hs.logMu.Unlock()
			return func(r tunnel.ExchangeResult) {
				hs.logMu.Lock()
				hs.logged = append(hs.logged, r)
				hs.logMu.Unlock()
			}, nil
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	hs.srv = New(ctx, cfg)
	t.Cleanup(hs.srv.Close)
	return hs
}

// agentSend is the agent's Sender: what it sends reaches the exchange that
// asked.
func (hs *harness) agentSend(ctx context.Context, typ proto.MsgType, payload proto.Validator) error {
	env, err := roundTrip(typ, payload)
	if err != nil {
		return err
	}
	v := map[proto.MsgType]func() proto.Validator{
		proto.TypeFetchResponse: func() proto.Validator { return &proto.FetchResponse{} },
		proto.TypeFetchData:     func() proto.Validator { return &proto.FetchData{} },
		proto.TypeFetchEnd:      func() proto.Validator { return &proto.FetchEnd{} },
		proto.TypeFetchAbort:    func() proto.Validator { return &proto.FetchAbort{} },
		proto.TypeFetchCredit:   func() proto.Validator { return &proto.FetchCredit{} },
	}[typ]()
	if err := proto.DecodeData(env, v); err != nil {
		hs.t.Errorf("agent sent a bad %s: %v", typ, err)
		return err
	}
	var id uint64
	switch m := v.(type) {
	case *proto.FetchResponse:
		id = m.ID
	case *proto.FetchData:
		id = m.ID
	case *proto.FetchEnd:
		id = m.ID
	case *proto.FetchAbort:
		id = m.ID
	case *proto.FetchCredit:
		id = m.ID
	}
	hs.mu.Lock()
	hs.fromAg[typ]++
	x := hs.open[id]
	hs.mu.Unlock()
	if x == nil {
		return nil
	}
	if err := x.Deliver(typ, v); err != nil {
		hs.t.Errorf("agent broke the protocol: %v", err)
	}
	return nil
}

// start opens an exchange for head; the caller sends the body and reads.
func (hs *harness) start(head proto.RequestHead) *fetchx.Exchange {
	hs.mu.Lock()
	hs.nextID++
	id := hs.nextID
	x := fetchx.New(id, func(ctx context.Context, typ proto.MsgType, payload proto.Validator) error {
		env, err := roundTrip(typ, payload)
		if err != nil {
			return err
		}
		hs.srv.Handle(hs.conn, env, hs.agentSend)
		return nil
	}, time.Second)
	hs.open[id] = x
	hs.mu.Unlock()
	hs.t.Cleanup(x.Close)
	if err := x.SendHead(context.Background(), &proto.FetchRequest{RequestHead: head}); err != nil {
		hs.t.Fatal(err)
	}
	return x
}

func (hs *harness) do(head proto.RequestHead, body []byte) (int, []byte, error) {
	ctx := context.Background()
	x := hs.start(head)
	if len(body) > 0 {
		if err := x.Write(ctx, body); err != nil {
			return 0, nil, err
		}
	}
	if err := x.End(ctx); err != nil {
		return 0, nil, err
	}
	h, err := x.Head(ctx, 5*time.Second)
	if err != nil {
		return 0, nil, err
	}
	var out []byte
	for {
		p, err := x.Read(ctx)
		if err == io.EOF {
			return h.(*proto.FetchResponse).Status, out, nil
		}
		if err != nil {
			return 0, out, err
		}
		out = append(out, p...)
	}
}

func echo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("Connection", "close") // hop-by-hop: never crosses
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, "%s %s %d:", r.Method, r.RequestURI, len(b))
		w.Write(b)
	})
}

func TestFallbackServesGetAndPostWithTheAccessLog(t *testing.T) {
	hs := newHarness(t, context.Background(), echo(), nil)
	status, body, err := hs.do(proto.RequestHead{Method: "GET", Target: "/status?x=1"}, nil)
	if err != nil || status != 200 || string(body) != "GET /status?x=1 0:" {
		t.Fatalf("GET: %d %q %v", status, body, err)
	}
	bin := make([]byte, 200<<10)
	rand.Read(bin)
	status, body, err = hs.do(proto.RequestHead{Method: "POST", Target: "/upload", ContentLength: int64(len(bin))}, bin)
	if err != nil || status != 200 || !bytes.Equal(body, append([]byte(fmt.Sprintf("POST /upload %d:", len(bin))), bin...)) {
		t.Fatalf("POST: %d, %d bytes, %v", status, len(body), err)
	}
	testenv.Eventually(t, 2*time.Second, "both exchanges logged", func() bool {
		hs.logMu.Lock()
		defer hs.logMu.Unlock()
		return len(hs.logged) == 2
	})
	hs.logMu.Lock()
	defer hs.logMu.Unlock()
	for i, x := range hs.seen {
		if x.Via != proto.ViaSignaling || x.Kind != proto.AccessHTTP || x.Stream != 0 {
			t.Errorf("exchange %d observed as %+v", i, x)
		}
	}
	if r := hs.logged[1]; r.Status != 200 || r.ReqBytes != int64(len(bin)) || r.RespBytes != int64(len(body)) || r.Err != nil {
		t.Errorf("POST logged as %+v", r)
	}
	if hs.srv.InFlight() != 0 {
		t.Errorf("%d exchanges left", hs.srv.InFlight())
	}
}

func TestFallbackSlowReaderHoldsTheDeviceBack(t *testing.T) {
	var written atomic.Int64
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, proto.FetchChunk)
		for range 64 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			written.Add(1)
		}
		<-release
	})
	hs := newHarness(t, context.Background(), h, nil)
	x := hs.start(proto.RequestHead{Method: "GET", Target: "/big"})
	_ = x.End(context.Background())
	if _, err := x.Head(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Second, "a window of chunks", func() bool { return written.Load() >= proto.FetchWindow })
	time.Sleep(50 * time.Millisecond) // room to overrun, if it would
	if n := written.Load(); n != proto.FetchWindow {
		t.Fatalf("the handler wrote %d chunks to a reader that reads nothing; window %d", n, proto.FetchWindow)
	}
	got := 0
	for got < 64*proto.FetchChunk {
		p, err := x.Read(context.Background())
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		got += len(p)
	}
	close(release)
}

func TestFallbackRefusals(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	blocking := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	t.Run("past the cap", func(t *testing.T) {
		hs := newHarness(t, context.Background(), blocking, nil)
		for range proto.MaxFetchesPerSession {
			x := hs.start(proto.RequestHead{Method: "GET", Target: "/wait"})
			_ = x.End(context.Background())
			if _, err := x.Head(context.Background(), 5*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := hs.do(proto.RequestHead{Method: "GET", Target: "/one-more"}, nil)
		if proto.CodeOf(err) != proto.CodeRateLimited {
			t.Fatalf("request past the cap: %v", err)
		}
	})
	t.Run("access log full", func(t *testing.T) {
		hs := newHarness(t, context.Background(), echo(), func(c *Config) {
			c.Observe = func(tunnel.Exchange) (func(tunnel.ExchangeResult), error) {
				return nil, proto.Errorf(proto.CodeAuditBacklog, "the access log is full")
			}
		})
		if _, _, err := hs.do(proto.RequestHead{Method: "GET", Target: "/"}, nil); proto.CodeOf(err) != proto.CodeAuditBacklog {
			t.Fatalf("served without a log: %v", err)
		}
	})
	t.Run("undeclared port", func(t *testing.T) {
		hs := newHarness(t, context.Background(), echo(), nil)
		if _, _, err := hs.do(proto.RequestHead{Method: "GET", Target: "/", Port: 22}, nil); proto.CodeOf(err) != proto.CodePortNotAllowed {
			t.Fatalf("port 22: %v", err)
		}
	})
	t.Run("body longer than declared", func(t *testing.T) {
		hs := newHarness(t, context.Background(), echo(), nil)
		_, _, err := hs.do(proto.RequestHead{Method: "POST", Target: "/", ContentLength: 3}, []byte("twelve bytes"))
		if err == nil {
			t.Fatal("a body longer than its Content-Length was served")
		}
	})
	t.Run("oversize declared body", func(t *testing.T) {
		hs := newHarness(t, context.Background(), echo(), nil)
		var mu sync.Mutex
		var got *proto.FetchAbort
		env, _ := roundTrip(proto.TypeFetchRequest, &proto.FetchRequest{ID: 9, RequestHead: proto.RequestHead{Method: "POST", Target: "/", ContentLength: proto.MaxFetchBody + 1}})
		hs.srv.Handle(context.Background(), env, func(_ context.Context, typ proto.MsgType, p proto.Validator) error {
			mu.Lock()
			defer mu.Unlock()
			got, _ = p.(*proto.FetchAbort)
			return nil
		})
		testenv.Eventually(t, 2*time.Second, "an abort", func() bool { mu.Lock(); defer mu.Unlock(); return got != nil })
		if got.ID != 9 || got.Code != proto.CodeTooLarge {
			t.Fatalf("refused with %+v", got)
		}
	})
}

func TestFallbackEndsWithTheSessionAndTheConnection(t *testing.T) {
	started := make(chan struct{}, 2)
	var cancelled atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		started <- struct{}{}
		<-r.Context().Done()
		cancelled.Add(1)
	})
	sessCtx, endSession := context.WithCancel(context.Background())
	hs := newHarness(t, sessCtx, h, nil)
	connCtx, dropConn := context.WithCancel(context.Background())
	hs.conn = connCtx

	x := hs.start(proto.RequestHead{Method: "GET", Target: "/stream"})
	_ = x.End(context.Background())
	<-started
	dropConn() // the signaling connection went away
	testenv.Eventually(t, 2*time.Second, "the handler cancelled with its connection", func() bool { return cancelled.Load() == 1 })

	hs.conn = context.Background()
	y := hs.start(proto.RequestHead{Method: "GET", Target: "/stream"})
	_ = y.End(context.Background())
	if _, err := y.Head(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	<-started
	endSession() // the grant expired
	if _, err := y.Read(context.Background()); err == nil || err == io.EOF {
		t.Fatalf("the response went on after the session ended: %v", err)
	} else {
		t.Logf("after the session ended: %v", err)
	}
	testenv.Eventually(t, 2*time.Second, "the handler cancelled with its session", func() bool { return cancelled.Load() == 2 })
}
