package deviceproxy

import (
	"bytes"
	"io"
	"mime"
	"net/url"
	"strconv"
	"strings"
)

// Absolute URLs in device pages.
//
// Embedded web servers write their own address into their pages:
// href="http://192.168.1.20/setup.htm", a script's fetch("http://NPI4000/
// api"), a meta refresh to https://192.168.1.20/, a JSON status listing
// "//npi4000.local/status". In the session each of those leaves the
// session's origin and is blocked. The response path therefore rewrites,
// in text bodies (HTML, CSS, JavaScript, JSON, XML and SVG), every URL
// whose origin is the device's own — any of its names (the address, the
// Host it is reached by, its configured names such as the hostname and
// mDNS name), http or https, the web port or its http/https twin — to the
// client's own origin (proto.RequestHead.ClientOrigin). Three spellings are
// recognised: plain (http://host), JSON- and JavaScript-escaped
// (http:\/\/host) and percent-encoded in query strings
// (http%3A%2F%2Fhost); scheme-relative //host too, when it stands where
// a URL starts (after a quote, '=', '(' or white space). A URL of any other
// host or of another port is left alone: the browser side shows an
// interstitial for it, and the agent never fetches it.
//
// The rewriter streams: it holds back only the few bytes at the end of a
// read that could still be the beginning of a device URL (at most
// maxHold), so memory is bounded whatever the body's size, a match split
// across reads is still found, and a long poll or a page flushed in parts
// is passed on without waiting for more.

// rewriteTypes are the media types whose bodies are rewritten. text/plain
// and text/event-stream are not: their URLs are data, not navigations.
var rewriteTypes = map[string]bool{
	"text/html": true, "application/xhtml+xml": true, "text/css": true,
	"text/javascript": true, "application/javascript": true, "application/x-javascript": true,
	"application/ecmascript": true, "text/ecmascript": true,
	"application/json": true, "text/json": true, "text/xml": true, "application/xml": true,
	"image/svg+xml": true,
}

// rewritable reports whether a Content-Type is a text type the rewriter
// handles (UTF-16 bodies are not: their ASCII is not contiguous bytes).
func rewritable(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	if cs := strings.ToLower(params["charset"]); strings.HasPrefix(cs, "utf-16") || strings.HasPrefix(cs, "utf-32") {
		return false
	}
	return rewriteTypes[mt] || strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml")
}

// urlForm is one spelling of a URL's start.
type urlForm struct {
	prefix   string // lower case
	scheme   string // "http", "https", or "" for scheme-relative
	portSep  string // how ':' is spelled before a port
	relative bool
	ws       bool // ws:// or wss://: the WebSocket twin of http(s)
}

var urlForms = []urlForm{
	{prefix: "https://", scheme: "https", portSep: ":"},
	{prefix: "http://", scheme: "http", portSep: ":"},
	{prefix: "wss://", scheme: "https", portSep: ":", ws: true},
	{prefix: "ws://", scheme: "http", portSep: ":", ws: true},
	{prefix: `wss:\/\/`, scheme: "https", portSep: ":", ws: true},
	{prefix: `ws:\/\/`, scheme: "http", portSep: ":", ws: true},
	{prefix: `https:\/\/`, scheme: "https", portSep: ":"},
	{prefix: `http:\/\/`, scheme: "http", portSep: ":"},
	{prefix: "https%3a%2f%2f", scheme: "https", portSep: "%3a"},
	{prefix: "http%3a%2f%2f", scheme: "http", portSep: "%3a"},
	{prefix: "//", portSep: ":", relative: true},
	{prefix: `\/\/`, portSep: ":", relative: true},
}

// maxHold bounds the bytes held back between reads: the longest prefix,
// the longest host, a port and one byte after it.
func (rw *rewriter) maxHold() int { return len("https%3a%2f%2f") + rw.maxHost + len("%3a65535") + 1 }

// rewriter rewrites the device's own URLs in one body.
type rewriter struct {
	hosts   []string                           // lower case; IPv6 in brackets
	maxHost int                                // longest of hosts
	mapped  func(scheme string, port int) bool // whether a device origin is the session's
	to      string                             // the client's origin, "https://s.example"
	toHost  string                             // its host[:port]
	// onRefreshHTTPS, if set, is called when a URL of the device's https
	// twin follows "url=" (a meta refresh or a Refresh-like redirect):
	// the device wants to be reached over https (upgrade.go).
	onRefreshHTTPS func(port int)
}

