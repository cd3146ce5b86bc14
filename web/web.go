// Package web holds everything the technician's browser runs, embedded into
// the signaling binary: the app UI on the app origin and, for each session,
// the two origins of SECURITY.md ("Origins"):
//
//   - App serves the app UI on the app origin (signaling mounts it for every
//     path that is not an API path), the shared ui/ files under /ui/, and
//     the operator's branding (brand.go) at /brand.css, /brand.json and
//     /brand-logo.
//   - Shell serves a session's window origin, https://shell-<id>.<D>: the
//     shell page for any top-level navigation (so reloading brings the
//     session window back on the page it showed), its modules under
//     ShellPrefix, and the bar that popped-out device tabs frame. The shell
//     holds the session's secrets: it is never framed, never runs device
//     content, and cuts off any window that opens it (COOP).
//   - Device serves a session's device origin, https://<id>.<D>, where the
//     device's pages run: the service worker (ShellPrefix+"sw.js", scope /),
//     the relay frame the shell hides in itself, the page shim the worker
//     injects into device documents, the end-of-session page and notices.
//     Nothing it serves is secret: the device's page runs on this origin and
//     can read anything here. Device content itself never comes from this
//     handler: the service worker carries it over WebRTC.
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
// Every text of the session window is in one catalog, session/messages.js,
// which the modules import and from which messages.go renders
// session/*.html; the app's is app/messages.js. Both get their machinery
// (t, has, useCatalog, format) from one module, session/catalog.js, which
// the app origin serves at /session/catalog.js, where app/messages.js's
// import of ../session/catalog.js resolves in the browser as in the
// source tree.
//
// Neither session handler needs per-session configuration: the origin-dependent
// values in their policies come from the request's Host, which signaling
// has matched against its sessions domain before calling them.
package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// ShellPrefix is the path prefix of Porthole's own files on both session
// origins. The service worker never sends a path under it to the device.
const ShellPrefix = "/__t/"

// ShellHostPrefix is the first label's prefix of a session's shell host
// (proto.ShellHostPrefix).
const ShellHostPrefix = "shell-"

//go:embed app/*.html app/*.js app/*.css session/*.html session/*.js session/*.css session/page/*.js favicon.ico ui
var files embed.FS

// UIPrefix is the path prefix of the shared ui/ files on the app origin
// (ShellPrefix+"ui/" on a session's shell origin).
const UIPrefix = "/ui/"

// foundation lists the files `make web` copies from npm into ui/.
var foundation = []string{"ui/vendor/pico.min.css", "ui/vendor/novnc/core/rfb.js", "ui/vendor/xterm/xterm.mjs"}

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
	".mjs":  "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".ico":  "image/x-icon",
}

// Which of session/'s files each origin serves under ShellPrefix. The shell's
// modules are not served on the device origin, and the worker's and the
// relay's not on the shell origin; the few shared pure modules are on both.
var (
	shellAssets = set("shell.js", "signaling.js", "tunnel.js", "frames.js", "headers.js", "toolbar.js",
		"credentials.js", "recovery.js", "relayswitch.js", "pathreason.js", "protocol.js", "strictjson.js", "tokenstore.js", "shell.css", "bar.js", "bar.css",
		"wsport.js", "wstunnel.js", "replay.js", "screen.js", "tcpsocket.js", "messages.js", "catalog.js", "terminal.js", "xtermstyles.js", "shellflow.js", "rejoin.js", "smallbody.js")
	deviceAssets = set("headers.js", "frames.js", "pages.js", "inject.js", "protocol.js", "strictjson.js", "messages.js", "catalog.js", "relay.js", "notice.css")
)

// pageParts are the page shim's parts (session/page/), in the order
// /__t/page.js runs them: core first (the shim's namespace and its hint
// channel to the shell), start last (it runs the features the parts in
// between registered). Add a feature by adding its file here, before start.
// The shim is one classic script, not a module, because a module runs only
// after the document is parsed, after the page's own inline scripts: hooks
// such as a WebSocket shim must be in place before those run.
var pageParts = []string{"core.js", "location.js", "framebust.js", "wsclass.js", "websocket.js", "deviceurls.js", "offsite.js", "unstored.js", "bar.js", "start.js"}

