package tunnel_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

func TestHTTPThroughDeviceProxy(t *testing.T) {
	type seen struct {
		host, origin, referer, xff, custom, connection string
		body                                           []byte
	}
	got := make(chan seen, 1)
	dev := newDevice(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{
			host: r.Host, origin: r.Header.Get("Origin"), referer: r.Header.Get("Referer"),
			xff: r.Header.Get("X-Forwarded-For"), custom: r.Header.Get("X-Custom"),
			connection: r.Header.Get("X-Hop"), body: b,
		}
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/login?next=%2F", http.StatusFound)
		default:
			w.Header().Set("X-Device", "yes")
			w.Header().Add("Set-Cookie", "a=1")
			w.Header().Add("Set-Cookie", "b=2")
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(append([]byte(r.Method+" "+r.URL.RequestURI()+"\n"), b...))
		}
	}), deviceOptions{hostHeader: "printer.local"})

	body := bytes.Repeat([]byte("0123456789abcdef\x00\xff"), 10_000) // 180 kB, binary
	// The client serves the device's pages on https://s123.sessions.example:
	// its Origin and Referer become the device's own on the way.
	ctx := tunnel.WithClientOrigin(context.Background(), "https://s123.sessions.example")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://ignored.example/cgi/upload?x=1&y=%20", bytes.NewReader(body))
	req.Header.Set("Origin", "https://s123.sessions.example")
	req.Header.Set("Referer", "https://s123.sessions.example/admin/page?tab=2")
	req.Header.Set("X-Custom", "kept")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "dropped")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err := dev.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	respBody, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte("POST /cgi/upload?x=1&y=%20\n"), body...)
	if !bytes.Equal(respBody, want) {
		t.Fatalf("response body differs: got %d bytes, want %d", len(respBody), len(want))
	}
	if resp.StatusCode != 200 || resp.Header.Get("X-Device") != "yes" || len(resp.Header.Values("Set-Cookie")) != 2 {
		t.Fatalf("status %d header %v", resp.StatusCode, resp.Header)
	}
	s := <-got
	if !bytes.Equal(s.body, body) {
		t.Fatalf("device received %d bytes, want %d", len(s.body), len(body))
	}
	if s.host != "printer.local" {
		t.Errorf("Host = %q, want the configured printer.local", s.host)
	}
	if s.origin != "http://printer.local" {
		t.Errorf("Origin = %q", s.origin)
	}
	if s.referer != "http://printer.local/admin/page?tab=2" {
		t.Errorf("Referer = %q", s.referer)
	}
	if s.xff != "" {
		t.Errorf("X-Forwarded-For = %q, want none", s.xff)
	}
	if s.custom != "kept" || s.connection != "" {
		t.Errorf("X-Custom = %q, X-Hop = %q", s.custom, s.connection)
	}

	// The channel returns to the pool once both directions ended, which
	// can be a moment after the body's last byte: the next request reuses
	// it from then on.
	testenv.Eventually(t, 5*time.Second, "the channel back in the pool", func() bool { return dev.pair.Client.Stats().Idle == 1 })
	// GET, and a redirect that is returned, not followed.
	resp, err = dev.http.Get("http://ignored/redirect")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	<-got
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login?next=%2F" {
		t.Fatalf("redirect: status %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	select {
	case s := <-got:
		t.Fatalf("redirect was followed: device saw %+v", s)
	default:
	}
	if st := dev.pair.Client.Stats(); st.Opened != 1 {
		t.Errorf("sequential requests opened %d channels, want 1", st.Opened)
	}
}

func TestConcurrentRequestsReuseChannels(t *testing.T) {
	dev := newDevice(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond) // keep requests overlapping
		_, _ = fmt.Fprintf(w, "reply to %s", r.URL.Query().Get("i"))
	}), deviceOptions{clientCfg: tunnel.ClientConfig{MaxChannels: 8}})

	const n, rounds = 50, 3
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := dev.http.Get(fmt.Sprintf("http://dev/?i=%d-%d", round, i))
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if want := fmt.Sprintf("reply to %d-%d", round, i); err != nil || string(b) != want {
					errs <- fmt.Errorf("got %q (%v), want %q", b, err, want)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	st := dev.pair.Client.Stats()
	t.Logf("client stats after %d requests: %+v; agent: %+v", n*rounds, st, dev.pair.Session.Stats())
	if st.Opened > 8 || st.Live > 8 {
		t.Errorf("opened %d channels (live %d), cap is 8", st.Opened, st.Live)
	}
	if st.Dropped != 0 || st.Idle != st.Live {
		t.Errorf("channels not all back in the pool: %+v", st)
	}
}

