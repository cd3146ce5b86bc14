package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/pion/datachannel"

	"github.com/porthole-dev/porthole/proto"
)

// bareMessage is the message size of the bare data-channel baseline: the
// tunnel's data frames (16 KiB chunks plus a one-byte type).
const bareMessage = proto.MaxChunk + 1

// dcThroughput sends n bytes from w to rd over a bare data channel.
func dcThroughput(w, rd datachannel.ReadWriteCloser, n int64) (float64, error) {
	deadline := time.Now().Add(2 * time.Minute)
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, proto.MaxFrame)
		var m int64
		for m < n {
			k, err := rd.Read(buf)
			if err != nil {
				got <- err
				return
			}
			m += int64(k)
		}
		got <- nil
	}()
	fw := newFlowWriter(w, bareMessage)
	t0 := time.Now()
	if err := fw.send(n, pattern[:bareMessage], deadline); err != nil {
		return 0, err
	}
	select {
	case err := <-got:
		if err != nil {
			return 0, err
		}
	case <-time.After(time.Until(deadline)):
		return 0, errors.New("bare data channel: receiver timed out")
	}
	return mbps(n, time.Since(t0)), nil
}

// BareDC measures a bare pion data channel between two in-process peers
// with Porthole's SettingEngine, the ceiling of the tunnel.
func BareDC(t testing.TB, r *Report, cfg Config) {
	dp, err := NewDCPair(PairOptions{})
	if err != nil {
		t.Fatalf("bare data channel: %v", err)
	}
	defer dp.Close()
	var s []float64
	for range cfg.Runs {
		v, err := dcThroughput(dp.ClientDC, dp.AgentDC, cfg.BulkBytes)
		if err != nil {
			t.Fatalf("bare data channel: %v", err)
		}
		s = append(s, v)
		logf(t, "bare pion data channel: %.0f Mbps", v)
	}
	r.Add("bare pion data channel, loopback", "Mbps", s).Annotate("%d-byte messages, both peers in one process", bareMessage)
}

// bulkHandler serves /bulk?n=N (pattern bytes) and /small (2 KiB).
func bulkHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /bulk", func(w http.ResponseWriter, r *http.Request) {
		var n int64
		_, _ = fmt.Sscan(r.URL.Query().Get("n"), &n)
		w.Header().Set("Content-Length", itoa(n))
		buf := pattern[:32<<10]
		for n > 0 {
			k := min(int64(len(buf)), n)
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	mux.HandleFunc("GET /small", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2048")
		_, _ = w.Write(pattern[:2048])
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		n, _ := discard(r.Body)
		fmt.Fprintf(w, "%d", n)
	})
	return mux
}