// shimMessages are the keys of the session catalog (session/messages.js)
// the page shim shows; the bundle carries them as its TEXT object, since a
// classic script cannot import the catalog.
var shimMessages = []string{"title.session"}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
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

// appShared are the session window's modules the app origin serves too,
// at the path where the app's ../session/ imports resolve in the browser
// as in the source tree (where node --test finds them): the catalog
// machinery and xterm.js's styles under a policy without inline styles.
var appShared = map[string]string{
	"/session/catalog.js":     "session/catalog.js",
	"/session/xtermstyles.js": "session/xtermstyles.js",
}

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
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
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
		case appShared[p] != "":
			name = appShared[p]
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
	// The session window's viewers (vendor/novnc/, vendor/xterm/) are ES
	// modules in folders of their own, as their npm packages ship them.
	if len(parts) > 2 && (parts[0] != "vendor" || (parts[1] != "novnc" && parts[1] != "xterm") || len(parts) > 8) {
		return ""
	}
	for _, p := range parts {
		if p == "" || strings.HasPrefix(p, ".") {
			return ""
		}
	}
	return "ui/" + rest
}

// Options configure the session handlers.
type Options struct {
	// TokenEndpoint is the app origin's OAuth token endpoint
	// (https://app.example.com/oauth/token), the one cross-origin URL the
	// shell may fetch: it exchanges its authorization code there.
	TokenEndpoint string
	// AppOrigin is the app's origin, linked from the device origin's
	// notices ("open it from Porthole"). Empty links nowhere.
	AppOrigin string
	// Scheme is the scheme of session origins, "https" or "http"; empty
	// means the request's own (https when it came over TLS). Set it behind
	// a proxy that terminates TLS.
	Scheme string
	// Brand is the operator's branding, served to the session window as on
	// the app origin under ShellPrefix (brand.css, brand.json,
	// brand-logo); nil is Porthole's own.
	Brand *Brand
}

func (o Options) scheme(r *http.Request) string {
	switch {
	case o.Scheme != "":
		return o.Scheme
	case r.TLS != nil:
		return "https"
	}
	return "http"
}

// Shell returns the handler for session window origins
// (https://shell-<session>.<sessions-domain>).
func Shell(opt Options) http.Handler {
	extra := ""
	if u, err := url.Parse(opt.TokenEndpoint); err == nil && (u.Scheme == "https" || u.Scheme == "http") &&
		validHost(u.Host) && u.RawQuery == "" && !strings.ContainsAny(u.Path, " ;,'\"") {
		extra = " " + u.Scheme + "://" + u.Host + u.EscapedPath()
	}
	brand := opt.Brand
	if brand == nil {
		brand = DefaultBrand()
	}
	catalog := sessionCatalog()
	// The shell's page names its relay frame, on the request's device
	// origin, so the frame loads alongside the shell's own script.
	shellTmpl, barPage := sessionTemplate(catalog, "shell.html"), renderStatic(catalog, "bar.html")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		strictHeaders(h)
		devHost, ok := strings.CutPrefix(strings.ToLower(r.Host), ShellHostPrefix)
		if !ok || !validHost(r.Host) || devHost == "" {
			http.NotFound(w, r)
			return
		}
		scheme := opt.scheme(r)
		deviceOrigin := scheme + "://" + devHost
		if !getOrHead(w, r) {
			return
		}
		p := r.URL.Path
		switch {
		case p == "/favicon.ico":
			serveFile(w, r, "favicon.ico")
		case p == ShellPrefix+"bar.html":
			// The bar of popped-out device tabs: framed by the device
			// origin only, and holding nothing but what the shell
			// broadcasts to it (time left, path).
			h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "+
				"base-uri 'none'; form-action 'none'; frame-ancestors "+deviceOrigin)
			serveHTML(w, r, barPage)
		case strings.HasPrefix(p, ShellPrefix):
			name := strings.TrimPrefix(p, ShellPrefix)
			// The shared foundation and the branding, as on the app origin.
			if rest, ok := strings.CutPrefix(name, "ui/"); ok {
				h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
				serveFile(w, r, uiFile(rest))
				return
			}
			if brand.serve(w, r, "/"+name) {
				return
			}
			if !shellAssets[name] {
				http.NotFound(w, r)
				return
			}
			h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
			serveFile(w, r, "session/"+name)
		default:
			// Any top-level navigation gets the shell, which then shows
			// this path of the device in its frame. The shell is never
			// framed (frame-ancestors 'none' says so too) and never a
			// subresource.
			switch r.Header.Get("Sec-Fetch-Dest") {
			case "", "document":
			default:
				http.Error(w, "the session window is not available here", http.StatusNotFound)
				return
			}
			connect := "'self'"
			if scheme == "https" {
				connect += " wss://" + r.Host
			} else {
				connect += " ws://" + r.Host
			}
			// The shell redeems its relay ticket on the device origin itself
			// (shell.js redeemTicket): that one URL, nothing else of it.
			connect += " " + deviceOrigin + ShellPrefix + "relay.html"
			h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; "+
				"img-src 'self' data:; connect-src "+connect+extra+"; frame-src "+deviceOrigin+"; "+
				"worker-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
			// A window the device's page opens on this origin gets no
			// reference to anything here, nor this page to it.
			h.Set("Cross-Origin-Opener-Policy", "same-origin")
			var page bytes.Buffer
			if err := shellTmpl.Execute(&page, struct{ RelaySrc string }{deviceOrigin + ShellPrefix + "relay.html"}); err != nil {
				http.Error(w, "the session window is not available", http.StatusInternalServerError)
				return
			}
			serveHTML(w, r, page.Bytes())
		}
	})
}

