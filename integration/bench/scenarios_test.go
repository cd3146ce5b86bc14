package bench

import (
	"slices"
	"testing"
)

// TestOverrideTURN: -turn-sessions and -turn-runs replace the suite's turn
// cases, empty and 0 keep them, and bad values are refused.
func TestOverrideTURN(t *testing.T) {
	for _, tc := range []struct {
		sessions     string
		runs         int
		wantSessions []int
		wantRuns     int
		wantErr      bool
	}{
		{"", 0, Full.TURNSessions, max(1, Full.Runs/2), false},
		{"200", 4, []int{200}, 4, false},
		{" 10, 200 ", 0, []int{10, 200}, max(1, Full.Runs/2), false},
		{"200,x", 0, nil, 0, true},
		{"0", 0, nil, 0, true},
		{"", -1, nil, 0, true},
	} {
		cfg := Full
		err := cfg.overrideTURN(tc.sessions, tc.runs)
		if tc.wantErr {
			if err == nil {
				t.Errorf("(%q, %d): no error", tc.sessions, tc.runs)
			}
			continue
		}
		if err != nil {
			t.Errorf("(%q, %d): %v", tc.sessions, tc.runs, err)
			continue
		}
		if !slices.Equal(cfg.TURNSessions, tc.wantSessions) || cfg.turnRuns() != tc.wantRuns {
			t.Errorf("(%q, %d): sessions %v, runs %d; want %v, %d", tc.sessions, tc.runs, cfg.TURNSessions, cfg.turnRuns(), tc.wantSessions, tc.wantRuns)
		}
	}
	if len(Full.TURNSessions) != 4 {
		t.Errorf("override changed the Full suite itself: %v", Full.TURNSessions)
	}
}
