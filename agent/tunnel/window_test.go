package tunnel

import (
	"math"
	"testing"
	"time"
)

func TestWindowForRTT(t *testing.T) {
	for _, tc := range []struct {
		name string
		srtt float64 // seconds
		want uint64
	}{
		{"no measurement yet", 0, MinHighWater},
		{"NaN", math.NaN(), MinHighWater},
		{"loopback", 0.0005, MinHighWater},
		{"LAN", 0.010, MinHighWater},
		{"50 ms path", 0.050, 3355443},
		{"satellite", 0.600, HighWater},
		{"infinite", math.Inf(1), HighWater},
	} {
		if got := windowFor(tc.srtt); got != tc.want {
			t.Errorf("%s: windowFor(%v) = %d, want %d", tc.name, tc.srtt, got, tc.want)
		}
	}
}

func TestRTTFloor(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	var f rttFloor
	for _, step := range []struct {
		name string
		at   time.Duration
		srtt float64
		want float64
	}{
		{"no measurement yet", 0, 0, 0},
		{"NaN passes through", 0, math.NaN(), math.NaN()},
		{"first sample", time.Second, 0.002, 0.002},
		{"queueing on a loaded receiver does not grow it", 2 * time.Second, 0.040, 0.002},
		{"nor does a lost sample", 3 * time.Second, 0, 0.002},
		{"still remembered in the next period", 11 * time.Second, 0.050, 0.002},
		{"a longer path takes over after two periods", 21 * time.Second, 0.050, 0.050},
		{"a shorter one at once", 22 * time.Second, 0.010, 0.010},
	} {
		got := f.observe(t0.Add(step.at), step.srtt)
		if got != step.want && !(math.IsNaN(got) && math.IsNaN(step.want)) {
			t.Errorf("%s: observe(%v) = %v, want %v", step.name, step.srtt, got, step.want)
		}
	}
}
