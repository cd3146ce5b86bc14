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

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/agent/deviceproxy"
	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/integration/devtools"
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
	if err != nil || info.ShellOrigin == "" {
		t.Fatalf("create session: %+v, %v", info, err)
	}
	return info
}

// brFrame wraps a JavaScript expression for the device frame, with d and
// w bound to its document and window.
func brFrame(expr string) string {
	return `(() => { const d = document, w = window; return (` + expr + `); })()`
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

// brWait polls expr in ctx until it is truthy, across navigations and
// reloads, for at most brWaitTimeout.
func brWait(t testing.TB, ctx context.Context, what, expr string) {
	t.Helper()
	brWaitFor(t, ctx, brWaitTimeout, what, expr)
}

// brWaitFor is brWait with its own bound, for what takes longer than a
// page (a discovery scan).
func brWaitFor(t testing.TB, ctx context.Context, within time.Duration, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(within)
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
	state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + ' | ' + document.body.innerText.slice(0, 300)`))
	t.Fatalf("waiting for %s: not within %s (last error %v); page: %s", what, within, lastErr, state)
}

// brClick clicks the element sel of ctx's page as the technician would:
// with a user gesture, which opening a tab needs.
func brClick(t testing.TB, ctx context.Context, sel string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(document.querySelector(%q).click(), true)`, sel),
		func(p *runtime.EvaluateParams) { p.UserGesture = ptr(true) }))
	if err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
}

func ptr[T any](v T) *T { return &v }

// brWaitIn polls expr in the target ctx (a popped-out tab, a bar frame)
// until it is truthy.
func brWaitIn(t testing.TB, tg *devtools.Targets, kind string, match func(string) bool, what, expr string) context.Context {
	t.Helper()
	deadline := time.Now().Add(brWaitTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, err := tg.Find(kind, match)
		if err == nil {
			var ok bool
			if ok, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+expr+`)`)); err == nil && ok {
				return ctx
			}
			if err != nil {
				tg.Forget(ctx)
			}
		}
		lastErr = err
		time.Sleep(25 * time.Millisecond)
	}
	page := ""
	if ctx, err := tg.Find(kind, match); err == nil {
		page, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + ' | ' + (document.body?.innerText || '').slice(0, 400)`))
	}
	t.Fatalf("%s: not within %s (last error %v); page: %s", what, brWaitTimeout, lastErr, page)
	return nil
}

// brTab is a session window in a tab. Its device frame runs on the
// session's device origin, cross-origin to the window: the test reaches it
// as a target of its own (integration/devtools), the way a debugger does.
type brTab struct {
	ctx  context.Context
	info *proto.SessionInfo
	tg   *devtools.Targets
}

func newTab(t testing.TB, ctx context.Context, info *proto.SessionInfo) *brTab {
	b := &brTab{ctx: ctx, info: info, tg: devtools.New(ctx)}
	t.Cleanup(b.tg.Close)
	return b
}

// dev runs fn with the device frame's target, finding it again after the
// frame's document was replaced, until fn succeeds or brWaitTimeout.
func (b *brTab) dev(t testing.TB, what string, fn func(ctx context.Context) (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(brWaitTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		fctx, err := b.tg.Find("iframe", devtools.OnOrigin(b.info.DeviceOrigin))
		if err == nil {
			var ok bool
			if ok, err = fn(fctx); ok {
				return
			}
			if err != nil {
				b.tg.Forget(fctx)
			}
		}
		lastErr = err
		time.Sleep(25 * time.Millisecond)
	}
	page := ""
	if fctx, err := b.tg.Find("iframe", devtools.OnOrigin(b.info.DeviceOrigin)); err == nil {
		page, _ = chromedp.Run(fctx, chromedp.Evaluate[string](`location.href + ' | ' + (document.body?.innerText || '').slice(0, 500)`))
	}
	shell, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 300)`))
	t.Fatalf("device frame: %s: not within %s (last error %v); frame: %s; window: %s", what, brWaitTimeout, lastErr, page, shell)
}