// InProcessFigures measures the tunnel between two in-process peers: on
// loopback (to compare with the bare channel without process boundaries),
// at a simulated 50 ms RTT (setup and bulk) and its heap over many
// requests.
func InProcessFigures(t testing.TB, r *Report, cfg Config) {
	h := bulkHandler()
	const rtt = 50 * time.Millisecond

	// Setup at 50 ms RTT: offer and answer each delayed by half an RTT,
	// every packet by half an RTT each way.
	var setup, setupRTT, local []float64
	for i := range cfg.SetupRuns {
		for _, delayed := range []bool{false, true} {
			opts := PairOptions{}
			if delayed {
				opts = PairOptions{Delay: rtt / 2, SignalDelay: rtt / 2}
			}
			t0 := time.Now()
			tp, err := NewTunnelPair(h, opts)
			if err != nil {
				t.Fatalf("tunnel pair: %v", err)
			}
			hc := &http.Client{Transport: tp.Client}
			reqStart := time.Now()
			d, _, err := getAll(hc, "http://device/small")
			total := reqStart.Sub(t0) + d
			tp.Close()
			if err != nil {
				t.Fatalf("setup GET: %v", err)
			}
			if delayed {
				setup = append(setup, ms(total))
				setupRTT = append(setupRTT, float64(total)/float64(rtt))
				logf(t, "setup at 50 ms RTT run %d: %.0f ms (%.2f RTT)", i, ms(total), float64(total)/float64(rtt))
			} else {
				local = append(local, ms(total))
			}
		}
	}
	r.Add("in-process setup, loopback, offer→first byte", "ms", local)
	r.Add("setup at 50 ms RTT, offer→first byte", "ms", setup)
	f := r.Add("setup at 50 ms RTT, in RTTs", "RTT", setupRTT)
	f.Check("≤ 6 RTT plus device time", f.Median <= 6.2).Annotate("signaling counted as one RTT (offer + answer); device time ≈ 0")

	// Bulk at 50 ms RTT: tunnel and bare channel.
	var tun, bare []float64
	for range cfg.Runs {
		tp, err := NewTunnelPair(h, PairOptions{Delay: rtt / 2})
		if err != nil {
			t.Fatalf("tunnel pair: %v", err)
		}
		hc := &http.Client{Transport: tp.Client}
		t0 := time.Now()
		_, n, err := getAll(hc, fmt.Sprintf("http://device/bulk?n=%d", cfg.DelayBytes))
		d := time.Since(t0)
		dropped := tp.relay.Dropped.Load()
		tp.Close()
		if err != nil || n != cfg.DelayBytes {
			t.Fatalf("bulk at 50 ms: %d bytes, %v", n, err)
		}
		tun = append(tun, mbps(n, d))
		logf(t, "tunnel bulk at 50 ms RTT: %.0f Mbps (relay dropped %d)", mbps(n, d), dropped)

		dp, err := NewDCPair(PairOptions{Delay: rtt / 2})
		if err != nil {
			t.Fatalf("dc pair: %v", err)
		}
		v, err := dcThroughput(dp.AgentDC, dp.ClientDC, cfg.DelayBytes)
		dp.Close()
		if err != nil {
			t.Fatalf("bare dc at 50 ms: %v", err)
		}
		bare = append(bare, v)
		logf(t, "bare data channel at 50 ms RTT: %.0f Mbps", v)
	}
	r.Add("bare pion data channel, 50 ms RTT", "Mbps", bare)
	f = r.Add("bulk download, tunnel, 50 ms RTT", "Mbps", tun)
	r.Against(f, "bare pion data channel, 50 ms RTT")
	f.Check("≥ 250 Mbps", f.Median >= 250).Annotate("%d MiB per transfer, slow start included", cfg.DelayBytes>>20)

	// In-process tunnel on loopback, and its heap over many requests.
	tp, err := NewTunnelPair(h, PairOptions{})
	if err != nil {
		t.Fatalf("tunnel pair: %v", err)
	}
	defer tp.Close()
	hc := &http.Client{Transport: tp.Client}
	var inproc []float64
	for range cfg.Runs {
		t0 := time.Now()
		_, n, err := getAll(hc, fmt.Sprintf("http://device/bulk?n=%d", cfg.BulkBytes))
		if err != nil || n != cfg.BulkBytes {
			t.Fatalf("in-process bulk: %d, %v", n, err)
		}
		inproc = append(inproc, mbps(n, time.Since(t0)))
	}
	f = r.Add("bulk download, tunnel, in-process loopback", "Mbps", inproc)
	r.Against(f, "bare pion data channel, loopback")
	heapGrowth(t, r, cfg, hc)
}

// heapGrowth runs cfg.HeapRequests small requests over 4 concurrent
// workers and compares the live heap (both peers) after a tenth with the
// end.
func heapGrowth(t testing.TB, r *Report, cfg Config, hc *http.Client) {
	const workers = 4
	run := func(count int) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		errc := make(chan error, workers)
		for w := range workers {
			go func() {
				for i := w; i < count && ctx.Err() == nil; i += workers {
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://device/small", nil)
					resp, err := hc.Do(req)
					if err != nil {
						errc <- err
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				errc <- ctx.Err()
			}()
		}
		for range workers {
			if err := <-errc; err != nil {
				t.Fatalf("heap growth: %v", err)
			}
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	n := cfg.HeapRequests
	warm := n / 10
	run(warm)
	h0 := heap()
	run(n - warm)
	h1 := heap()
	per := (float64(h1) - float64(h0)) / float64(n-warm)
	f := r.Add(fmt.Sprintf("tunnel heap growth per request over %d requests (both peers)", n), "B", []float64{per})
	f.Annotate("live heap %.2f MiB after %d requests, %.2f MiB after %d", float64(h0)/(1<<20), warm, float64(h1)/(1<<20), n)
	f.Check("flat (≤ 8 B/request)", per <= 8)
}

// SmokeFigures proves the in-process scenarios work in a few seconds.
func SmokeFigures(t testing.TB, r *Report) {
	BareDC(t, r, Smoke)
	tp, err := NewTunnelPair(bulkHandler(), PairOptions{Delay: 5 * time.Millisecond, SignalDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatalf("tunnel pair over a delay relay: %v", err)
	}
	defer tp.Close()
	hc := &http.Client{Transport: tp.Client}
	if _, n, err := getAll(hc, "http://device/bulk?n=100000"); err != nil || n != 100000 {
		t.Fatalf("GET over the delay relay: %d bytes, %v", n, err)
	}
}
