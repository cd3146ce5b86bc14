package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/devtools"
	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
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

// TestBrowserFallbackTransmission drives Debian's transmission-daemon web
// UI (3.00) in Chromium through a session, in the lab: the daemon on a
// site LAN behind a NAT that only the agent reaches, the technician behind
// a home NAT. Its start-up makes two synchronous jQuery RPCs
// (loadDaemonPrefs, loadDaemonStats: async:false in transmission.js) that
// the worker never sees, with the X-Transmission-Session-Id 409 dance
// first; the UI works only if they do.
func TestBrowserFallbackTransmission(t *testing.T) {
	netlab.Require(t)
	testenv.NeedBinary(t, netlab.ChromiumPath)
	daemon := testenv.NeedBinary(t, "transmission-daemon")
	bin := stack.Build(t)
	lab := netlab.New(t)
	inet := lab.Internet("203.0.113.0/24", "198.51.100.0/24")
	svc := startNATServices(t, lab, inet, bin)
	home := lab.NAT("tech-nat", inet, "198.51.100.20", "10.1.0.0/24", netlab.EndpointIndependent)
	site := lab.NAT("site-nat", inet, "203.0.113.20", "192.168.1.0/24", netlab.EndpointIndependent)
	tech := lab.Host("tech", home.LAN(), "10.1.0.10")
	agentHost := lab.Host("agent", site.LAN(), "192.168.1.10")
	nas := lab.Host("nas", site.LAN(), "192.168.1.20")

	dir := t.TempDir()
	p := nas.Start("transmission-daemon", daemon, []string{"-f", "-g", filepath.Join(dir, "config"), "-w", dir,
		"-p", "9091", "--rpc-bind-address", "192.168.1.20", "-T", "-a", "192.168.1.*", "-P", "51413",
		"-O", "-Y", "-M", "--no-utp", "--log-error"})
	t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	cfg, _ := json.Marshal(map[string]any{"server": svc.signalURL, "key": svc.agentKey,
		"devices": []map[string]any{{"id": natDeviceID, "name": "NAS", "scheme": "http", "address": "192.168.1.20", "httpPort": 9091}}})
	cfgPath := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	c := agentHost.HTTPClient(time.Second)
	testenv.Eventually(t, 20*time.Second, "transmission's web UI on the site LAN", func() bool {
		resp, err := c.Get("http://192.168.1.20:9091/transmission/web/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	agentHost.StartAndWait("porthole-agent", bin["porthole-agent"], []string{"--config", cfgPath, "--log-level", "info"},
		`connected to signaling`, 20*time.Second)
	info := svc.createSession(t, tech)

	ctx := tech.Chromium(chromedp.Flag("host-resolver-rules", browserResolverRules))
	b := brOpen0(t, ctx, info)
	b.navigate(t, "/transmission/web/", `typeof transmission === 'object' && transmission.sessionProperties && !!transmission.sessionProperties.version`)
	state := brDev[string](t, b, `JSON.stringify({version: transmission.sessionProperties.version, token: !!transmission.remote._token,
		failed: [...d.querySelectorAll('.dialog_container')].some((e) => e.offsetParent !== null && /Connection Failed/.test(e.textContent)),
		list: !!d.getElementById('torrent_list')})`)
	var st struct {
		Version string
		Token   bool
		Failed  bool
		List    bool
	}
	if err := json.Unmarshal([]byte(state), &st); err != nil || !strings.HasPrefix(st.Version, "3.00") || !st.Token || st.Failed || !st.List {
		t.Fatalf("Transmission's UI in the session: %s (%v)", state, err)
	}
	// Its start-up RPCs went through signaling: the first answered 409, the
	// next with the session id 200.
	var log proto.JobLog
	testenv.Eventually(t, 30*time.Second, "the RPCs in the access log", func() bool {
		log = proto.JobLog{}
		techGetVia(t, tech, svc, info.Session, &log)
		n409, n200 := 0, 0
		for _, e := range log.Entries {
			if e.URL == "/transmission/rpc" && e.Via == proto.ViaSignaling {
				switch e.Status {
				case 409:
					n409++
				case 200:
					n200++
				}
			}
		}
		return n409 >= 1 && n200 >= 2
	})
}

// brOpen0 opens info's session window in the tab without waiting for the
// demo device's page (another device is behind it).
func brOpen0(t *testing.T, ctx context.Context, info *proto.SessionInfo) *brTab {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(info.ShellOrigin+"/#token="+info.Token)); err != nil {
		t.Fatalf("open the session: %v", err)
	}
	b := newTab(t, ctx, info)
	b.waitDev(t, "the device frame", `d.readyState === 'complete'`)
	return b
}

// techGetVia reads a job's access log from inside the technician's
// namespace.
func techGetVia(t *testing.T, tech *netlab.Host, svc *natServices, session string, out *proto.JobLog) {
	t.Helper()
	c := tech.HTTPClient(10 * time.Second)
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, svc.signalURL+strings.Replace(proto.PathJobLog, "{id}", session, 1), nil)
	req.Header.Set("Authorization", "Bearer "+svc.techToken)
	resp, err := c.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(out)
}

// TestBrowserFallbackRefusesOtherSessions: session A's device cookie is in
// the browser, and SameSite=Strict sends it on every same-site request,
// which includes requests from session B's device origin (all session
// origins are one site). A navigation B's page starts towards A's device
// origin must not be carried by A's fallback (Sec-Fetch-Site: same-site).
// (Measured: A's service worker carries such a popup's navigation over
// A's peer connection; the worker's path is the session window's to
// guard, and the test logs it.)
func TestBrowserFallbackRefusesOtherSessions(t *testing.T) {
	s := stack.Start(t, stack.Options{})
	ctx := brBrowser(t)
	a := brSession(t, s)
	ba := brOpen(t, ctx, a, "/")
	// A's own synchronous XHR works: its cookie is in the browser.
	if got := brDev[string](t, ba, `(() => { const x = new XMLHttpRequest(); x.open('GET', '/api/legacy/info?from=a', false); x.send(); return x.status + ' ' + x.responseText.includes('serial'); })()`); got != "200 true" {
		t.Fatalf("A's own synchronous XHR: %s", got)
	}
	b := brSession(t, s)
	ctx2, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	bb := brOpen(t, ctx2, b, "/")
	gesture := func(p *runtime.EvaluateParams) { yes := true; p.UserGesture = &yes }
	bb.dev(t, "B's page opens A's device origin", func(fctx context.Context) (bool, error) {
		_, err := chromedp.Run(fctx, chromedp.Evaluate[bool](fmt.Sprintf(`(window.open(%q, '_blank'), true)`, a.DeviceOrigin+"/api/legacy/info?from=b"), gesture))
		return err == nil, err
	})
	// Whatever path the browser picks, the fallback does not carry it.
	time.Sleep(2 * time.Second) // the popup loads, the agent ships its log
	for _, e := range jobLogNow(t, s, a.Session) {
		if strings.Contains(e.URL, "from=b") {
			if e.Via == proto.ViaSignaling {
				t.Fatalf("A's fallback carried a request B's page started: %+v", e.AccessEntry)
			}
			t.Logf("A's access log has B's navigation via %s (the worker's path): %+v", e.Via, e.AccessEntry)
		}
	}
	if !strings.Contains(s.Procs["porthole-signaling"].Tail(200), "not from the device's own page") {
		t.Logf("signaling logged no refusal: the popup did not reach A's fallback")
	}
}
