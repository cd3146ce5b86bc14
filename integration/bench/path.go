package bench

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"
)

// Simulated delays of the path comparison (one way): technician ↔ site
// 10 ms (20 ms RTT), technician and site each ↔ the server 30 ms (60 ms
// RTT).
const (
	siteOneWay   = 10 * time.Millisecond
	serverOneWay = 30 * time.Millisecond
)

// PathFigures compares Porthole's direct path with a WSS reflector that
// relays everything, under the same simulated delays: small-request
// latency, bulk throughput and CPU per byte of the endpoints and server
// (the delay relays run in child processes and are not counted).
func PathFigures(t testing.TB, r *Report, cfg Config) {
	dev := httptest.NewServer(bulkHandler())
	defer dev.Close()
	du, _ := url.Parse(dev.URL)
	proxy := httputil.NewSingleHostReverseProxy(du)

	tp, err := NewTunnelPair(proxy, PairOptions{Delay: siteOneWay, RelayProcess: true})
	if err != nil {
		t.Fatalf("porthole pair: %v", err)
	}
	defer tp.Close()
	porthole := &http.Client{Transport: tp.Client}

	rf := NewReflector()
	defer rf.Close()
	techRelay, err := startRelayProcess("tcp", rf.Addr(), serverOneWay)
	if err != nil {
		t.Fatal(err)
	}
	defer techRelay.Close()
	siteRelay, err := startRelayProcess("tcp", rf.Addr(), serverOneWay)
	if err != nil {
		t.Fatal(err)
	}
	defer siteRelay.Close()
	site := NewReflectorSite("wss://"+siteRelay.Addr+"/site", du.Host, 4)
	defer site.Close()
	reflector := reflectorClient("wss://" + techRelay.Addr + "/tech")
	defer reflector.CloseIdleConnections()

	n := min(cfg.Requests, 40)
	for _, c := range []struct {
		name string
		hc   *http.Client
	}{{"Porthole direct", porthole}, {"WSS reflector", reflector}} {
		if _, _, err := getAll(c.hc, "http://device/small"); err != nil { // warm: connection setup
			t.Fatalf("%s: %v", c.name, err)
		}
		var p50 []float64
		for range cfg.Runs {
			ds := make([]time.Duration, 0, n)
			for range n {
				t0 := time.Now()
				if _, _, err := getAll(c.hc, "http://device/small"); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				ds = append(ds, time.Since(t0))
			}
			p50 = append(p50, percentile(ds, 50)/1000)
		}
		r.Add("path, 2 KiB GET p50, "+c.name, "ms", p50)
		var tput, cpu []float64
		for range cfg.Runs {
			c0, t0 := selfCPU(), time.Now()
			_, got, err := getAll(c.hc, fmt.Sprintf("http://device/bulk?n=%d", cfg.DelayBytes))
			d, used := time.Since(t0), selfCPU()-c0
			if err != nil || got != cfg.DelayBytes {
				t.Fatalf("%s bulk: %d bytes, %v", c.name, got, err)
			}
			tput = append(tput, mbps(got, d))
			cpu = append(cpu, used.Seconds()/(float64(got)/(1<<30)))
			logf(t, "path %s: %.0f Mbps, %.1f CPU-s/GiB", c.name, mbps(got, d), used.Seconds()/(float64(got)/(1<<30)))
		}
		r.Add("path, bulk download, "+c.name, "Mbps", tput)
		r.Add("path, CPU per GiB, "+c.name, "CPU-s/GiB", cpu).Annotate("technician, agent/site, server and device in one process; delay relays excluded")
	}
	const refl = "WSS reflector"
	f := r.Against(r.Get("path, 2 KiB GET p50, Porthole direct"), "path, 2 KiB GET p50, "+refl)
	f.Annotate("delays: technician↔site 20 ms RTT, each↔server 60 ms RTT")
	r.Against(r.Get("path, bulk download, Porthole direct"), "path, bulk download, "+refl)
	r.Against(r.Get("path, CPU per GiB, Porthole direct"), "path, CPU per GiB, "+refl)
}