// Device returns the handler for session device origins
// (https://<session>.<sessions-domain>).
func Device(opt Options) http.Handler {
	catalog := sessionCatalog()
	page := pageBundle(catalog)
	relayPage := renderStatic(catalog, "relay.html")
	// The end page offers a new session on the same device (againURL); the
	// detached page answers a page the worker did not carry.
	endedTmpl, detachedTmpl := sessionTemplate(catalog, "ended.html"), sessionTemplate(catalog, "detached.html")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		strictHeaders(h)
		if !validHost(r.Host) {
			http.NotFound(w, r)
			return
		}
		shellOrigin := opt.scheme(r) + "://" + ShellHostPrefix + strings.ToLower(r.Host)
		// A device page that opens a WebSocket reaches the server directly:
		// a service worker cannot intercept WebSockets.
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
		case p == ShellPrefix+"sw.js":
			// The worker lives under the prefix but controls the whole
			// origin, which the browser allows only with this header.
			h.Set("Service-Worker-Allowed", "/")
			h.Set("Content-Security-Policy", "default-src 'self'")
			serveFile(w, r, "session/sw.js")
		case p == ShellPrefix+"relay.html":
			// The device's page can reach the relay (parent.frames[i]) and
			// add elements to it. Its scripts and worker come from
			// ShellPrefix only, which signaling serves and the worker never
			// carries to the device — not 'self', which would run any script
			// of the device, through the worker, in the relay's name — and
			// no eval. It fetches one thing itself: the end page, whose
			// Clear-Site-Data wipes the origin when the session ends.
			own := opt.scheme(r) + "://" + strings.ToLower(r.Host) + ShellPrefix
			h.Set("Content-Security-Policy", "default-src 'none'; script-src "+own+"; worker-src "+own+"; connect-src "+own+"ended; "+
				"base-uri 'none'; form-action 'none'; frame-ancestors "+shellOrigin)
			serveHTML(w, r, relayPage)
		case p == ShellPrefix+"page.js":
			h.Set("Content-Type", contentTypes[".js"])
			if r.Method != http.MethodHead {
				w.Write(page)
			}
		case p == ShellPrefix+"ended":
			// Every device window is sent here when the session ends. The
			// origin's storage, worker and cache go with it; not "cookies",
			// which Chromium clears for the whole site (every session).
			h.Set("Clear-Site-Data", `"cache", "storage"`)
			h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; base-uri 'none'; "+
				"form-action 'none'; frame-ancestors 'self' "+shellOrigin)
			h.Set("Content-Type", contentTypes[".html"])
			h.Set("Cache-Control", "no-store")
			if r.Method != http.MethodHead {
				_ = endedTmpl.Execute(w, struct{ Again string }{againURL(opt.AppOrigin, r.Host)})
			}
		case strings.HasPrefix(p, ShellPrefix):
			name := strings.TrimPrefix(p, ShellPrefix)
			if !deviceAssets[name] {
				http.NotFound(w, r)
				return
			}
			h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
			serveFile(w, r, "session/"+name)
		default:
			// A request the worker did not carry: a navigation before the
			// worker controls the window, a bookmark, a hard reload. Never a
			// service worker script: the device's page must not replace
			// Porthole's worker with one of its own (keep it so when these
			// requests are carried to the device).
			switch r.Header.Get("Sec-Fetch-Dest") {
			case "serviceworker", "sharedworker", "worker":
				http.Error(w, "no workers of the device on a session origin", http.StatusNotFound)
				return
			case "", "document", "iframe", "frame":
				h.Set("Content-Type", contentTypes[".html"])
				h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; base-uri 'none'; "+
					"form-action 'none'; frame-ancestors 'self' "+shellOrigin)
				w.WriteHeader(http.StatusNotFound)
				if r.Method != http.MethodHead {
					_ = detachedTmpl.Execute(w, struct{ App string }{opt.AppOrigin})
				}
			default:
				http.Error(w, "not available outside the session window", http.StatusNotFound)
			}
		}
	})
}

