package main

import "testing"

func TestParsePortRange(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi uint16
		ok     bool
	}{
		{"49152-65535", 49152, 65535, true},
		{"3478-3478", 3478, 3478, true},
		{"65535-49152", 0, 0, false},
		{"0-100", 0, 0, false},
		{"100-70000", 0, 0, false},
		{"49152", 0, 0, false},
		{"a-b", 0, 0, false},
	} {
		lo, hi, err := parsePortRange(tc.in)
		if (err == nil) != tc.ok || lo != tc.lo || hi != tc.hi {
			t.Errorf("parsePortRange(%q) = %d, %d, %v", tc.in, lo, hi, err)
		}
	}
}