func newRewriter(hosts []string, mapped func(string, int) bool, to string) *rewriter {
	rw := &rewriter{mapped: mapped, to: to}
	for _, h := range hosts {
		h = strings.ToLower(h)
		if h != "" && !containsString(rw.hosts, h) {
			rw.hosts = append(rw.hosts, h)
			rw.maxHost = max(rw.maxHost, len(h))
		}
	}
	rw.toHost = strings.TrimPrefix(strings.TrimPrefix(to, "https://"), "http://")
	return rw
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Reader returns src with the device's URLs rewritten.
func (rw *rewriter) Reader(src io.Reader) io.Reader {
	return &rewriteReader{rw: rw, src: src, buf: make([]byte, 0, 16<<10+rw.maxHold())}
}

// rewriteString rewrites one complete string (a header value).
func (rw *rewriter) rewriteString(s string) string {
	b, _ := io.ReadAll(rw.Reader(strings.NewReader(s)))
	return string(b)
}

type rewriteReader struct {
	rw   *rewriter
	src  io.Reader
	buf  []byte // unprocessed input: what was held back, then new bytes
	out  []byte // processed, not yet returned
	hist []byte // the last source bytes before buf (lookbehind)
	err  error  // from src, returned once buf and out are drained
}

func (r *rewriteReader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			if len(r.buf) > 0 {
				r.process(true)
				continue
			}
			return 0, r.err
		}
		// Read more after what was held back.
		if cap(r.buf)-len(r.buf) < 512 {
			nb := make([]byte, len(r.buf), len(r.buf)+16<<10)
			copy(nb, r.buf)
			r.buf = nb
		}
		n, err := r.src.Read(r.buf[len(r.buf):cap(r.buf)])
		r.buf = r.buf[:len(r.buf)+n]
		if err != nil {
			r.err = err
		}
		r.process(r.err != nil)
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	if len(r.out) == 0 {
		r.out = r.out[:0:0]
	}
	return n, nil
}

// process moves what can be decided from buf to out; at eof everything.
func (r *rewriteReader) process(eof bool) {
	buf := r.buf
	i, start := 0, 0
	var out []byte
	hold := len(buf)
	for i < len(buf) {
		j := bytes.IndexAny(buf[i:], "hHwW/\\%")
		if j < 0 {
			break
		}
		j += i
		n, repl, need := r.matchAt(buf, j, eof)
		switch {
		case need:
			hold = j
		case n > 0:
			out = append(out, buf[start:j]...)
			out = append(out, repl...)
			i, start = j+n, j+n
			continue
		default:
			i = j + 1
			continue
		}
		break
	}
	out = append(out, buf[start:hold]...)
	r.noteHistory(buf[:hold])
	r.out = append(r.out, out...)
	rest := copy(buf, buf[hold:])
	r.buf = buf[:rest]
}

func (r *rewriteReader) noteHistory(consumed []byte) {
	const keep = 16
	if len(consumed) >= keep {
		r.hist = append(r.hist[:0], consumed[len(consumed)-keep:]...)
		return
	}
	r.hist = append(r.hist, consumed...)
	if len(r.hist) > keep {
		r.hist = r.hist[len(r.hist)-keep:]
	}
}

// before returns up to n source bytes before buf[j].
func (r *rewriteReader) before(buf []byte, j, n int) []byte {
	if j >= n {
		return buf[j-n : j]
	}
	b := append(append([]byte(nil), r.hist...), buf[:j]...)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return b
}

