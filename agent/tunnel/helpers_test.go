package tunnel_test

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/deviceproxy"
	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/agent/tunnel/tunneltest"
	"github.com/porthole-dev/porthole/proto"
)

// testLogger logs at Warn and above unless PORTHOLE_TEST_DEBUG is set.
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("PORTHOLE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// device is an httptest device behind a deviceproxy, reached through a
// tunnel pair.
type device struct {
	srv   *httptest.Server
	port  int
	proxy *deviceproxy.Proxy
	pair  *tunneltest.Pair
	http  *http.Client

	mu    sync.Mutex
	conns map[net.Conn]chan struct{} // closed when the conn reaches StateClosed
	order []net.Conn
}

type deviceOptions struct {
	extraPorts []int
	hostHeader string
	clientCfg  tunnel.ClientConfig
}

func newDevice(t *testing.T, h http.Handler, opt deviceOptions) *device {
	t.Helper()
	d := &device{conns: map[net.Conn]chan struct{}{}}
	d.srv = httptest.NewUnstartedServer(h)
	d.srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		d.mu.Lock()
		defer d.mu.Unlock()
		switch s {
		case http.StateNew:
			d.conns[c] = make(chan struct{})
			d.order = append(d.order, c)
		case http.StateClosed, http.StateHijacked:
			if ch, ok := d.conns[c]; ok {
				close(ch)
				delete(d.conns, c)
			}
		}
	}
	d.srv.Start()
	t.Cleanup(d.srv.Close)
	_, ps, _ := net.SplitHostPort(d.srv.Listener.Addr().String())
	d.port, _ = strconv.Atoi(ps)
	log := testLogger(t)
	var err error
	d.proxy, err = deviceproxy.New(deviceproxy.Device{
		ID:         "printer-1",
		Scheme:     "http",
		Host:       "127.0.0.1",
		HTTPPort:   d.port,
		Ports:      opt.extraPorts,
		HostHeader: opt.hostHeader,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.proxy.CloseIdleConnections)
	srv := &tunnel.Server{HTTP: d.proxy.Handler, DialTCP: d.proxy.DialTCP, Logger: log,
		RequestContext: func(ctx context.Context, head *proto.RequestHead) context.Context {
			return deviceproxy.WithClientOrigin(ctx, head.ClientOrigin)
		},
		WebSocket: func(ctx context.Context, o *proto.WSOpen) (tunnel.DeviceWebSocket, *proto.WSOpened, error) {
			c, op, err := d.proxy.DialWebSocket(ctx, o)
			if err != nil {
				return nil, nil, err
			}
			return c, op, nil
		}}
	if opt.clientCfg.Logger == nil {
		opt.clientCfg.Logger = log
	}
	d.pair = tunneltest.NewPairConfig(t, srv, tunneltest.Config{Client: opt.clientCfg, PeerLogger: peerLogger(t)})
	d.http = &http.Client{
		Transport: d.pair.Client,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return d
}

// pattern is a deterministic byte stream: a random block of prime length
// repeated, so misplaced chunks change the hash.
type pattern struct {
	block []byte
	off   int
	left  int64
}

func newPattern(n int64) *pattern {
	r := rand.NewChaCha8([32]byte{1, 2, 3})
	b := make([]byte, 1<<20+7)
	_, _ = r.Read(b)
	return &pattern{block: b, left: n}
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n := copy(b, p.block[p.off:])
	p.off = (p.off + n) % len(p.block)
	p.left -= int64(n)
	return n, nil
}

func patternSum(n int64) []byte {
	h := sha256.New()
	_, _ = io.Copy(h, newPattern(n))
	return h.Sum(nil)
}

// memSampler records the peak HeapInuse while running.
type memSampler struct {
	base uint64
	peak uint64
	stop chan struct{}
	done chan struct{}
}

func startMemSampler() *memSampler {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := &memSampler{base: ms.HeapInuse, peak: ms.HeapInuse, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > s.peak {
					s.peak = ms.HeapInuse
				}
			}
		}
	}()
	return s
}

// Stop returns the peak growth of HeapInuse over the baseline.
func (s *memSampler) Stop() uint64 {
	close(s.stop)
	<-s.done
	return s.peak - s.base
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func hashOf(r io.Reader) ([]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return h.Sum(nil), n, err
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not close within 10s", what)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// peerLogger passes pion's logs to the test log when PORTHOLE_TEST_PION is
// set.
func peerLogger(t testing.TB) *slog.Logger {
	if os.Getenv("PORTHOLE_TEST_PION") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
