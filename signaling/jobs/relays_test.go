package jobs

import (
	"fmt"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// TestMovedToListsEachRelay: the job lists each relay a session went
// through with its times; a repeated report of the same relay (ICE
// reconnected on it) adds nothing, a direct path or the end closes it, and
// the list is bounded.
func TestMovedToListsEachRelay(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	show := func(rs []proto.JobRelay) string {
		out := ""
		for _, r := range rs {
			until := "-"
			if !r.Until.IsZero() {
				until = fmt.Sprint(r.Until.Sub(t0).Seconds())
			}
			out += fmt.Sprintf("%s[%v,%s] ", r.Relay, r.From.Sub(t0).Seconds(), until)
		}
		return out
	}
	type step struct {
		relay string
		at    int
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  string
	}{
		{"one relay to the end", []step{{"A", 1}, {"", 9}}, "A[1,9] "},
		{"the same relay again", []step{{"A", 1}, {"A", 5}}, "A[1,-] "},
		{"relay lost, moved to another", []step{{"A", 1}, {"B", 5}, {"", 9}}, "A[1,5] B[5,9] "},
		{"back to the first", []step{{"A", 1}, {"B", 5}, {"A", 7}}, "A[1,5] B[5,7] A[7,-] "},
		{"a direct path closes the relay", []step{{"A", 1}, {"", 3}, {"", 9}}, "A[1,3] "},
		{"direct all along", []step{{"", 1}, {"", 9}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rs []proto.JobRelay
			for _, s := range tc.steps {
				rs = movedTo(rs, s.relay, at(s.at))
			}
			if got := show(rs); got != tc.want {
				t.Errorf("relays %q, want %q", got, tc.want)
			}
		})
	}
	var rs []proto.JobRelay
	for i := range 3 * maxRelays {
		rs = movedTo(rs, fmt.Sprint(i%2), at(i))
	}
	if len(rs) != maxRelays {
		t.Errorf("%d relays kept, want at most %d", len(rs), maxRelays)
	}
}
