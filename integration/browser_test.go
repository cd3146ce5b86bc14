package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/agent/deviceproxy"
	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// The technician's browser, for real: headless Chromium opens a session
// origin served by the real porthole-signaling, its shell connects to the
// real porthole-agent over WebRTC, and the demo device's page runs in the
// shell's frame through the service worker and the tunnel.

const chromiumPath = "/usr/bin/chromium"

// brWaitTimeout bounds every wait for the page.
const brWaitTimeout = 30 * time.Second

// brBrowser starts headless Chromium with the flags of NOTES-browser.md
// and a fresh profile; it stops when the test ends.
func brBrowser(t testing.TB) context.Context {
	t.Helper()
	_, err := os.Stat(chromiumPath)
	testenv.Require(t, "Chromium at "+chromiumPath, err == nil)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		acancel()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// brSession creates a session on the demo device, as the app's Open
// button does.
func brSession(t testing.TB, s *stack.Stack) *proto.SessionInfo {
	t.Helper()
	api := &sigclient.API{Base: s.SignalingURL, Token: s.TechToken}
	info, err := api.CreateSession(context.Background(), stack.DeviceID)
	if err != nil || info.Origin == "" {
		t.Fatalf("create session: %+v, %v", info, err)
	}
	return info
}

// brFrame wraps a JavaScript expression so that it runs in the shell with
// d and w bound to the device frame's document and window (null while the
// frame has no same-origin document).
func brFrame(expr string) string {
	return `(() => { const f = document.querySelector('iframe.device'); if (!f || !f.contentDocument) return null; ` +
		`const d = f.contentDocument, w = f.contentWindow; return (` + expr + `); })()`
}

// brEval evaluates expr (awaiting a promise) and fails the test on error.
func brEval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %.120s: %v", expr, err)
	}
	return v
}

