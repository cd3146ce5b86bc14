package tunnel

import (
	"math"
	"testing"
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
