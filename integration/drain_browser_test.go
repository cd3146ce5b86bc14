package integration

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/agent/daemon"
	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/redisstore"
)

// TestClusterRollingRestartBrowser is TestClusterRollingRestart for the
// browser: a Chromium session window, reached through a readiness-checking
// balancer in front of three nodes on redis-server, shows the device's
// page, which keeps making numbered requests (its own fetches, through the
// service worker and the tunnel) while every node is SIGTERMed and
// restarted in turn. The window rejoins signaling after its node drains
// (web/session/rejoin.js) with its token and bind cookie, without a new
// peer connection:
//
//   - no request fails, none is repeated or missing in the access log;
//   - neither the window nor the device page reloads (a mark set in each
//     at the start is still there, and the page's counter never restarted);
//   - the toolbar said the node was restarting, never that signaling was
//     lost, and is back to normal at the end;
//   - after the restarts, End session in the toolbar ends the job
//     "client": signaling works again.
func TestClusterRollingRestartBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("rolling-restart browser test starts processes")
	}
	ctx := brBrowser(t)
	rs := startPersistentRedis(t)
	bin := stack.Build(t)
	dir := t.TempDir()
	pctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	devPort := startDemoDevicePort(t, pctx, bin)

	// A relay: Chromium does not offer loopback host candidates, the agent
	// here only those.
	secretFile := filepath.Join(dir, "turn.secret")
	if err := os.WriteFile(secretFile, []byte("drain-browser-turn-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	turnAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	startProc(t, pctx, "porthole-turn", bin["porthole-turn"], []string{"--udp", turnAddr, "--tcp", turnAddr, "--public-ip", "127.0.0.1",
		"--secret-file", secretFile, "--allow-peer", "127.0.0.0/8", "--allow-own-host"}, `(listening)`)

	const techToken = "drain-browser-token"
	keys := map[string]string{agentName(0): "key-0-" + techToken}
	addrs := make([]string, clusterNodes)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	}
	readyClient := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	// One balancer for the agent and the browser, as in front of a real
	// cluster: the session origins are on its address.
	lb := startForwarder(t, addrs)
	lb.ready = func(backend string) bool {
		resp, err := readyClient.Get("http://" + backend + proto.PathReady)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	_, lbPort, _ := net.SplitHostPort(lb.addr())
	appOrigin := "http://localhost:" + lbPort
	extra := []string{"--sessions-scheme", "http", "--sessions-domain", "sessions.localhost:" + lbPort,
		"--app-origin", appOrigin, "--allowed-origin", appOrigin, "--turn-secret-file", secretFile,
		"--ice-url", "stun:" + turnAddr, "--ice-url", "turn:" + turnAddr + "?transport=udp"}
	nodes := make([]*clusterNode, clusterNodes)
	for i := range nodes {
		nodes[i] = startNodeAt(t, pctx, bin, dir, rs.url(), fmt.Sprintf("n%d", i), addrs[i], techToken, keys, extra...)
	}

	actx, acancel := context.WithCancel(context.Background())
	agentDone := make(chan struct{})
	t.Cleanup(func() { acancel(); <-agentDone })
	a, err := daemon.New(daemon.Config{
		Server: "http://" + lb.addr(), Key: keys[agentName(0)], LoopbackOnly: true, Logger: slog.New(slog.DiscardHandler),
		MinBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second,
		Devices: []daemon.DeviceConfig{{ID: deviceName(0), Address: "127.0.0.1", HTTPPort: devPort}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { defer close(agentDone); _ = a.Run(actx) }()
	for _, n := range nodes {
		waitDevices(t, pctx, n.url, techToken, 1)
	}

	api := &sigclient.API{Base: "http://" + lb.addr(), Token: techToken}
	info, err := api.CreateSession(pctx, deviceName(0))
	if err != nil || info.ShellOrigin == "" {
		t.Fatalf("create session: %+v, %v", info, err)
	}
	tab := brOpen(t, ctx, info, "/")
	// Marks that a reload of either would lose, and the toolbar's notices
	// as they change.
	brEval[bool](t, ctx, `(window.__mark = 'first', window.__notices = [],
		new MutationObserver(() => window.__notices.push(document.querySelector('.toolbar .notice').textContent))
			.observe(document.querySelector('.toolbar .notice'), { childList: true, characterData: true, subtree: true }), true)`)
	// The device page's numbered requests, one after the other; the pause
	// between them paces the load, it synchronises nothing.
	brDev[bool](t, tab, `(w.__n = 0, w.__fail = [], (async () => {
		for (let k = 1; !w.__stop; k++) {
			try {
				const r = await fetch('/?n=' + k, { cache: 'no-store' });
				await r.text();
				if (r.ok) w.__n = k; else { w.__fail.push(k + ': ' + r.status); return; }
			} catch (e) { w.__fail.push(k + ': ' + e.message); return; }
			await new Promise((res) => setTimeout(res, 150));
		}
	})(), true)`)
	served := func() int { return brDev[int](t, tab, `w.__fail.length ? -1 : w.__n`) }
	progress := func(more int, what string) {
		t.Helper()
		base := served()
		tab.waitDev(t, what, fmt.Sprintf(`w.__fail.length > 0 || w.__n >= %d`, base+more))
		if f := brDev[string](t, tab, `w.__fail.join('; ')`); f != "" {
			t.Fatalf("%s: the device page's requests failed: %s", what, f)
		}
	}
	progress(3, "3 requests from the device page")

	for i := range nodes {
		n := nodes[i]
		drainNode(t, n)
		nodes[i] = startNodeAt(t, pctx, bin, dir, rs.url(), n.name, n.addr, techToken, keys, extra...)
		waitDevices(t, pctx, nodes[i].url, techToken, 1)
		progress(3, fmt.Sprintf("3 more requests after %s restarted", n.name))
		brWait(t, ctx, fmt.Sprintf("the window on signaling after %s restarted", n.name), `document.body.dataset.signaling === 'live'`)
	}
	// The binding rules are the same on the node that serves the session
	// now: a second window is refused, and the first keeps the session.
	second, cancel2 := chromedp.NewContext(ctx)
	defer cancel2()
	if err := chromedp.Do(second, chromedp.Navigate(info.ShellOrigin+"/#token="+info.Token)); err != nil {
		t.Fatalf("open a second window: %v", err)
	}
	brWait(t, second, "the second window refused after the restarts", `!!document.querySelector('.ended') && !document.querySelector('iframe')`)
	// Refused at the bind (the token is bound already: forbidden) or at
	// the join (session_in_use), as before the restarts.
	if code := brEval[string](t, second, `document.querySelector('.ended code')?.textContent || ''`); code != string(proto.CodeForbidden) && code != string(proto.CodeSessionInUse) {
		t.Errorf("the second window was refused with %q, want %s or %s", code, proto.CodeForbidden, proto.CodeSessionInUse)
	}
	progress(2, "2 more requests from the first window after the second was refused")
	brDev[bool](t, tab, `(w.__stop = true, true)`)
	want := served()
	if want < 0 {
		t.Fatalf("the device page's requests failed: %s", brDev[string](t, tab, `w.__fail.join('; ')`))
	}

	rejoins, _ := strconv.Atoi(brEval[string](t, ctx, `document.body.dataset.rejoins || '0'`))
	notices := brEval[[]string](t, ctx, `window.__notices`)
	t.Logf("rolling restart of %d nodes under a browser session: %d requests from the device page answered, none failed; the window rejoined signaling %d times; toolbar notices %q",
		len(nodes), want, rejoins, notices)
	if rejoins == 0 {
		t.Errorf("the window never rejoined signaling, though every node restarted")
	}
	if brEval[string](t, ctx, `window.__mark || ''`) != "first" {
		t.Errorf("the session window reloaded")
	}
	if got := brEval[int](t, ctx, `performance.getEntriesByType('navigation').length`); got != 1 {
		t.Errorf("the session window navigated %d times, want 1", got)
	}
	sawRestart := false
	for _, n := range notices {
		if strings.Contains(n, "Signaling node restarting") {
			sawRestart = true
		}
		if strings.Contains(n, "lost") {
			t.Errorf("the toolbar said %q", n)
		}
	}
	if !sawRestart {
		t.Errorf("the toolbar never said the signaling node was restarting: %q", notices)
	}
	if tb := brEval[string](t, ctx, `document.querySelector('.toolbar .notice').textContent`); tb != "" {
		t.Errorf("the toolbar's notice is %q at the end, want none", tb)
	}
	if tb := brEval[string](t, ctx, `document.querySelector('.toolbar').innerText`); !strings.Contains(tb, "End session") || strings.Contains(tb, "closed") {
		t.Errorf("toolbar %q: want the session live", tb)
	}

	// Signaling works again: End session ends the job as the technician's.
	st, err := redisstore.Open(rs.url(), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	brClick(t, ctx, ".toolbar .end")
	brWait(t, ctx, "the ended page", `document.querySelector('.ended') && document.body.innerText.includes('Session ended')`)
	var j *store.Job
	testenv.Eventually(t, 20*time.Second, "the session's job to end", func() bool {
		j, err = st.Job(pctx, info.Session)
		return err == nil && j.State == store.JobEnded
	})
	if j.EndReason != string(proto.EndByClient) {
		t.Errorf("the job ended %q (%s), want client: the window's end did not reach signaling", j.EndReason, j.EndMessage)
	}

	// Every numbered request in the access log exactly once.
	var got []*store.AuditEntry
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("the %d requests in the access log", want), func() bool {
		got, err = st.Audit(pctx, store.SessionStream(info.Session), 0, 0)
		if err != nil {
			return false
		}
		n := 0
		for _, e := range got {
			if e.Action == "access."+string(proto.AccessHTTP) && strings.HasPrefix(e.Detail["url"], "/?n=") {
				n++
			}
		}
		return n >= want
	})
	seen := map[string]int{}
	for _, e := range got {
		if e.Action == "access."+string(proto.AccessHTTP) && strings.HasPrefix(e.Detail["url"], "/?n=") {
			seen[e.Detail["url"]]++
		}
	}
	for k := 1; k <= want; k++ {
		if n := seen[numberedPath(int64(k))]; n != 1 {
			t.Errorf("request %d is in the access log %d times", k, n)
		}
		delete(seen, numberedPath(int64(k)))
	}
	// The request in flight at the stop may be logged, once at most.
	if n := seen[numberedPath(int64(want+1))]; n > 1 {
		t.Errorf("the request in flight at the stop is in the access log %d times", n)
	}
	delete(seen, numberedPath(int64(want+1)))
	for url, n := range seen {
		t.Errorf("%d access-log entries for %s, which the page did not request", n, url)
	}
}