// sessionLabel matches a session ID, the first label of a device origin's host.
var sessionLabel = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// againURL is where a window whose session ended goes on: the session's
// job in the app (app/#jobs/<session>), which opens a new session on the
// same device with one click. "" without an app origin or a session host.
func againURL(app, host string) string {
	label, _, _ := strings.Cut(strings.ToLower(host), ".")
	if app == "" || !sessionLabel.MatchString(label) {
		return ""
	}
	return app + "/#jobs/" + label
}

// pageBundle is /__t/page.js: pageParts in one strict-mode function, so the
// shim's names stay out of the page's global scope.
func pageBundle(catalog map[string]string) []byte {
	var b bytes.Buffer
	b.WriteString("// Porthole page shim (web/session/page/): a compatibility aid in the device page's own realm,\n" +
		"// not a security boundary. Everything it does, the device's page could do itself.\n" +
		"(function () {\n'use strict';\n")
	text := map[string]string{}
	for _, k := range shimMessages {
		v, ok := catalog[k]
		if !ok {
			panic("web: the page shim's message " + k + " is not in session/messages.js") // a build error
		}
		text[k] = v
	}
	j, err := json.Marshal(text)
	if err != nil {
		panic("web: " + err.Error())
	}
	b.WriteString("// --- text (session/messages.js)\nconst TEXT = Object.freeze(")
	b.Write(j)
	b.WriteString(");\n")
	for _, p := range pageParts {
		src, err := files.ReadFile("session/page/" + p)
		if err != nil {
			panic("web: page shim part " + p + ": " + err.Error()) // a build error: the list names embedded files
		}
		b.WriteString("// --- " + p + "\n")
		b.Write(src)
		b.WriteString("\n")
	}
	b.WriteString("})();\n")
	return b.Bytes()
}

// strictHeaders sets what every response of ours carries. no-store keeps
// our pages and modules from outliving a deploy or a session in a cache;
// Origin-Agent-Cluster keys the agent cluster by origin, so the shell and
// the device origin (same site) can never share one and document.domain
// is a no-op.
func strictHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Origin-Agent-Cluster", "?1")
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

// serveHTML writes a page rendered from session/*.html (messages.go).
func serveHTML(w http.ResponseWriter, r *http.Request, page []byte) {
	w.Header().Set("Content-Type", contentTypes[".html"])
	if r.Method != http.MethodHead {
		w.Write(page)
	}
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
