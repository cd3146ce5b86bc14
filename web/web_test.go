package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

const (
	deviceHost   = "abcdefgh12345678.sessions.localhost:8080"
	shellHost    = "shell-abcdefgh12345678.sessions.localhost:8080"
	deviceOrigin = "http://" + deviceHost
	shellOrigin  = "http://" + shellHost
)

func get(t *testing.T, h http.Handler, host, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkStrictHeaders(t *testing.T, res *http.Response) {
	t.Helper()
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"Cache-Control":          "no-store",
		"Origin-Agent-Cluster":   "?1",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func shell() http.Handler { return Shell(Options{Scheme: "http"}) }
func device() http.Handler {
	return Device(Options{Scheme: "http", AppOrigin: "http://localhost:8080"})
}

func TestShellServesShellForAnyNavigation(t *testing.T) {
	h := shell()
	for _, target := range []string{"/", "/settings?saved=1", "/admin/users/42", "/index.html", "/__tx"} {
		for _, dest := range []string{"", "document"} {
			res := get(t, h, shellHost, http.MethodGet, target, map[string]string{"Sec-Fetch-Dest": dest})
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%s: status %d", target, res.StatusCode)
			}
			if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Fatalf("%s: content type %q", target, ct)
			}
			b := body(t, res)
			if !strings.Contains(b, `src="/__t/shell.js"`) {
				t.Fatalf("%s: not the shell: %.200s", target, b)
			}
			checkStrictHeaders(t, res)
			if got := res.Header.Get("Cross-Origin-Opener-Policy"); got != "same-origin" {
				t.Errorf("%s: COOP %q, want same-origin", target, got)
			}
			csp := res.Header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'self'", "connect-src 'self' ws://" + shellHost,
				"frame-src " + deviceOrigin + ";", "worker-src 'none'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("%s: CSP %q lacks %q", target, csp, want)
				}
			}
			// The only other origin the shell may reach is its own device
			// origin: in its frame, and the one URL that redeems the relay
			// ticket (shell.js redeemTicket).
			if strings.Count(csp, "http") != 2 || strings.Contains(csp, "*") || strings.Contains(csp, "frame-src 'self'") ||
				!strings.Contains(csp, " "+deviceOrigin+"/__t/relay.html;") {
				t.Errorf("CSP names more than the device origin and its ticket URL: %q", csp)
			}
		}
	}
}

func TestShellCSPUsesWSSOverTLS(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "https://"+shellHost+"/", nil)
	rec := httptest.NewRecorder()
	Shell(Options{}).ServeHTTP(rec, req)
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "wss://"+shellHost) || !strings.Contains(csp, "frame-src https://"+deviceHost) {
		t.Fatalf("CSP %q", csp)
	}
}

func TestShellCSPIgnoresOddHost(t *testing.T) {
	for _, h := range []http.Handler{shell(), device()} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = "shell-x; script-src *"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if csp := rec.Header().Get("Content-Security-Policy"); strings.Contains(csp, "script-src *") {
			t.Fatalf("host leaked into CSP: %q", csp)
		}
	}
}

func TestShellIsNeverFramedOrASubresource(t *testing.T) {
	h := shell()
	for _, dest := range []string{"iframe", "frame", "script", "image", "empty", "style"} {
		res := get(t, h, shellHost, http.MethodGet, "/settings", map[string]string{"Sec-Fetch-Dest": dest})
		if b := body(t, res); res.StatusCode != http.StatusNotFound || strings.Contains(b, "shell.js") {
			t.Errorf("%s: status %d %.100s, want 404 without the shell", dest, res.StatusCode, b)
		}
	}
	if res := get(t, h, shellHost, http.MethodPost, "/settings", nil); res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: status %d", res.StatusCode)
	}
	// A host that is not a shell host gets nothing.
	if res := get(t, h, deviceHost, http.MethodGet, "/", nil); res.StatusCode != http.StatusNotFound {
		t.Fatalf("device host on the shell handler: %d", res.StatusCode)
	}
}

