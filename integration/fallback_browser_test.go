package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/devtools"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/proto"
)

// legacyResult is one check of the demo device's /legacy page
// (window.__legacy).
type legacyResult struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// wantVia checks that the session's access log has an entry for each URL
// path in paths, taken by via, after entry number after.
func wantVia(t *testing.T, s *stack.Stack, session string, after int, via string, paths ...string) []proto.LoggedAccess {
	t.Helper()
	var log []proto.LoggedAccess
	deadline := time.Now().Add(30 * time.Second)
	for {
		log = jobLogNow(t, s, session)
		missing := ""
		for _, p := range paths {
			found := false
			for _, e := range log[min(after, len(log)):] {
				if strings.SplitN(e.URL, "?", 2)[0] == p && e.Via == via && e.Status == 200 {
					found = true
				}
			}
			if !found {
				missing = p
			}
		}
		if missing == "" {
			return log
		}
		if time.Now().After(deadline) {
			for _, e := range log {
				t.Logf("log %d: %s %s %d via %q", e.Seq, e.Method, e.URL, e.Status, e.Via)
			}
			t.Fatalf("no entry for %s via %s in the access log", missing, via)
		}
	}
}

// TestBrowserFallback: the demo device's /legacy page, whose start-up
// makes synchronous XHRs (GET and POST, text and binary), works in the
// session window's frame of a real Chromium; the XHRs reach the device
// through signaling and the access log says so. Popped out into its own
// tab and hard-reloaded (DevTools' reload with ignoreCache, which bypasses
// the service worker), the page and everything it loads still reach the
// device, through signaling, and so does the favicon the browser asks for
// on its own.
func TestBrowserFallback(t *testing.T) {
	s := stack.Start(t, stack.Options{})
	ctx := brBrowser(t)
	info := brSession(t, s)
	b := brOpen(t, ctx, info, "/")
	b.navigate(t, "/legacy", `d.getElementById('legacy')?.dataset.state === 'ok'`)
	results := brDev[[]legacyResult](t, b, `w.__legacy`)
	if len(results) != 4 {
		t.Fatalf("results %+v", results)
	}
	for _, r := range results {
		if !r.OK {
			t.Errorf("%s: %s", r.Name, r.Detail)
		}
	}
	log := wantVia(t, s, info.Session, 0, proto.ViaSignaling, "/api/legacy/info", "/api/legacy/echo", "/api/legacy/blob")
	wantVia(t, s, info.Session, 0, proto.ViaWebRTC, "/legacy", "/static/legacy.js")
	before := len(log)

	// The page in a tab of its own (as "Open in its own tab" opens it),
	// then reloaded the hard way.
	tabCtx, closeTab := chromedp.NewContext(ctx)
	t.Cleanup(closeTab)
	if err := chromedp.Do(tabCtx, chromedp.Navigate(info.DeviceOrigin+"/legacy")); err != nil {
		t.Fatalf("open the device page in a tab: %v", err)
	}
	tg := devtools.New(ctx)
	t.Cleanup(tg.Close)
	var tab context.Context
	waitTab := func(what, expr string) {
		t.Helper()
		deadline := time.Now().Add(brWaitTimeout)
		var last error
		for time.Now().Before(deadline) {
			pctx, err := tg.Find("page", devtools.OnOrigin(info.DeviceOrigin))
			if err == nil {
				var ok bool
				if ok, err = chromedp.Run(pctx, chromedp.Evaluate[bool](`!!(`+expr+`)`)); err == nil && ok {
					tab = pctx
					return
				}
				if err != nil {
					tg.Forget(pctx)
				}
			}
			last = err
			time.Sleep(25 * time.Millisecond)
		}
		t.Fatalf("popped-out tab: %s: not within %s (%v)", what, brWaitTimeout, last)
	}
	ready := `location.pathname === '/legacy' && document.getElementById('legacy')?.dataset.state === 'ok'`
	waitTab("the legacy page, controlled by the worker", ready+` && !!navigator.serviceWorker.controller`)
	if err := chromedp.Do(tab, func(ctx context.Context, tgt *chromedp.Target) (chromedp.Void, error) {
		yes := true
		_, err := cdp.Call(ctx, tgt, page.Reload, page.ReloadParams{IgnoreCache: &yes})
		return chromedp.Void{}, err
	}); err != nil {
		t.Fatalf("hard reload: %v", err)
	}
	tg.Forget(tab)
	// After a hard reload no worker controls the page: everything went to
	// the server, and still reached the device.
	waitTab("the legacy page after the hard reload, without a worker", ready+` && !navigator.serviceWorker.controller`)
	var after []legacyResult
	raw, err := chromedp.Run(tab, chromedp.Evaluate[string](`JSON.stringify(window.__legacy)`))
	if err == nil {
		err = json.Unmarshal([]byte(raw), &after)
	}
	if err != nil || len(after) != 4 {
		t.Fatalf("after the reload: %q %v", raw, err)
	}
	wantVia(t, s, info.Session, before, proto.ViaSignaling, "/legacy", "/static/legacy.js", "/static/style.css", "/api/legacy/info", "/api/legacy/echo")

	// The favicon: Chromium asks for it by itself, past any worker.
	var stats struct {
		Favicons int64 `json:"favicons"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for stats.Favicons == 0 && time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.DeviceAddr + "/api/stats")
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&stats)
			resp.Body.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	if stats.Favicons == 0 {
		t.Errorf("the device never got a favicon request")
	} else {
		wantVia(t, s, info.Session, 0, proto.ViaSignaling, "/favicon.ico")
	}
}
