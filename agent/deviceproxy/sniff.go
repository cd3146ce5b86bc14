package deviceproxy

import (
	"io"
	"net/http"
	"strings"
	"time"
)

// sniffLen is how much of a body the WHATWG MIME sniffing algorithm reads
// (http.DetectContentType implements it).
const sniffLen = 512

// sniffWait bounds how long a response without a type waits for its first
// bytes: a long poll or an event stream that sends nothing for a while
// must not hold its head (fetch() resolves, and a session's end or a
// grant's expiry are seen, at the head).
const sniffWait = time.Second

// sniffType gives a response without a Content-Type the type a browser
// would sniff for it. Embedded CGI programs often send none; a browser
// sniffs such a response, but the session sets nosniff on every response
// (a device page must not get script or style out of an upload), and a
// service worker's Response without a type is a download the page cannot
// show. So the agent sniffs, as the browser would have, and nosniff stays.
//
// It reads up to sniffLen bytes or the end, as a browser's sniffer does,
// but for at most sniffWait: then it decides with what came (nothing:
// text/plain, which shows and runs nothing). The bytes it read are passed
// on as they arrived, so a stream is not held either.
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
	b := &sniffedBody{body: resp.Body, chunks: make(chan []byte, sniffLen), done: make(chan struct{})}
	go b.readFirst()
	timer := time.NewTimer(sniffWait)
	defer timer.Stop()
	var head []byte
	ended := false
collect:
	for len(head) < sniffLen {
		select {
		case p, ok := <-b.chunks:
			if !ok {
				ended = true
				break collect
			}
			head = append(head, p...)
			b.pending = append(b.pending, p...)
		case <-timer.C:
			break collect
		}
	}
	ct := http.DetectContentType(head)
	if len(head) == 0 {
		// Nothing to sniff (an empty body, or nothing yet): shown as empty
		// text rather than a download.
		ct = "text/plain"
	}
	if base, params, ok := strings.Cut(ct, ";"); ok && strings.TrimSpace(params) == "charset=utf-8" &&
		!hasUTF8BOM(head) {
		ct = base
	}
	if ended {
		<-b.done
		b.drained = true
	}
	resp.Header.Set("Content-Type", ct)
	resp.Body = b
}

// sniffedBody is a body whose first sniffLen bytes a goroutine reads
// (readFirst), handed on in order, then the rest read directly.
type sniffedBody struct {
	body    io.ReadCloser
	chunks  chan []byte   // readFirst's reads; closed when it stops
	done    chan struct{} // closed after err is set
	err     error         // readFirst's final error (io.EOF at the end), read after done
	pending []byte        // received from chunks, not yet returned
	drained bool          // chunks closed and done
}

func (b *sniffedBody) readFirst() {
	defer close(b.done)
	defer close(b.chunks)
	for n := 0; n < sniffLen; {
		p := make([]byte, sniffLen-n)
		m, err := b.body.Read(p)
		if m > 0 {
			b.chunks <- p[:m]
			n += m
		}
		if err != nil {
			b.err = err
			return
		}
	}
}

func (b *sniffedBody) Read(p []byte) (int, error) {
	for len(b.pending) == 0 && !b.drained {
		c, ok := <-b.chunks
		if !ok {
			<-b.done
			b.drained = true
			break
		}
		b.pending = c
	}
	if len(b.pending) > 0 {
		n := copy(p, b.pending)
		b.pending = b.pending[n:]
		return n, nil
	}
	if b.err != nil {
		return 0, b.err
	}
	return b.body.Read(p)
}

func (b *sniffedBody) Close() error { return b.body.Close() }

func hasUTF8BOM(b []byte) bool {
	return len(b) >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf
}

type readCloser struct {
	io.Reader
	io.Closer
}