func TestEachOriginServesOnlyItsOwnAssets(t *testing.T) {
	shellOnly := []string{"shell.js", "tokenstore.js", "signaling.js", "tunnel.js", "toolbar.js", "credentials.js", "recovery.js", "relayswitch.js", "pathreason.js", "shell.css", "bar.js", "bar.css"}
	deviceOnly := []string{"sw.js", "pages.js", "inject.js", "relay.js", "notice.css", "relay.html", "page.js", "ended"}
	both := []string{"headers.js", "frames.js", "protocol.js", "strictjson.js", "messages.js"}
	type tc struct {
		h    http.Handler
		host string
		ok   []string
		not  []string
	}
	for _, c := range []tc{
		{shell(), shellHost, append(append([]string{}, shellOnly...), both...), deviceOnly},
		{device(), deviceHost, append(append([]string{}, deviceOnly...), both...), shellOnly},
	} {
		for _, name := range c.ok {
			res := get(t, c.h, c.host, http.MethodGet, ShellPrefix+name, map[string]string{"Sec-Fetch-Dest": "script"})
			if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") == "" {
				t.Errorf("%s%s: status %d, type %q", c.host, name, res.StatusCode, res.Header.Get("Content-Type"))
			}
			if name != "sw.js" && res.Header.Get("Service-Worker-Allowed") != "" {
				t.Errorf("%s: Service-Worker-Allowed on a non-worker asset", name)
			}
			checkStrictHeaders(t, res)
		}
		for _, name := range c.not {
			if res := get(t, c.h, c.host, http.MethodGet, ShellPrefix+name, nil); res.StatusCode != http.StatusNotFound {
				t.Errorf("%s%s: status %d, want 404 (the other origin's)", c.host, name, res.StatusCode)
			}
		}
	}
}

func TestDeviceServesWorkerWithScopeHeader(t *testing.T) {
	res := get(t, device(), deviceHost, http.MethodGet, "/__t/sw.js", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if got := res.Header.Get("Service-Worker-Allowed"); got != "/" {
		t.Fatalf("Service-Worker-Allowed = %q", got)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}
	checkStrictHeaders(t, res)
	if b := body(t, res); !strings.Contains(b, "addEventListener('fetch'") {
		t.Fatalf("not the worker: %.200s", b)
	}
}

func TestFramePolicies(t *testing.T) {
	cases := []struct {
		h          http.Handler
		host, path string
		want       string // frame-ancestors
	}{
		{device(), deviceHost, "/__t/relay.html", "frame-ancestors " + shellOrigin},
		{device(), deviceHost, "/__t/relay.html", "script-src " + deviceOrigin + "/__t/"},
		{device(), deviceHost, "/__t/relay.html", "connect-src " + deviceOrigin + "/__t/ended"},
		{device(), deviceHost, "/__t/ended", "frame-ancestors 'self' " + shellOrigin},
		{device(), deviceHost, "/settings", "frame-ancestors 'self' " + shellOrigin},
		{shell(), shellHost, "/__t/bar.html", "frame-ancestors " + deviceOrigin},
	}
	for _, c := range cases {
		res := get(t, c.h, c.host, http.MethodGet, c.path, map[string]string{"Sec-Fetch-Dest": "iframe"})
		csp := res.Header.Get("Content-Security-Policy")
		if !strings.HasSuffix(csp, c.want) && !strings.Contains(csp, c.want+";") {
			t.Errorf("%s: CSP %q, want %q", c.path, csp, c.want)
		}
		if res.Header.Get("Cross-Origin-Opener-Policy") != "" {
			t.Errorf("%s: COOP on a framed page", c.path)
		}
	}
}

func TestDeviceEndedPageWipesTheOrigin(t *testing.T) {
	res := get(t, device(), deviceHost, http.MethodGet, "/__t/ended", map[string]string{"Sec-Fetch-Dest": "document"})
	page := body(t, res)
	if res.StatusCode != http.StatusOK || !strings.Contains(page, "Session ended") {
		t.Fatalf("status %d", res.StatusCode)
	}
	// Not a dead end: it offers a new session on the same device (the
	// session's job in the app, whose button opens one).
	if want := `<a class="again" id="again" href="http://localhost:8080/#jobs/abcdefgh12345678">Open a new session on this device</a>`; !strings.Contains(page, want) {
		t.Errorf("the end page lacks %s:\n%s", want, page)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q", ct)
	}
	// Not "cookies": Chromium clears those for the whole site, which is
	// every other session.
	if got := res.Header.Get("Clear-Site-Data"); got != `"cache", "storage"` {
		t.Fatalf("Clear-Site-Data %q", got)
	}
}

func TestAgainURL(t *testing.T) {
	for _, c := range []struct{ app, host, want string }{
		{"https://app.example.com", "abc123.sessions.example.net", "https://app.example.com/#jobs/abc123"},
		{"https://app.example.com", "ABC123.sessions.example.net:443", "https://app.example.com/#jobs/abc123"},
		{"", "abc123.sessions.example.net", ""},
		{"https://app.example.com", "a_b.sessions.example.net", ""},
		{"https://app.example.com", ".sessions.example.net", ""},
	} {
		if got := againURL(c.app, c.host); got != c.want {
			t.Errorf("againURL(%q, %q) = %q, want %q", c.app, c.host, got, c.want)
		}
	}
}

func TestDeviceOriginNeverServesTheShell(t *testing.T) {
	h := device()
	for _, dest := range []string{"", "document", "iframe"} {
		res := get(t, h, deviceHost, http.MethodGet, "/settings", map[string]string{"Sec-Fetch-Dest": dest})
		b := body(t, res)
		if res.StatusCode != http.StatusNotFound || strings.Contains(b, "shell.js") || !strings.Contains(b, "belongs to a Porthole session window") ||
			!strings.Contains(b, `href="http://localhost:8080/"`) {
			t.Fatalf("%q: %d %.300s", dest, res.StatusCode, b)
		}
	}
	for _, dest := range []string{"script", "image", "empty", "style", "serviceworker", "worker", "sharedworker"} {
		if res := get(t, h, deviceHost, http.MethodGet, "/app.js", map[string]string{"Sec-Fetch-Dest": dest}); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", dest, res.StatusCode)
		}
	}
	if res := get(t, h, deviceHost, http.MethodGet, "/live", map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"}); res.StatusCode != http.StatusNotImplemented {
		t.Fatalf("websocket: status %d", res.StatusCode)
	}
	if res := get(t, h, deviceHost, http.MethodPost, "/settings", nil); res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: status %d", res.StatusCode)
	}
}

