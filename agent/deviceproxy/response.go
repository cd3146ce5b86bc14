package deviceproxy

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/agent/tlscompat"
	"github.com/porthole-dev/porthole/proto"
)

// DeviceCSP is the policy every proxied response carries (proto.DeviceCSP).
const DeviceCSP = proto.DeviceCSP

// modifyResponse is the response path, top to bottom.
func (h *portHandler) modifyResponse(resp *http.Response) error {
	w, _ := resp.Request.Context().Value(exchangeKey{}).(http.ResponseWriter)

	// Cookies go into the session's jar; the non-HttpOnly ones are
	// handed to the browser side to mirror for the page's scripts, and
	// the ones deleted are named so it deletes its copies.
	mirror, deleted := h.s.jar.store(resp.Cookies(), resp.Request.URL.Path, time.Now())
	if m, ok := w.(CookieMirror); ok && len(mirror) > 0 {
		m.MirrorCookies(mirror)
	}
	if d, ok := w.(CookieDeleter); ok && len(deleted) > 0 {
		d.DeleteCookies(deleted)
	}
	// Old TLS is worth a word in the session's toolbar.
	if resp.TLS != nil {
		if r, ok := w.(LegacyTLSReporter); ok {
			if l := tlscompat.Describe(*resp.TLS); l != nil {
				r.ReportLegacyTLS(l)
			}
		}
	}

	// A device that sends the browser to its own https URL is followed
	// there inside the session (upgrade.go).
	h.followHTTPS(resp)
	hdr := resp.Header

	// A redirect to the device's own origin becomes a path on the session
	// origin; one elsewhere is left as it is (the browser side turns it into
	// a notice) and never followed here.
	for _, k := range []string{"Location", "Content-Location"} {
		if v := hdr.Get(k); v != "" {
			hdr.Set(k, h.localize(v))
		}
	}
	if v := hdr.Get("Refresh"); v != "" {
		if prefix, u, ok := refreshURL(v); ok {
			hdr.Set("Refresh", prefix+h.localize(u))
		}
	}

	// A response a service worker builds is never decoded by the browser:
	// decode here. Then type what came untyped, as a browser would have.
	decodeBody(resp)
	sniffType(resp)

	// The device's own absolute URLs in text bodies point at the client's
	// origin instead (rewrite.go). A range cannot be rewritten (its
	// offsets would shift), nor an encoding the agent did not decode.
	if co := ClientOrigin(resp.Request.Context()); co != "" && resp.StatusCode != http.StatusPartialContent &&
		hdr.Get("Content-Encoding") == "" && rewritable(hdr.Get("Content-Type")) &&
		resp.Body != nil && resp.Body != http.NoBody && resp.Request.Method != http.MethodHead {
		rw := newRewriter(h.p.names(), h.mapped, co)
		rw.onRefreshHTTPS = func(port int) {
			if t := h.httpsTwin(port); t != 0 {
				h.switchToHTTPS(t, "meta refresh to its https URL")
			}
		}
		resp.Body = readCloser{Reader: rw.Reader(resp.Body), Closer: resp.Body}
		hdr.Del("Content-Length")
		hdr.Del("Content-Md5")
		hdr.Del("Etag") // another representation than the device's
		resp.ContentLength = -1
	}

	for _, k := range proto.DroppedDeviceResponseHeaders() {
		hdr.Del(k)
	}
	// The device's own origins, for the page shim to keep URLs the page
	// builds at run time inside the session (a device's own value never
	// passes).
	hdr.Del(proto.HeaderDeviceOrigins)
	if ClientOrigin(resp.Request.Context()) != "" && isHTMLDocument(hdr.Get("Content-Type")) {
		if o := h.deviceOrigins(); len(o) > 0 {
			hdr.Set(proto.HeaderDeviceOrigins, strings.Join(o, " "))
		}
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

// localize turns an absolute URL on one of the device's origins this
// handler shows (its port, the https twin it switched to) into its path;
// anything else is returned unchanged.
func (h *portHandler) localize(loc string) string {
	u, scheme, port, ok := h.deviceURL(loc)
	if !ok || !h.mapped(scheme, port) {
		return loc // relative already, unparseable or elsewhere: the browser decides
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

// isHTMLDocument reports whether a Content-Type is one browsers render as
// an HTML document.
func isHTMLDocument(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "text/html" || mt == "application/xhtml+xml")
}

// deviceOrigins are the origins the rewriter maps to the session's
// (rewrite.go): each of the device's names with each scheme and port
// mapped, default ports left out, as a browser spells an origin.
func (h *portHandler) deviceOrigins() []string {
	up := h.up.Load()
	ports := []int{h.port, up.port, 80, 443, h.p.d.HTTPSPort}
	for _, p := range []int{h.port, up.port} {
		if t, ok := twinPorts[p]; ok {
			ports = append(ports, t)
		}
	}
	if _, ps, err := net.SplitHostPort(up.host); err == nil {
		if p, err := strconv.Atoi(ps); err == nil {
			ports = append(ports, p)
		}
	}
	var out []string
	for _, host := range h.p.names() {
		for _, scheme := range []string{"http", "https"} {
			seen := map[int]bool{}
			for _, port := range ports {
				if port <= 0 || seen[port] || !h.mapped(scheme, port) {
					continue
				}
				seen[port] = true
				o := scheme + "://" + host
				if port != defaultPort(scheme) {
					o += ":" + strconv.Itoa(port)
				}
				if !slices.Contains(out, o) {
					out = append(out, o)
				}
			}
		}
	}
	return out
}