func TestBulkDownload256MiB(t *testing.T) {
	const size = 256 << 20
	want := patternSum(size)
	dev := newDevice(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		_, _ = io.Copy(w, newPattern(size))
	}), deviceOptions{})

	mem := startMemSampler()
	start := time.Now()
	resp, err := dev.http.Get("http://dev/firmware.bin")
	if err != nil {
		t.Fatal(err)
	}
	sum, n, err := hashOf(resp.Body)
	_ = resp.Body.Close()
	elapsed := time.Since(start)
	growth := mem.Stop()
	if err != nil || n != size {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	if !bytes.Equal(sum, want) {
		t.Fatal("SHA-256 of the download differs")
	}
	mbps := float64(size) / elapsed.Seconds() / 1e6
	t.Logf("256 MiB download in %v: %.1f MB/s (%.0f Mbit/s); peak HeapInuse growth %.1f MiB",
		elapsed.Round(time.Millisecond), mbps, mbps*8, float64(growth)/(1<<20))
	if growth > 64<<20 {
		t.Errorf("heap grew by %d MiB during the download; bodies must stream", growth>>20)
	}
}

func TestBulkUpload64MiB(t *testing.T) {
	const size = 64 << 20
	want := patternSum(size)
	dev := newDevice(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	}), deviceOptions{})

	mem := startMemSampler()
	start := time.Now()
	resp, err := dev.http.Post("http://dev/upload", "application/octet-stream", io.MultiReader(newPattern(size)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	elapsed := time.Since(start)
	growth := mem.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if wantReply := fmt.Sprintf("%d %s", size, hex.EncodeToString(want)); string(b) != wantReply {
		t.Fatalf("device replied %q, want %q", b, wantReply)
	}
	mbps := float64(size) / elapsed.Seconds() / 1e6
	t.Logf("64 MiB upload (unknown length, chunked to the device) in %v: %.1f MB/s; peak HeapInuse growth %.1f MiB",
		elapsed.Round(time.Millisecond), mbps, float64(growth)/(1<<20))
	if growth > 64<<20 {
		t.Errorf("heap grew by %d MiB during the upload; bodies must stream", growth>>20)
	}
}

func TestCancelledRequestReusesChannelAndClosesUpstream(t *testing.T) {
	dev := newDevice(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small" {
			_, _ = io.WriteString(w, "small")
			return
		}
		chunk := bytes.Repeat([]byte("x"), 1024)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}), deviceOptions{})

	for _, how := range []string{"cancel", "close"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://dev/stream", nil)
			resp, err := dev.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 8<<10)
			if _, err := io.ReadFull(resp.Body, buf); err != nil {
				t.Fatal(err)
			}
			dev.mu.Lock()
			upstream := dev.order[len(dev.order)-1]
			closed := dev.conns[upstream]
			dev.mu.Unlock()

			switch how {
			case "cancel":
				cancel()
				_, err = io.Copy(io.Discard, resp.Body)
				if !errors.Is(err, context.Canceled) {
					t.Errorf("read after cancel: %v, want context.Canceled", err)
				}
				_ = resp.Body.Close()
			case "close":
				_ = resp.Body.Close()
			}
			if closed == nil {
				t.Fatal("the device connection closed before the cancel")
			}
			waitClosed(t, closed, "upstream connection to the device")

			st := dev.pair.Client.Stats()
			if st.Dropped != 0 || st.Idle != st.Live {
				t.Fatalf("channel not returned to the pool: %+v", st)
			}
			opened := st.Opened
			resp, err = dev.http.Get("http://dev/small")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if string(b) != "small" {
				t.Fatalf("next request got %q", b)
			}
			if st := dev.pair.Client.Stats(); st.Opened != opened {
				t.Errorf("next request opened a new channel (%d → %d)", opened, st.Opened)
			}
		})
	}
}

