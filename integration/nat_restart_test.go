package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
)

var (
	cliRestored    = regexp.MustCompile(`connection restored in (\S+) after (\d+) ICE restart\(s\): (.*)`)
	agentRestarted = regexp.MustCompile(`msg="ICE restart offered by the technician"`)
)

// TestNATICERestart changes the agent's address in the middle of a
// session (topology 2: its namespace's uplink interface is re-addressed,
// as when a DHCP lease changes) while the technician's CLI is serving numbered
// requests and one long streaming response. The technician notices the
// broken path, restarts ICE over signaling — the agent, whose own
// signaling connection died with its address, reconnects and signaling
// moves the session to the new connection — and the session carries on
// with nobody doing anything: every request answered once, none lost,
// none duplicated (the device counts what it served), the stream intact.
func TestNATICERestart(t *testing.T) {
	netlab.Require(t)
	bin := stack.Build(t)
	const name = "2-eim-both, agent re-addressed"
	rl := newRestartLab(t, bin)
	svc, tech, agentHost, deviceHost, agent, deviceURL := rl.svc, rl.tech, rl.agentHost, rl.deviceHost, rl.agent, rl.deviceURL
	base, r := svc.connectCLI(t, tech, agent, name)
	cli := r.proc
	t.Logf("connected: %s (%s)", r.path, r.pair)

	tc := tech.HTTPClient(90 * time.Second)
	defer tc.CloseIdleConnections()
	dc := deviceHost.HTTPClient(10 * time.Second)
	defer dc.CloseIdleConnections()
	before := deviceRequests(t, dc, deviceURL)

	// A response streaming across the change, and numbered requests; the
	// address changes after the fifth.
	const total = 30
	load := startSeqLoad(tc, base, total, 5)
	<-load.reached
	changed := time.Now()
	old := agentHost.Readdress("192.168.1.11")
	t.Logf("agent re-addressed from %s to %s", old, agentHost.Addr())

	ctx, cancel := context.WithTimeout(context.Background(), 70*time.Second)
	defer cancel()
	m, err := cli.WaitLine(ctx, cliRestored)
	if err != nil {
		t.Fatalf("the session did not recover: %v\nagent:\n%s", err, agent.Tail(30))
	}
	recovered := time.Since(changed)
	load.wait()
	t.Logf("restored %s after the change (CLI: %s after the break was noticed, %s restart(s)): %s",
		recovered.Round(time.Millisecond), m[1], m[2], m[3])
	if _, err := agent.WaitLine(ctx, agentRestarted); err != nil {
		t.Errorf("the agent did not see an ICE restart: %v", err)
	}
	if strings.Contains(m[3], " "+old.String()+":") {
		t.Errorf("the restored path still uses the agent's old address %s: %s", old, m[3])
	}
	load.check(t)
	// The device served each request exactly once: the numbered ones, the
	// stream, and the second stats request itself.
	after := deviceRequests(t, dc, deviceURL)
	if got, want := after-before, int64(total+1+1); got != want {
		t.Errorf("the device served %d requests during the test, want %d (lost or duplicated requests)", got, want)
	}
	restartResult = fmt.Sprintf("%s: recovered %s after the agent's address changed (%s restart(s)); %s",
		name, recovered.Round(time.Millisecond), m[2], m[3])
	t.Log(restartResult)
}

// restartLab is the lab of the ICE restart tests: topology 2, with the
// device on a segment of its own behind the agent (a gateway box with an
// uplink and a device port): only the uplink changes address, so the
// agent's connections to the device stay up and requests in flight can
// complete.
type restartLab struct {
	svc                         *natServices
	tech, agentHost, deviceHost *netlab.Host
	agent                       *proc.Proc
	deviceURL                   string
}

