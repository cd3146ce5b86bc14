// Package web holds everything the technician's browser runs, embedded into
// the signaling binary: the app UI on the app origin and the session shell on
// each per-session origin.
//
// The browser code is plain ES modules (see app/ and session/). The one
// build step is `make web`: npm installs the CSS foundation (Pico CSS) at
// the version pinned in package-lock.json and its dist file is copied into
// ui/vendor/ (git-ignored). ui/ holds what both windows share: the
// foundation, Porthole's own tokens and components on top of it
// (ui/porthole.css). A build without the step still compiles and serves
// everything but the foundation (MissingAssets names it, and signaling
// warns at start), so `go build ./...` and `go vet` work without Node.
//
// This package only serves the files, with the headers that make the
// session origin safe to host an untrusted device page:
//
//   - App serves the app UI on the app origin (signaling mounts it for every
//     path that is not an API path), the shared ui/ files under /ui/, and
//     the operator's branding (brand.go) at /brand.css, /brand.json and
//     /brand-logo.
//   - Session serves every request whose Host is a session host: the shell
//     page for any top-level navigation (so reloading any device URL brings the
//     shell back), the shell's own modules under ShellPrefix, the service
//     worker at ShellPrefix+"sw.js" with Service-Worker-Allowed: /, and
//     /favicon.ico. Requests for device content normally never reach it: the
//     service worker carries them over WebRTC to the agent.
//
// Neither handler needs configuration beyond the optional Brand: the only
// origin-dependent value, the WebSocket origin in the shell's CSP, comes
// from the request itself.
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

//go:embed app/*.html app/*.js app/*.css session/*.html session/*.js session/*.css favicon.ico ui
var files embed.FS

// UIPrefix is the path prefix of the shared ui/ files on the app origin
// (ShellPrefix+"ui/" on a session origin).
const UIPrefix = "/ui/"

// foundation lists the files `make web` copies from npm into ui/.
var foundation = []string{"ui/vendor/pico.min.css"}

// MissingAssets names the files of `make web` that this build lacks: the
// binary was built without the step, and the app is unstyled.
func MissingAssets() []string {
	var out []string
	for _, name := range foundation {
		if _, err := fs.Stat(files, name); err != nil {
			out = append(out, name)
		}
	}
	return out
}

// contentTypes are set explicitly: module scripts and service workers are
// refused by the browser unless served as JavaScript, and the platform's mime
// table differs between machines.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".ico":  "image/x-icon",
}

// AppOptions configure the app handler.
type AppOptions struct {
	// Brand is the operator's product name, logo and colours; nil is
	// Porthole's own.
	Brand *Brand
}

// App returns the handler for the app origin: the device list and the
// "Open" button that creates a session and opens its origin.
func App() http.Handler { return AppWith(AppOptions{}) }

// appCSP is the app's policy: its own origin only, no inline script or
// style (the branding is a stylesheet of its own, /brand.css).
const appCSP = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// AppWith is App with options.
func AppWith(opt AppOptions) http.Handler {
	brand := opt.Brand
	if brand == nil {
		brand = DefaultBrand()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !getOrHead(w, r) {
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", appCSP)
		strictHeaders(h)
		if brand.serve(w, r, r.URL.Path) {
			return
		}
		name := ""
		switch p := r.URL.Path; {
		case p == "/", p == "/index.html":
			name = "app/index.html"
		case p == "/favicon.ico":
			name = "favicon.ico"
		case strings.HasPrefix(p, UIPrefix):
			name = uiFile(strings.TrimPrefix(p, UIPrefix))
		default:
			if p := strings.TrimPrefix(p, "/"); !strings.Contains(p, "/") {
				name = "app/" + p
			}
		}
		serveFile(w, r, name)
	})
}

// uiFile maps a path under UIPrefix to an embedded ui/ file: one level of
// folder at most (vendor/), no dot files.
func uiFile(rest string) string {
	parts := strings.Split(rest, "/")
	if len(parts) > 2 {
		return ""
	}
	for _, p := range parts {
		if p == "" || strings.HasPrefix(p, ".") {
			return ""
		}
	}
	return "ui/" + rest
}

// SessionOptions configure the session handler.
type SessionOptions struct {
	// TokenEndpoint is the app origin's OAuth token endpoint
	// (https://app.example.com/oauth/token), the one cross-origin URL the
	// shell may fetch: it exchanges its authorization code there.
	TokenEndpoint string
	// Brand is the operator's branding, served to the shell as on the app
	// origin under ShellPrefix (brand.css, brand.json, brand-logo); nil is
	// Porthole's own.
	Brand *Brand
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
	brand := opt.Brand
	if brand == nil {
		brand = DefaultBrand()
	}
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
			// The shared foundation and the branding, as on the app origin.
			if rest, ok := strings.CutPrefix(name, "ui/"); ok {
				h.Set("Content-Security-Policy", shellCSP(r))
				serveFile(w, r, uiFile(rest))
				return
			}
			if brand.serve(w, r, "/"+name) {
				return
			}
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