// brDev evaluates expr (awaiting a promise) in the device frame of b, with
// d and w bound to its document and window.
func brDev[T any](t testing.TB, b *brTab, expr string) T {
	t.Helper()
	var v T
	b.dev(t, "evaluate "+expr[:min(len(expr), 80)], func(ctx context.Context) (bool, error) {
		var err error
		v, err = chromedp.Run(ctx, chromedp.Evaluate[T](brFrame(expr), chromedp.EvalAwaitPromise))
		return err == nil, err
	})
	return v
}

// waitDev polls expr in the device frame until it is truthy.
func (b *brTab) waitDev(t testing.TB, what, expr string) {
	t.Helper()
	b.dev(t, what, func(ctx context.Context) (bool, error) {
		return chromedp.Run(ctx, chromedp.Evaluate[bool](`!!`+brFrame(expr)))
	})
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

// brOpen opens info's session window in the tab and waits for the device's
// page in its frame.
func brOpen(t testing.TB, ctx context.Context, info *proto.SessionInfo, path string) *brTab {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(info.ShellOrigin+path+"#token="+info.Token)); err != nil {
		t.Fatalf("open the session: %v", err)
	}
	b := newTab(t, ctx, info)
	b.waitDev(t, "the device's page in the frame", `d.readyState === 'complete' && d.querySelector('footer') && d.body.innerText.includes('Porthole LaserJet 4000')`)
	return b
}

