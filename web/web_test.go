package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const sessionHost = "abcdefgh12345678.localhost:8080"

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.Host = sessionHost
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
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestSessionServesShellForAnyNavigation(t *testing.T) {
	h := Session()
	for _, target := range []string{"/", "/settings?saved=1", "/admin/users/42", "/index.html", "/__tx"} {
		for _, dest := range []string{"", "document"} {
			res := get(t, h, http.MethodGet, target, map[string]string{"Sec-Fetch-Dest": dest})
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
			csp := res.Header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'self'", "connect-src 'self' ws://" + sessionHost, "frame-src 'self'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("%s: CSP %q lacks %q", target, csp, want)
				}
			}
			if strings.Contains(csp, "http") || strings.Contains(csp, "*") {
				t.Errorf("CSP names a remote origin: %q", csp)
			}
		}
	}
}

func TestSessionShellCSPUsesWSSOverTLS(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "https://"+sessionHost+"/", nil)
	rec := httptest.NewRecorder()
	Session().ServeHTTP(rec, req)
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "wss://"+sessionHost) {
		t.Fatalf("CSP %q", csp)
	}
}

func TestSessionShellCSPIgnoresOddHost(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Host = "x; script-src *"
	rec := httptest.NewRecorder()
	Session().ServeHTTP(rec, req)
	if csp := rec.Header().Get("Content-Security-Policy"); strings.Contains(csp, "script-src *") {
		t.Fatalf("host leaked into CSP: %q", csp)
	}
}

func TestSessionDoesNotServeShellToFramesOrSubresources(t *testing.T) {
	h := Session()
	res := get(t, h, http.MethodGet, "/settings", map[string]string{"Sec-Fetch-Dest": "iframe"})
	if b := body(t, res); res.StatusCode != http.StatusOK || strings.Contains(b, "shell.js") || !strings.Contains(b, "outside the Porthole session") {
		t.Fatalf("iframe: %d %.200s", res.StatusCode, b)
	}
	for _, dest := range []string{"script", "image", "empty", "style"} {
		res := get(t, h, http.MethodGet, "/app.js", map[string]string{"Sec-Fetch-Dest": dest})
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", dest, res.StatusCode)
		}
	}
	res = get(t, h, http.MethodGet, "/live", map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"})
	if res.StatusCode != http.StatusNotImplemented {
		t.Fatalf("websocket: status %d", res.StatusCode)
	}
	res = get(t, h, http.MethodPost, "/settings", nil)
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: status %d", res.StatusCode)
	}
}

func TestSessionServesWorkerWithScopeHeader(t *testing.T) {
	res := get(t, Session(), http.MethodGet, "/__t/sw.js", nil)
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

func TestSessionServesShellAssets(t *testing.T) {
	h := Session()
	for name, ct := range map[string]string{
		"shell.js": "text/javascript; charset=utf-8", "signaling.js": "text/javascript; charset=utf-8",
		"tunnel.js": "text/javascript; charset=utf-8", "frames.js": "text/javascript; charset=utf-8",
		"headers.js": "text/javascript; charset=utf-8", "toolbar.js": "text/javascript; charset=utf-8",
		"pages.js": "text/javascript; charset=utf-8", "shell.css": "text/css; charset=utf-8",
		"notice.css": "text/css; charset=utf-8",
	} {
		res := get(t, h, http.MethodGet, ShellPrefix+name, map[string]string{"Sec-Fetch-Dest": "script"})
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != ct {
			t.Errorf("%s: status %d, type %q", name, res.StatusCode, res.Header.Get("Content-Type"))
		}
		if res.Header.Get("Service-Worker-Allowed") != "" {
			t.Errorf("%s: Service-Worker-Allowed on a non-worker asset", name)
		}
		checkStrictHeaders(t, res)
	}
}

func TestSessionUnknownShellAssetsAreNotFound(t *testing.T) {
	h := Session()
	for _, target := range []string{"/__t/", "/__t/nope.js", "/__t/shell.html", "/__t/../web.go", "/__t/sub/shell.js", "/__t/frames.test.js", "/__t/web.go", "/__t/favicon.ico"} {
		res := get(t, h, http.MethodGet, target, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", target, res.StatusCode)
		}
		if strings.Contains(body(t, res), "shell.js") {
			t.Errorf("%s: served the shell", target)
		}
	}
}

func TestFaviconServedDirectly(t *testing.T) {
	for name, h := range map[string]http.Handler{"session": Session(), "app": App()} {
		res := get(t, h, http.MethodGet, "/favicon.ico", map[string]string{"Sec-Fetch-Dest": "image"})
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "image/x-icon" {
			t.Fatalf("%s: status %d, type %q", name, res.StatusCode, res.Header.Get("Content-Type"))
		}
		if b := body(t, res); !strings.HasPrefix(b, "\x00\x00\x01\x00") {
			t.Fatalf("%s: not an icon", name)
		}
	}
}

func TestHeadHasNoBody(t *testing.T) {
	res := get(t, Session(), http.MethodHead, "/", nil)
	if res.StatusCode != http.StatusOK || body(t, res) != "" || res.Header.Get("Content-Type") == "" {
		t.Fatalf("HEAD: %d", res.StatusCode)
	}
}

func TestAppServesPageAndAssets(t *testing.T) {
	h := App()
	res := get(t, h, http.MethodGet, "/", nil)
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
		res := get(t, h, http.MethodGet, target, nil)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != ct {
			t.Errorf("%s: %d %q", target, res.StatusCode, res.Header.Get("Content-Type"))
		}
	}
	for _, target := range []string{"/nope", "/sw.js", "/__t/shell.js", "/shell.js", "/app/app.js", "/web.go",
		"/ui/", "/ui/../web.go", "/ui/vendor/", "/ui/a/b/c.css", "/ui/.hidden", "/ui/vendor/../../web.go"} {
		if res := get(t, h, http.MethodGet, target, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", target, res.StatusCode)
		}
	}
	if res := get(t, h, http.MethodPost, "/", nil); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", res.StatusCode)
	}
}

// The JavaScript tests live beside the modules but must never be served.
func TestEmbeddedFilesHaveNoTests(t *testing.T) {
	entries, err := files.ReadDir("session")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".test.js") {
			t.Errorf("embedded test file %s", e.Name())
		}
	}
}

// The shared foundation is served on both origins, or named as missing
// when the binary was built without `make web`.
func TestFoundationServedOnBothOrigins(t *testing.T) {
	if len(MissingAssets()) > 0 {
		t.Skipf("built without make web: %v", MissingAssets())
	}
	for target, h := range map[string]http.Handler{"/ui/vendor/pico.min.css": App(), "/__t/ui/vendor/pico.min.css": Session(), "/__t/ui/porthole.css": Session()} {
		res := get(t, h, http.MethodGet, target, map[string]string{"Sec-Fetch-Dest": "style"})
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/css; charset=utf-8" {
			t.Errorf("%s: %d %q", target, res.StatusCode, res.Header.Get("Content-Type"))
		}
	}
	if b := body(t, get(t, App(), http.MethodGet, "/ui/vendor/pico.min.css", nil)); !strings.Contains(b, "Pico CSS") {
		t.Errorf("not Pico: %.100s", b)
	}
}
