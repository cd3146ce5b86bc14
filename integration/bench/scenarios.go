package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/technician"
	"github.com/porthole-dev/porthole/integration/stack"
)

// Config sizes a suite run.
type Config struct {
	Name         string
	SetupRuns    int   // sessions opened per setup figure
	Runs         int   // repetitions of each throughput figure
	BulkBytes    int64 // bytes per bulk transfer on loopback
	DelayBytes   int64 // bytes per bulk transfer over simulated delay
	LatencyRuns  int   // runs of Requests small GETs
	Requests     int
	HeapRequests int   // requests of the agent memory figure
	TURNSessions []int // turnutils_uclient -m values
	TURNPackets  int   // packets per session
	TURNRuns     int   // runs per server and session count; 0: max(1, Runs/2)
	// TURNSocketBuffer is porthole-turn's --socket-buffer in the turn group.
	TURNSocketBuffer int
	Agents           int // idle agents connected to signaling
	BrowserRuns      int // Chromium runs (a fresh profile each: cold, warm, direct)
	// The bulk group (issue 21): runs, and bytes downloaded and uploaded
	// per transfer in each of Chromium through the session, the CLI and
	// Chromium direct.
	BulkBrowserRuns                int
	BulkBrowserDown, BulkBrowserUp int64
}

// Quick is the one-minute subset; Full is make bench.
var (
	Quick = Config{Name: "quick", SetupRuns: 3, Runs: 2, BulkBytes: 16 << 20, DelayBytes: 8 << 20,
		LatencyRuns: 2, Requests: 300, HeapRequests: 2000, TURNSessions: []int{10}, TURNPackets: 500, TURNSocketBuffer: 4 << 20, Agents: 1000,
		BrowserRuns: 3, BulkBrowserRuns: 2, BulkBrowserDown: 32 << 20, BulkBrowserUp: 16 << 20}
	Full = Config{Name: "full", SetupRuns: 11, Runs: 5, BulkBytes: 64 << 20, DelayBytes: 48 << 20,
		LatencyRuns: 5, Requests: 2000, HeapRequests: 20000, TURNSessions: []int{10, 50, 100, 200}, TURNPackets: 2000, TURNSocketBuffer: 4 << 20, Agents: 10000,
		BrowserRuns: 9, BulkBrowserRuns: 3, BulkBrowserDown: 256 << 20, BulkBrowserUp: 64 << 20}
	Smoke = Config{Name: "smoke", SetupRuns: 1, Runs: 1, BulkBytes: 1 << 20, DelayBytes: 1 << 20,
		LatencyRuns: 1, Requests: 20, HeapRequests: 100, TURNSessions: nil, Agents: 20,
		BrowserRuns: 1}
)

