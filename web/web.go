// Package web holds everything the technician's browser runs, embedded into
// the signaling binary: the app UI on the app origin and the session shell on
// each per-session origin.
//
// The browser code is plain ES modules with no build step (see app/ and
// session/). This package only serves it, with the headers that make the
// session origin safe to host an untrusted device page:
//
//   - App serves the app UI on the app origin (signaling mounts it for every
//     path that is not an API path).
//   - Session serves every request whose Host is a session host: the shell
//     page for any top-level navigation (so reloading any device URL brings the
//     shell back), the shell's own modules under ShellPrefix, the service
//     worker at ShellPrefix+"sw.js" with Service-Worker-Allowed: /, and
//     /favicon.ico. Requests for device content normally never reach it: the
//     service worker carries them over WebRTC to the agent.
//
// Neither handler needs configuration: the only origin-dependent value, the
// WebSocket origin in the shell's CSP, comes from the request itself.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// ShellPrefix is the path prefix of the shell's own assets on a session
// origin. The service worker never sends a path under it to the device.
const ShellPrefix = "/__t/"

//go:embed app/*.html app/*.js app/*.css session/*.html session/*.js session/*.css favicon.ico
var files embed.FS

// contentTypes are set explicitly: module scripts and service workers are
// refused by the browser unless served as JavaScript, and the platform's mime
// table differs between machines.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".ico":  "image/x-icon",
}

// App returns the handler for the app origin: the device list and the
// "Open" button that creates a session and opens its origin.
func App() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !getOrHead(w, r) {
			return
		}
		name := ""
		switch r.URL.Path {
		case "/", "/index.html":
			name = "app/index.html"
		case "/favicon.ico":
			name = "favicon.ico"
		default:
			if p := strings.TrimPrefix(r.URL.Path, "/"); !strings.Contains(p, "/") {
				name = "app/" + p
			}
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; "+
			"img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "+
			"form-action 'self'; frame-ancestors 'none'")
		strictHeaders(h)
		serveFile(w, r, name)
	})
}

// SessionOptions configure the session handler.
type SessionOptions struct {
	// TokenEndpoint is the app origin's OAuth token endpoint
	// (https://app.example.com/oauth/token), the one cross-origin URL the
	// shell may fetch: it exchanges its authorization code there.
	TokenEndpoint string
}

// Session returns the handler for session origins
// (http://<session>.localhost:<port>, https://<session>.<sessions-domain>).
func Session() http.Handler { return SessionWith(SessionOptions{}) }

// SessionWith is Session with options.
func SessionWith(opt SessionOptions) http.Handler {
	extra := ""
	if u, err := url.Parse(opt.TokenEndpoint); err == nil && (u.Scheme == "https" || u.Scheme == "http") &&
		validHost(u.Host) && u.RawQuery == "" && !strings.ContainsAny(u.Path, " ;,'\"") {
		extra = " " + u.Scheme + "://" + u.Host + u.EscapedPath()
	}
	shellCSP := func(r *http.Request) string { return shellCSPWith(r, extra) }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		strictHeaders(h)
		// A device page that opens a WebSocket reaches the server directly:
		// a service worker cannot intercept WebSockets. Say so instead of
		// answering with the shell page.
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "Porthole does not carry WebSockets opened by the device's page", http.StatusNotImplemented)
			return
		}
		if !getOrHead(w, r) {
			return
		}
		p := r.URL.Path
		switch {
		case p == "/favicon.ico":
			// The browser fetches it outside the worker's control.
			serveFile(w, r, "favicon.ico")
		case strings.HasPrefix(p, ShellPrefix):
			name := strings.TrimPrefix(p, ShellPrefix)
			if name == "" || strings.Contains(name, "/") || path.Ext(name) == ".html" {
				http.NotFound(w, r)
				return
			}
			if name == "sw.js" {
				// The worker lives under the prefix but controls the whole
				// origin, which the browser allows only with this header.
				h.Set("Service-Worker-Allowed", "/")
			}
			h.Set("Content-Security-Policy", shellCSP(r))
			serveFile(w, r, "session/"+name)
		default:
			// The shell answers top-level navigations only. A frame asking
			// the server for a path means the worker did not control it
			// (a hard reload of the frame, say); serving the shell there
			// would nest a second session client in the device frame.
			switch r.Header.Get("Sec-Fetch-Dest") {
			case "", "document":
			case "iframe", "frame":
				h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'")
				serveFile(w, r, "session/detached.html")
				return
			default:
				http.Error(w, "not available outside the session window", http.StatusNotFound)
				return
			}
			h.Set("Content-Security-Policy", shellCSP(r))
			serveFile(w, r, "session/shell.html")
		}
	})
}

// strictHeaders sets what every response of ours carries. no-store keeps
// the shell and its modules from outliving a deploy or a session in a cache.
func strictHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// shellCSPWith is the shell's policy: its own origin only (and the OAuth token
// endpoint, extraConnect, if any). connect-src names the
// signaling WebSocket's origin explicitly as well, for browsers that do not
// let 'self' match ws: and wss:. The frame (the device page) is same-origin;
// frame-ancestors 'none' keeps the shell itself from ever being framed.
func shellCSPWith(r *http.Request, extraConnect string) string {
	connect := "'self'"
	if validHost(r.Host) {
		scheme := "ws://"
		if r.TLS != nil {
			scheme = "wss://"
		}
		connect += " " + scheme + r.Host
	}
	connect += extraConnect
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src " + connect + "; frame-src 'self'; worker-src 'self'; object-src 'none'; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// validHost reports whether host is safe to repeat in a header: a DNS name
// or IP literal with an optional port, nothing that could end the directive.
func validHost(host string) bool {
	if host == "" || len(host) > 255 {
		return false
	}
	for _, c := range host {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.ContainsRune(".-:[]", c):
		default:
			return false
		}
	}
	return true
}

func getOrHead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// serveFile writes one embedded file, or 404 if name is empty or unknown.
func serveFile(w http.ResponseWriter, r *http.Request, name string) {
	if name == "" || !fs.ValidPath(name) {
		http.NotFound(w, r)
		return
	}
	b, err := files.ReadFile(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct, ok := contentTypes[path.Ext(name)]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ct)
	if r.Method == http.MethodHead {
		return
	}
	w.Write(b)
}
