package deviceproxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSniffTypeLikeABrowser(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		body   string
		want   string
	}{
		{"html without type", nil, "<!DOCTYPE html><html><body>hi", "text/html"},
		{"html after whitespace", nil, "\n\n  <html><head><meta charset=iso-8859-1>", "text/html"},
		{"plain text", nil, "counter=12\nstatus=ok\n", "text/plain"},
		{"png", nil, "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"},
		{"gif", nil, "GIF89a\x01\x00", "image/gif"},
		{"binary", nil, "\x00\x01\x02\x03firmware", "application/octet-stream"},
		{"utf-8 bom keeps its charset", nil, "\xef\xbb\xbfhello", "text/plain; charset=utf-8"},
		{"empty body", nil, "", "text/plain"},
		{"empty type value", http.Header{"Content-Type": {" "}}, "<html>", "text/html"},
		{"declared type untouched", http.Header{"Content-Type": {"application/json"}}, "<html>", "application/json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.header
			if h == nil {
				h = http.Header{}
			}
			resp := &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader(tc.body)),
				Request: &http.Request{Method: http.MethodGet}}
			sniffType(resp)
			if got := resp.Header.Get("Content-Type"); got != tc.want {
				t.Errorf("Content-Type = %q, want %q", got, tc.want)
			}
			b, _ := io.ReadAll(resp.Body)
			if string(b) != tc.body {
				t.Errorf("body changed: %q", b)
			}
		})
	}
}

func TestSniffTypeSkipsBodilessResponses(t *testing.T) {
	for _, tc := range []struct {
		method string
		status int
	}{{http.MethodHead, 200}, {http.MethodGet, 204}, {http.MethodGet, 304}} {
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{}, Body: http.NoBody,
			Request: &http.Request{Method: tc.method}}
		sniffType(resp)
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			t.Errorf("%s %d: typed %q", tc.method, tc.status, ct)
		}
	}
}

// A response without a type whose body does not come (a long poll, a
// stream that waits) gets its head after sniffWait, typed by what came;
// the bytes that come later are passed on in order as they arrive.
func TestSniffTypeDoesNotHoldASilentStream(t *testing.T) {
	for _, tc := range []struct {
		name, first, want string
	}{{"nothing yet", "", "text/plain"}, {"a few bytes of HTML", "<html><body>", "text/html"}} {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			defer pw.Close()
			if tc.first != "" {
				go func() { _, _ = pw.Write([]byte(tc.first)) }()
			}
			resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: pr, Request: &http.Request{Method: http.MethodGet}}
			start := time.Now()
			sniffType(resp)
			if d := time.Since(start); d > 3*sniffWait {
				t.Fatalf("the head waited %s", d)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.want {
				t.Errorf("Content-Type = %q, want %q", got, tc.want)
			}
			go func() {
				_, _ = pw.Write([]byte("later"))
				_ = pw.Close()
			}()
			b, err := io.ReadAll(resp.Body)
			if err != nil || string(b) != tc.first+"later" {
				t.Errorf("body %q, %v", b, err)
			}
		})
	}
}