func logf(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Logf("%s "+format, append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

// openSession opens a technician session on st.
func openSession(ctx context.Context, st *stack.Stack, relay bool) (*technician.Session, error) {
	return technician.Open(ctx, technician.Config{
		Server: st.SignalingURL, Token: st.TechToken, Device: stack.DeviceID,
		RelayOnly: relay, LoopbackOnly: true,
	})
}

// StackFigures measures everything that runs against the real binaries:
// session setup, small-request latency, bulk transfer (direct and
// relayed) and the agent's memory over many requests.
func StackFigures(t testing.TB, r *Report, cfg Config) {
	st := stack.Start(t, stack.Options{})
	dev := "http://" + st.DeviceAddr
	direct := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer direct.CloseIdleConnections()

	// Setup baseline: a new TCP connection and GET / to the device.
	var base []float64
	for range cfg.SetupRuns {
		fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		d, _, err := getAll(fresh, dev+"/")
		if err != nil {
			t.Fatalf("direct GET /: %v", err)
		}
		base = append(base, ms(d))
	}
	r.Add("device page, direct new TCP connection, first byte", "ms", base)

	for _, relay := range []bool{false, true} {
		name := "session setup, Go peer, loopback, request→first byte"
		if relay {
			name = "session setup, Go peer, relay forced, request→first byte"
		}
		var samples []float64
		for i := range cfg.SetupRuns {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			t0 := time.Now()
			s, err := openSession(ctx, st, relay)
			if err != nil {
				cancel()
				t.Fatalf("%s: open: %v", name, err)
			}
			hc := &http.Client{Transport: s.Client}
			reqStart := time.Now()
			d, _, err := getAll(hc, "http://device/")
			ttfb := reqStart.Sub(t0) + d
			_ = s.Close()
			cancel()
			if err != nil {
				t.Fatalf("%s: GET /: %v", name, err)
			}
			samples = append(samples, ms(ttfb))
			logf(t, "%s run %d: %.1f ms", name, i, ms(ttfb))
		}
		f := r.Add(name, "ms", samples)
		r.Against(f, "device page, direct new TCP connection, first byte")
		f.Check("p50 ≤ 50 ms, no multi-second wait", f.Median <= 50 && f.Max < 1000)
	}

	// Sessions for the remaining figures.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sd, err := openSession(ctx, st, false)
	if err != nil {
		t.Fatalf("open direct session: %v", err)
	}
	defer sd.Close()
	sr, err := openSession(ctx, st, true)
	if err != nil {
		t.Fatalf("open relayed session: %v", err)
	}
	defer sr.Close()
	if p, err := sr.Path(); err != nil || !p.Relayed {
		t.Fatalf("relay-forced session path %+v, %v", p, err)
	}
	if p, err := sd.Path(); err != nil || p.Relayed {
		t.Fatalf("direct session path %+v, %v", p, err)
	}
	tunD := &http.Client{Transport: sd.Client}
	tunR := &http.Client{Transport: sr.Client}

	// Small GETs: 2 KiB from the device, one at a time.
	small := "/firmware.bin?size=2048"
	latency := func(name string, hc *http.Client, base string) {
		var p50, p99 []float64
		for range cfg.LatencyRuns {
			ds := make([]time.Duration, 0, cfg.Requests)
			for range cfg.Requests {
				t0 := time.Now()
				_, n, err := getAll(hc, base+small)
				if err != nil || n != 2048 {
					t.Fatalf("%s: %d bytes, %v", name, n, err)
				}
				ds = append(ds, time.Since(t0))
			}
			p50 = append(p50, percentile(ds, 50))
			p99 = append(p99, percentile(ds, 99))
		}
		r.Add(name+" p50", "µs", p50)
		r.Add(name+" p99", "µs", p99)
	}
	latency("HTTP 2 KiB GET, direct", direct, dev)
	latency("HTTP 2 KiB GET, tunnelled direct", tunD, "http://device")
	latency("HTTP 2 KiB GET, tunnelled relayed", tunR, "http://device")
	for _, p := range []string{"p50", "p99"} {
		for _, path := range []string{"direct", "relayed"} {
			f := r.Against(r.Get("HTTP 2 KiB GET, tunnelled "+path+" "+p), "HTTP 2 KiB GET, direct "+p)
			if path == "direct" && f != nil {
				over := f.Median - f.BaselineMedian
				if p == "p50" {
					f.Check("overhead ≤ 300 µs", over <= 300).Annotate("overhead %.0f µs", over)
				} else {
					f.Check("overhead ≤ 2000 µs", over <= 2000).Annotate("overhead %.0f µs", over)
				}
			}
		}
	}

	// Bulk transfers.
	bulkURL := fmt.Sprintf("/firmware.bin?size=%d", cfg.BulkBytes)
	download := func(name string, hc *http.Client, base string) *Figure {
		var s []float64
		for range cfg.Runs {
			t0 := time.Now()
			_, n, err := getAll(hc, base+bulkURL)
			d := time.Since(t0)
			if err != nil || n != cfg.BulkBytes {
				t.Fatalf("%s: %d bytes, %v", name, n, err)
			}
			s = append(s, mbps(n, d))
			logf(t, "%s: %.0f Mbps", name, mbps(n, d))
		}
		return r.Add(name, "Mbps", s)
	}
	upload := func(name string, hc *http.Client, base string) *Figure {
		var s []float64
		for range cfg.Runs {
			req, _ := http.NewRequest(http.MethodPost, base+"/upload", &patternReader{left: cfg.BulkBytes})
			req.ContentLength = cfg.BulkBytes
			t0 := time.Now()
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			d := time.Since(t0)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %s", name, resp.Status)
			}
			s = append(s, mbps(cfg.BulkBytes, d))
			logf(t, "%s: %.0f Mbps", name, mbps(cfg.BulkBytes, d))
		}
		return r.Add(name, "Mbps", s)
	}
	var raw []float64
	for range cfg.Runs {
		v, err := rawTCP(cfg.BulkBytes)
		if err != nil {
			t.Fatalf("raw TCP: %v", err)
		}
		raw = append(raw, v)
	}
	r.Add("raw TCP loopback", "Mbps", raw)
	download("bulk download, direct HTTP to device", direct, dev)
	upload("bulk upload, direct HTTP to device", direct, dev)
	BareDC(t, r, cfg)
	dd := download("bulk download, tunnelled direct", tunD, "http://device")
	r.Against(dd, "bare pion data channel, loopback")
	dd.Check("≥ 400 Mbps and ≥ 95% of bare pion", dd.Median >= 400 && dd.Ratio >= 0.95)
	du := upload("bulk upload, tunnelled direct", tunD, "http://device")
	r.Against(du, "bare pion data channel, loopback")
	rd := download("bulk download, tunnelled relayed", tunR, "http://device")
	r.Against(rd, "bulk download, tunnelled direct")
	rd.Check("≥ 60% of direct", rd.Ratio >= 0.6)
	ru := upload("bulk upload, tunnelled relayed", tunR, "http://device")
	r.Against(ru, "bulk upload, tunnelled direct")
	if f := r.Get("raw TCP loopback"); f != nil {
		dd.Annotate("%.3g of raw TCP loopback", dd.Median/f.Median)
	}

	AgentMemory(t, r, cfg, st, tunD)
	n := backlogWaits.Load()
	r.Add("requests the agent refused with audit_backlog (whole stack run)", "requests", []float64{float64(n)})
	if n > 0 {
		logf(t, "the agent refused %d requests with audit_backlog (retried)", n)
		if f := r.Get("HTTP 2 KiB GET, tunnelled direct p99"); f != nil {
			f.Annotate("agent refused %d requests of this run with audit_backlog (retried after 5 ms, not timed)", n)
		}
	}
}

// AgentMemory sends cfg.HeapRequests small requests through one session
// and compares the agent's resident memory after the first tenth with the
// end (a flat agent does not grow with requests).
func AgentMemory(t testing.TB, r *Report, cfg Config, st *stack.Stack, hc *http.Client) {
	pid := st.Procs["porthole-agent"].Pid()
	const workers = 4
	n := cfg.HeapRequests
	warm := n / 10
	run := func(count int) {
		errc := make(chan error, workers)
		for w := range workers {
			go func() {
				for i := w; i < count; i += workers {
					if _, _, err := getAll(hc, "http://device/firmware.bin?size=512"); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
		}
		for range workers {
			if err := <-errc; err != nil {
				t.Fatalf("agent memory: %v", err)
			}
		}
	}
	run(warm)
	time.Sleep(200 * time.Millisecond)
	rss0, err := procRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	run(n - warm)
	rate := float64(n-warm) / time.Since(t0).Seconds()
	r.Add(fmt.Sprintf("small GETs through one session, %d workers", workers), "req/s", []float64{rate}).
		Annotate("over %d requests, audit_backlog refusals retried after 5 ms", n-warm)
	time.Sleep(200 * time.Millisecond)
	rss1, err := procRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	per := float64(rss1-rss0) / float64(n-warm)
	f := r.Add(fmt.Sprintf("agent RSS growth per request over %d requests", n), "B", []float64{per})
	f.Annotate("agent RSS %.1f MiB after %d requests, %.1f MiB after %d", float64(rss0)/(1<<20), warm, float64(rss1)/(1<<20), n)
	f.Check("flat (≤ 32 B/request, RSS noise)", per <= 32)
	runtime.KeepAlive(hc)
}

// overrideTURN replaces the turn group's session counts (a comma-separated
// list; empty keeps them) and runs per case (0 keeps them).
func (c *Config) overrideTURN(sessions string, runs int) error {
	if sessions != "" {
		var counts []int
		for _, f := range strings.Split(sessions, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("-turn-sessions %q: %q is not a positive session count", sessions, f)
			}
			counts = append(counts, n)
		}
		c.TURNSessions = counts
	}
	if runs < 0 {
		return fmt.Errorf("-turn-runs %d: want 0 or more", runs)
	}
	if runs > 0 {
		c.TURNRuns = runs
	}
	return nil
}

// turnRuns is how many turnutils_uclient runs each server gets per
// session count.
func (c Config) turnRuns() int {
	if c.TURNRuns > 0 {
		return c.TURNRuns
	}
	return max(1, c.Runs/2)
}
