package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/integration/devtools"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/proto"
)

// Figure names of the fallback group: what a request costs when the
// browser sends it past the service worker and signaling carries it to
// the agent over the agent's own WebSocket, against the peer-to-peer path
// in the same run.
const (
	figFallbackTunnel  = "fallback group, 2 KiB GET p50, Go peer over the data channel"
	figFallbackGo      = "fallback group, 2 KiB GET p50, Go client via signaling (fallback)"
	figFallbackWorker  = "fallback group, 2 KiB GET p50, Chromium fetch() via the service worker"
	figFallbackSyncXHR = "fallback group, 2 KiB GET p50, Chromium synchronous XHR via signaling (fallback)"
)

// FallbackFigures measures one small request on each path, one at a time,
// whole answer read: Go clients (the tunnel's Go peer, and an HTTP client
// sending what a synchronous XHR sends to the device origin), then the
// same page in Chromium making fetch() calls (through its service worker)
// and synchronous XHRs (which the browser sends to the server).
func FallbackFigures(t testing.TB, r *Report, cfg Config) {
	st := stack.Start(t, stack.Options{Verbose: os.Getenv("FB_VERBOSE") != ""})
	small := "/firmware.bin?size=2048"
	n := max(cfg.Requests/4, 20)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sd, err := openSession(ctx, st, false)
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	tun := &http.Client{Transport: sd.Client}
	info, cookie, closeClient := fallbackCookie(t, st)
	fb := &http.Client{Transport: &deviceOrigin{st: st, host: info.Session + "." + st.SessionsHost, cookie: cookie}}
	sample := func(name string, hc *http.Client, base string) []float64 {
		var p50 []float64
		for range cfg.LatencyRuns {
			ds := make([]time.Duration, 0, n)
			for i := range n {
				t0 := time.Now()
				resp, err := hc.Get(fmt.Sprintf("%s%s&i=%d", base, small, i))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				m, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || m != 2048 {
					t.Fatalf("%s: %s, %d bytes", name, resp.Status, m)
				}
				ds = append(ds, time.Since(t0))
			}
			p50 = append(p50, percentile(ds, 50))
		}
		return p50
	}
	r.Add(figFallbackTunnel, "µs", sample("tunnel", tun, "http://device"))
	f := r.Against(r.Add(figFallbackGo, "µs", sample("fallback", fb, "http://device")), figFallbackTunnel)
	f.Annotate("%.0f µs more per request than the data channel", f.Median-f.BaselineMedian)
	_ = sd.Close()
	closeClient()

	if _, err := os.Stat(ChromiumPath); err != nil {
		logf(t, "fallback group: no Chromium at %s; browser figures skipped", ChromiumPath)
		return
	}
	worker, sync := browserFallback(t, st, n, cfg.LatencyRuns)
	r.Add(figFallbackWorker, "µs", worker)
	f = r.Against(r.Add(figFallbackSyncXHR, "µs", sync), figFallbackWorker)
	f.Annotate("%+.0f µs per request against the worker's path", f.Median-f.BaselineMedian)
}

