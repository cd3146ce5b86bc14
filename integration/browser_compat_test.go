package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/integration/devtools"
	"github.com/porthole-dev/porthole/integration/realews"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/internal/tlstest"
	"github.com/porthole-dev/porthole/proto"
)

// netLog records, from the DevTools network log of one target, every
// request that failed: a load that failed (refused, blocked by the
// session's policy, aborted by the worker) or a response of 400 or more.
type netLog struct {
	mu     sync.Mutex
	urls   map[network.RequestID]string
	failed []string
	n      int                      // requests seen since the last take
	seen   map[context.Context]bool // targets listened to
}

func newNetLog() *netLog {
	return &netLog{urls: map[network.RequestID]string{}, seen: map[context.Context]bool{}}
}

// listen records the network log of the target of ctx, once per target.
func (l *netLog) listen(t testing.TB, ctx context.Context) error {
	t.Helper()
	l.mu.Lock()
	seen := l.seen[ctx]
	l.seen[ctx] = true
	l.mu.Unlock()
	if seen {
		return nil
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`true`)); err != nil {
		return fmt.Errorf("network log: %w", err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			l.urls[e.RequestID] = e.Request.URL
			l.n++
		case *network.EventResponseReceived:
			if e.Response.Status >= 400 {
				l.failed = append(l.failed, fmt.Sprintf("%d %s", e.Response.Status, e.Response.URL))
			}
		case *network.EventLoadingFailed:
			if e.Canceled {
				return // a navigation away, an EventSource the page closed
			}
			l.failed = append(l.failed, fmt.Sprintf("%s %s %s", e.ErrorText, e.BlockedReason, l.urls[e.RequestID]))
		}
	})
	if err != nil {
		return fmt.Errorf("network log: %w", err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		return fmt.Errorf("network log: %w", err)
	}
	return nil
}

// take returns the failures and the number of requests since the last
// take and forgets them.
func (l *netLog) take() ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, n := l.failed, l.n
	l.failed, l.n = nil, 0
	return f, n
}

// compatTab is a session window in a tab, opened on one device: the shell
// in ctx, the device's page in its frame, which runs on the session's
// device origin as a target of its own (brTab); net records that frame's
// network log.
type compatTab struct {
	*brTab
	net *netLog
}

// compatOpen creates a session on device and opens its window at path,
// waiting for cond in the device's frame.
func compatOpen(t testing.TB, ctx context.Context, s *stack.Stack, device, path, cond string) *compatTab {
	t.Helper()
	api := &sigclient.API{Base: s.SignalingURL, Token: s.TechToken}
	info, err := api.CreateSession(context.Background(), device)
	if err != nil {
		t.Fatalf("create a session on %s: %v", device, err)
	}
	c := &compatTab{brTab: newTab(t, ctx, info), net: newNetLog()}
	if err := c.net.listen(t, ctx); err != nil { // the shell's own requests
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(info.ShellOrigin+path+"#token="+info.Token)); err != nil {
		t.Fatalf("open the session: %v", err)
	}
	c.wait(t, "the device's page in the frame", `d.readyState === 'complete' && (`+cond+`)`)
	return c
}

// frame is the device frame's target, with its network log recorded from
// the first time it is seen.
func (c *compatTab) frame(t testing.TB) {
	t.Helper()
	c.dev(t, "the device frame's target", func(fctx context.Context) (bool, error) {
		if err := c.net.listen(t, fctx); err != nil {
			return false, err
		}
		return true, nil
	})
}

// wait polls cond in the device frame (d, w its document and window).
func (c *compatTab) wait(t testing.TB, what, cond string) {
	t.Helper()
	c.frame(t)
	c.waitDev(t, what, cond)
}

// nav makes the device frame go to path and waits for cond there.
func (c *compatTab) nav(t testing.TB, path, cond string) {
	t.Helper()
	c.frame(t)
	c.navigate(t, path, cond)
}

// compatEval evaluates expr in the device frame.
func compatEval[T any](t testing.TB, c *compatTab, expr string) T {
	t.Helper()
	return brDev[T](t, c.brTab, expr)
}

// compatRace evaluates the promise expr in the device frame; "timeout"
// if it has not settled within 5 s.
func compatRace(t testing.TB, c *compatTab, expr string) string {
	t.Helper()
	return compatEval[string](t, c, `Promise.race([(`+expr+`), new Promise((ok) => setTimeout(() => ok('timeout'), 5000))])`)
}

