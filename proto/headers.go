package proto

import (
	"net/http"
	"slices"
	"strings"
)

// Header rules every side of the data path applies: the tunnel in Go, the
// agent's device proxy, and the browser's worker and shell in JS
// (web/session/headers.js, whose lists a web test checks against
// testdata/header-rules.json, which TestHeaderRulesGolden writes from these).

// HopByHopHeaders are the fields that describe one connection (RFC 9110
// 7.6.1, plus the legacy ones httputil.ReverseProxy removes). The tunnel is
// not that connection, so none of them crosses it in either direction.
func HopByHopHeaders() []string {
	return []string{
		"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	}
}

// HeaderDeviceOrigins is the response field in which the agent tells the
// browser side, with each HTML document of a device, the device's own
// origins ("http://192.168.1.20 https://192.168.1.20 http://npi4000.local",
// space-separated): the ones it rewrites in bodies to the session's
// origin. The page shim does the same to URLs the page builds at run time
// ("http://" + ip). A value the device sent itself is never passed on.
const HeaderDeviceOrigins = "Porthole-Device-Origins"

// DroppedDeviceResponseHeaders never reach the technician's browser from a
// device: cookies stay in the agent's jar; CORS grants, HSTS and pinning are
// the device's business, not the session origin's; the frame-blocking header
// would stop the session from showing the page; reporting headers would send
// reports off the session; Clear-Site-Data would wipe the session origin's
// worker; nosniff and the referrer policy are replaced by the session's.
func DroppedDeviceResponseHeaders() []string {
	return []string{
		"Set-Cookie", "Set-Cookie2", "Strict-Transport-Security", "Public-Key-Pins",
		"Public-Key-Pins-Report-Only", "X-Frame-Options", "Alt-Svc", "Clear-Site-Data",
		"Report-To", "Reporting-Endpoints", "Nel", "X-Content-Type-Options", "Referrer-Policy",
		"Content-Security-Policy-Report-Only",
	}
}

// StripHopByHop deletes from h the fields its Connection header names, then
// every hop-by-hop field, then extra.
func StripHopByHop(h http.Header, extra ...string) {
	for _, f := range h.Values("Connection") {
		for name := range strings.SplitSeq(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range slices.Concat(HopByHopHeaders(), extra) {
		h.Del(name)
	}
}
