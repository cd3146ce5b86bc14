package proto

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The customer's control of their site (issue 18): site admins
// (RoleSiteAdmin) set policies on their site and its devices, see the
// site's live sessions and jobs, approve or deny technicians' requests and
// end sessions. A policy is enforced by signaling (approval, time windows)
// and carried in the session's grant to the agent (proto/policy.go), which
// enforces the scope itself.

// Customer API paths.
const (
	PathSitePolicy   = "/v1/sites/{id}/policy"    // GET → SitePolicy (members of the site, admins); PUT SitePolicy (site admins, admins)
	PathDevicePolicy = "/v1/devices/{id}/policy"  // GET ?agent= → DevicePolicy (who sees the device); PUT ?agent= DevicePolicy (site admins, admins)
	PathRequests     = "/v1/requests"             // GET → RequestList (site admins: their sites'; others: their own); POST NewRequest → RequestView
	PathRequest      = "/v1/requests/{id}"        // GET → RequestView
	PathDecision     = "/v1/requests/{id}/decide" // POST Decision → RequestView (site admins of the request's site)
	PathSiteSessions = "/v1/sites/{id}/sessions"  // GET → JobList: the site's live sessions (site admins, admins)
)

// Limits of policies and requests.
const (
	MaxWindows          = 14
	MaxRequestMinutes   = 30               // the longest session a request may ask for
	RequestAnswerWithin = 10 * time.Minute // a request nobody answers expires after this
	ApprovalUseWithin   = 10 * time.Minute // an approval not used by a session open within this expires
)

// Weekdays as policies name them, Sunday first as time.Weekday counts.
var weekdayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// WeekdayName is the policy name of d ("mon").
func WeekdayName(d time.Weekday) string { return weekdayNames[d%7] }

// TimeWindow is a weekly window in the site's time zone: on each of Days,
// from From to To ("HH:MM", To after From; "24:00" is the end of the day).
type TimeWindow struct {
	Days []string `json:"days"` // "mon" … "sun"
	From string   `json:"from"`
	To   string   `json:"to"`
}

// SitePolicy is a site's policy. Without windows sessions are allowed at
// any time.
type SitePolicy struct {
	RequireApproval bool         `json:"requireApproval"`
	TimeZone        string       `json:"timeZone,omitempty"` // IANA name; "" is UTC
	Windows         []TimeWindow `json:"windows,omitempty"`
	UpdatedBy       string       `json:"updatedBy,omitempty"`
	Updated         time.Time    `json:"updated,omitzero"`
}

// DevicePolicy is one device's policy; its scope goes into every grant of
// the device's sessions.
type DevicePolicy struct {
	RequireApproval bool      `json:"requireApproval"`
	ReadOnly        bool      `json:"readOnly"`
	Allow           []string  `json:"allow,omitempty"`
	Deny            []string  `json:"deny,omitempty"`
	Ports           []int     `json:"ports,omitempty"`
	UpdatedBy       string    `json:"updatedBy,omitempty"`
	Updated         time.Time `json:"updated,omitzero"`
}

// Scope is the grant scope p asks for, nil when it narrows nothing.
func (p *DevicePolicy) Scope() *GrantScope {
	if p == nil || !p.ReadOnly && len(p.Allow) == 0 && len(p.Deny) == 0 && len(p.Ports) == 0 {
		return nil
	}
	return &GrantScope{ReadOnly: p.ReadOnly, Allow: slices.Clone(p.Allow), Deny: slices.Clone(p.Deny), Ports: slices.Clone(p.Ports)}
}

// Validate checks a device policy.
func (p *DevicePolicy) Validate() error {
	s := GrantScope{ReadOnly: p.ReadOnly, Allow: p.Allow, Deny: p.Deny, Ports: p.Ports}
	return s.Validate()
}

// parseClock parses "HH:MM" into minutes after midnight; "24:00" is 1440.
func parseClock(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	var h, m int
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil {
		return 0, false
	}
	if h == 24 && m == 0 {
		return 1440, true
	}
	if h < 0 || h > 23 || m < 0 || m > 59 {
		return 0, false
	}
	return h*60 + m, true
}

// Validate checks a site policy: a known time zone, well-formed windows.
func (p *SitePolicy) Validate() error {
	if _, err := p.Location(); err != nil {
		return err
	}
	if len(p.Windows) > MaxWindows {
		return Errorf(CodeTooLarge, "policy: over %d time windows", MaxWindows)
	}
	for i, w := range p.Windows {
		if len(w.Days) == 0 || len(w.Days) > 7 {
			return Errorf(CodeBadMessage, "policy: window %d: name 1 to 7 days", i+1)
		}
		for _, d := range w.Days {
			if !slices.Contains(weekdayNames[:], d) {
				return Errorf(CodeBadMessage, "policy: window %d: day %q is not one of mon, tue, wed, thu, fri, sat, sun", i+1, d)
			}
		}
		from, ok1 := parseClock(w.From)
		to, ok2 := parseClock(w.To)
		if !ok1 || !ok2 || from == 1440 {
			return Errorf(CodeBadMessage, "policy: window %d: times are HH:MM (00:00 to 24:00)", i+1)
		}
		if to <= from {
			return Errorf(CodeBadMessage, "policy: window %d: %s must come after %s", i+1, w.To, w.From)
		}
	}
	return nil
}

// Location is the policy's time zone.
func (p *SitePolicy) Location() (*time.Location, error) {
	if p.TimeZone == "" {
		return time.UTC, nil
	}
	if len(p.TimeZone) > 64 || strings.HasPrefix(p.TimeZone, "/") || strings.Contains(p.TimeZone, "..") {
		return nil, Errorf(CodeBadMessage, "policy: unknown time zone %q", p.TimeZone)
	}
	loc, err := time.LoadLocation(p.TimeZone)
	if err != nil {
		return nil, Errorf(CodeBadMessage, "policy: unknown time zone %q", p.TimeZone)
	}
	return loc, nil
}