// notice is the session toolbar's notice text.
func (c *compatTab) notice(t testing.TB) string {
	t.Helper()
	return brEval[string](t, c.ctx, `document.querySelector('.toolbar .notice')?.textContent || ''`)
}

// noFailures fails t for every failed request since the last call, except
// those whose description contains one of allowed.
func (c *compatTab) noFailures(t testing.TB, allowed ...string) {
	t.Helper()
	failed, n := c.net.take()
	if n == 0 {
		t.Error("no request in the DevTools network log since the last check: the log is not listening")
	}
	for _, f := range failed {
		if !slices.ContainsFunc(allowed, func(a string) bool { return strings.Contains(f, a) }) {
			t.Errorf("failed request in the DevTools network log: %s", f)
		}
	}
}

// imagesLoaded is true when every image of the frame's document rendered.
const imagesLoaded = `[...d.images].length > 0 && [...d.images].every((i) => i.complete && i.naturalWidth > 0)`

// TestBrowserCompat clicks through the demo device's EWS quirk profiles
// (integration/demodevice/quirks.go) in Chromium through the whole stack,
// one step per profile, and asserts each rendered and that no request
// failed in the DevTools network log: a CGI page and image without
// Content-Type, a page naming the device by its address, hostname and
// mDNS name in links, images, styles, scripts, fetches and a form, a meta
// refresh to its own absolute URL, a frameset, a WebSocket status page,
// Digest, a form POST that meets a login (sent again after the dialog), a
// Content-Disposition download, Server-Sent Events; then the legacy-TLS
// printer (the toolbar says it speaks only TLS 1.0) and the EWS whose http
// port redirects to https.
func TestBrowserCompat(t *testing.T) {
	_, err := os.Stat(chromiumPath)
	testenv.Require(t, "Chromium at "+chromiumPath, err == nil)
	s := stack.Start(t, stack.Options{LegacyTLS: true})
	s.WaitOnline(t, stack.LegacyTLSDeviceID)
	s.WaitOnline(t, stack.RedirectDeviceID)
	ctx := brBrowser(t)
	art := testenv.ArtifactsDir(t)
	tab := compatOpen(t, ctx, s, stack.DeviceID, "/quirks/", `d.querySelector('h1')?.textContent === 'EWS quirks'`)
	tab.noFailures(t)

	t.Run("cgi without content-type", func(t *testing.T) {
		tab.nav(t, "/cgi-bin/status.cgi", `d.getElementById('cgi')?.textContent === 'Ready' && `+imagesLoaded)
		if ct := compatEval[string](t, tab, `d.contentType`); ct != "text/html" {
			t.Errorf("document type %q, want text/html (sniffed by the agent)", ct)
		}
		txt := compatEval[string](t, tab, `w.fetch('/cgi-bin/counters.cgi').then((r) => r.headers.get('content-type') + ' ' + r.status)`)
		if txt != "text/plain; charset=utf-8 200" && txt != "text/plain 200" {
			t.Errorf("untyped text: %q", txt)
		}
		tab.noFailures(t)
		brShot(t, ctx, art, "compat-cgi")
	})

	t.Run("absolute urls", func(t *testing.T) {
		tab.nav(t, "/quirks/absolute", imagesLoaded+` && d.getElementById('api').textContent === 'PHL4K-0001-DEMO' && d.getElementById('links').textContent === 'links 200'`)
		// The stylesheet named by the device's address applied, and its own
		// absolute url() with it.
		bg := compatEval[string](t, tab, `getComputedStyle(d.getElementById('bg')).backgroundImage`)
		if !strings.Contains(bg, tab.info.DeviceOrigin+"/logo.png") {
			t.Errorf("absolute.css background %q, want the logo on the session origin", bg)
		}
		for _, id := range []string{"supplies", "status-mdns"} {
			if h := compatEval[string](t, tab, `d.getElementById('`+id+`').href`); !strings.HasPrefix(h, tab.info.DeviceOrigin+"/") {
				t.Errorf("link #%s: %q, want it on the session origin", id, h)
			}
		}
		tab.noFailures(t)
		// The device's own link stays in the session, so does its form.
		compatEval[bool](t, tab, `(d.getElementById('supplies').click(), true)`)
		tab.wait(t, "the supplies page", `w.location.pathname === '/supplies' && d.querySelector('h1')?.textContent === 'Supplies'`)
		tab.nav(t, "/quirks/absolute", imagesLoaded)
		compatEval[bool](t, tab, `(d.querySelector('#settings button').click(), true)`)
		tab.wait(t, "the settings page by the form", `w.location.pathname === '/settings' && d.querySelector('form')`)
		tab.noFailures(t)
		brShot(t, ctx, art, "compat-absolute")
	})

	t.Run("urls built at run time", func(t *testing.T) {
		tab.nav(t, "/quirks/runtime", `d.getElementById('state').textContent === 'ready' && d.getElementById('api').textContent === 'PHL4K-0001-DEMO' && d.getElementById('xhr').textContent === 'xhr 200' && d.getElementById('ws').textContent === 'ws open' && `+imagesLoaded)
		for _, id := range []string{"rt-link", "rt-html"} {
			if h := compatEval[string](t, tab, `d.getElementById('`+id+`').href`); !strings.HasPrefix(h, tab.info.DeviceOrigin+"/") {
				t.Errorf("link #%s: %q, want it on the session origin", id, h)
			}
		}
		tab.noFailures(t)
		compatEval[bool](t, tab, `(d.getElementById('go').click(), true)`)
		tab.wait(t, "location.href to the device's own address", `w.location.pathname + w.location.search === '/supplies?from=runtime' && d.querySelector('h1')?.textContent === 'Supplies'`)
		tab.nav(t, "/quirks/runtime", `d.getElementById('state').textContent === 'ready'`)
		compatEval[bool](t, tab, `(d.getElementById('go-assign').click(), true)`)
		tab.wait(t, "location.assign to its mDNS name", `w.location.pathname + w.location.search === '/settings?from=assign' && d.querySelector('form')`)
		compatEval[bool](t, tab, `(w.location.href = '/quirks/runtime', true)`)
		tab.wait(t, "the page again", `w.location.pathname === '/quirks/runtime' && d.getElementById('state').textContent === 'ready'`)
		compatEval[bool](t, tab, `(d.getElementById('rt-link').click(), true)`)
		tab.wait(t, "the link built with setAttribute", `w.location.pathname === '/supplies' && d.querySelector('h1')?.textContent === 'Supplies'`)
		tab.noFailures(t)
		if n := brEval[string](t, tab.ctx, `document.querySelector('.toolbar .notice')?.textContent || ''`); strings.Contains(n, "outside") {
			t.Errorf("the toolbar says %q", n)
		}
		brShot(t, ctx, art, "compat-runtime")
	})

	t.Run("print", func(t *testing.T) {
		tab.nav(t, "/quirks/print", `d.getElementById('printed') && `+imagesLoaded)
		// The device page's own Print button: the frame's sandbox allows
		// modals, so window.print is not ignored (Chromium ignores it in a
		// sandbox without allow-modals, and fires no beforeprint); headless
		// Chromium then prints at once, without afterprint.
		compatEval[bool](t, tab, `(d.getElementById('print').click(), true)`)
		tab.wait(t, "the page printed", `d.getElementById('printed').textContent === 'print returned' && d.getElementById('printed').dataset.before === '1'`)
		tab.noFailures(t)
		// And the session window prints what the technician sees: the
		// device's page in its frame, whose logo is the PDF's one image
		// (the toolbar has none).
		pdf, err := chromedp.Run(tab.ctx, chromedp.PrintToPDF(func(p *page.PrintToPDFParams) { p.PrintBackground = ptr(true) }))
		if err != nil {
			t.Fatalf("print the session window: %v", err)
		}
		if !bytes.HasPrefix(pdf, []byte("%PDF-")) || !bytes.Contains(pdf, []byte("/Subtype /Image")) {
			t.Errorf("the session window printed %d bytes without the device page's image", len(pdf))
		}
		t.Logf("the session window printed a %d-byte PDF", len(pdf))
	})

	t.Run("meta refresh", func(t *testing.T) {
		compatEval[bool](t, tab, `(w.location.href = '/quirks/refresh', true)`)
		tab.wait(t, "the refresh's target", `w.location.pathname === '/quirks/absolute' && d.readyState === 'complete' && `+imagesLoaded)
		tab.noFailures(t)
	})

	t.Run("frameset", func(t *testing.T) {
		tab.nav(t, "/quirks/frameset", `w.frames.length === 2 && w.frames[0].document?.getElementById('nav-supplies') && w.frames[1].document?.readyState === 'complete'`)
		// The menu frame's links name the device's address and target the
		// main frame: they stay on the session origin.
		if h := compatEval[string](t, tab, `w.frames[0].document.getElementById('nav-supplies').href`); h != tab.info.DeviceOrigin+"/supplies" {
			t.Errorf("menu link %q", h)
		}
		tab.noFailures(t)
		brShot(t, ctx, art, "compat-frameset")
	})

	t.Run("target=_blank and window.open to the device", func(t *testing.T) {
		// Both become tabs of the device origin, controlled by the same
		// worker: the device's pages, in the session.
		tab.nav(t, "/quirks/", `d.querySelector('h1')`)
		for _, c := range []struct{ js, path, cond string }{
			{`(() => { const a = d.createElement('a'); a.href = '/supplies'; a.target = '_blank'; d.body.append(a); a.click(); return true; })()`, "/supplies", `document.querySelector('h1')?.textContent === 'Supplies'`},
			{`(w.open('/settings'), true)`, "/settings", `!!document.querySelector('form')`},
		} {
			tab.dev(t, "a user's click in the frame", func(fctx context.Context) (bool, error) {
				_, err := chromedp.Run(fctx, chromedp.Evaluate[bool](brFrame(c.js), func(p *runtime.EvaluateParams) { p.UserGesture = ptr(true) }))
				return err == nil, err
			})
			brWaitIn(t, tab.tg, "page", devtools.Prefix(tab.info.DeviceOrigin+c.path), "the device's "+c.path+" in a tab of its own",
				`document.readyState === 'complete' && `+c.cond)
		}
		tab.noFailures(t)
	})

	t.Run("websocket", func(t *testing.T) {
		tab.nav(t, "/quirks/ws", `d.getElementById('state')`)
		tab.wait(t, "open with status.v2, both echoes, live counters", `d.getElementById('state').textContent === 'open status.v2' && d.getElementById('state').dataset.echo === '1' && d.getElementById('state').dataset.binary === '3' && /^\d+$/.test(d.getElementById('pages').textContent)`)
		tab.noFailures(t)
		// In a tab of its own (the toolbar's pop-out), the same worker and
		// the same relay carry its socket to this window's peer connection.
		brClick(t, ctx, ".toolbar .popout")
		brWaitIn(t, tab.tg, "page", devtools.Prefix(tab.info.DeviceOrigin+"/quirks/ws"), "the WebSocket page in its own tab, live",
			`document.getElementById('state').textContent === 'open status.v2' && document.getElementById('state').dataset.echo === '1' && /^\d+$/.test(document.getElementById('pages').textContent)`)
	})

	t.Run("digest", func(t *testing.T) {
		compatEval[bool](t, tab, `(w.location.href = '/quirks/digest/', true)`)
		brWait(t, ctx, "the shell's credentials dialog", `document.querySelector('dialog.credentials[open]')`)
		compatCredentials(t, ctx, "service", "service")
		tab.wait(t, "the Digest area", `w.location.pathname === '/quirks/digest/' && d.getElementById('digest')`)
		compatEval[bool](t, tab, `(d.querySelector('a[href="/quirks/digest/counters"]').click(), true)`)
		tab.wait(t, "the next Digest page, no second dialog", `w.location.pathname === '/quirks/digest/counters' && d.readyState === 'complete'`)
		if brEval[bool](t, ctx, `!!document.querySelector('dialog.credentials[open]')`) {
			t.Error("asked again")
		}
		tab.noFailures(t)
	})

	t.Run("post meets login", func(t *testing.T) {
		tab.nav(t, "/quirks/post-login", `d.getElementById('save')`)
		compatEval[bool](t, tab, `(d.querySelector('input[name=dept]').value = 'Field service', d.getElementById('save').click(), true)`)
		brWait(t, ctx, "the shell's credentials dialog", `document.querySelector('dialog.credentials[open]')`)
		compatCredentials(t, ctx, "service", "service")
		tab.wait(t, "the POST sent again with its body", `d.getElementById('saved')?.textContent === 'saved: Field service'`)
		tab.noFailures(t)
	})

	t.Run("cookies the device deletes", func(t *testing.T) {
		// Worker path: the cookie the device set is mirrored into the
		// device origin's store, and deleted from it when the device
		// deletes it.
		tab.nav(t, "/quirks/cookie/set", `d.getElementById('cookie')?.textContent === 'set'`)
		tab.wait(t, "the device's cookie visible to the page", `d.cookie.includes('ews_theme=dark')`)
		tab.nav(t, "/quirks/cookie/clear", `d.getElementById('cookie')?.textContent === 'clear'`)
		tab.wait(t, "the cookie gone from the page's store", `!d.cookie.includes('ews_theme')`)
		// Fallback path (a synchronous XHR, which the worker never sees):
		// the same deletion reaches the browser's store from signaling.
		tab.nav(t, "/quirks/cookie/set", `d.cookie.includes('ews_theme=dark')`)
		got := compatEval[string](t, tab, `(() => { const x = new XMLHttpRequest(); x.open('GET', '/quirks/cookie/clear', false); x.send(); return x.status + ' ' + d.cookie; })()`)
		if !strings.HasPrefix(got, "200") || strings.Contains(got, "ews_theme") {
			t.Errorf("after the device deleted its cookie through the fallback: %q", got)
		}
		tab.noFailures(t)
	})

	t.Run("the fallback applies the same rules", func(t *testing.T) {
		// Synchronous XHRs, which the worker never sees, go through
		// signaling to the agent: the untyped CGI comes back typed, and the
		// device's absolute URLs in JSON come back on the device origin.
		got := compatEval[string](t, tab, `(() => { const x = new XMLHttpRequest(); x.open('GET', '/cgi-bin/counters.cgi', false); x.send();
			return x.status + ' ' + x.getResponseHeader('Content-Type') + ' ' + x.getResponseHeader('X-Content-Type-Options'); })()`)
		if got != "200 text/plain; charset=utf-8 nosniff" && got != "200 text/plain nosniff" {
			t.Errorf("untyped CGI through the fallback: %q", got)
		}
		links := compatEval[string](t, tab, `(() => { const x = new XMLHttpRequest(); x.open('GET', '/quirks/links.json', false); x.send(); const j = JSON.parse(x.responseText); return j.supplies + ' ' + j.status; })()`)
		dev := strings.TrimPrefix(strings.TrimPrefix(tab.info.DeviceOrigin, "http://"), "https://")
		if links != tab.info.DeviceOrigin+"/supplies //"+dev+"/" {
			t.Errorf("absolute URLs through the fallback: %q, want them on %s", links, tab.info.DeviceOrigin)
		}
		// They went that way: the access log says so, and so for the
		// cookie deletion above.
		wantVia(t, s, tab.info.Session, 0, proto.ViaSignaling, "/cgi-bin/counters.cgi", "/quirks/links.json", "/quirks/cookie/clear")
		tab.noFailures(t)
	})

	t.Run("download", func(t *testing.T) {
		dir := t.TempDir()
		done := make(chan string, 1)
		err := chromedp.ListenBrowser(ctx, func(ev any) {
			if e, ok := ev.(*browser.EventDownloadProgress); ok && e.State == browser.DownloadProgressStateCompleted {
				select {
				case done <- e.GUID:
				default:
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: ptrTo(true)}); err != nil {
			t.Fatal(err)
		}
		tab.nav(t, "/quirks/", `d.querySelector('a[href="/quirks/download"]')`)
		compatEval[bool](t, tab, `(d.querySelector('a[href="/quirks/download"]').click(), true)`)
		var guid string
		select {
		case guid = <-done:
		case <-time.After(brWaitTimeout):
			t.Fatal("the download did not complete")
		}
		b, err := os.ReadFile(dir + "/" + guid)
		if err != nil || !strings.HasPrefix(string(b), "date,pages\n") {
			t.Fatalf("downloaded %q, %v", b, err)
		}
		tab.noFailures(t)
	})

	t.Run("server-sent events", func(t *testing.T) {
		tab.nav(t, "/quirks/sse", `d.getElementById('events')`)
		tab.wait(t, "five events, one at a time", `d.getElementById('events').children.length >= 5`)
		tab.noFailures(t)
	})

	t.Run("legacy tls printer", func(t *testing.T) {
		ctx2, cancel := chromedp.NewContext(ctx)
		defer cancel()
		old := compatOpen(t, ctx2, s, stack.LegacyTLSDeviceID, "/quirks/absolute", imagesLoaded+` && d.getElementById('api').textContent === 'PHL4K-0001-DEMO'`)
		brWait(t, ctx2, "the toolbar's TLS note", `(document.querySelector('.toolbar .notice')?.textContent || '').includes('TLS 1.0')`)
		t.Logf("toolbar: %q", old.notice(t))
		old.noFailures(t)
		brShot(t, ctx2, art, "compat-legacy-tls")
	})

	t.Run("https redirect", func(t *testing.T) {
		ctx2, cancel := chromedp.NewContext(ctx)
		defer cancel()
		red := compatOpen(t, ctx2, s, stack.RedirectDeviceID, "/supplies", `w.location.pathname === '/supplies' && d.querySelector('h1')?.textContent === 'Supplies'`)
		red.noFailures(t)
	})
}

// compatCredentials fills and sends the shell's credentials dialog.
func compatCredentials(t testing.TB, ctx context.Context, user, pass string) {
	t.Helper()
	brEval[bool](t, ctx, fmt.Sprintf(`(() => { const d = document.querySelector('dialog.credentials'); d.querySelector('[name=username]').value = %q; d.querySelector('[name=password]').value = %q; d.querySelector('button[type=submit]').click(); return true; })()`, user, pass))
}

// TestBrowserCompatRealEWS is TestBrowserCompat against web servers no one
// here wrote, in Chromium through the whole stack: Debian's lighttpd set
// up as an old EWS (realews.StartLighttpd: a CGI that prints no
// Content-Type, pages naming the device by its address, a Digest admin
// area, an http port that sends /secure/ to its TLS 1.0-only https port)
// and `openssl s_server -tls1` with a 1024-bit, SHA-1, expired,
// self-signed certificate and only AES128-SHA (RSA key exchange) as a
// legacy-TLS printer; lighttpd also meta-refreshes one page to its https
// URL and answers 426 for a CGI over http. Each step asserts what the technician sees and that
// no request failed in the device frame's DevTools network log.
func TestBrowserCompatRealEWS(t *testing.T) {
	_, err := os.Stat(chromiumPath)
	testenv.Require(t, "Chromium at "+chromiumPath, err == nil)
	l := realews.StartLighttpd(t)
	cert := tlstest.NewCert(t, tlstest.CertOptions{Bits: 1024, SHA1: true, Expired: true})
	addr, ok := tlstest.OpenSSLServer(t, cert, "-tls1", "-cipher", "AES128-SHA:@SECLEVEL=0")
	testenv.Require(t, "openssl s_server -tls1 -cipher AES128-SHA:@SECLEVEL=0", ok)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	sPort, _ := strconv.Atoi(port)
	s := stack.Start(t, stack.Options{ExtraDevices: []map[string]any{
		{"id": "ews-http", "name": "Old EWS", "scheme": "http", "address": "127.0.0.1", "httpPort": l.HTTPPort,
			"ports": []int{l.HTTPPort, l.HTTPSPort}, "httpsPort": l.HTTPSPort},
		{"id": "ews-openssl", "name": "OpenSSL TLS 1.0 printer", "scheme": "https", "address": "127.0.0.1", "httpPort": sPort},
	}})
	s.WaitOnline(t, "ews-http")
	s.WaitOnline(t, "ews-openssl")
	ctx := brBrowser(t)
	art := testenv.ArtifactsDir(t)

	tab := compatOpen(t, ctx, s, "ews-http", "/", `d.getElementById('status')`)
	t.Run("absolute urls", func(t *testing.T) {
		// The index names the device by its address in a stylesheet link and
		// two links (one scheme-relative): all of them on the session's
		// device origin; the vendor's link is left alone.
		for id, want := range map[string]string{"status": tab.info.DeviceOrigin + "/cgi-bin/status.cgi", "admin": tab.info.DeviceOrigin + "/admin/",
			"vendor": "http://example.invalid/"} {
			if h := compatEval[string](t, tab, `d.getElementById('`+id+`').href`); h != want {
				t.Errorf("link #%s: %q, want %q", id, h, want)
			}
		}
		if css := compatEval[string](t, tab, `[...d.styleSheets].map((s) => s.href).join(' ')`); css != tab.info.DeviceOrigin+"/style.css" {
			t.Errorf("stylesheet %q", css)
		}
		// The stylesheet's own url() names the device's address too.
		img := compatEval[string](t, tab, `new Promise((ok) => { const i = new Image(); i.onload = () => ok(i.src + ' ' + i.naturalWidth); i.onerror = () => ok('error'); i.src = getComputedStyle(d.body).backgroundImage.slice(5, -2); })`)
		if img != tab.info.DeviceOrigin+"/bg.png 1" {
			t.Errorf("the stylesheet's background: %q", img)
		}
		tab.noFailures(t)
	})
	t.Run("a link outside the device", func(t *testing.T) {
		// The vendor's link is not the device's: the page shim sends the
		// frame to the worker's interstitial instead of leaving the session,
		// and nothing is fetched from the vendor.
		compatEval[bool](t, tab, `(d.getElementById('vendor').click(), true)`)
		ictx := brWaitIn(t, tab.tg, "iframe", devtools.Prefix(tab.info.DeviceOrigin+"/__t/offsite?"), "the interstitial in the frame",
			`document.querySelector('h1')?.textContent === 'Link outside the device' && document.body.innerText.includes('http://example.invalid/')`)
		brEval[bool](t, ictx, `(location.href = '/', true)`) // back to the device
		tab.wait(t, "the index again", `w.location.pathname === '/' && d.getElementById('status')`)
		tab.noFailures(t)
	})
	t.Run("cgi without content-type", func(t *testing.T) {
		compatEval[bool](t, tab, `(d.getElementById('status').click(), true)`)
		tab.wait(t, "the CGI page rendered", `w.location.pathname === '/cgi-bin/status.cgi' && d.getElementById('cgi')?.textContent === 'Ready'`)
		if ct := compatEval[string](t, tab, `d.contentType`); ct != "text/html" {
			t.Errorf("document type %q, want text/html (sniffed by the agent)", ct)
		}
		tab.noFailures(t)
		brShot(t, ctx, art, "realews-cgi")
	})
	t.Run("digest", func(t *testing.T) {
		tab.nav(t, "/", `d.getElementById('admin')`)
		compatEval[bool](t, tab, `(d.getElementById('admin').click(), true)`)
		brWait(t, ctx, "the shell's credentials dialog", `document.querySelector('dialog.credentials[open]')`)
		compatCredentials(t, ctx, l.DigestUser, l.DigestPass)
		tab.wait(t, "lighttpd's Digest area", `w.location.pathname === '/admin/' && d.getElementById('admin')?.textContent === 'Admin area'`)
		tab.noFailures(t)
	})
	t.Run("http to a tls 1.0 https port", func(t *testing.T) {
		tab.nav(t, "/secure/", `d.getElementById('secure')?.textContent === 'Secure area'`)
		if h := compatEval[string](t, tab, `d.querySelector('a').href`); h != tab.info.DeviceOrigin+"/secure/next.html" {
			t.Errorf("the https page's own link %q", h)
		}
		brWait(t, ctx, "the toolbar's TLS note", `(document.querySelector('.toolbar .notice')?.textContent || '').includes('TLS 1.0')`)
		tab.noFailures(t)
		brShot(t, ctx, art, "realews-secure")
	})
	// A device that insists on https, in sessions of their own (the switch
	// to the https port lasts for the session): a meta refresh to its own
	// https URL, and a 426, are followed to the TLS 1.0 port inside the
	// session.
	t.Run("meta refresh to its https url", func(t *testing.T) {
		ctx2, cancel := chromedp.NewContext(ctx)
		defer cancel()
		up := compatOpen(t, ctx2, s, "ews-http", "/upgrade.html", `w.location.pathname === '/secure/' && d.getElementById('secure')?.textContent === 'Secure area'`)
		brWait(t, ctx2, "the toolbar's TLS note", `(document.querySelector('.toolbar .notice')?.textContent || '').includes('TLS 1.0')`)
		up.noFailures(t)
	})
	t.Run("426 upgrade required", func(t *testing.T) {
		ctx2, cancel := chromedp.NewContext(ctx)
		defer cancel()
		up := compatOpen(t, ctx2, s, "ews-http", "/cgi-bin/admin.cgi", `d.getElementById('tlsadmin')?.textContent === 'Admin over TLS'`)
		up.noFailures(t)
	})
	t.Run("openssl s_server tls 1.0", func(t *testing.T) {
		ctx2, cancel := chromedp.NewContext(ctx)
		defer cancel()
		old := compatOpen(t, ctx2, s, "ews-openssl", "/", `d.body.innerText.includes('TLSv1')`)
		brWait(t, ctx2, "the toolbar's TLS note", `(document.querySelector('.toolbar .notice')?.textContent || '').includes('TLS 1.0')`)
		t.Logf("toolbar: %q; page: %q", old.notice(t), compatEval[string](t, old, `d.body.innerText.split('\n').filter((l) => /Protocol|Cipher *:/.test(l)).join(' | ')`))
		old.noFailures(t)
		brShot(t, ctx2, art, "realews-openssl")
	})
}

// TestBrowserWebSocketShimRefusals: what the page shim's WebSocket and its
// path through the worker, the relay and the shell do not give a device
// page. A socket to another LAN host (a listener of this test), to the
// signaling server or to the session window's origin is the native one,
// which the session's policy refuses (Chromium leaves it CLOSED without an
// event): nothing connects. A page that
// forges the shim's message to its worker with a target on another host
// gets its port closed with 1006 by the shell, and nothing connects
// either; one to a Porthole path (/__t/…) of the device origin reaches
// only the device, which refuses the upgrade, never Porthole's own server.
func TestBrowserWebSocketShimRefusals(t *testing.T) {
	_, err := os.Stat(chromiumPath)
	testenv.Require(t, "Chromium at "+chromiumPath, err == nil)
	lan, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lan.Close()
	var conns sync.WaitGroup
	accepted := make(chan string, 16)
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			c, err := lan.Accept()
			if err != nil {
				return
			}
			accepted <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	s := stack.Start(t, stack.Options{})
	ctx := brBrowser(t)
	tab := compatOpen(t, ctx, s, stack.DeviceID, "/quirks/", `d.querySelector('h1')?.textContent === 'EWS quirks'`)
	// The shim is in place: a socket to the device is carried.
	if got := compatRace(t, tab, `new Promise((ok) => { const ws = new w.WebSocket('/ws/status'); ws.onopen = () => { ok('open ' + (w.WebSocket.toString().includes('native code') ? 'native' : 'shim')); ws.close(); }; ws.onclose = (e) => ok('close ' + e.code); })`); got != "open shim" {
		t.Fatalf("the device's own socket: %q", got)
	}
	tab.net.take()

	sig := strings.TrimPrefix(s.SignalingURL, "http://")
	shellHost := strings.TrimPrefix(tab.info.ShellOrigin, "http://")
	shellHost = strings.TrimPrefix(shellHost, "https://")
	for _, u := range []string{"ws://" + lan.Addr().String() + "/", "ws://" + sig + "/v1/signal", "ws://" + shellHost + "/__t/", "wss://example.invalid/"} {
		got := compatRace(t, tab, fmt.Sprintf(`new Promise((ok) => { let ws; try { ws = new w.WebSocket(%q); } catch (e) { return ok('threw ' + e.name); }
			ws.onopen = () => ok('open'); ws.onclose = (e) => ok('close ' + e.code + ' ' + e.wasClean);
			setTimeout(() => ok('state ' + ws.readyState + ' ' + ws.constructor.name + ' ' + (ws instanceof w.WebSocket)), 2000); })`, u))
		// Chromium 156 closes a socket its CSP blocks without an event
		// (measured: readyState 3, no error or close).
		if got != "close 1006 false" && !strings.HasPrefix(got, "threw") && !strings.HasPrefix(got, "state 3 ") {
			t.Errorf("a socket to %s: %q, want it refused", u, got)
		}
		t.Logf("a socket to %s: %s", u, got)
	}
	// The shim's own message, forged: another host, a scheme-relative
	// target, a bad subprotocol. The shell closes the port; nothing goes out.
	for _, target := range []string{"//" + lan.Addr().String() + "/", "http://" + lan.Addr().String() + "/", "/ws/status\r\nX: y"} {
		got := compatRace(t, tab, fmt.Sprintf(`new Promise((ok) => { const { port1, port2 } = new MessageChannel();
			port1.onmessage = (e) => ok(e.data.type + ' ' + e.data.code);
			navigator.serviceWorker.controller.postMessage({ type: 'porthole.ws', target: %q, protocols: ['a b'] }, [port2]); })`, target))
		if got != "close 1006" {
			t.Errorf("forged socket to %q: %q, want close 1006", target, got)
		}
	}
	// A Porthole path through the shim goes to the device, which has no
	// WebSocket there.
	if got := compatRace(t, tab, `new Promise((ok) => { const ws = new w.WebSocket('/__t/sw.js'); ws.onopen = () => ok('open'); ws.onclose = (e) => ok('close ' + e.code); })`); got != "close 1006" {
		t.Errorf("a socket to /__t/sw.js: %q, want the device's refusal", got)
	}
	lan.Close()
	conns.Wait()
	close(accepted)
	for a := range accepted {
		t.Errorf("the LAN host got a connection from %s", a)
	}
	// What the native socket's refusals leave in the log: the session's
	// policy blocking them, nothing else.
	failed, _ := tab.net.take()
	for _, f := range failed {
		t.Logf("network log: %s", f)
	}
}
