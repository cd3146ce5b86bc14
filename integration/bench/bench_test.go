package bench

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// The Benchmark functions expose single scenarios to go test -bench, for
// profiling: go test ./integration/bench -run '^$' -bench TunnelDownload -cpuprofile cpu.out

func benchDownload(b *testing.B, opts PairOptions, size int64) {
	tp, err := NewTunnelPair(bulkHandler(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer tp.Close()
	hc := &http.Client{Transport: tp.Client}
	url := fmt.Sprintf("http://device/bulk?n=%d", size)
	b.SetBytes(size)
	b.ResetTimer()
	t0 := time.Now()
	for b.Loop() {
		if _, n, err := getAll(hc, url); err != nil || n != size {
			b.Fatalf("%d bytes, %v", n, err)
		}
	}
	b.ReportMetric(mbps(size*int64(b.N), time.Since(t0)), "Mbps")
}

func BenchmarkTunnelDownload(b *testing.B) { benchDownload(b, PairOptions{}, 32<<20) }

func BenchmarkTunnelDownloadRTT50(b *testing.B) {
	benchDownload(b, PairOptions{Delay: 25 * time.Millisecond}, 48<<20)
}

func benchBare(b *testing.B, opts PairOptions, size int64) {
	dp, err := NewDCPair(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer dp.Close()
	b.SetBytes(size)
	var sum float64
	for b.Loop() {
		v, err := dcThroughput(dp.AgentDC, dp.ClientDC, size)
		if err != nil {
			b.Fatal(err)
		}
		sum += v
	}
	b.ReportMetric(sum/float64(b.N), "Mbps")
}

func BenchmarkBareDC(b *testing.B) { benchBare(b, PairOptions{}, 32<<20) }
func BenchmarkBareDCRTT50(b *testing.B) {
	benchBare(b, PairOptions{Delay: 25 * time.Millisecond}, 48<<20)
}

func BenchmarkTunnelSmallGET(b *testing.B) {
	tp, err := NewTunnelPair(bulkHandler(), PairOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer tp.Close()
	hc := &http.Client{Transport: tp.Client}
	var ds []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, _, err := getAll(hc, "http://device/small"); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	b.ReportMetric(percentile(ds, 50), "p50-µs")
	b.ReportMetric(percentile(ds, 99), "p99-µs")
}

func BenchmarkSetupRTT50(b *testing.B) {
	var sum time.Duration
	for b.Loop() {
		t0 := time.Now()
		tp, err := NewTunnelPair(bulkHandler(), PairOptions{Delay: 25 * time.Millisecond, SignalDelay: 25 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		hc := &http.Client{Transport: tp.Client}
		_, _, err = getAll(hc, "http://device/small")
		sum += time.Since(t0)
		tp.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sum)/float64(b.N)/float64(50*time.Millisecond), "RTT")
}
