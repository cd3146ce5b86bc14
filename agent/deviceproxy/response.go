package deviceproxy

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// DeviceCSP is the policy every proxied response carries (proto.DeviceCSP).
const DeviceCSP = proto.DeviceCSP

// modifyResponse is the response path, top to bottom.
func (h *portHandler) modifyResponse(resp *http.Response) error {
	hdr := resp.Header

	// Cookies go into the session's jar; the non-HttpOnly ones are
	// handed to the browser side to mirror for the page's scripts.
	if mirror := h.s.jar.store(resp.Cookies(), resp.Request.URL.Path, time.Now()); len(mirror) > 0 {
		if m, ok := resp.Request.Context().Value(exchangeKey{}).(CookieMirror); ok {
			m.MirrorCookies(mirror)
		}
	}

	// A redirect to the device's own origin becomes a path on the session
	// origin; one elsewhere is left as it is (the browser side turns it into
	// a notice) and never followed here.
	for _, k := range []string{"Location", "Content-Location"} {
		if v := hdr.Get(k); v != "" {
			hdr.Set(k, h.localize(v))
		}
	}

	// A response a service worker builds is never decoded by the browser:
	// decode here.
	decodeBody(resp)

	for _, k := range proto.DroppedDeviceResponseHeaders() {
		hdr.Del(k)
	}
	for k := range hdr {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(hdr, k)
		}
	}
	if csp := hdr.Values("Content-Security-Policy"); len(csp) > 0 {
		kept := csp[:0:0]
		for _, v := range csp {
			if v = withoutDirectives(v, "frame-ancestors", "report-uri", "report-to"); v != "" {
				kept = append(kept, v)
			}
		}
		hdr["Content-Security-Policy"] = kept
	}
	hdr.Add("Content-Security-Policy", DeviceCSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	// Full referrers inside the page's own origin (the device's CSRF
	// checks compare them, after rewriteOrigin), none to anyone else.
	hdr.Set("Referrer-Policy", "same-origin")
	return nil
}

// localize turns an absolute URL on the device's origin into its path;
// anything else is returned unchanged.
func (h *portHandler) localize(loc string) string {
	u, err := url.Parse(loc)
	if err != nil || u.Host == "" {
		return loc // relative already, or unparseable: the browser decides
	}
	if u.Scheme != "" && !strings.EqualFold(u.Scheme, h.target.Scheme) {
		return loc
	}
	if !h.sameHost(u.Host) {
		return loc
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if u.RawQuery != "" || u.ForceQuery {
		p += "?" + u.RawQuery
	}
	if u.Fragment != "" {
		p += "#" + u.EscapedFragment()
	}
	return p
}

// sameHost reports whether host (with or without port) names the device
// on this handler's port: the Host header sent, or the configured address.
func (h *portHandler) sameHost(host string) bool {
	norm := func(hp string) string {
		hp = strings.ToLower(hp)
		name, port, err := net.SplitHostPort(hp)
		if err != nil {
			name, port = strings.Trim(hp, "[]"), strconv.Itoa(defaultPort(h.target.Scheme))
		}
		return name + ":" + port
	}
	got := norm(host)
	return got == norm(h.host) || got == norm(h.target.Host)
}

// withoutDirectives removes directives from a CSP header value ("a; b",
// several policies separated by commas).
func withoutDirectives(policy string, names ...string) string {
	var policies []string
	for p := range strings.SplitSeq(policy, ",") {
		var kept []string
		for d := range strings.SplitSeq(p, ";") {
			d = strings.TrimSpace(d)
			if d == "" {
				continue
			}
			name, _, _ := strings.Cut(d, " ")
			drop := false
			for _, n := range names {
				if strings.EqualFold(name, n) {
					drop = true
				}
			}
			if !drop {
				kept = append(kept, d)
			}
		}
		if len(kept) > 0 {
			policies = append(policies, strings.Join(kept, "; "))
		}
	}
	return strings.Join(policies, ", ")
}

// decodeBody decodes a gzip or deflate body in place and drops
// Content-Encoding and Content-Length (the decoded length is unknown until
// the end). Other encodings, which the request path never offers, pass
// through.
func decodeBody(resp *http.Response) {
	enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding")))
	if enc != "gzip" && enc != "x-gzip" && enc != "deflate" {
		return
	}
	resp.Header.Del("Content-Encoding")
	resp.Header.Del("Content-Length")
	resp.Header.Del("Content-Md5")
	resp.ContentLength = -1
	if resp.Body == nil || resp.Body == http.NoBody || resp.Request.Method == http.MethodHead ||
		resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return
	}
	resp.Body = &decodedBody{enc: enc, raw: resp.Body}
}

// decodedBody starts its decoder at the first Read, so that a response
// whose body nobody reads costs nothing.
type decodedBody struct {
	enc string
	raw io.ReadCloser
	r   io.Reader
	c   io.Closer
	err error
}

func (d *decodedBody) Read(p []byte) (int, error) {
	if d.r == nil && d.err == nil {
		d.start()
	}
	if d.err != nil {
		return 0, d.err
	}
	return d.r.Read(p)
}

func (d *decodedBody) start() {
	br := bufio.NewReaderSize(d.raw, 512)
	if d.enc == "deflate" {
		// "deflate" is zlib-wrapped by the standard, raw by many servers.
		if hdr, err := br.Peek(2); err == nil && hdr[0]&0x0f == 8 && (uint16(hdr[0])<<8|uint16(hdr[1]))%31 == 0 {
			zr, err := zlib.NewReader(br)
			if err != nil {
				d.err = err
				return
			}
			d.r, d.c = zr, zr
			return
		}
		fr := flate.NewReader(br)
		d.r, d.c = fr, fr
		return
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		d.err = err
		return
	}
	d.r, d.c = zr, zr
}

func (d *decodedBody) Close() error {
	if d.c != nil {
		_ = d.c.Close()
	}
	return d.raw.Close()
}
