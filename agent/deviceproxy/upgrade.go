package deviceproxy

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Devices that insist on https.
//
// Many EWS answer on http only to send the browser to their https port:
// a 301/302 to https://<own address>/, a 426 Upgrade Required, a meta
// refresh or a Refresh header to their https URL. In the session all of
// those would leave the session's origin. The agent instead switches the
// session's upstream for that port to the device's https port — when it
// is declared — and keeps it for the rest of the session; the browser
// follows to the same path on the session's own origin. The https port is
// reached with the legacy TLS ladder and, when the configuration does not
// pin it, pinned at first use (the daemon's VerifyPort).

// twinPorts are the http/https pairs of one web server.
var twinPorts = map[int]int{80: 443, 443: 80, 8080: 8443, 8443: 8080}

// schemeOf is the scheme a port other than the web port is reached with:
// what a redirect taught, https for 443 and 8443 of an http device, else
// the device's scheme.
func (p *Proxy) schemeOf(port int) string {
	p.tlsMu.Lock()
	s, ok := p.schemes[port]
	p.tlsMu.Unlock()
	if ok {
		return s
	}
	if p.d.Scheme == "http" && (port == 443 || port == 8443 || port == p.d.HTTPSPort) {
		return "https"
	}
	return p.d.Scheme
}

// mapped reports whether the device's (scheme, port) is what this handler
// shows on the client's origin: its own port, where it switched to, and
// their http/https twins when declared.
func (h *portHandler) mapped(scheme string, port int) bool {
	up := h.up.Load()
	if port == h.port || port == up.port {
		return true
	}
	// The port the Host header names (a device behind a port forward
	// believes it is on that port).
	if _, ps, err := net.SplitHostPort(up.host); err == nil {
		if hp, _ := strconv.Atoi(ps); hp == port && scheme == up.scheme {
			return true
		}
	} else if port == defaultPort(up.scheme) && scheme == up.scheme {
		return true
	}
	for _, p := range []int{h.port, up.port} {
		if t, ok := twinPorts[p]; ok && t == port && h.p.allowed(port) {
			return true
		}
	}
	return h.port == h.p.d.HTTPPort && port == h.p.d.HTTPSPort && port != 0
}

// httpsTwin returns the declared port this handler may switch to https
// on: the one a redirect names, or for port 0 (a 426 names none) the
// http/https twin of the handler's port. 0 if none, or if the handler
// already speaks https.
func (h *portHandler) httpsTwin(port int) int {
	if h.up.Load().scheme == "https" {
		return 0
	}
	if port == 0 && h.port == h.p.d.HTTPPort {
		port = h.p.d.HTTPSPort
	}
	if port == 0 {
		port = twinPorts[h.port]
	}
	if port == 0 || !h.p.allowed(port) {
		return 0
	}
	return port
}

// switchToHTTPS moves the handler's upstream to https on port, once.
func (h *portHandler) switchToHTTPS(port int, why string) bool {
	if port == 0 {
		return false
	}
	cur := h.up.Load()
	if cur.scheme == "https" {
		return false
	}
	next := h.p.upstream("https", port)
	if !h.up.CompareAndSwap(cur, next) {
		return false
	}
	h.p.tlsMu.Lock()
	h.p.schemes[port] = "https"
	h.p.tlsMu.Unlock()
	h.log.Info("deviceproxy: device asked for https; the session follows it there", "device", h.p.d.ID,
		"from", cur.origin, "to", next.origin, "why", why)
	return true
}

// deviceURL parses s and reports whether it names one of the device's
// own origins, with that origin's scheme and port.
func (h *portHandler) deviceURL(s string) (u *url.URL, scheme string, port int, ok bool) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Host == "" || u.User != nil {
		return nil, "", 0, false
	}
	scheme = strings.ToLower(u.Scheme)
	if scheme == "" {
		scheme = h.up.Load().scheme
	}
	if scheme != "http" && scheme != "https" {
		return nil, "", 0, false
	}
	port = defaultPort(scheme)
	if ps := u.Port(); ps != "" {
		if port, err = strconv.Atoi(ps); err != nil {
			return nil, "", 0, false
		}
	}
	if !containsString(h.p.names(), strings.ToLower(u.Hostname())) && !containsString(h.p.names(), "["+strings.ToLower(u.Hostname())+"]") {
		return nil, "", 0, false
	}
	return u, scheme, port, true
}

// followHTTPS handles a device asking for https in the response head:
// a redirect to its own https URL, a Refresh header naming it, or 426.
// It switches the upstream when the https port is declared. A 426 becomes
// a 307 to the same request, which the browser repeats with its body.
func (h *portHandler) followHTTPS(resp *http.Response) {
	if h.up.Load().scheme == "https" {
		return
	}
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		if _, scheme, port, ok := h.deviceURL(loc); ok && scheme == "https" {
			if t := h.httpsTwin(port); t != 0 {
				h.switchToHTTPS(t, "redirect to "+loc)
			}
		}
	}
	if ref := resp.Header.Get("Refresh"); ref != "" {
		if _, u, ok := refreshURL(ref); ok {
			if _, scheme, port, ok := h.deviceURL(u); ok && scheme == "https" {
				if t := h.httpsTwin(port); t != 0 {
					h.switchToHTTPS(t, "Refresh to "+u)
				}
			}
		}
	}
	if resp.StatusCode == http.StatusUpgradeRequired {
		t := h.httpsTwin(0)
		if t == 0 || !h.switchToHTTPS(t, "426 Upgrade Required") {
			return
		}
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
		resp.StatusCode = http.StatusTemporaryRedirect
		resp.Status = "307 Temporary Redirect"
		resp.Header = http.Header{"Location": {resp.Request.URL.RequestURI()}, "Content-Length": {"0"}}
		resp.Body = http.NoBody
		resp.ContentLength = 0
	}
}

// refreshURL splits a Refresh value ("5; url=http://x/") into the part
// before the URL and the URL.
func refreshURL(v string) (prefix, u string, ok bool) {
	lower := strings.ToLower(v)
	i := strings.Index(lower, "url=")
	if i < 0 {
		return "", "", false
	}
	u = strings.TrimSpace(v[i+4:])
	u = strings.Trim(u, `'"`)
	return v[:i+4], u, u != ""
}
