package proto

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestGoldenCustomer freezes the customer API's JSON (the app reads it).
func TestGoldenCustomer(t *testing.T) {
	at := time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC)
	cases := []struct {
		name  string
		value any
		fresh any
	}{
		{"site-policy", &SitePolicy{RequireApproval: true, TimeZone: "Europe/Berlin",
			Windows: []TimeWindow{{Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "08:00", To: "18:00"}}, UpdatedBy: "u1", Updated: at}, &SitePolicy{}},
		{"device-policy", &DevicePolicy{RequireApproval: true, ReadOnly: true, Allow: []string{"/"}, Deny: []string{"/firmware"}, Ports: []int{443}}, &DevicePolicy{}},
		{"new-request", &NewRequest{Device: "printer-1", Agent: "agent-1", Reason: "toner alarm", Minutes: 20}, &NewRequest{}},
		{"decision", &Decision{Approve: true, Comment: "go ahead"}, &Decision{}},
		{"request-view", &RequestView{ID: "r1", Site: "acme", SiteName: "ACME", Agent: "agent-1", Device: "printer-1", DeviceName: "Printer",
			User: "u2", UserName: "tech", Reason: "toner alarm", Minutes: 20, State: RequestApproved, Created: at, Expires: at.Add(10 * time.Minute),
			DecidedBy: "u3", DeciderName: "ann", Decided: at.Add(time.Minute), Comment: "go ahead"}, &RequestView{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.value)
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, '\n')
			path := filepath.Join("testdata", "golden", "customer", tc.name+".json")
			if *update {
				_ = os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("shape changed:\n got %s\nwant %s", b, want)
			}
			if err := json.Unmarshal(want, tc.fresh); err != nil || !reflect.DeepEqual(tc.fresh, tc.value) {
				t.Fatalf("golden does not round-trip: %v", err)
			}
		})
	}
}

func TestSitePolicyWindows(t *testing.T) {
	p := &SitePolicy{TimeZone: "Europe/Berlin", Windows: []TimeWindow{{Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "08:00", To: "18:00"}}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	tests := []struct {
		name  string
		now   time.Time
		open  bool
		next  string // the next window's start in the site's zone, when closed
		until string
	}{
		{"weekday morning", time.Date(2026, 12, 7, 9, 0, 0, 0, berlin), true, "", "Mon 18:00"},
		{"weekday at the start", time.Date(2026, 12, 7, 8, 0, 0, 0, berlin), true, "", "Mon 18:00"},
		{"weekday at the end", time.Date(2026, 12, 7, 18, 0, 0, 0, berlin), false, "Tue 8 Dec 08:00", ""},
		{"before dawn", time.Date(2026, 12, 8, 5, 0, 0, 0, berlin), false, "Tue 8 Dec 08:00", ""},
		{"friday night", time.Date(2026, 12, 11, 22, 0, 0, 0, berlin), false, "Mon 14 Dec 08:00", ""},
		{"saturday, given in UTC", time.Date(2026, 12, 12, 12, 0, 0, 0, time.UTC), false, "Mon 14 Dec 08:00", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			open, until := p.Open(tc.now)
			if open != tc.open {
				t.Fatalf("open = %v, want %v", open, tc.open)
			}
			if open {
				if got := until.In(berlin).Format("Mon 15:04"); got != tc.until {
					t.Fatalf("until %s, want %s", got, tc.until)
				}
				return
			}
			next, ok := p.NextWindow(tc.now)
			if !ok || next.Format("Mon 2 Jan 15:04") != tc.next {
				t.Fatalf("next window %v %v, want %s", next, ok, tc.next)
			}
			if msg := p.ClosedError(tc.now).Message; !strings.Contains(msg, tc.next) || !strings.Contains(msg, "Europe/Berlin") {
				t.Fatalf("error %q does not name the next window", msg)
			}
		})
	}
	if open, _ := (&SitePolicy{}).Open(time.Now()); !open {
		t.Fatal("a policy without windows is closed")
	}
}

func TestPolicyValidation(t *testing.T) {
	tests := []struct {
		name string
		p    SitePolicy
		ok   bool
	}{
		{"empty", SitePolicy{}, true},
		{"all day", SitePolicy{Windows: []TimeWindow{{Days: []string{"sun"}, From: "00:00", To: "24:00"}}}, true},
		{"unknown zone", SitePolicy{TimeZone: "Mars/Olympus"}, false},
		{"path as zone", SitePolicy{TimeZone: "../../etc/passwd"}, false},
		{"bad day", SitePolicy{Windows: []TimeWindow{{Days: []string{"monday"}, From: "08:00", To: "09:00"}}}, false},
		{"no days", SitePolicy{Windows: []TimeWindow{{From: "08:00", To: "09:00"}}}, false},
		{"backwards", SitePolicy{Windows: []TimeWindow{{Days: []string{"mon"}, From: "18:00", To: "08:00"}}}, false},
		{"bad clock", SitePolicy{Windows: []TimeWindow{{Days: []string{"mon"}, From: "8:00", To: "09:00"}}}, false},
		{"25 o'clock", SitePolicy{Windows: []TimeWindow{{Days: []string{"mon"}, From: "08:00", To: "25:00"}}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.p.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
	reqs := []struct {
		name string
		r    NewRequest
		ok   bool
	}{
		{"good", NewRequest{Device: "d1", Reason: "why", Minutes: 30}, true},
		{"no reason", NewRequest{Device: "d1", Reason: "  ", Minutes: 5}, false},
		{"too long", NewRequest{Device: "d1", Reason: "why", Minutes: 31}, false},
		{"no minutes", NewRequest{Device: "d1", Reason: "why"}, false},
		{"long reason", NewRequest{Device: "d1", Reason: strings.Repeat("x", MaxApprovalMsg+1), Minutes: 5}, false},
	}
	for _, tc := range reqs {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.r.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
	if err := (&DevicePolicy{Deny: []string{"firmware"}}).Validate(); err == nil {
		t.Fatal("a relative path rule was accepted")
	}
}
