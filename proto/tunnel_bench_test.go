package proto

import (
	"net/http"
	"testing"
)

// BenchmarkHeadRoundTrip is one tunnelled request's head work at each end:
// a 2 KiB GET's request head and the device's response head, encoded and
// decoded (issue 21: the heads were a fifth of the technician's CPU).
func BenchmarkHeadRoundTrip(b *testing.B) {
	req := &RequestHead{Method: "GET", Target: "/status/2k?x=1", ContentLength: 0,
		Header: http.Header{"Accept": {"*/*"}, "User-Agent": {"Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"},
			"Accept-Language": {"en-GB,en;q=0.9"}, "Sec-Fetch-Mode": {"cors"}},
		ClientOrigin: "https://s-0123456789abcdef.porthole.example"}
	resp := &ResponseHead{Status: 200, Header: http.Header{"Content-Type": {"application/octet-stream"},
		"Content-Length": {"2048"}, "Date": {"Mon, 07 Dec 2026 23:00:00 GMT"}, "Etag": {`"abc123"`},
		"Content-Disposition": {`attachment; filename="blob.bin"`}, "Cache-Control": {"no-store"}}}
	b.ReportAllocs()
	for b.Loop() {
		rb, err := EncodeHead(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeRequestHead(rb); err != nil {
			b.Fatal(err)
		}
		sb, err := EncodeHead(resp)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeResponseHead(sb); err != nil {
			b.Fatal(err)
		}
	}
}
