package deviceproxy

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

func testRewriter() *rewriter {
	mapped := func(scheme string, port int) bool { return port == 80 || port == 443 }
	return newRewriter([]string{"192.168.1.20", "NPI4000", "npi4000.local", "[fe80::20]"}, mapped, "https://s1.sessions.example")
}

func TestRewriteDeviceURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{`<a href="http://192.168.1.20/setup.htm">`, `<a href="https://s1.sessions.example/setup.htm">`},
		{`<a href="HTTPS://192.168.1.20:443/x">`, `<a href="https://s1.sessions.example/x">`},
		{`<img src="http://npi4000/logo.png">`, `<img src="https://s1.sessions.example/logo.png">`},
		{`<img src='http://NPI4000.LOCAL/logo.png'>`, `<img src='https://s1.sessions.example/logo.png'>`},
		{`fetch("http://[fe80::20]/api")`, `fetch("https://s1.sessions.example/api")`},
		{`<script src="//192.168.1.20/app.js">`, `<script src="//s1.sessions.example/app.js">`},
		{`{"url":"http:\/\/192.168.1.20\/status"}`, `{"url":"https:\/\/s1.sessions.example\/status"}`},
		{`{"url":"\/\/192.168.1.20\/status"}`, `{"url":"\/\/s1.sessions.example\/status"}`},
		{`/login?next=http%3A%2F%2F192.168.1.20%2Fadmin`, `/login?next=https%3A%2F%2Fs1.sessions.example%2Fadmin`},
		{`<meta http-equiv="refresh" content="0; url=http://192.168.1.20/index.htm">`, `<meta http-equiv="refresh" content="0; url=https://s1.sessions.example/index.htm">`},
		{`background: url(http://192.168.1.20/bg.gif)`, `background: url(https://s1.sessions.example/bg.gif)`},
		{`http://192.168.1.20`, `https://s1.sessions.example`},
		{`new WebSocket("ws://192.168.1.20/ws/status")`, `new WebSocket("wss://s1.sessions.example/ws/status")`},
		{`"wss://npi4000:443/ws"`, `"wss://s1.sessions.example/ws"`},
		{`{"ws":"ws:\/\/192.168.1.20\/ws"}`, `{"ws":"wss:\/\/s1.sessions.example\/ws"}`},
		{`ws://192.168.1.20:9000/`, `ws://192.168.1.20:9000/`},
		{`http://192.168.1.20?x=1#y`, `https://s1.sessions.example?x=1#y`},
		// Not the device: left alone.
		{`http://192.168.1.200/`, `http://192.168.1.200/`},
		{`http://192.168.1.2/`, `http://192.168.1.2/`},
		{`http://npi4000.evil.example/`, `http://npi4000.evil.example/`},
		{`http://192.168.1.20@evil.example/`, `http://192.168.1.20@evil.example/`},
		{`http://192.168.1.20:8080/`, `http://192.168.1.20:8080/`},
		{`http://192.168.1.20:80/`, `https://s1.sessions.example/`},
		{`http://192.168.1.20:/`, `http://192.168.1.20:/`},
		{`http://192.168.1.20:123456/`, `http://192.168.1.20:123456/`},
		{`ftp://192.168.1.20/`, `ftp://192.168.1.20/`},
		{`a//192.168.1.20/`, `a//192.168.1.20/`},
		{`http://example.com/`, `http://example.com/`},
		{`</div><br/>//comment`, `</div><br/>//comment`},
	}
	rw := testRewriter()
	for _, tc := range tests {
		if got := rw.rewriteString(tc.in); got != tc.want {
			t.Errorf("rewrite(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// TestRewriteAcrossReadBoundaries: the same output whatever the reads'
// sizes, one byte at a time included.
func TestRewriteAcrossReadBoundaries(t *testing.T) {
	var page strings.Builder
	for i := 0; i < 300; i++ {
		page.WriteString(`<a href="http://192.168.1.20/p`)
		page.WriteString(strings.Repeat("x", i%37))
		page.WriteString(`">http://192.168.1.200/ //192.168.1.20/a http:\/\/npi4000\/b `)
	}
	in := page.String()
	want := testRewriter().rewriteString(in)
	if strings.Contains(want, `"http://192.168.1.20/`) || !strings.Contains(want, "http://192.168.1.200/") {
		t.Fatal("reference rewrite wrong")
	}
	got, err := io.ReadAll(testRewriter().Reader(iotest.OneByteReader(strings.NewReader(in))))
	if err != nil || string(got) != want {
		t.Fatalf("one byte at a time differs (%v)", err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		got, err := io.ReadAll(testRewriter().Reader(&randomReader{r: r, src: strings.NewReader(in)}))
		if err != nil || string(got) != want {
			t.Fatalf("random reads differ (%v)", err)
		}
	}
}

type randomReader struct {
	r   *rand.Rand
	src io.Reader
}

func (rr *randomReader) Read(p []byte) (int, error) {
	n := 1 + rr.r.IntN(64)
	if n < len(p) {
		p = p[:n]
	}
	return rr.src.Read(p)
}

// TestRewriteHoldsBackOnlyAPossibleMatch: a streamed body is passed on
// at once, except bytes that could begin a device URL.
func TestRewriteHoldsBackOnlyAPossibleMatch(t *testing.T) {
	pr, pw := io.Pipe()
	r := testRewriter().Reader(pr)
	buf := make([]byte, 256)
	go func() { _, _ = pw.Write([]byte(`{"event":1}` + "\n")) }()
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != `{"event":1}`+"\n" {
		t.Fatalf("first event %q, %v", buf[:n], err)
	}
	go func() { _, _ = pw.Write([]byte(`{"url":"http://192.16`)) }()
	n, _ = r.Read(buf)
	if string(buf[:n]) != `{"url":"` {
		t.Fatalf("partial URL not held: %q", buf[:n])
	}
	go func() { _, _ = pw.Write([]byte("8.1.20/x\"}\n")); pw.Close() }()
	rest, _ := io.ReadAll(r)
	if string(rest) != `https://s1.sessions.example/x"}`+"\n" {
		t.Fatalf("rest %q", rest)
	}
}

// TestRewriteMemoryIsBounded: a body of many megabytes goes through with
// a fixed buffer.
func TestRewriteMemoryIsBounded(t *testing.T) {
	rr := testRewriter().Reader(io.LimitReader(repeatReader("<p>http://192.168.1.20/x</p>"), 32<<20)).(*rewriteReader)
	n, err := io.CopyBuffer(io.Discard, onlyReader{rr}, make([]byte, 4096))
	if err != nil || n == 0 {
		t.Fatal(n, err)
	}
	if c := cap(rr.buf); c > 64<<10 {
		t.Errorf("buffer grew to %d bytes", c)
	}
}

type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type repeatReader string

func (s repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], s)
	}
	return n, nil
}

func TestRewriteNoticesMetaRefreshToHTTPS(t *testing.T) {
	rw := testRewriter()
	var got []int
	rw.onRefreshHTTPS = func(port int) { got = append(got, port) }
	rw.rewriteString(`<a href="https://192.168.1.20/">secure</a>`)
	if len(got) != 0 {
		t.Fatalf("a link is not a refresh: %v", got)
	}
	out := rw.rewriteString(`<meta http-equiv=refresh content="0;URL='https://192.168.1.20/admin'">`)
	if len(got) != 1 || got[0] != 443 {
		t.Fatalf("refresh not noticed: %v", got)
	}
	if !strings.Contains(out, "URL='https://s1.sessions.example/admin'") {
		t.Fatalf("refresh not rewritten: %s", out)
	}
}

func TestRewritableTypes(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/html; charset=iso-8859-1": true, "application/json": true, "application/hal+json": true,
		"image/svg+xml": true, "text/css": true, "application/javascript": true, "text/plain": false,
		"text/event-stream": false, "image/png": false, "text/html; charset=UTF-16LE": false, "": false,
	} {
		if got := rewritable(ct); got != want {
			t.Errorf("rewritable(%q) = %v", ct, got)
		}
	}
}

func FuzzRewrite(f *testing.F) {
	f.Add([]byte(`<a href="http://192.168.1.20/x">`), uint8(3))
	f.Add([]byte(`http%3A%2F%2Fnpi4000%3A443%2F`), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		want := testRewriter().rewriteString(string(in))
		st := int(step%16) + 1
		got, err := io.ReadAll(testRewriter().Reader(&stepReader{src: bytes.NewReader(in), n: st}))
		if err != nil || string(got) != want {
			t.Fatalf("step %d: %q != %q", st, got, want)
		}
		if !bytes.Contains(in, []byte("192.168.1.20")) && !bytes.Contains(bytes.ToLower(in), []byte("npi4000")) &&
			!bytes.Contains(bytes.ToLower(in), []byte("fe80::20")) && want != string(in) {
			t.Fatalf("rewrote a body without a device name: %q -> %q", in, want)
		}
	})
}

type stepReader struct {
	src io.Reader
	n   int
}

func (s *stepReader) Read(p []byte) (int, error) {
	if len(p) > s.n {
		p = p[:s.n]
	}
	return s.src.Read(p)
}