// brWait polls expr until it is truthy, across navigations and reloads,
// for at most brWaitTimeout.
func brWait(t testing.TB, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(brWaitTimeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+expr+`)`))
		if err == nil && ok {
			return
		}
		lastErr = err
		<-tick.C
	}
	state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 300) + ' | frame: ' + `+
		`(document.querySelector('iframe.device')?.contentDocument?.body?.innerText || '').slice(0, 500)`))
	t.Fatalf("waiting for %s: not within %s (last error %v); page: %s", what, brWaitTimeout, lastErr, state)
}

// brShot writes a screenshot of the tab to dir/name.png.
func brShot(t testing.TB, ctx context.Context, dir, name string) string {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
	}
	return p
}

// brOpen opens info's shell in the tab and waits for the device's page.
func brOpen(t testing.TB, ctx context.Context, info *proto.SessionInfo, path string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(info.Origin+path+"#token="+info.Token)); err != nil {
		t.Fatalf("open the session: %v", err)
	}
	brWait(t, ctx, "the device's page in the frame", brFrame(`d.readyState === 'complete' && d.querySelector('footer') && d.body.innerText.includes('Porthole LaserJet 4000')`))
}

// brNavigate makes the device frame go to path and waits until cond holds
// there.
func brNavigate(t testing.TB, ctx context.Context, path, cond string) {
	t.Helper()
	brEval[bool](t, ctx, brFrame(fmt.Sprintf(`(w.location.href = %q, true)`, path)))
	brWait(t, ctx, path, brFrame(fmt.Sprintf(`w.location.pathname + w.location.search === %q && d.readyState === 'complete' && (%s)`, path, cond)))
}

type agentHeap struct {
	HeapInuse  uint64 `json:"heapInuse"`
	Goroutines int    `json:"goroutines"`
}

func readAgentHeap(t testing.TB, debugURL string) agentHeap {
	t.Helper()
	resp, err := http.Get(debugURL + "/debug/heap")
	if err != nil {
		t.Fatalf("agent heap: %v", err)
	}
	defer resp.Body.Close()
	var h agentHeap
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("agent heap: %v", err)
	}
	return h
}

// TestBrowser drives the demo device's page in the shell the way a
// technician does, and tries to break out of the session the way a
// malicious device page would. One stack and one browser serve the steps,
// in order; each step leaves the frame on a page of the device.
func TestBrowser(t *testing.T) {
	_, err := os.Stat(chromiumPath)
	testenv.Require(t, "Chromium at "+chromiumPath, err == nil)
	// The device checks Origin on its forms, as many do against CSRF: the
	// agent must present the device's own origin.
	s := stack.Start(t, stack.Options{
		AgentArgs:  []string{"--debug-addr", "127.0.0.1:0"},
		DeviceArgs: []string{"--strict-origin"},
	})
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := s.Procs["porthole-agent"].WaitLine(wctx, regexp.MustCompile(`debug server listening on (http://\S+)`))
	if err != nil {
		t.Fatal(err)
	}
	debugURL := m[1]
	art := testenv.ArtifactsDir(t)
	ctx := brBrowser(t)
	info := brSession(t, s)
	start := time.Now()
	brOpen(t, ctx, info, "/")
	t.Logf("session %s: the device's page rendered %s after opening the link (cold browser)", info.Session, time.Since(start).Round(time.Millisecond))

	t.Run("renders", func(t *testing.T) {
		brWait(t, ctx, "the toolbar's path", `/direct|relayed/.test(document.querySelector('.toolbar .path')?.textContent || '')`)
		tb := brEval[string](t, ctx, `document.querySelector('.toolbar').innerText`)
		if !strings.Contains(tb, "Demo printer") && !strings.Contains(tb, stack.DeviceID) || !strings.Contains(tb, "End session") {
			t.Errorf("toolbar %q: want the device and End session", tb)
		}
		if top := brEval[string](t, ctx, `location.origin`); top != info.Origin {
			t.Errorf("the shell is on %s, want the session origin %s", top, info.Origin)
		}
		brShot(t, ctx, art, "status")
	})

	t.Run("image", func(t *testing.T) {
		brWait(t, ctx, "the logo", brFrame(`[...d.images].some((i) => i.src.endsWith('/logo.png') && i.complete && i.naturalWidth > 0)`))
	})

	t.Run("fetch", func(t *testing.T) {
		brWait(t, ctx, "#live-status filled by fetch()", brFrame(`d.getElementById('live-status')?.dataset.loaded === '1'`))
		if got := brEval[string](t, ctx, brFrame(`d.getElementById('live-status').dataset.serial`)); got != "PHL4K-0001-DEMO" {
			t.Errorf("serial from /api/status: %q", got)
		}
	})

	t.Run("link", func(t *testing.T) {
		brEval[bool](t, ctx, brFrame(`(d.querySelector('nav a[href="/supplies"]').click(), true)`))
		brWait(t, ctx, "the supplies page", brFrame(`w.location.pathname === '/supplies' && d.querySelector('h1')?.textContent === 'Supplies'`))
		brWait(t, ctx, "the toolbar's location", `document.querySelector('.toolbar .where').textContent === '/supplies'`)
	})

	t.Run("form", func(t *testing.T) {
		brNavigate(t, ctx, "/settings", `d.querySelector('form')`)
		brEval[bool](t, ctx, brFrame(`(() => { d.getElementById('location').value = 'Floor 3, room 301'; d.querySelector('form button[type=submit]').click(); return true; })()`))
		brWait(t, ctx, "the saved settings", brFrame(`w.location.search === '?saved=1' && d.getElementById('saved') && d.querySelector('[data-field=location]')?.textContent === 'Floor 3, room 301'`))
	})

	t.Run("login", func(t *testing.T) {
		brNavigate(t, ctx, "/login", `d.getElementById('password')`)
		brEval[bool](t, ctx, brFrame(`(() => { d.getElementById('username').value = 'admin'; d.getElementById('password').value = 'admin'; d.querySelector('form button[type=submit]').click(); return true; })()`))
		brWait(t, ctx, "the admin page after the redirect", brFrame(`w.location.pathname === '/admin' && d.getElementById('welcome')?.textContent === 'Welcome, admin'`))
		// The HttpOnly session cookie stays in the agent's jar; the script-
		// visible one is mirrored into the session origin's store.
		brWait(t, ctx, "the mirrored ui_lang cookie", brFrame(`d.cookie.includes('ui_lang=en')`))
		if c := brEval[string](t, ctx, brFrame(`d.cookie`)); strings.Contains(c, "sid=") {
			t.Errorf("the HttpOnly device cookie reached the browser: %q", c)
		}
		echo := brEval[string](t, ctx, brFrame(`w.fetch('/echo').then((r) => r.text())`))
		if !strings.Contains(echo, "sid=") || !strings.Contains(echo, "ui_lang=en") {
			t.Errorf("the device did not get both cookies back: %.600s", echo)
		}
		brShot(t, ctx, art, "admin")
	})

	t.Run("download", func(t *testing.T) {
		const size = 20 << 20
		type result struct {
			Bytes    int     `json:"bytes"`
			Ms       float64 `json:"ms"`
			Got      string  `json:"got"`
			Want     string  `json:"want"`
			Encoding string  `json:"encoding"`
		}
		r := brEval[result](t, ctx, brFrame(fmt.Sprintf(`(async () => {
			const t0 = performance.now();
			const res = await w.fetch('/firmware.bin?size=%[1]d');
			const buf = await res.arrayBuffer();
			const ms = performance.now() - t0;
			const sum = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
			const got = [...sum].map((b) => b.toString(16).padStart(2, '0')).join('');
			const want = (await w.fetch('/firmware.sha256?size=%[1]d').then((r) => r.text())).trim();
			return {bytes: buf.byteLength, ms, got, want, encoding: res.headers.get('content-type') || ''};
		})()`, size)))
		if r.Bytes != size || r.Got != r.Want {
			t.Fatalf("20 MiB download: %d bytes, sha256 %s, device says %s", r.Bytes, r.Got, r.Want)
		}
		t.Logf("download: %d bytes byte-exact in %.0f ms (%.1f MB/s in Chromium)", r.Bytes, r.Ms, float64(r.Bytes)/r.Ms/1e3)
	})

	t.Run("upload", func(t *testing.T) {
		const size = 10 << 20
		type result struct {
			Ms    float64 `json:"ms"`
			Sent  string  `json:"sent"`
			Reply string  `json:"reply"`
		}
		r := brEval[result](t, ctx, brFrame(fmt.Sprintf(`(async () => {
			const body = new Uint8Array(%d);
			for (let o = 0; o < body.length; o += 65536) crypto.getRandomValues(body.subarray(o, o + 65536));
			const sum = new Uint8Array(await crypto.subtle.digest('SHA-256', body));
			const sent = [...sum].map((b) => b.toString(16).padStart(2, '0')).join('');
			const t0 = performance.now();
			const reply = await w.fetch('/upload', {method: 'POST', body, headers: {'Content-Type': 'application/octet-stream'}}).then((r) => r.text());
			return {ms: performance.now() - t0, sent, reply};
		})()`, size)))
		var up struct {
			Bytes  int64  `json:"bytes"`
			SHA256 string `json:"sha256"`
		}
		if err := json.Unmarshal([]byte(r.Reply), &up); err != nil || up.Bytes != size || up.SHA256 != r.Sent {
			t.Fatalf("10 MiB upload: device answered %.300s (err %v), page sent sha256 %s", r.Reply, err, r.Sent)
		}
		t.Logf("upload: %d bytes byte-exact in %.0f ms (%.1f MB/s in Chromium)", up.Bytes, r.Ms, float64(up.Bytes)/r.Ms/1e3)
	})

	t.Run("basic auth", func(t *testing.T) {
		brEval[bool](t, ctx, brFrame(`(w.location.href = '/basic/', true)`))
		brWait(t, ctx, "the shell's credentials dialog", `document.querySelector('dialog.credentials[open]')`)
		if txt := brEval[string](t, ctx, `document.querySelector('dialog.credentials').innerText`); !strings.Contains(txt, "Porthole Service Menu") {
			t.Errorf("dialog does not name the realm: %q", txt)
		}
		brShot(t, ctx, art, "basic-dialog")
		brEval[bool](t, ctx, `(() => { const d = document.querySelector('dialog.credentials'); d.querySelector('[name=username]').value = 'service'; d.querySelector('[name=password]').value = 'service'; d.querySelector('button[type=submit]').click(); return true; })()`)
		brWait(t, ctx, "the service menu", brFrame(`w.location.pathname === '/basic/' && d.querySelector('h1')?.textContent === 'Service Menu'`))
		if brEval[bool](t, ctx, `!!document.querySelector('dialog.credentials')`) {
			t.Error("the dialog is still there")
		}
		// Asked once per session: the agent applies them from now on.
		brNavigate(t, ctx, "/basic/diag", `d.querySelector('h1')?.textContent === 'Service Menu'`)
		brShot(t, ctx, art, "basic")
	})

	t.Run("gzip", func(t *testing.T) {
		brNavigate(t, ctx, "/gzip", `d.querySelector('h1')?.textContent === 'Event Log' && d.querySelectorAll('tr').length > 100`)
	})

	t.Run("x-frame-options", func(t *testing.T) {
		brNavigate(t, ctx, "/xfo", `d.querySelector('h1')?.textContent === 'Security Notice'`)
		if top := brEval[string](t, ctx, `location.origin + ' ' + !!document.querySelector('.toolbar')`); top != info.Origin+" true" {
			t.Errorf("frame busting moved the shell: %s", top)
		}
		brShot(t, ctx, art, "xfo")
	})

	t.Run("websocket", func(t *testing.T) {
		brNavigate(t, ctx, "/websocket", `d.getElementById('ws')`)
		brWait(t, ctx, "the toolbar's WebSocket notice", `(document.querySelector('.toolbar .notice')?.textContent || '').includes('WebSocket')`)
		brWait(t, ctx, "the socket's failure", brFrame(`/error|closed|failed/.test(d.getElementById('ws').textContent)`))
		t.Logf("toolbar: %q; page: %q", brEval[string](t, ctx, `document.querySelector('.toolbar .notice').textContent`),
			brEval[string](t, ctx, brFrame(`d.getElementById('ws').textContent`)))
		brShot(t, ctx, art, "websocket")
		brEval[bool](t, ctx, `(document.querySelector('.toolbar .notice').textContent = '', true)`)
	})

	t.Run("5000 requests, flat heap", func(t *testing.T) {
		brNavigate(t, ctx, "/supplies", `d.querySelector('h1')`)
		burst := func(n int) float64 {
			type result struct {
				Fails int     `json:"fails"`
				Ms    float64 `json:"ms"`
			}
			r := brEval[result](t, ctx, brFrame(fmt.Sprintf(`(async () => {
				let left = %d, fails = 0;
				const one = async () => {
					while (left-- > 0) {
						const r = await w.fetch('/api/status', {cache: 'no-store'});
						if (!r.ok) fails++;
						await r.arrayBuffer();
					}
				};
				const t0 = performance.now();
				await Promise.all(Array.from({length: 8}, one));
				return {fails, ms: performance.now() - t0};
			})()`, n)))
			if r.Fails != 0 {
				t.Fatalf("%d of %d requests failed", r.Fails, n)
			}
			return r.Ms
		}
		burst(500)
		h500 := readAgentHeap(t, debugURL)
		ms := burst(4500)
		h5000 := readAgentHeap(t, debugURL)
		growth := int64(h5000.HeapInuse) - int64(h500.HeapInuse)
		t.Logf("agent heap in use after GC: %.2f MiB at 500 requests, %.2f MiB at 5,000 (%+.0f KiB); goroutines %d → %d; 4,500 requests in %.1f s (%.1f ms each, 8 at a time)",
			float64(h500.HeapInuse)/(1<<20), float64(h5000.HeapInuse)/(1<<20), float64(growth)/1024,
			h500.Goroutines, h5000.Goroutines, ms/1000, ms/4500)
		// pion keeps every closed channel (~3.5 KB each): a channel per
		// request would add ~15 MB here. Allow noise, not that.
		if growth > 2<<20 {
			t.Errorf("agent heap grew %d KiB over 4,500 requests", growth/1024)
		}
		if h5000.Goroutines > h500.Goroutines+8 {
			t.Errorf("agent goroutines grew from %d to %d", h500.Goroutines, h5000.Goroutines)
		}
	})

	t.Run("malicious device page", func(t *testing.T) {
		// A second session in a second tab: the page of the first must not
		// reach it.
		info2 := brSession(t, s)
		ctx2, cancel2 := chromedp.NewContext(ctx)
		defer cancel2()
		brOpen(t, ctx2, info2, "/")

		api := s.AppURL + "/v1/devices"
		path := fmt.Sprintf("/evil?api=%s&other=%s", urlQueryEscape(api), urlQueryEscape(info2.Origin))
		brEval[bool](t, ctx, brFrame(fmt.Sprintf(`(w.location.href = %q, true)`, path)))
		brWait(t, ctx, "the evil page's attempts", brFrame(`w.location.pathname === '/evil' && w.__evil && w.__evil.done`))
		type violation struct {
			Directive string `json:"directive"`
			Blocked   string `json:"blocked"`
		}
		type attempt struct {
			OK    bool   `json:"ok"`
			Value string `json:"value"`
			Error string `json:"error"`
		}
		type report struct {
			Violations []violation        `json:"violations"`
			Attempts   map[string]attempt `json:"attempts"`
		}
		raw := brEval[string](t, ctx, brFrame(`JSON.stringify(w.__evil, null, 2)`))
		var r report
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(art, "evil.json"), []byte(raw), 0o644)
		t.Logf("what the malicious page saw:\n%s", raw)
		blockedBy := func(directive, urlPrefix string) bool {
			return slices.ContainsFunc(r.Violations, func(v violation) bool {
				return v.Directive == directive && strings.HasPrefix(v.Blocked, urlPrefix)
			})
		}
		// 1. The app's API: refused by connect-src before any request.
		if a := r.Attempts["appAPI"]; a.OK || !blockedBy("connect-src", api) {
			t.Errorf("app API: %+v; want a failed fetch and a connect-src violation for %s", a, api)
		}
		// And the API itself grants no CORS to a session origin.
		req, _ := http.NewRequest(http.MethodGet, s.SignalingURL+"/v1/devices", nil)
		req.Header.Set("Origin", info.Origin)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
				t.Errorf("the app API answers a session origin with Access-Control-Allow-Origin %q", v)
			}
		}
		// 2. Another session's origin, by fetch and by frame.
		if a := r.Attempts["otherSessionFetch"]; a.OK || !blockedBy("connect-src", info2.Origin) {
			t.Errorf("other session by fetch: %+v; want a failed fetch and a connect-src violation", a)
		}
		if a := r.Attempts["otherSessionFrame"]; a.OK && a.Value != "" || !blockedBy("frame-src", info2.Origin) {
			t.Errorf("other session by frame: %+v; want nothing read and a frame-src violation", a)
		}
		// 3. A form posted off the device.
		if !blockedBy("form-action", "http://example.invalid") {
			t.Errorf("form post to another origin: no form-action violation (attempt %+v)", r.Attempts["formPost"])
		}
		// 4. A cookie tossed at the parent domain reaches neither session's
		// device.
		t.Logf("parent-domain cookie: %+v", r.Attempts["parentCookie"])
		for i, c := range []context.Context{ctx, ctx2} {
			echo := brEval[string](t, c, brFrame(`w.fetch('/echo').then((r) => r.text())`))
			if strings.Contains(echo, "tossed") {
				t.Errorf("session %d: the device received the tossed cookie: %.400s", i+1, echo)
			}
		}
		// 5. The top window stays the shell.
		if a := r.Attempts["topNavigation"]; a.OK {
			t.Errorf("top navigation: %+v", a)
		}
		if top := brEval[string](t, ctx, `location.origin`); top != info.Origin {
			t.Errorf("the shell was navigated to %s", top)
		}
		brShot(t, ctx, art, "evil")
		// The other session still works.
		if got := brEval[string](t, ctx2, brFrame(`w.fetch('/api/status').then((r) => r.status + '')`)); got != "200" {
			t.Errorf("second session after the attack: %s", got)
		}
	})

	t.Run("reload recovers", func(t *testing.T) {
		brNavigate(t, ctx, "/settings", `d.querySelector('form')`)
		if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
		brWait(t, ctx, "the settings page after the reload", brFrame(`w.location.pathname === '/settings' && d.readyState === 'complete' && d.querySelector('[data-field=location]')?.textContent === 'Floor 3, room 301'`))
		// Still signed in: the jar belongs to the session, not the peer
		// connection the reload replaced.
		brNavigate(t, ctx, "/admin", `d.getElementById('welcome')?.textContent === 'Welcome, admin'`)
	})

	t.Run("end session", func(t *testing.T) {
		brEval[bool](t, ctx, `(document.querySelector('.toolbar .end').click(), true)`)
		brWait(t, ctx, "the ended page", `document.querySelector('.ended') && document.body.innerText.includes('Session ended')`)
		brShot(t, ctx, art, "ended")
		// The device cannot be reached from the origin any more.
		brEval[bool](t, ctx, `(() => { const f = document.createElement('iframe'); f.className = 'device'; f.src = '/'; document.getElementById('stage').append(f); return true; })()`)
		brWait(t, ctx, "the worker's ended page", brFrame(`d.body && d.body.innerText.includes('Session ended')`))
	})
	t.Logf("screenshots in %s", art)
}

