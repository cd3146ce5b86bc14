package integration

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/devtools"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// originState is what a browser keeps for one origin, read by script in a
// document of that origin.
type originState struct {
	Local    int      `json:"local"`
	Session  int      `json:"session"`
	IDB      []string `json:"idb"`
	Caches   []string `json:"caches"`
	Workers  []string `json:"workers"`
	Cookie   string   `json:"cookie"`
	WinName  string   `json:"winName"`
	Location string   `json:"location"`
}

// stateJS reads originState in the document it runs in.
const stateJS = `(async () => ({
	local: localStorage.length,
	session: sessionStorage.length,
	idb: (await indexedDB.databases()).map((d) => d.name),
	caches: await caches.keys(),
	workers: (await navigator.serviceWorker.getRegistrations()).map((r) => (r.active || r.installing || r.waiting)?.scriptURL || r.scope),
	cookie: document.cookie,
	winName: window.name,
	location: location.href,
}))()`

// fillJS leaves something of the device's page in every store of its
// origin: what a device's script may write, and the session must take
// with it.
const fillJS = `(async () => {
	localStorage.setItem('device.local', 'kept by the device page');
	sessionStorage.setItem('device.session', 'kept by the device page');
	document.cookie = 'device_page=1; path=/';
	await new Promise((resolve, reject) => {
		const r = indexedDB.open('device-db', 1);
		r.onupgradeneeded = () => r.result.createObjectStore('kv');
		r.onsuccess = () => { const tx = r.result.transaction('kv', 'readwrite'); tx.objectStore('kv').put('secret-ish', 'k'); tx.oncomplete = () => { r.result.close(); resolve(); }; tx.onerror = () => reject(tx.error); };
		r.onerror = () => reject(r.error);
	});
	const c = await caches.open('device-cache');
	await c.put('/device-cached', new Response('kept by the device page'));
	return true;
})()`