// navigate makes the device frame go to path and waits until cond holds
// there.
func (b *brTab) navigate(t testing.TB, path, cond string) {
	t.Helper()
	brDev[bool](t, b, fmt.Sprintf(`(w.location.href = %q, true)`, path))
	b.waitDev(t, path, fmt.Sprintf(`w.location.pathname + w.location.search === %q && d.readyState === 'complete' && (%s)`, path, cond))
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
	tab := brOpen(t, ctx, info, "/")
	t.Logf("session %s: the device's page rendered %s after opening the link (cold browser)", info.Session, time.Since(start).Round(time.Millisecond))

	t.Run("renders", func(t *testing.T) {
		brWait(t, ctx, "the toolbar's path", `/direct|relayed/.test(document.querySelector('.toolbar .path')?.textContent || '')`)
		tb := brEval[string](t, ctx, `document.querySelector('.toolbar').innerText`)
		if !strings.Contains(tb, "Demo printer") && !strings.Contains(tb, stack.DeviceID) || !strings.Contains(tb, "End session") {
			t.Errorf("toolbar %q: want the device and End session", tb)
		}
		if top := brEval[string](t, ctx, `location.origin`); top != info.ShellOrigin {
			t.Errorf("the shell is on %s, want the session origin %s", top, info.ShellOrigin)
		}
		brShot(t, ctx, art, "status")
	})

	t.Run("image", func(t *testing.T) {
		tab.waitDev(t, "the logo", (`[...d.images].some((i) => i.src.endsWith('/logo.png') && i.complete && i.naturalWidth > 0)`))
	})

	t.Run("fetch", func(t *testing.T) {
		tab.waitDev(t, "#live-status filled by fetch()", (`d.getElementById('live-status')?.dataset.loaded === '1'`))
		if got := brDev[string](t, tab, (`d.getElementById('live-status').dataset.serial`)); got != "PHL4K-0001-DEMO" {
			t.Errorf("serial from /api/status: %q", got)
		}
	})

	t.Run("link", func(t *testing.T) {
		brDev[bool](t, tab, (`(d.querySelector('nav a[href="/supplies"]').click(), true)`))
		tab.waitDev(t, "the supplies page", (`w.location.pathname === '/supplies' && d.querySelector('h1')?.textContent === 'Supplies'`))
		brWait(t, ctx, "the toolbar's location", `document.querySelector('.toolbar .where').textContent === '/supplies'`)
	})

	t.Run("form", func(t *testing.T) {
		tab.navigate(t, "/settings", `d.querySelector('form')`)
		brDev[bool](t, tab, (`(() => { d.getElementById('location').value = 'Floor 3, room 301'; d.querySelector('form button[type=submit]').click(); return true; })()`))
		tab.waitDev(t, "the saved settings", (`w.location.search === '?saved=1' && d.getElementById('saved') && d.querySelector('[data-field=location]')?.textContent === 'Floor 3, room 301'`))
	})

	t.Run("login", func(t *testing.T) {
		tab.navigate(t, "/login", `d.getElementById('password')`)
		brDev[bool](t, tab, (`(() => { d.getElementById('username').value = 'admin'; d.getElementById('password').value = 'admin'; d.querySelector('form button[type=submit]').click(); return true; })()`))
		tab.waitDev(t, "the admin page after the redirect", (`w.location.pathname === '/admin' && d.getElementById('welcome')?.textContent === 'Welcome, admin'`))
		// The HttpOnly session cookie stays in the agent's jar; the script-
		// visible one is mirrored into the session origin's store.
		tab.waitDev(t, "the mirrored ui_lang cookie", (`d.cookie.includes('ui_lang=en')`))
		if c := brDev[string](t, tab, (`d.cookie`)); strings.Contains(c, "sid=") {
			t.Errorf("the HttpOnly device cookie reached the browser: %q", c)
		}
		echo := brDev[string](t, tab, (`w.fetch('/echo').then((r) => r.text())`))
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
		r := brDev[result](t, tab, (fmt.Sprintf(`(async () => {
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
		r := brDev[result](t, tab, (fmt.Sprintf(`(async () => {
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
		brDev[bool](t, tab, (`(w.location.href = '/basic/', true)`))
		brWait(t, ctx, "the shell's credentials dialog", `document.querySelector('dialog.credentials[open]')`)
		if txt := brEval[string](t, ctx, `document.querySelector('dialog.credentials').innerText`); !strings.Contains(txt, "Porthole Service Menu") {
			t.Errorf("dialog does not name the realm: %q", txt)
		}
		brShot(t, ctx, art, "basic-dialog")
		brEval[bool](t, ctx, `(() => { const d = document.querySelector('dialog.credentials'); d.querySelector('[name=username]').value = 'service'; d.querySelector('[name=password]').value = 'service'; d.querySelector('button[type=submit]').click(); return true; })()`)
		tab.waitDev(t, "the service menu", (`w.location.pathname === '/basic/' && d.querySelector('h1')?.textContent === 'Service Menu'`))
		if brEval[bool](t, ctx, `!!document.querySelector('dialog.credentials')`) {
			t.Error("the dialog is still there")
		}
		// Asked once per session: the agent applies them from now on.
		tab.navigate(t, "/basic/diag", `d.querySelector('h1')?.textContent === 'Service Menu'`)
		brShot(t, ctx, art, "basic")
	})

	t.Run("gzip", func(t *testing.T) {
		tab.navigate(t, "/gzip", `d.querySelector('h1')?.textContent === 'Event Log' && d.querySelectorAll('tr').length > 100`)
	})

	t.Run("x-frame-options", func(t *testing.T) {
		tab.navigate(t, "/xfo", `d.querySelector('h1')?.textContent === 'Security Notice'`)
		if top := brEval[string](t, ctx, `location.origin + ' ' + !!document.querySelector('.toolbar')`); top != info.ShellOrigin+" true" {
			t.Errorf("frame busting moved the shell: %s", top)
		}
		brShot(t, ctx, art, "xfo")
	})

	t.Run("websocket", func(t *testing.T) {
		// The page's WebSocket is carried by the tunnel (page shim,
		// page/wsclass.js, through the worker and the relay to the shell's
		// wstunnel.js): the device's live status arrives, messages cross
		// both ways, the subprotocol is the device's choice.
		tab.navigate(t, "/websocket", `d.getElementById('ws')`)
		tab.waitDev(t, "the status socket open", `d.getElementById('ws').textContent === 'open'`)
		tab.navigate(t, "/quirks/ws", `d.getElementById('state')`)
		tab.waitDev(t, "open with status.v2", `d.getElementById('state').textContent === 'open status.v2'`)
		tab.waitDev(t, "the text echo and the binary echo", `d.getElementById('state').dataset.echo === '1' && d.getElementById('state').dataset.binary === '3'`)
		tab.waitDev(t, "live counters", `/^\d+$/.test(d.getElementById('pages').textContent)`)
		first := brDev[string](t, tab, `d.getElementById('pages').textContent`)
		tab.waitDev(t, "the counter moving", `d.getElementById('pages').textContent !== '`+first+`'`)
		// The page closes with a code of its own; the close handshake
		// completes. The close event carries the device's answer: gorilla
		// (the demo device) echoes the code without the reason, and so
		// would a native socket report it.
		brDev[bool](t, tab, `(() => { const ws = new w.WebSocket('/ws/status'); w.__ws = ws; w.__wsLog = [];
			ws.onopen = () => { w.__wsLog.push('open'); ws.close(4000, 'page done'); w.__wsLog.push('state ' + ws.readyState); };
			ws.onerror = () => w.__wsLog.push('error');
			ws.onclose = (e) => { w.__wsClose = e.code + ' ' + e.reason + ' ' + e.wasClean; }; return true; })()`)
		tab.waitDev(t, "the page's close", `w.__wsClose === '4000  true'`)
		if n := brEval[string](t, ctx, `document.querySelector('.toolbar .notice')?.textContent || ''`); strings.Contains(n, "WebSocket") {
			t.Errorf("toolbar still says something about WebSockets: %q", n)
		}
		brShot(t, ctx, art, "websocket")
	})

	t.Run("5000 requests, flat heap", func(t *testing.T) {
		tab.navigate(t, "/supplies", `d.querySelector('h1')`)
		burst := func(n int) float64 {
			type result struct {
				Fails int     `json:"fails"`
				Ms    float64 `json:"ms"`
			}
			r := brDev[result](t, tab, (fmt.Sprintf(`(async () => {
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

	t.Run("reload recovers", func(t *testing.T) {
		tab.navigate(t, "/settings", `d.querySelector('form')`)
		if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
		tab.waitDev(t, "the settings page after the reload", (`w.location.pathname === '/settings' && d.readyState === 'complete' && d.querySelector('[data-field=location]')?.textContent === 'Floor 3, room 301'`))
		// Still signed in: the jar belongs to the session, not the peer
		// connection the reload replaced.
		tab.navigate(t, "/admin", `d.getElementById('welcome')?.textContent === 'Welcome, admin'`)
	})

	t.Run("end session", func(t *testing.T) {
		brEval[bool](t, ctx, `(document.querySelector('.toolbar .end').click(), true)`)
		brWait(t, ctx, "the ended page", `document.querySelector('.ended') && document.body.innerText.includes('Session ended')`)
		brShot(t, ctx, art, "ended")
		// Both origins are wiped, and the device cannot be reached from
		// the browser any more.
		brWait(t, ctx, "the wipe", `document.body.dataset.wiped === '1'`)
		ctx3, cancel3 := chromedp.NewContext(ctx)
		defer cancel3()
		if err := chromedp.Do(ctx3, chromedp.Navigate(info.DeviceOrigin+"/")); err != nil {
			t.Fatal(err)
		}
		brWait(t, ctx3, "no session on the device origin", `document.body.innerText.includes('No such session')`)
		if n := brEval[int](t, ctx3, `navigator.serviceWorker.getRegistrations().then((r) => r.length)`); n != 0 {
			t.Errorf("%d service workers still registered on the device origin", n)
		}
	})
	t.Logf("screenshots in %s", art)
}

func urlQueryEscape(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "%20", "?", "%3F").Replace(s)
}

// BenchmarkBrowserClickToFirstPaint measures, in Chromium, the time from
// opening a session's link to the first contentful paint of the device's
// page in the frame (the shell's navigation start to the frame's
// first-contentful-paint, both on the wall clock: the frame is a target of
// its own), and the cost of a navigation inside the session:
//   - cold: a fresh browser profile and a new session: the worker installs,
//     the peer connection is set up, then the page loads;
//   - warm: the same session reloaded: worker active, new peer connection;
//   - click: a link clicked inside the device's page in the frame, over the
//     open tunnel (the new document's own navigation start to its FCP);
//   - popped: the same in a popped-out tab ("Open in its own tab").
//
// It reports the median of each over b.N rounds; run with -benchtime=10x.
func BenchmarkBrowserClickToFirstPaint(b *testing.B) {
	_, err := os.Stat(chromiumPath)
	testenv.Require(b, "Chromium at "+chromiumPath, err == nil)
	s := stack.Start(b, stack.Options{})
	const wallFCP = `(() => {
		if (document.readyState !== 'complete') return 0;
		const p = performance.getEntriesByName('first-contentful-paint')[0];
		return p ? performance.timeOrigin + p.startTime : 0;
	})()`
	const ownFCP = `(() => {
		if (location.pathname !== '/supplies' || document.readyState !== 'complete') return 0;
		const p = performance.getEntriesByName('first-contentful-paint')[0];
		return p ? p.startTime : 0;
	})()`
	wait := func(tg *devtools.Targets, kind, origin, expr string) float64 {
		deadline := time.Now().Add(brWaitTimeout)
		for time.Now().Before(deadline) {
			if ctx, err := tg.Find(kind, devtools.OnOrigin(origin)); err == nil {
				if v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](expr)); err == nil && v > 0 {
					return v
				} else if err != nil {
					tg.Forget(ctx)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.Fatalf("no first paint within %s", brWaitTimeout)
		return 0
	}
	timeOrigin := func(ctx context.Context) float64 {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`performance.timeOrigin`))
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	click := func(tg *devtools.Targets, kind, origin string) {
		ctx, err := tg.Find(kind, devtools.OnOrigin(origin))
		if err == nil {
			_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.querySelector('nav a[href="/supplies"]').click(), true)`))
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	var cold, warm, inFrame, popped []float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		ctx := brBrowser(b)
		info := brSession(b, s)
		tg := devtools.New(ctx)
		b.StartTimer()
		if err := chromedp.Do(ctx, chromedp.Navigate(info.ShellOrigin+"/#token="+info.Token)); err != nil {
			b.Fatal(err)
		}
		cold = append(cold, wait(tg, "iframe", info.DeviceOrigin, wallFCP)-timeOrigin(ctx))
		if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
			b.Fatal(err)
		}
		tg.Close()
		warm = append(warm, wait(tg, "iframe", info.DeviceOrigin, wallFCP)-timeOrigin(ctx))
		click(tg, "iframe", info.DeviceOrigin)
		inFrame = append(inFrame, wait(tg, "iframe", info.DeviceOrigin, ownFCP))
		b.StopTimer()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.querySelector('.toolbar .popout').click(), true)`)); err != nil {
			b.Fatal(err)
		}
		wait(tg, "page", info.DeviceOrigin, `document.readyState === 'complete' && !!document.querySelector('nav a[href="/supplies"]') ? 1 : 0`)
		b.StartTimer()
		click(tg, "page", info.DeviceOrigin)
		popped = append(popped, wait(tg, "page", info.DeviceOrigin, ownFCP))
		tg.Close()
	}
	b.StopTimer()
	median := func(xs []float64) float64 {
		ys := slices.Clone(xs)
		slices.Sort(ys)
		return ys[len(ys)/2]
	}
	b.Logf("cold %v warm %v click %v popped %v", cold, warm, inFrame, popped)
	b.ReportMetric(median(cold), "cold-ms")
	b.ReportMetric(median(warm), "warm-ms")
	b.ReportMetric(median(inFrame), "click-ms")
	b.ReportMetric(median(popped), "popped-click-ms")
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