func newRestartLab(t *testing.T, bin stack.Binaries) *restartLab {
	t.Helper()
	lab := netlab.New(t)
	inet := lab.Internet("203.0.113.0/24", "198.51.100.0/24")
	rl := &restartLab{svc: startNATServices(t, lab, inet, bin)}
	home := lab.NAT("tech-nat", inet, "198.51.100.20", "10.1.0.0/24", netlab.EndpointIndependent)
	site := lab.NAT("site-nat", inet, "203.0.113.20", "192.168.1.0/24", netlab.EndpointIndependent)
	rl.tech = lab.Host("tech", home.LAN(), "10.1.0.10")
	rl.agentHost = lab.Host("agent", site.LAN(), "192.168.1.10")
	devices := lab.Switch("devices", "10.9.0.0/24")
	rl.agentHost.Attach(devices, "10.9.0.1")
	rl.deviceHost = lab.Host("device", devices, "10.9.0.2")
	rl.agent, rl.deviceURL = rl.svc.startSite(t, rl.agentHost, rl.deviceHost)
	return rl
}

// restartResult is TestNATICERestart's one-line summary.
var restartResult string

// seqLoad is the load of the restart tests, through a CLI's local URL:
// one response streaming across the break (seqChunks chunks, 150 ms
// apart) and numbered non-idempotent requests one after another.
type seqLoad struct {
	reached chan struct{} // closed once request `at` was answered
	wg      sync.WaitGroup
	errs    []error     // by request number
	started []time.Time // when each request was sent, by number
	done    []time.Time // when each request was answered, by number

	streamErr   error
	streamLines int
}

const seqChunks = 40

// startSeqLoad starts total numbered requests and the stream.
func startSeqLoad(c *http.Client, base string, total, at int) *seqLoad {
	l := &seqLoad{reached: make(chan struct{}), errs: make([]error, total+1), started: make([]time.Time, total+1), done: make([]time.Time, total+1)}
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		resp, err := c.Get(fmt.Sprintf("%s/slow?ms=150&chunks=%d", base, seqChunks))
		if err != nil {
			l.streamErr = err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		l.streamErr = err
		l.streamLines = strings.Count(string(b), "\n")
	}()
	go func() {
		defer l.wg.Done()
		for i := 1; i <= total; i++ {
			l.started[i] = time.Now()
			l.errs[i] = postSeq(c, base, i)
			l.done[i] = time.Now()
			if i == at {
				close(l.reached)
			}
		}
	}()
	return l
}

// wait waits for every request and the stream to end.
func (l *seqLoad) wait() { l.wg.Wait() }

// check fails t for each request without its answer and a short stream.
func (l *seqLoad) check(t *testing.T) {
	t.Helper()
	for i, err := range l.errs[1:] {
		if err != nil {
			t.Errorf("request %d: %v", i+1, err)
		}
	}
	if l.streamErr != nil || l.streamLines != seqChunks {
		t.Errorf("streaming response across the break: %d of %d chunks, %v", l.streamLines, seqChunks, l.streamErr)
	}
}

// firstAfter is the first numbered request sent after t0, and when it was
// answered: sent after the break, it can only have gone the new way (one
// in flight at t0 may have been answered the old way just before).
func (l *seqLoad) firstAfter(t0 time.Time) (int, time.Time) {
	for i, s := range l.started[1:] {
		if s.After(t0) {
			return i + 1, l.done[i+1]
		}
	}
	return 0, time.Time{}
}

