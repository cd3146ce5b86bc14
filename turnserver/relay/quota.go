package relay

import (
	"sync"
	"time"
)

// reservationTTL bounds how long a quota slot granted to an Allocate request
// waits for the allocation to appear. pion calls the QuotaHandler and then
// creates the allocation synchronously, but reports a failed creation to no
// hook we can tie to a username, so an unclaimed slot simply lapses.
const reservationTTL = 5 * time.Second

// quota counts allocations per credential (TURN username). A slot is reserved
// when pion asks the QuotaHandler, so concurrent Allocate requests on several
// listeners cannot overshoot the cap between the check and the creation.
type quota struct {
	max int

	mu      sync.Mutex
	active  map[string]int
	pending map[string][]time.Time // reservation deadlines, oldest first
}

func newQuota(max int) *quota {
	return &quota{max: max, active: map[string]int{}, pending: map[string][]time.Time{}}
}

// reserve takes a slot for username, or reports false past the cap.
func (q *quota) reserve(username string, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.pending[username]
	for len(p) > 0 && !p[0].After(now) {
		p = p[1:]
	}
	if q.active[username]+len(p) >= q.max {
		q.setPendingLocked(username, p)
		return false
	}
	q.setPendingLocked(username, append(p, now.Add(reservationTTL)))
	return true
}

// created turns a reservation into an active allocation.
func (q *quota) created(username string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if p := q.pending[username]; len(p) > 0 {
		q.setPendingLocked(username, p[1:])
	}
	q.active[username]++
}

func (q *quota) deleted(username string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.active[username] <= 1 {
		delete(q.active, username)
		return
	}
	q.active[username]--
}

func (q *quota) setPendingLocked(username string, p []time.Time) {
	if len(p) == 0 {
		delete(q.pending, username)
		return
	}
	q.pending[username] = p
}