func TestSequentialRequestsKeepHeapFlat(t *testing.T) {
	dev := newDevice(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok "+r.URL.RawQuery)
	}), deviceOptions{})
	const total, mark = 20_000, 2_000
	var at2k uint64
	start := time.Now()
	for i := 1; i <= total; i++ {
		resp, err := dev.http.Get(fmt.Sprintf("http://dev/status?%d", i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || string(b) != fmt.Sprintf("ok %d", i) {
			t.Fatalf("request %d: %q %v", i, b, err)
		}
		if i == mark {
			at2k = heapAfterGC()
		}
	}
	elapsed := time.Since(start)
	at20k := heapAfterGC()
	growth := int64(at20k) - int64(at2k)
	st := dev.pair.Client.Stats()
	t.Logf("%d requests in %v (%.0f µs each); HeapInuse after GC: %.2f MiB at %d, %.2f MiB at %d (growth %+.2f MiB); channels opened %d",
		total, elapsed.Round(time.Millisecond), float64(elapsed.Microseconds())/total,
		float64(at2k)/(1<<20), mark, float64(at20k)/(1<<20), total, float64(growth)/(1<<20), st.Opened)
	if growth > 4<<20 {
		t.Errorf("heap grew by %.1f MiB over %d requests", float64(growth)/(1<<20), total-mark)
	}
	if st.Opened > 2 {
		t.Errorf("sequential requests opened %d channels", st.Opened)
	}
}

func TestUndeclaredPortRefused(t *testing.T) {
	dev := newDevice(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "web")
	}), deviceOptions{})
	ctx := ctxTimeout(t, 20*time.Second)

	get := func(ctx context.Context) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://dev/", nil)
		resp, err := dev.http.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for i := range 2 {
		_, err := get(tunnel.WithPort(ctx, 22))
		var pe *proto.Error
		if !errors.As(err, &pe) || pe.Code != proto.CodePortNotAllowed {
			t.Fatalf("HTTP to port 22: %v, want port_not_allowed", err)
		}
		if !errors.Is(err, &proto.Error{Code: proto.CodePortNotAllowed}) {
			t.Errorf("errors.Is does not match the code: %v", err)
		}
		_, err = dev.pair.Client.DialTCP(ctx, 23)
		if !errors.As(err, &pe) || pe.Code != proto.CodePortNotAllowed {
			t.Fatalf("TCP to port 23: %v, want port_not_allowed", err)
		}
		if body, err := get(ctx); err != nil || body != "web" {
			t.Fatalf("round %d: request after refusals: %q %v", i, body, err)
		}
	}
	if st := dev.pair.Client.Stats(); st.Opened != 1 || st.Dropped != 0 {
		t.Errorf("refusals cost channels: %+v", st)
	}
}

func TestRoundTripAgentRefusesBadHead(t *testing.T) {
	dev := newDevice(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), deviceOptions{})
	req, _ := http.NewRequest(http.MethodGet, "http://dev/", nil)
	req.Header["Bad\nName"] = []string{"x"}
	_, err := dev.pair.Client.RoundTrip(req)
	if proto.CodeOf(err) != proto.CodeBadRequest {
		t.Fatalf("header injection: %v, want bad_request", err)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://dev/", nil)
	req.Header.Set("X", "a\r\nInjected: 1")
	if _, err := dev.pair.Client.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "bad_request") {
		t.Fatalf("value injection: %v", err)
	}
}

// TestStreamingResponseReachesTheClientAtOnce: what a device flushes of a
// response of unknown length (chunked, or an event stream) reaches the
// client while the device handler is still running; the proxy's
// ReverseProxy flushes streams by itself (FlushInterval 0).
func TestStreamingResponseReachesTheClientAtOnce(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	dev := newDevice(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/events" {
			w.Header().Set("Content-Type", "text/event-stream")
		}
		_, _ = io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}), deviceOptions{})
	for _, path := range []string{"/chunked", "/events"} {
		t.Run(path, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://dev"+path, nil)
			resp, err := dev.http.Do(req)
			if err != nil {
				t.Fatalf("head while the device handler runs: %v", err)
			}
			defer resp.Body.Close()
			buf := make([]byte, 5)
			if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
				t.Fatalf("first flushed bytes %q, %v", buf, err)
			}
		})
	}
}
