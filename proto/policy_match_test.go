package proto

import (
	"reflect"
	"strings"
	"testing"
)

// TestNormalizePathAttacks: every spelling of /firmware a device might
// resolve to its firmware page normalises to /firmware.
func TestNormalizePathAttacks(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/firmware", "/firmware"},
		{"/%66irmware", "/firmware"},
		{"/%2566irmware", "/firmware"}, // double-encoded
		{"//firmware", "/firmware"},
		{"/./firmware", "/firmware"},
		{"/a/../firmware", "/firmware"},
		{"/a/..;/firmware", "/firmware"}, // Tomcat's path parameters
		{"/firmware;jsessionid=1", "/firmware"},
		{"/FIRMWARE", "/firmware"},
		{"/FirmWare/Upload.cgi", "/firmware/upload.cgi"},
		{"/a%2f..%2ffirmware", "/firmware"},
		{"/a%2F..%2Ffirmware", "/firmware"},
		{`/a\..\firmware`, "/firmware"},
		{"/../../firmware", "/firmware"},
		{"/firmware?x=1", "/firmware"},
		{"/status/", "/status"},
		{"/", "/"},
		{"", "/"},
	} {
		got, ok := NormalizePath(tc.in)
		if !ok || got != tc.want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
	for _, bad := range []string{"/a%c0%af..%c0%affirmware", "/%ff", "/firm%zzware", "/%u0066irmware", "/firmware%", "/firm%00ware", "/a%0d%0a", "/%252" + strings.Repeat("5", 1) + "%"} {
		if got, ok := NormalizePath(bad); ok {
			t.Errorf("NormalizePath(%q) = %q, want refused", bad, got)
		}
	}
}

func TestScopeCheckRequest(t *testing.T) {
	deny := &GrantScope{Deny: []string{"/firmware", "/cgi-bin/reset"}}
	allow := &GrantScope{Allow: []string{"/status", "/css/"}}
	ro := &GrantScope{ReadOnly: true}
	for _, tc := range []struct {
		name           string
		s              *GrantScope
		method, target string
		refused        bool
	}{
		{"nil", nil, "POST", "/firmware", false},
		{"deny plain", deny, "POST", "/firmware", true},
		{"deny encoded", deny, "POST", "/%66irmware", true},
		{"deny double slash", deny, "POST", "//firmware", true},
		{"deny dot", deny, "POST", "/./firmware", true},
		{"deny dotdot", deny, "POST", "/a/../firmware", true},
		{"deny case", deny, "POST", "/FIRMWARE", true},
		{"deny param", deny, "POST", "/firmware;x=1", true},
		{"deny %2f", deny, "POST", "/x%2f..%2ffirmware", true},
		{"deny text prefix", deny, "POST", "/firmware.cgi", true},
		{"deny under", deny, "GET", "/firmware/upload", true},
		{"deny second", deny, "GET", "/cgi-bin/reset?now=1", true},
		{"deny other", deny, "POST", "/settings", false},
		{"deny malformed", deny, "GET", "/%zz", true},
		{"allow itself", allow, "GET", "/status", false},
		{"allow under", allow, "GET", "/status/toner?x=1", false},
		{"allow trailing slash rule", allow, "GET", "/css/site.css", false},
		{"allow not a sibling", allow, "GET", "/status-reset.cgi", true},
		{"allow escape out", allow, "GET", "/status/..%2fsettings", true},
		{"allow other", allow, "GET", "/settings", true},
		{"ro get", ro, "GET", "/settings", false},
		{"ro head", ro, "HEAD", "/", false},
		{"ro post", ro, "POST", "/settings", true},
		{"ro put", ro, "PUT", "/x", true},
		{"ro options", ro, "OPTIONS", "/", true},
		{"ro lower-case get", ro, "get", "/", true},
	} {
		why := tc.s.CheckRequest(tc.method, tc.target)
		if (why != "") != tc.refused {
			t.Errorf("%s: CheckRequest(%s %s) = %q, refused want %v", tc.name, tc.method, tc.target, why, tc.refused)
		}
	}
	if why := ro.CheckRequest("POST", "/settings"); !strings.HasPrefix(why, ReadOnlyRefusal) {
		t.Errorf("read-only refusal says %q", why)
	}
}

func TestScopeCheckPort(t *testing.T) {
	s := &GrantScope{Ports: []int{22}}
	if s.CheckPort(22) != "" || s.CheckPort(5900) == "" {
		t.Error("ports list not applied")
	}
	if (&GrantScope{ReadOnly: true}).CheckPort(22) == "" {
		t.Error("read-only allows a terminal")
	}
	if (*GrantScope)(nil).CheckPort(22) != "" || (&GrantScope{}).CheckPort(1) != "" {
		t.Error("empty scope refuses a port")
	}
}