// postSeq sends POST /echo?seq=i and checks the device echoed i.
func postSeq(c *http.Client, base string, i int) error {
	resp, err := c.Post(fmt.Sprintf("%s/echo?seq=%d", base, i), "text/plain", strings.NewReader("request "+strconv.Itoa(i)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var echo struct {
		Query      map[string][]string `json:"query"`
		BodyLength int64               `json:"bodyLength"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		return fmt.Errorf("status %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || len(echo.Query["seq"]) != 1 || echo.Query["seq"][0] != strconv.Itoa(i) {
		return fmt.Errorf("status %d, echo %+v", resp.StatusCode, echo)
	}
	return nil
}

// deviceRequests asks the device directly how many requests it served
// (this one included).
func deviceRequests(t *testing.T, c *http.Client, deviceURL string) int64 {
	t.Helper()
	b, _ := natGet(t, c, deviceURL+"/api/stats")
	var s struct {
		Requests int64 `json:"requests"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("device stats: %v", err)
	}
	return s.Requests
}

// TestNATICERestartBrowser is TestNATICERestart with real headless
// Chromium as the technician, in the technician's namespace: the device's
// page in the shell's frame sends numbered non-idempotent requests and
// reads one long streaming response while the agent's address changes.
// The shell notices the broken path, restarts ICE on the same peer
// connection (the agent answers it on the existing one: same DTLS
// fingerprint), shows "reconnecting…" meanwhile, and every request is
// answered exactly once.
func TestNATICERestartBrowser(t *testing.T) {
	netlab.Require(t)
	testenv.NeedBinary(t, netlab.ChromiumPath)
	bin := stack.Build(t)
	const name = "2-eim-both, agent re-addressed (Chromium)"
	rl := newRestartLab(t, bin)
	var old netip.Addr
	b := runBrowserBreak(t, rl.svc, rl.tech, rl.deviceHost, rl.deviceURL, rl.agent, func() time.Time {
		changed := time.Now()
		old = rl.agentHost.Readdress("192.168.1.11")
		t.Logf("agent re-addressed from %s to %s", old, rl.agentHost.Addr())
		return changed
	})
	if len(b.Notices) == 0 || !strings.Contains(b.Notices[0], "reconnecting…") {
		t.Errorf("the toolbar did not say reconnecting…: %q", b.Notices)
	}
	t.Logf("%s: recovered %s after the agent's address changed; notices %q; browser's pair now %s",
		name, b.recovered.Round(time.Millisecond), b.Notices, b.after.First)
}

// browserBreak is what runBrowserBreak saw.
type browserBreak struct {
	Notices   []string
	recovered time.Duration // from the break to "restored" in the toolbar
	firstMS   int64         // from the break to the answer of the first numbered request sent after it
	after     pathSettle    // the browser's pair once restored
}

// runBrowserBreak opens a session in headless Chromium on tech, starts the
// restart tests' load from the device's page in the shell's frame, breaks
// the path with brk after the fifth request (brk returns when it broke),
// and checks that the shell
// restarted ICE on the same peer connection and that every request was
// answered exactly once (the device counts what it served), the stream
// intact.
func runBrowserBreak(t *testing.T, svc *natServices, tech, deviceHost *netlab.Host, deviceURL string, agent *proc.Proc, brk func() time.Time) browserBreak {
	t.Helper()
	info := svc.createSession(t, tech)
	ctx := tech.Chromium(chromedp.Flag("host-resolver-rules", browserResolverRules))
	if _, err := chromedp.Run(ctx, addInitScript(pcSpy)); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	// A page of the device without scripts of its own (the status page
	// polls the device, which would spoil its count): a JSON echo.
	if err := chromedp.Do(wctx, chromedp.Navigate(info.ShellOrigin+"/echo?seq=0#token="+info.Token)); err != nil {
		t.Fatalf("open the shell: %v", err)
	}
	// The device frame is on the device origin: a target of its own.
	tab := newTab(t, ctx, info)
	tab.waitDev(t, "the device's echo in the frame", `d.readyState === 'complete' && d.body && d.body.innerText.includes('"seq"')`)
	first, err := chromedp.Run(wctx, chromedp.Evaluate[pathSettle](`window.__portholeSettle(false, 0)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("connected: %s", first.First)

	dc := deviceHost.HTTPClient(10 * time.Second)
	defer dc.CloseIdleConnections()
	before := deviceRequests(t, dc, deviceURL)

	// The page's requests, from the frame, through the worker and the
	// tunnel; the toolbar's notices, as the shell shows them.
	const total, chunks = 30, 40
	if _, err := chromedp.Run(wctx, chromedp.Evaluate[bool](`(() => {
		const notice = document.querySelector('.toolbar .notice');
		const notices = window.__notices = [];
		new MutationObserver(() => notices.push(notice.textContent)).observe(notice, {childList: true, characterData: true, subtree: true});
		return true;
	})()`)); err != nil {
		t.Fatal(err)
	}
	start := fmt.Sprintf(`(() => {
		const r = window.__seq = {done: 0, errs: [], stream: -1, streamErr: '', startAt: [], doneAt: []};
		w.fetch('/slow?ms=150&chunks=%[2]d').then((res) => res.text()).then((t) => { r.stream = t.split('\n').length - 1; },
			(e) => { r.streamErr = String(e); r.stream = 0; });
		(async () => {
			for (let i = 1; i <= %[1]d; i++) {
				r.startAt.push(Date.now());
				try {
					const res = await w.fetch('/echo?seq=' + i, {method: 'POST', body: 'request ' + i});
					const j = await res.json();
					const seq = j.query && j.query.seq;
					if (res.status !== 200 || !seq || seq.length !== 1 || seq[0] !== String(i)) r.errs.push(i + ': status ' + res.status + ' ' + JSON.stringify(j).slice(0, 200));
				} catch (e) {
					r.errs.push(i + ': ' + e);
				}
				r.doneAt.push(Date.now());
				r.done = i;
			}
		})();
		return true;
	})()`, total, chunks)
	brDev[bool](t, tab, start)
	// The path breaks after the fifth request.
	tab.waitDev(t, "the first requests", `window.__seq.done >= 5`)
	broke := brk()

	type outcome struct {
		Done, Stream      int
		Errs, Notices     []string
		StartAt, DoneAt   []int64
		StreamErr, Ending string
	}
	rctx, rcancel := context.WithTimeout(ctx, 80*time.Second)
	defer rcancel()
	// Restored once the toolbar says so; then every request must have an
	// answer (or the session ended, which fails below).
	_, err = chromedp.Run(rctx, chromedp.Poll[float64](`(() => {
		const n = window.__notices || [];
		return n.some((s) => s.startsWith('Connection to the agent restored')) || document.querySelector('section.ended') ? performance.now() : null;
	})()`, chromedp.WithPollingInterval(20*time.Millisecond)))
	out := browserBreak{recovered: time.Since(broke)}
	if err != nil {
		t.Fatalf("the session did not recover: %v\nagent:\n%s", err, agent.Tail(30))
	}
	var res outcome
	ending, err := chromedp.Run(rctx, chromedp.Evaluate[string](`document.querySelector('section.ended')?.innerText || ''`))
	if err != nil {
		t.Fatal(err)
	}
	if ending == "" {
		tab.waitDev(t, "every request answered", `window.__seq.done >= 30 && window.__seq.stream >= 0`)
		res = brDev[outcome](t, tab, `({done: window.__seq.done, stream: window.__seq.stream, errs: window.__seq.errs, streamErr: window.__seq.streamErr, startAt: window.__seq.startAt, doneAt: window.__seq.doneAt})`)
	}
	res.Ending = ending
	if res.Notices, err = chromedp.Run(rctx, chromedp.Evaluate[[]string](`window.__notices`)); err != nil {
		t.Fatal(err)
	}
	if res.Ending != "" {
		t.Fatalf("the session ended: %q (notices %q)\nagent:\n%s", res.Ending, res.Notices, agent.Tail(30))
	}
	out.Notices = res.Notices
	t.Logf("toolbar notices: %q", res.Notices)
	// The first request sent after the break can only have gone the new
	// way.
	for i, at := range res.StartAt {
		if at > broke.UnixMilli() && i < len(res.DoneAt) {
			out.firstMS = res.DoneAt[i] - broke.UnixMilli()
			break
		}
	}
	if _, err := agent.WaitLine(rctx, agentRestarted); err != nil {
		t.Errorf("the agent did not see an ICE restart: %v", err)
	}
	if tail := agent.Tail(400); strings.Contains(tail, "replacing the peer connection") {
		t.Errorf("the agent replaced the peer connection instead of restarting ICE on it")
	}
	for _, e := range res.Errs {
		t.Errorf("request %s", e)
	}
	if res.Stream != chunks {
		t.Errorf("streaming response across the break: %d of %d chunks %s", res.Stream, chunks, res.StreamErr)
	}
	if out.after, err = chromedp.Run(wctx, chromedp.Evaluate[pathSettle](`window.__portholeSettle(false, 0)`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	// The device served each request exactly once: the numbered ones, the
	// stream, and the second stats request itself.
	if got, want := deviceRequests(t, dc, deviceURL)-before, int64(total+1+1); got != want {
		t.Errorf("the device served %d requests during the test, want %d (lost or duplicated requests)", got, want)
	}
	return out
}