// Open reports whether now falls in one of the windows (always, without
// windows), and until when the window it falls in lasts (zero without
// windows). The policy must be valid.
func (p *SitePolicy) Open(now time.Time) (bool, time.Time) {
	if len(p.Windows) == 0 {
		return true, time.Time{}
	}
	loc, err := p.Location()
	if err != nil {
		return false, time.Time{}
	}
	t := now.In(loc)
	midnight := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	day := WeekdayName(t.Weekday())
	var until time.Time
	for _, w := range p.Windows {
		if !slices.Contains(w.Days, day) {
			continue
		}
		from, _ := parseClock(w.From)
		to, _ := parseClock(w.To)
		start, end := clockTime(midnight, from), clockTime(midnight, to)
		if !t.Before(start) && t.Before(end) && end.After(until) {
			until = end
		}
	}
	return !until.IsZero(), until
}

// clockTime is minutes after midnight on midnight's date, in its zone.
func clockTime(midnight time.Time, minutes int) time.Time {
	return time.Date(midnight.Year(), midnight.Month(), midnight.Day(), minutes/60, minutes%60, 0, 0, midnight.Location())
}

// NextWindow returns the start of the next window after now (in the site's
// zone), and false without windows.
func (p *SitePolicy) NextWindow(now time.Time) (time.Time, bool) {
	loc, err := p.Location()
	if err != nil || len(p.Windows) == 0 {
		return time.Time{}, false
	}
	t := now.In(loc)
	var best time.Time
	for i := 0; i <= 7; i++ {
		d := time.Date(t.Year(), t.Month(), t.Day()+i, 0, 0, 0, 0, loc)
		day := WeekdayName(d.Weekday())
		for _, w := range p.Windows {
			if !slices.Contains(w.Days, day) {
				continue
			}
			from, _ := parseClock(w.From)
			start := clockTime(d, from)
			if start.After(t) && (best.IsZero() || start.Before(best)) {
				best = start
			}
		}
		if !best.IsZero() {
			return best, true
		}
	}
	return time.Time{}, false
}

// ClosedError is the error of a session or request outside the site's
// windows: it names the next window in the site's time zone.
func (p *SitePolicy) ClosedError(now time.Time) *Error {
	next, ok := p.NextWindow(now)
	if !ok {
		return Errorf(CodeOutsideWindow, "sessions to this site are not allowed now")
	}
	return Errorf(CodeOutsideWindow, "sessions to this site are allowed only in its time windows; the next one opens %s (%s)",
		next.Format("Mon 2 Jan 15:04"), p.zoneName())
}

func (p *SitePolicy) zoneName() string {
	if p.TimeZone == "" {
		return "UTC"
	}
	return p.TimeZone
}

// Approval request states.
const (
	RequestPending  = "pending"
	RequestApproved = "approved"
	RequestDenied   = "denied"
	RequestExpired  = "expired"  // nobody answered in time, or the approval was not used in time
	RequestUsed     = "used"     // a session opened with it
	RequestCanceled = "canceled" // the technician withdrew it
)

// NewRequest is the body of POST PathRequests: a technician asks the site's
// admins for a session on a device.
type NewRequest struct {
	Device  string `json:"device"`
	Agent   string `json:"agent,omitempty"`
	Reason  string `json:"reason"`
	Minutes int    `json:"minutes"` // the session's length, 1 to MaxRequestMinutes
}

// Validate checks a request's fields.
func (r *NewRequest) Validate() error {
	switch {
	case !ValidID(r.Device) || (r.Agent != "" && !ValidID(r.Agent)):
		return Errorf(CodeBadMessage, "request: malformed device or agent")
	case strings.TrimSpace(r.Reason) == "":
		return Errorf(CodeBadMessage, "request: a reason is required")
	case len(r.Reason) > MaxApprovalMsg:
		return Errorf(CodeTooLarge, "request: reason over %d bytes", MaxApprovalMsg)
	case r.Minutes < 1 || r.Minutes > MaxRequestMinutes:
		return Errorf(CodeBadMessage, "request: minutes must be 1 to %d", MaxRequestMinutes)
	}
	return nil
}

// Decision is the body of POST PathDecision.
type Decision struct {
	Approve bool   `json:"approve"`
	Comment string `json:"comment,omitempty"`
}

// RequestView is an approval request as its technician and the site's
// admins see it.
type RequestView struct {
	ID         string    `json:"id"`
	Site       string    `json:"site"`
	SiteName   string    `json:"siteName,omitempty"`
	Agent      string    `json:"agent"`
	Device     string    `json:"device"`
	DeviceName string    `json:"deviceName,omitempty"`
	User       string    `json:"user"`
	UserName   string    `json:"userName,omitempty"`
	Reason     string    `json:"reason"`
	Minutes    int       `json:"minutes"`
	State      string    `json:"state"`
	Created    time.Time `json:"created"`
	// Expires is when a pending request expires unanswered, or when an
	// approval expires unused.
	Expires     time.Time `json:"expires"`
	DecidedBy   string    `json:"decidedBy,omitempty"`
	DeciderName string    `json:"deciderName,omitempty"`
	Decided     time.Time `json:"decided,omitzero"`
	Comment     string    `json:"comment,omitempty"`
	Session     string    `json:"session,omitempty"` // the session it opened
	CanDecide   bool      `json:"canDecide,omitempty"`
}

// RequestList answers GET PathRequests, newest first.
type RequestList struct {
	Requests []RequestView `json:"requests"`
}