// hasFoldPrefix reports whether b starts with prefix ignoring ASCII case,
// and whether b is too short to tell (b is a prefix of prefix).
func hasFoldPrefix(b []byte, prefix string) (match, short bool) {
	if len(b) < len(prefix) {
		return false, equalFold(b, prefix[:len(b)])
	}
	return equalFold(b[:len(prefix)], prefix), false
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func isHostByte(c byte) bool {
	return c == '.' || c == '-' || c == '_' || c == '@' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// matchAt tries a device URL starting at buf[j]. It returns the length
// matched and its replacement, or need when buf ends before it can tell
// (never at eof).
func (r *rewriteReader) matchAt(buf []byte, j int, eof bool) (n int, repl []byte, need bool) {
	rest := buf[j:]
	for _, f := range urlForms {
		ok, short := hasFoldPrefix(rest, f.prefix)
		if short && !eof {
			return 0, nil, true
		}
		if !ok {
			continue
		}
		if f.relative {
			// Only where a URL starts: not the "//" of another scheme,
			// a comment after code, or a path's double slash.
			if prev := r.before(buf, j, 1); len(prev) == 1 && !strings.ContainsRune("\"'=( \t\r\n,>`", rune(prev[0])) {
				return 0, nil, false
			}
		}
		k := len(f.prefix)
		for _, h := range r.rw.hosts {
			ok, short := hasFoldPrefix(rest[k:], h)
			if short && !eof {
				return 0, nil, true
			}
			if !ok {
				continue
			}
			m := k + len(h)
			port, end, need, valid := parsePort(rest, m, f.portSep, eof)
			if need {
				return 0, nil, true
			}
			if !valid {
				continue
			}
			scheme := f.scheme
			if !r.rw.mappedOrigin(scheme, port) {
				continue
			}
			if f.scheme == "https" && r.rw.onRefreshHTTPS != nil && r.followsURLEquals(buf, j) {
				p := port
				if p == 0 {
					p = 443
				}
				r.rw.onRefreshHTTPS(p)
			}
			return end, r.rw.replacement(f), false
		}
	}
	return 0, nil, false
}

// followsURLEquals reports whether "url=" (a meta refresh's, optionally
// with a quote or space) stands right before buf[j].
func (r *rewriteReader) followsURLEquals(buf []byte, j int) bool {
	b := bytes.ToLower(r.before(buf, j, 8))
	b = bytes.TrimRight(b, "'\" ")
	return bytes.HasSuffix(b, []byte("url="))
}

// parsePort reads an optional port after the host at rest[m] and the
// boundary after it. It returns the port (0 when absent), where the URL's
// origin ends, and whether this is a device origin at all (a host that
// goes on — "192.168.1.200", "printer.lan.evil.example", user info — is
// not).
func parsePort(rest []byte, m int, portSep string, eof bool) (port, end int, need, valid bool) {
	if m >= len(rest) {
		return 0, m, !eof, eof
	}
	if ok, short := hasFoldPrefix(rest[m:], portSep); short && !eof {
		return 0, 0, true, false
	} else if ok {
		d := m + len(portSep)
		e := d
		for e < len(rest) && e-d <= 5 && '0' <= rest[e] && rest[e] <= '9' {
			e++
		}
		if e == len(rest) && !eof {
			return 0, 0, true, false
		}
		if e == d || e-d > 5 || (e < len(rest) && isHostByte(rest[e])) {
			return 0, 0, false, false
		}
		p, _ := strconv.Atoi(string(rest[d:e]))
		if p < 1 || p > 65535 {
			return 0, 0, false, false
		}
		return p, e, false, true
	}
	if isHostByte(rest[m]) || rest[m] == ':' {
		return 0, 0, false, false
	}
	return 0, m, false, true
}

// mappedOrigin reports whether (scheme, port) of the device is shown on
// the session's origin; port 0 means the scheme's default, and a
// scheme-relative URL matches when either scheme would.
func (rw *rewriter) mappedOrigin(scheme string, port int) bool {
	if scheme == "" {
		return rw.mappedOrigin("http", port) || rw.mappedOrigin("https", port)
	}
	if port == 0 {
		port = defaultPort(scheme)
	}
	return rw.mapped(scheme, port)
}

func (rw *rewriter) replacement(f urlForm) []byte {
	if f.ws {
		to := "ws://" + rw.toHost
		if strings.HasPrefix(rw.to, "https://") {
			to = "wss://" + rw.toHost
		}
		if strings.Contains(f.prefix, `\/`) {
			to = strings.ReplaceAll(to, "/", `\/`)
		}
		return []byte(to)
	}
	switch {
	case f.relative && f.prefix == "//":
		return []byte("//" + rw.toHost)
	case f.relative:
		return []byte(`\/\/` + rw.toHost)
	case f.portSep == "%3a":
		return []byte(url.QueryEscape(rw.to))
	case strings.Contains(f.prefix, `\/`):
		return []byte(strings.ReplaceAll(rw.to, "/", `\/`))
	}
	return []byte(rw.to)
}
