package tunnel_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/accesslog"
	"github.com/porthole-dev/porthole/agent/deviceproxy"
	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/agent/tunnel/tunneltest"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// TestEveryExchangeIsObservedAndFullLogRefuses: each HTTP request and TCP
// stream reaches the observer with its outcome, and when the access log
// is full the next exchange is refused with audit_backlog — nothing
// reaches the device — until an acknowledgement makes room.
func TestEveryExchangeIsObservedAndFullLogRefuses(t *testing.T) {
	var hits sync.Map
	dev := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Store(r.URL.Path, true)
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, strings.Repeat("x", 1000+len(body)))
	}))
	t.Cleanup(dev.Close)
	_, ps, _ := net.SplitHostPort(dev.Listener.Addr().String())
	port, _ := strconv.Atoi(ps)
	log := testLogger(t)
	proxy, err := deviceproxy.New(deviceproxy.Device{ID: "printer-1", Scheme: "http", Host: "127.0.0.1", HTTPPort: port}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.CloseIdleConnections)

	alog, _ := accesslog.Open(accesslog.Config{Capacity: 3})
	var mu sync.Mutex
	var results []tunnel.ExchangeResult
	var seen []tunnel.Exchange
	srv := &tunnel.Server{HTTP: proxy.Handler, DialTCP: proxy.DialTCP, Logger: log,
		Observe: func(x tunnel.Exchange) (func(tunnel.ExchangeResult), error) {
			slot, err := alog.Begin("sessionobs1")
			if err != nil {
				return nil, err
			}
			mu.Lock()
			seen = append(seen, x)
			mu.Unlock()
			return func(r tunnel.ExchangeResult) {
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				slot.Commit(proto.AccessEntry{Kind: x.Kind, Time: x.Start, URL: x.Target, Status: r.Status})
			}, nil
		}}
	pair := tunneltest.NewPairConfig(t, srv, tunneltest.Config{PeerLogger: peerLogger(t)})
	client := &http.Client{Transport: pair.Client}
	ctx := ctxTimeout(t, 20*time.Second)

	post := func(path string) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://dev"+path, strings.NewReader("hello"))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	for _, p := range []string{"/a", "/b"} {
		if err := post(p); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pair.Client.DialTCP(ctx, port)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(conn, "GET /tcp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(conn)
	conn.Close()

	// Three entries unacknowledged: the log is full.
	waitFor(t, func() bool { return alog.Stats().Unacked == 3 })
	err = post("/refused")
	var pe *proto.Error
	if !errors.As(err, &pe) || pe.Code != proto.CodeAuditBacklog {
		t.Fatalf("request with a full log: %v, want audit_backlog", err)
	}
	if _, ok := hits.Load("/refused"); ok {
		t.Fatal("the device was reached although nothing could be recorded")
	}
	alog.Ack("sessionobs1", 3)
	if err := post("/after"); err != nil {
		t.Fatalf("after the acknowledgement: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 4 || seen[0].Method != "POST" || seen[0].Target != "/a" || seen[2].Kind != "tcp" || seen[2].Port != port {
		t.Fatalf("observed %+v", seen)
	}
	r := results[0]
	if r.Status != http.StatusTeapot || r.ReqBytes != 5 || r.RespBytes != 1005 || r.Err != nil || r.Duration <= 0 {
		t.Fatalf("HTTP result %+v", r)
	}
	tcp := results[2]
	if tcp.ReqBytes == 0 || tcp.RespBytes != int64(len(raw)) {
		t.Fatalf("TCP result %+v, read %d", tcp, len(raw))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "the condition", cond)
}