func TestPageShimIsOneClassicScript(t *testing.T) {
	res := get(t, device(), deviceHost, http.MethodGet, "/__t/page.js", nil)
	b := body(t, res)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("status %d type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if !strings.HasPrefix(b, "//") || !strings.Contains(b, "(function () {\n'use strict';") || !strings.HasSuffix(b, "})();\n") {
		t.Fatalf("not one strict function: %.200s … %.50s", b, b[len(b)-50:])
	}
	if strings.Contains(b, "import ") || strings.Contains(b, "export ") {
		t.Fatal("the shim is a classic script: no import or export")
	}
	last := -1
	for _, p := range pageParts {
		i := strings.Index(b, "// --- "+p+"\n")
		if i < 0 || i < last {
			t.Fatalf("part %s missing or out of order", p)
		}
		last = i
	}
}

func TestUnknownAssetsAreNotFound(t *testing.T) {
	for _, c := range []struct {
		h    http.Handler
		host string
	}{{shell(), shellHost}, {device(), deviceHost}} {
		for _, target := range []string{"/__t/", "/__t/nope.js", "/__t/shell.html", "/__t/../web.go", "/__t/sub/shell.js", "/__t/page/core.js",
			"/__t/frames.test.js", "/__t/web.go", "/__t/favicon.ico", "/__t/detached.html"} {
			res := get(t, c.h, c.host, http.MethodGet, target, nil)
			if res.StatusCode != http.StatusNotFound {
				t.Errorf("%s%s: status %d, want 404", c.host, target, res.StatusCode)
			}
			if strings.Contains(body(t, res), "shell.js") {
				t.Errorf("%s: served the shell", target)
			}
		}
	}
}

func TestFaviconServedDirectly(t *testing.T) {
	for name, c := range map[string]struct {
		h    http.Handler
		host string
	}{"shell": {shell(), shellHost}, "device": {device(), deviceHost}, "app": {App(), "localhost:8080"}} {
		res := get(t, c.h, c.host, http.MethodGet, "/favicon.ico", map[string]string{"Sec-Fetch-Dest": "image"})
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "image/x-icon" {
			t.Fatalf("%s: status %d, type %q", name, res.StatusCode, res.Header.Get("Content-Type"))
		}
		if b := body(t, res); !strings.HasPrefix(b, "\x00\x00\x01\x00") {
			t.Fatalf("%s: not an icon", name)
		}
	}
}

func TestHeadHasNoBody(t *testing.T) {
	res := get(t, shell(), shellHost, http.MethodHead, "/", nil)
	if res.StatusCode != http.StatusOK || body(t, res) != "" || res.Header.Get("Content-Type") == "" {
		t.Fatalf("HEAD: %d", res.StatusCode)
	}
	res = get(t, device(), deviceHost, http.MethodHead, "/__t/page.js", nil)
	if res.StatusCode != http.StatusOK || body(t, res) != "" {
		t.Fatalf("HEAD page.js: %d", res.StatusCode)
	}
}

