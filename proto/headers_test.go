package proto

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestHeaderRulesGolden freezes the header lists for the browser side:
// web/test/header-rules.test.js checks web/session/headers.js against this
// file, so a list changed on one side only fails a test.
func TestHeaderRulesGolden(t *testing.T) {
	got, err := json.MarshalIndent(map[string][]string{
		"hopByHop":              HopByHopHeaders(),
		"droppedDeviceResponse": DroppedDeviceResponseHeaders(),
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "header-rules.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if string(got) != string(want) {
		t.Fatalf("header rules changed; rerun with -update and check web/session/headers.js:\n got %s\nwant %s", got, want)
	}
}

func TestStripHopByHop(t *testing.T) {
	tests := []struct {
		name  string
		in    http.Header
		extra []string
		want  []string // fields left
	}{
		{"hop-by-hop fields go", http.Header{"Keep-Alive": {"5"}, "Te": {"trailers"}, "Accept": {"*/*"}}, nil, []string{"Accept"}},
		{"fields Connection names go", http.Header{"Connection": {"close, X-Secret"}, "X-Secret": {"1"}, "X-Kept": {"1"}}, nil, []string{"X-Kept"}},
		{"extra fields go", http.Header{"Host": {"evil"}, "Content-Length": {"3"}, "Accept": {"a"}}, []string{"Host", "Content-Length"}, []string{"Accept"}},
		{"empty names in Connection are ignored", http.Header{"Connection": {" , ,"}, "Accept": {"a"}}, nil, []string{"Accept"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			StripHopByHop(tt.in, tt.extra...)
			if len(tt.in) != len(tt.want) {
				t.Fatalf("left %v, want only %v", tt.in, tt.want)
			}
			for _, k := range tt.want {
				if _, ok := tt.in[k]; !ok {
					t.Fatalf("%s was removed: %v", k, tt.in)
				}
			}
		})
	}
}

// Every code has its own status (only internal is 500), and a client that
// reads only the status lands on a code with that same status.
func TestHTTPStatusRoundTrip(t *testing.T) {
	for c := range knownCodes {
		st := HTTPStatus(c)
		if st == http.StatusInternalServerError && c != CodeInternal {
			t.Errorf("code %s has no status of its own", c)
		}
		back := CodeForHTTPStatus(st)
		if st == http.StatusServiceUnavailable && back == CodeUnavailable {
			continue // the documented exception: a bare 503 means "retry later"
		}
		if HTTPStatus(back) != st {
			t.Errorf("code %s → %d → %s → %d", c, st, back, HTTPStatus(back))
		}
	}
	if got := HTTPStatus("no_such_code"); got != http.StatusInternalServerError {
		t.Errorf("unknown code → %d, want 500", got)
	}
}