// TestScopeWithin: a grant may only be narrower than the site's floor.
func TestScopeWithin(t *testing.T) {
	floor := &GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Allow: []string{"/status", "/settings"}, Ports: []int{80, 22}}
	for _, tc := range []struct {
		name  string
		g     *GrantScope
		wider bool
	}{
		{"same", &GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Allow: []string{"/status", "/settings"}, Ports: []int{80, 22}}, false},
		{"narrower", &GrantScope{ReadOnly: true, Deny: []string{"/firm", "/x"}, Allow: []string{"/status/toner"}, Ports: []int{80}}, false},
		{"deny spelled otherwise", &GrantScope{ReadOnly: true, Deny: []string{"/FIRMWARE/"}, Allow: []string{"/status"}, Ports: []int{80}}, false},
		{"nil", nil, true},
		{"not read-only", &GrantScope{Deny: []string{"/firmware"}, Allow: []string{"/status"}, Ports: []int{80}}, true},
		{"missing deny", &GrantScope{ReadOnly: true, Allow: []string{"/status"}, Ports: []int{80}}, true},
		{"narrower deny is not enough", &GrantScope{ReadOnly: true, Deny: []string{"/firmware/upload"}, Allow: []string{"/status"}, Ports: []int{80}}, true},
		{"allow everything", &GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Ports: []int{80}}, true},
		{"allow wider", &GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Allow: []string{"/"}, Ports: []int{80}}, true},
		{"allow sibling", &GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Allow: []string{"/statusx"}, Ports: []int{80}}, true},
		{"every port", &GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Allow: []string{"/status"}}, true},
		{"other port", &GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Allow: []string{"/status"}, Ports: []int{80, 5900}}, true},
	} {
		why := tc.g.Within(floor)
		if (why != "") != tc.wider {
			t.Errorf("%s: Within = %q, wider want %v", tc.name, why, tc.wider)
		}
	}
	if (&GrantScope{}).Within(nil) != "" || (*GrantScope)(nil).Within(&GrantScope{}) != "" {
		t.Error("an empty floor refuses")
	}
}

// Narrow gives a scope the agent's Within check accepts against the floor,
// and no wider than the stored scope either.
func TestScopeNarrow(t *testing.T) {
	cases := []struct {
		name          string
		stored, floor *GrantScope
		want          *GrantScope
		err           string
	}{
		{"neither narrows", nil, nil, nil, ""},
		{"an empty floor narrows nothing", nil, &GrantScope{}, nil, ""},
		{"the floor alone", nil, &GrantScope{ReadOnly: true, Deny: []string{"/firmware"}}, &GrantScope{ReadOnly: true, Deny: []string{"/firmware"}}, ""},
		{"the stored alone", &GrantScope{Ports: []int{22}}, nil, &GrantScope{Ports: []int{22}}, ""},
		{"read-only if either", &GrantScope{}, &GrantScope{ReadOnly: true}, &GrantScope{ReadOnly: true}, ""},
		{"deny rules of both", &GrantScope{Deny: []string{"/a"}}, &GrantScope{Deny: []string{"/b", "/a"}}, &GrantScope{Deny: []string{"/a", "/b"}}, ""},
		{"allow: the nested prefix", &GrantScope{Allow: []string{"/status/printer"}}, &GrantScope{Allow: []string{"/status"}}, &GrantScope{Allow: []string{"/status/printer"}}, ""},
		{"allow: the floor's inside the stored", &GrantScope{Allow: []string{"/"}}, &GrantScope{Allow: []string{"/status"}}, &GrantScope{Allow: []string{"/status"}}, ""},
		{"allow: nothing in common", &GrantScope{Allow: []string{"/a"}}, &GrantScope{Allow: []string{"/b"}}, nil, "no path in common"},
		{"ports: the common ones", &GrantScope{Ports: []int{22, 80, 443}}, &GrantScope{Ports: []int{443, 22}}, &GrantScope{Ports: []int{22, 443}}, ""},
		{"ports: nothing in common", &GrantScope{Ports: []int{22}}, &GrantScope{Ports: []int{80}}, nil, "no port in common"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.stored.Narrow(c.floor)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			if why := got.Within(c.floor); why != "" {
				t.Fatalf("the agent would refuse it against its floor: %s", why)
			}
			if why := got.Within(c.stored); why != "" {
				t.Fatalf("wider than the stored scope: %s", why)
			}
		})
	}
}