func TestAppServesPageAndAssets(t *testing.T) {
	h := App()
	res := get(t, h, "localhost:8080", http.MethodGet, "/", nil)
	if b := body(t, res); res.StatusCode != http.StatusOK || !strings.Contains(b, `src="/app.js"`) {
		t.Fatalf("index: %d %.200s", res.StatusCode, b)
	}
	checkStrictHeaders(t, res)
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for target, ct := range map[string]string{"/app.js": "text/javascript; charset=utf-8", "/app.css": "text/css; charset=utf-8",
		"/messages.js": "text/javascript; charset=utf-8", "/ui/porthole.css": "text/css; charset=utf-8"} {
		res := get(t, h, "localhost:8080", http.MethodGet, target, nil)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != ct {
			t.Errorf("%s: %d %q", target, res.StatusCode, res.Header.Get("Content-Type"))
		}
	}
	for _, target := range []string{"/nope", "/sw.js", "/__t/shell.js", "/shell.js", "/app/app.js", "/web.go",
		"/ui/", "/ui/../web.go", "/ui/vendor/", "/ui/a/b/c.css", "/ui/.hidden", "/ui/vendor/../../web.go"} {
		if res := get(t, h, "localhost:8080", http.MethodGet, target, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", target, res.StatusCode)
		}
	}
	if res := get(t, h, "localhost:8080", http.MethodPost, "/", nil); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", res.StatusCode)
	}
}

// The JavaScript tests live beside the modules but must never be served.
func TestEmbeddedFilesHaveNoTests(t *testing.T) {
	for _, dir := range []string{"session", "session/page"} {
		entries, err := files.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".test.js") {
				t.Errorf("embedded test file %s/%s", dir, e.Name())
			}
		}
	}
}

// The shared foundation is served on both origins, or named as missing
// when the binary was built without `make web`.
func TestFoundationServedOnBothOrigins(t *testing.T) {
	if len(MissingAssets()) > 0 {
		t.Skipf("built without make web: %v", MissingAssets())
	}
	for target, h := range map[string]http.Handler{"/ui/vendor/pico.min.css": App(), "/__t/ui/vendor/pico.min.css": shell(), "/__t/ui/porthole.css": shell()} {
		host := "localhost:8080"
		if strings.HasPrefix(target, ShellPrefix) {
			host = shellHost
		}
		res := get(t, h, host, http.MethodGet, target, map[string]string{"Sec-Fetch-Dest": "style"})
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/css; charset=utf-8" {
			t.Errorf("%s: %d %q", target, res.StatusCode, res.Header.Get("Content-Type"))
		}
	}
	if b := body(t, get(t, App(), "localhost:8080", http.MethodGet, "/ui/vendor/pico.min.css", nil)); !strings.Contains(b, "Pico CSS") {
		t.Errorf("not Pico: %.100s", b)
	}
}

// TestEveryImportIsServedOnItsOrigin follows each origin's module graph from
// its entry points: a module one origin serves that imports a file the
// origin does not serve fails to load in the browser (the shell stays on
// "Loading…"), which no unit test of the module itself sees.
func TestEveryImportIsServedOnItsOrigin(t *testing.T) {
	// Relative imports, resolved against the importing module's path as
	// the browser does (path.Join stops ".." at the root, as URLs do).
	importRe := regexp.MustCompile(`(?m)^\s*import\s[^'"]*['"](\.\.?/[^'"]+)['"]`)
	for _, c := range []struct {
		h       http.Handler
		host    string
		entries []string
	}{
		{shell(), shellHost, []string{ShellPrefix + "shell.js", ShellPrefix + "bar.js"}},
		{device(), deviceHost, []string{ShellPrefix + "sw.js", ShellPrefix + "relay.js"}},
		{App(), "localhost:8080", []string{"/app.js"}},
	} {
		seen := map[string]bool{}
		queue := append([]string{}, c.entries...)
		for len(queue) > 0 {
			name := queue[0]
			queue = queue[1:]
			if seen[name] {
				continue
			}
			seen[name] = true
			res := get(t, c.h, c.host, http.MethodGet, name, map[string]string{"Sec-Fetch-Dest": "script"})
			if res.StatusCode != http.StatusOK {
				t.Errorf("%s: %s is imported but answers %d", c.host, name, res.StatusCode)
				continue
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
				t.Errorf("%s: %s is served as %q, not JavaScript", c.host, name, ct)
			}
			for _, m := range importRe.FindAllStringSubmatch(body(t, res), -1) {
				queue = append(queue, path.Join(path.Dir(name), m[1]))
			}
		}
		if len(seen) <= len(c.entries) {
			t.Errorf("%s: found no imports from %v; the pattern no longer matches the modules", c.host, c.entries)
		}
	}
}