// TestSessionEndLeavesNothing ends a session in Chromium after the
// device's page filled every store of its origin (local and session
// storage, IndexedDB, Cache Storage, a script cookie, and a cookie the
// device set that the worker mirrored) and checks that nothing of the
// session remains in the browser: no cookie of either origin (the bind
// cookie and the fallback's device cookie included), no storage, no
// cache, no worker registration, no token half in window.name, no token
// in the tab's history; that the
// device's pages are out of the HTTP cache; and that going back through
// the tab's history reaches nothing of the device. Each store is first
// shown to hold something, so each check can fail.
func TestSessionEndLeavesNothing(t *testing.T) {
	_, err := os.Stat(chromiumPath)
	testenv.Require(t, "Chromium at "+chromiumPath, err == nil)
	s := stack.Start(t, stack.Options{})
	ctx := brBrowser(t)
	info := brSession(t, s)
	tab := brOpen(t, ctx, info, "/")
	deviceHost := hostOf(t, info.DeviceOrigin)
	shellHost := hostOf(t, info.ShellOrigin)

	// Sign in on the device: it sets an HttpOnly session cookie (kept in
	// the agent's jar) and ui_lang, which the worker mirrors into the
	// browser's jar.
	tab.navigate(t, "/login", `d.querySelector('form')`)
	brDev[bool](t, tab, `(() => { d.getElementById('username').value = 'admin'; d.getElementById('password').value = 'admin'; d.querySelector('form button[type=submit]').click(); return true; })()`)
	tab.waitDev(t, "the admin page", `w.location.pathname === '/admin' && d.getElementById('welcome')?.textContent === 'Welcome, admin'`)
	if !brDev[bool](t, tab, fillJS) {
		t.Fatal("the device page could not fill its stores")
	}
	tab.navigate(t, "/supplies", `d.querySelector('h1')?.textContent === 'Supplies'`)
	devBefore := brDev[originState](t, tab, stateJS)
	shellBefore := brEval[originState](t, ctx, stateJS)
	cookiesBefore := browserCookies(t, ctx)
	t.Logf("before the end: device origin %+v; session window %+v; cookies %v", devBefore, shellBefore, cookieNames(cookiesBefore))
	// Every check below can fail: each store holds something now.
	if devBefore.Local == 0 || devBefore.Session == 0 || len(devBefore.IDB) == 0 || !strings.Contains(strings.Join(devBefore.Caches, ","), "device-cache") ||
		len(devBefore.Workers) == 0 || !strings.Contains(devBefore.Cookie, "ui_lang=en") || !strings.Contains(devBefore.Cookie, "device_page=1") {
		t.Fatalf("the device origin holds too little to test its wipe: %+v", devBefore)
	}
	if shellBefore.Session == 0 || !strings.HasPrefix(shellBefore.WinName, "porthole-pad:") {
		t.Fatalf("the session window holds no token halves to test their wipe: %+v", shellBefore)
	}
	if !hasCookie(cookiesBefore, shellHost, proto.BindCookie) || !hasCookie(cookiesBefore, deviceHost, proto.DeviceCookie) || !hasCookie(cookiesBefore, deviceHost, "ui_lang") {
		t.Fatalf("cookies before the end: %v; want %s on %s, and %s and ui_lang on %s", cookieNames(cookiesBefore), proto.BindCookie, shellHost, proto.DeviceCookie, deviceHost)
	}
	devURLs := []string{info.DeviceOrigin + "/", info.DeviceOrigin + "/login", info.DeviceOrigin + "/admin", info.DeviceOrigin + "/supplies", info.DeviceOrigin + "/logo.png", info.DeviceOrigin + "/static/style.css"}

	brEval[bool](t, ctx, `(document.querySelector('.toolbar .end').click(), true)`)
	brWait(t, ctx, "the ended page", `document.querySelector('.ended')`)
	brWait(t, ctx, "the wipe", `document.body.dataset.wiped === '1'`)

	// The session window's own tab: no token half, no storage.
	shellAfter := brEval[originState](t, ctx, stateJS)
	if shellAfter.Session != 0 || shellAfter.Local != 0 || shellAfter.WinName != "" || len(shellAfter.IDB) != 0 || len(shellAfter.Caches) != 0 || len(shellAfter.Workers) != 0 {
		t.Errorf("the session window keeps %+v after the end", shellAfter)
	}
	// No cookie of either origin: the bind cookie, the mirrored device
	// cookie, the page's own.
	for _, c := range browserCookies(t, ctx) {
		if sameHost(c.Domain, deviceHost) || sameHost(c.Domain, shellHost) {
			t.Errorf("cookie %s on %s survives the session", c.Name, c.Domain)
		}
	}
	// Each origin in a tab of its own: what the browser keeps for it.
	for _, o := range []string{info.DeviceOrigin, info.ShellOrigin} {
		octx, cancel := chromedp.NewContext(ctx)
		if err := chromedp.Do(octx, chromedp.Navigate(o+"/__t/nothing-here")); err != nil {
			t.Fatal(err)
		}
		st := brEval[originState](t, octx, stateJS)
		if st.Local != 0 || len(st.IDB) != 0 || len(st.Caches) != 0 || len(st.Workers) != 0 || st.Cookie != "" {
			t.Errorf("%s keeps %+v after the end", o, st)
		}
		if o == info.DeviceOrigin {
			// The device's pages are in no cache a document of the origin
			// can read.
			for _, u := range devURLs {
				got := brEval[string](t, octx, fmt.Sprintf(`fetch(%q, {cache: 'only-if-cached', mode: 'same-origin'}).then((r) => 'cached: ' + r.status, (e) => 'not cached')`, u))
				if got != "not cached" {
					t.Errorf("%s after the end: %s", u, got)
				}
			}
		}
		usage, err := chromedp.Run(octx, cdpCall(storage.GetUsageAndQuota, storage.GetUsageAndQuotaParams{Origin: o}))
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range usage.UsageBreakdown {
			if u.Usage > 0 {
				t.Errorf("%s: %s still uses %.0f bytes", o, u.StorageType, u.Usage)
			}
		}
		cancel()
	}
	// The tab's history holds no token, and no entry of it, revisited,
	// shows anything of the device or joins the session again.
	hist, err := chromedp.Run(ctx, cdpCall(page.GetNavigationHistory, cdp.Empty{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range hist.Entries {
		if strings.Contains(e.URL, info.Token) || strings.Contains(e.URL, "token=") {
			t.Errorf("history entry %s carries the token", e.URL)
		}
	}
	t.Logf("the tab's history: %d entries, at %d", len(hist.Entries), hist.CurrentIndex)
	tg := devtools.New(ctx)
	defer tg.Close()
	deviceText := func(txt string) bool {
		return strings.Contains(txt, "LaserJet") || strings.Contains(txt, "Welcome, admin") || strings.Contains(txt, "Supplies")
	}
	for i, e := range hist.Entries {
		if int64(i) == hist.CurrentIndex {
			continue
		}
		if _, err := chromedp.Run(ctx, cdpCall(page.NavigateToHistoryEntry, page.NavigateToHistoryEntryParams{EntryID: e.ID})); err != nil {
			t.Fatal(err)
		}
		// The entry settles: a blank page, signaling's "no such session"
		// (plain text) for a session host, or a session window that found
		// its session over.
		brWait(t, ctx, "history entry "+e.URL, `document.readyState === 'complete' && (!location.host.startsWith('shell-') || document.contentType === 'text/plain' || document.querySelector('.ended'))`)
		txt := brEval[string](t, ctx, `location.href + ' | ' + (document.body?.innerText || '')`)
		t.Logf("history entry %d (%s): %.160s", i, e.URL, txt)
		if deviceText(txt) {
			t.Errorf("history entry %s shows the device: %.200s", e.URL, txt)
		}
		if fctx, err := tg.Find("iframe", devtools.OnOrigin(info.DeviceOrigin)); err == nil {
			if txt, err := chromedp.Run(fctx, chromedp.Evaluate[string](`location.pathname + ' | ' + (document.body?.innerText || '')`)); err == nil && deviceText(txt) {
				t.Errorf("history entry %s: a frame shows the device: %.200s", e.URL, txt)
			}
			tg.Forget(fctx)
		}
	}
	if n := strings.Count(s.Procs["porthole-signaling"].Tail(2000), `msg="client joined" session=`+info.Session); n != 1 {
		t.Errorf("%d clients joined the session, want 1: going back must not start it again", n)
	}
}

func hostOf(t *testing.T, origin string) string {
	t.Helper()
	u, err := url.Parse(origin)
	if err != nil {
		t.Fatal(err)
	}
	return u.Hostname()
}

// cdpCall runs one DevTools command on ctx's target.
func cdpCall[P, R any](c cdp.Command[P, R], p P) chromedp.Action[R] {
	return func(ctx context.Context, tg *chromedp.Target) (R, error) { return cdp.Call(ctx, tg, c, p) }
}

// browserCookies is every cookie in the browser's jar.
func browserCookies(t *testing.T, ctx context.Context) []*network.Cookie {
	t.Helper()
	r, err := chromedp.Run(ctx, cdpCall(storage.GetCookies, storage.GetCookiesParams{}))
	if err != nil {
		t.Fatal(err)
	}
	return r.Cookies
}

func hasCookie(cs []*network.Cookie, host, name string) bool {
	for _, c := range cs {
		if c.Name == name && sameHost(c.Domain, host) {
			return true
		}
	}
	return false
}

// sameHost says whether a cookie's domain is host (host-only, or with a
// leading dot).
func sameHost(domain, host string) bool { return strings.TrimPrefix(domain, ".") == host }

func cookieNames(cs []*network.Cookie) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name+"@"+c.Domain)
	}
	return out
}
