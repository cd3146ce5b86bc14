package technician

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/internal/redact"
)

// LocalOnly guards the local listener of `porthole http`, which serves the
// device's page on a port of the technician's machine that every web page
// the technician visits can also send requests to. It refuses:
//
//   - a Host that is not the listener's own address: an IP literal or
//     "localhost", with the listener's port. Any other name is a page that
//     had its own name resolve to this machine (DNS rebinding) and would
//     then read the device's answers as same-origin;
//   - cross-site requests: Sec-Fetch-Site cross-site or same-site (another
//     port on 127.0.0.1 is the same site), or an Origin that is not the
//     listener's own (http://<Host>). A page that the listener itself
//     served, or the technician typing the address, passes.
//
// What passes is tagged with its own origin (tunnel.WithClientOrigin), so
// the agent turns Origin and Referer on it, and only on it, into the
// device's own. A refusal is a 403 with the reason, and a log line.
func LocalOnly(addr net.Addr, next http.Handler, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	port := ""
	if ta, ok := addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(ta.Port)
	} else if _, p, err := net.SplitHostPort(addr.String()); err == nil {
		port = p
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if why := refusal(r, port); why != "" {
			log.Warn("local listener: request refused", "why", why, "method", r.Method, "target", redact.Target(r.URL.RequestURI()),
				"host", r.Host, "origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "remote", r.RemoteAddr)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, "porthole: refused: %s. Open the device's page at this listener's own address (http://127.0.0.1:%s/) in its own tab.\n", why, port)
			return
		}
		next.ServeHTTP(w, r.WithContext(tunnel.WithClientOrigin(r.Context(), "http://"+strings.ToLower(r.Host))))
	})
}

// refusal says why r must not reach the device, or "".
func refusal(r *http.Request, port string) string {
	host, p, err := net.SplitHostPort(r.Host)
	if err != nil || p != port {
		return fmt.Sprintf("the Host %q is not this listener's address", r.Host)
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err != nil && host != "localhost" {
		return fmt.Sprintf("the Host %q is a name, not this listener's address (a DNS rebinding attempt?)", r.Host)
	}
	switch sfs := r.Header.Get("Sec-Fetch-Site"); sfs {
	case "", "same-origin", "none":
	default:
		return "a request from another site (Sec-Fetch-Site " + sfs + ")"
	}
	if o := r.Header.Get("Origin"); o != "" && !strings.EqualFold(o, "http://"+r.Host) {
		return fmt.Sprintf("a request from the page of another origin (%s)", o)
	}
	return ""
}
