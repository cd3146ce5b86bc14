package deviceproxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"
)

// sniffLen is how much of a body the WHATWG MIME sniffing algorithm reads
// (http.DetectContentType implements it).
const sniffLen = 512

// sniffType gives a response without a Content-Type the type a browser
// would sniff for it. Embedded CGI programs often send none; a browser
// sniffs such a response, but the session sets nosniff on every response
// (a device page must not get script or style out of an upload), and a
// service worker's Response without a type is a download the page cannot
// show. So the agent sniffs, as the browser would have, and nosniff stays.
//
// The charset DetectContentType adds for text ("; charset=utf-8") is
// dropped: a header charset overrides the page's own <meta charset>, and
// old EWS pages are often Latin-1. A byte-order mark's charset is kept.
func sniffType(resp *http.Response) {
	if len(resp.Header.Values("Content-Type")) > 0 && strings.TrimSpace(resp.Header.Get("Content-Type")) != "" {
		return
	}
	if resp.Body == nil || resp.Body == http.NoBody || resp.Request.Method == http.MethodHead ||
		resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified ||
		resp.StatusCode < 200 {
		return
	}
	br := bufio.NewReaderSize(resp.Body, sniffLen)
	// Peek blocks until sniffLen bytes or the end, like a browser's
	// sniffer (which also waits for the first 512 bytes).
	head, _ := br.Peek(sniffLen)
	ct := http.DetectContentType(head)
	if len(head) == 0 {
		// Nothing to sniff; an empty body needs no type to be shown as
		// empty text rather than a download.
		ct = "text/plain"
	}
	if base, params, ok := strings.Cut(ct, ";"); ok && strings.TrimSpace(params) == "charset=utf-8" &&
		!hasUTF8BOM(head) {
		ct = base
	}
	resp.Header.Set("Content-Type", ct)
	resp.Body = readCloser{Reader: br, Closer: resp.Body}
}

func hasUTF8BOM(b []byte) bool {
	return len(b) >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf
}

type readCloser struct {
	io.Reader
	io.Closer
}