// fallbackCookie joins a new session over its socket as the shell does,
// redeems the relay ticket of its session.ready for the device cookie and
// returns the cookie; close ends the client connection.
func fallbackCookie(t testing.TB, st *stack.Stack) (*proto.SessionInfo, string, func()) {
	ctx := context.Background()
	api := &sigclient.API{Base: st.SignalingURL, Token: st.TechToken}
	info, err := api.CreateSession(ctx, stack.DeviceID)
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	conn, err := sigclient.Dial(ctx, sigclient.SocketURL(st.SignalingURL, proto.PathSessionSocket),
		sigclient.Options{Header: http.Header{"Authorization": {"Bearer " + info.Token}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient}); err != nil {
		t.Fatal(err)
	}
	var ready proto.SessionReady
	for ready.RelayTicket == "" {
		select {
		case env, ok := <-conn.Incoming():
			if !ok {
				t.Fatalf("session socket closed: %v", conn.Err())
			}
			if env.Type == proto.TypeSessionReady {
				_ = proto.DecodeData(env, &ready)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no session.ready")
		}
	}
	req, _ := http.NewRequest(http.MethodGet, st.SignalingURL+proto.PathRelayFrame+"?t="+url.QueryEscape(ready.RelayTicket), nil)
	req.Host = info.Session + "." + st.SessionsHost
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == proto.DeviceCookie {
			return info, c.Value, func() { conn.Close() }
		}
	}
	t.Fatalf("no device cookie for the relay ticket: %v", resp.Header)
	return nil, "", nil
}

// deviceOrigin sends requests to a session's device origin on the stack's
// signaling server as the device's page does with a synchronous XHR.
type deviceOrigin struct {
	st     *stack.Stack
	host   string
	cookie string
	base   http.Transport
}

func (d *deviceOrigin) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	u, _ := url.Parse(d.st.SignalingURL)
	out.URL.Scheme, out.URL.Host, out.Host = u.Scheme, u.Host, d.host
	out.Header.Set("Sec-Fetch-Site", "same-origin")
	out.Header.Set("Cookie", proto.DeviceCookie+"="+d.cookie)
	return d.base.RoundTrip(out)
}

// browserFallback opens a session's shell in Chromium and, from the device
// page in its frame, times fetch() (the worker's path) and synchronous
// XHR (the server's) to the same 2 KiB resource, interleaved run by run.
func browserFallback(t testing.TB, st *stack.Stack, n, runs int) (worker, sync []float64) {
	dir, err := os.MkdirTemp("", "porthole-bench-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(dir),
	)
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	info := benchSession(t, st)
	if err := chromedp.Do(ctx, chromedp.Navigate(info.ShellOrigin+"/#token="+info.Token)); err != nil {
		t.Fatalf("open the shell: %v", err)
	}
	// The device frame is cross-origin to the session window: a target of
	// its own. Its relay frame redeemed the session's ticket for the
	// device cookie before the page loaded.
	tg := devtools.New(ctx)
	defer tg.Close()
	pollFrame(t, tg, info.DeviceOrigin, `document.readyState === 'complete' && document.body.innerText.includes('Porthole LaserJet 4000') ? 1 : 0`)
	fctx, err := tg.Find("iframe", devtools.OnOrigin(info.DeviceOrigin))
	if err != nil {
		t.Fatalf("the device frame: %v", err)
	}
	for range runs {
		res, err := chromedp.Run(fctx, chromedp.Evaluate[struct{ Worker, Sync []float64 }](fmt.Sprintf(`(async () => {
			const w = window;
			const n = %d, url = '/firmware.bin?size=2048';
			const worker = [], sync = [];
			for (let i = 0; i < n; i++) {
				let t0 = w.performance.now();
				const r = await w.fetch(url + '&w=' + i + '&r=' + Math.random(), {cache: 'no-store'});
				if ((await r.arrayBuffer()).byteLength !== 2048) throw new Error('fetch: short body');
				worker.push((w.performance.now() - t0) * 1000);
				t0 = w.performance.now();
				const x = new w.XMLHttpRequest();
				x.open('GET', url + '&s=' + i + '&r=' + Math.random(), false);
				x.overrideMimeType('text/plain; charset=x-user-defined');
				x.send();
				if (x.status !== 200 || x.responseText.length !== 2048) throw new Error('sync XHR: ' + x.status + ' ' + x.responseText.slice(-400));
				sync.push((w.performance.now() - t0) * 1000);
			}
			const p50 = (a) => a.slice().sort((p, q) => p - q)[Math.ceil(a.length / 2) - 1];
			return {Worker: [p50(worker)], Sync: [p50(sync)]};
		})()`, n), chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("time the two paths in Chromium: %v", err)
		}
		worker = append(worker, res.Worker...)
		sync = append(sync, res.Sync...)
		logf(t, "Chromium 2 KiB GET p50: fetch via worker %.0f µs, sync XHR via signaling %.0f µs", res.Worker[0], res.Sync[0])
	}
	return worker, sync
}
