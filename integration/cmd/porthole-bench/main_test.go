package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeReport writes a report of figures to a temporary file.
func writeReport(t *testing.T, figs ...*figure) string {
	t.Helper()
	b, err := json.Marshal(report{Suite: "quick", Figures: figs})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "results.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fig is a figure of median m with a ±spread range; base, when not zero,
// is its baseline's median in the same run.
func fig(name, unit string, m, spread, base float64) *figure {
	f := &figure{Name: name, Unit: unit, Median: m, Min: m - spread, Max: m + spread, Runs: 5}
	if base != 0 {
		f.Baseline, f.BaselineMedian, f.Ratio = "base", base, m/base
	}
	return f
}

func TestCompareFlagsRegressionsBeyondNoise(t *testing.T) {
	old := writeReport(t,
		fig("setup", "ms", 100, 5, 0),
		fig("rate", "Mbps", 400, 20, 0),
		fig("noisy", "ms", 100, 40, 0),
		fig("drift", "ms", 100, 5, 50), // ratio 2
		fig("steady", "µs", 30, 1, 0),
		fig("faster", "ms", 100, 5, 0),
	)
	cur := writeReport(t,
		fig("setup", "ms", 130, 5, 0),    // 30 % slower, ranges apart: a regression
		fig("rate", "Mbps", 300, 20, 0),  // a rate 25 % down: a regression
		fig("noisy", "ms", 125, 40, 0),   // 25 % slower but the ranges overlap: noise
		fig("drift", "ms", 200, 10, 100), // twice the time, but so is the baseline: ratio unchanged
		fig("steady", "µs", 31, 1, 0),    // within tolerance
		fig("faster", "ms", 70, 5, 0),
		fig("added", "ms", 10, 1, 0),
	)
	var out bytes.Buffer
	err := run(&out, true, "", 0.10, []string{old, cur})
	if !errors.Is(err, errRegressed) {
		t.Fatalf("run = %v, want errRegressed\n%s", err, out.String())
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if name, _, ok := strings.Cut(l, " "); ok {
			lines[name] = l
		}
	}
	for name, want := range map[string]string{
		"setup": "REGRESSED", "rate": "REGRESSED", "noisy": "worse, within noise", "drift": "~",
		"steady": "~", "faster": "improved", "added": "new",
	} {
		if !strings.Contains(lines[name], want) {
			t.Errorf("%s: %q, want %q in it", name, lines[name], want)
		}
	}
	if !strings.Contains(out.String(), "2 of 7 figures regressed") {
		t.Errorf("no summary of two regressions:\n%s", out.String())
	}

	// The same run against itself: nothing regressed, exit status 0.
	out.Reset()
	if err := run(&out, true, "", 0.10, []string{old, old}); err != nil {
		t.Fatalf("comparing a run with itself: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "no figure regressed") {
		t.Errorf("no all-clear line:\n%s", out.String())
	}
}

func TestHigherIsBetter(t *testing.T) {
	for unit, want := range map[string]bool{"Mbps": true, "MB/s": true, "req/s": true, "pkt/s": true,
		"ms": false, "µs": false, "s": false, "B": false, "KiB": false, "%": false, "CPU-s/GiB": false, "RTT": false, "datagrams": false, "requests": false} {
		if got := higherIsBetter(unit); got != want {
			t.Errorf("higherIsBetter(%q) = %v, want %v", unit, got, want)
		}
	}
}