func urlQueryEscape(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "%20", "?", "%3F").Replace(s)
}

// BenchmarkBrowserClickToFirstPaint measures, in Chromium, the time from
// opening a session's link to the first contentful paint of the device's
// page in the frame, as the page's own timers see it (the shell's
// navigation start to the frame's first-contentful-paint):
//   - cold: a fresh browser profile and a new session: the worker installs,
//     the peer connection is set up, then the page loads;
//   - warm: the same session reloaded: worker active, new peer connection;
//   - click: a link clicked inside the device's page, over the open tunnel.
//
// It reports the median of each over b.N rounds; run with -benchtime=10x.
func BenchmarkBrowserClickToFirstPaint(b *testing.B) {
	_, err := os.Stat(chromiumPath)
	testenv.Require(b, "Chromium at "+chromiumPath, err == nil)
	s := stack.Start(b, stack.Options{})
	// FCP of the frame's document, relative to the shell's navigation start.
	const fcp = `(() => {
		const f = document.querySelector('iframe.device');
		const w = f && f.contentWindow;
		if (!w || !f.contentDocument || f.contentDocument.readyState !== 'complete') return 0;
		const p = w.performance.getEntriesByName('first-contentful-paint')[0];
		if (!p) return 0;
		return w.performance.timeOrigin + p.startTime - performance.timeOrigin;
	})()`
	// FCP of the frame's document, relative to its own navigation start.
	const ownFCP = `(() => {
		const f = document.querySelector('iframe.device');
		const w = f && f.contentWindow;
		if (!w || !f.contentDocument || w.location.pathname !== '/supplies' || f.contentDocument.readyState !== 'complete') return 0;
		const p = w.performance.getEntriesByName('first-contentful-paint')[0];
		return p ? p.startTime : 0;
	})()`
	wait := func(ctx context.Context, expr string) float64 {
		deadline := time.Now().Add(brWaitTimeout)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for time.Now().Before(deadline) {
			if v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](expr)); err == nil && v > 0 {
				return v
			}
			<-tick.C
		}
		b.Fatalf("no first paint within %s", brWaitTimeout)
		return 0
	}
	var cold, warm, click []float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		ctx := brBrowser(b)
		info := brSession(b, s)
		b.StartTimer()
		if err := chromedp.Do(ctx, chromedp.Navigate(info.Origin+"/#token="+info.Token)); err != nil {
			b.Fatal(err)
		}
		cold = append(cold, wait(ctx, fcp))
		if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
			b.Fatal(err)
		}
		warm = append(warm, wait(ctx, fcp))
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](brFrame(`(d.querySelector('nav a[href="/supplies"]').click(), true)`))); err != nil {
			b.Fatal(err)
		}
		click = append(click, wait(ctx, ownFCP))
	}
	b.StopTimer()
	median := func(xs []float64) float64 {
		ys := slices.Clone(xs)
		slices.Sort(ys)
		return ys[len(ys)/2]
	}
	b.Logf("cold %v warm %v click %v", cold, warm, click)
	b.ReportMetric(median(cold), "cold-ms")
	b.ReportMetric(median(warm), "warm-ms")
	b.ReportMetric(median(click), "click-ms")
	b.ReportMetric(0, "ns/op")
}

// TestDeviceCSPMatchesBrowserSide keeps the policy the agent sets and the
// one the service worker sets identical: the worker drops the agent's copy
// only when it is exactly its own.
func TestDeviceCSPMatchesBrowserSide(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "web", "session", "headers.js"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)export const DEVICE_CSP =(.*?);\n`).FindSubmatch(src)
	if m == nil {
		t.Fatal("DEVICE_CSP not found in web/session/headers.js")
	}
	var js strings.Builder
	for _, part := range regexp.MustCompile(`"([^"]*)"`).FindAllSubmatch(m[1], -1) {
		js.Write(part[1])
	}
	if js.String() != deviceproxy.DeviceCSP {
		t.Fatalf("web/session/headers.js DEVICE_CSP\n  %q\nagent/deviceproxy DeviceCSP\n  %q", js.String(), deviceproxy.DeviceCSP)
	}
}
