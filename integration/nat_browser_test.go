package integration

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// How the browser in the technician's namespace reaches the session
// origins. Signaling serves sessions at http://shell-<session>.sessions.localhost:443
// (the session window) and http://<session>.sessions.localhost:443 (the
// device's pages):
// Chromium treats any *.localhost origin as a secure context by its name
// alone, so the service worker registers over plain HTTP, and
// --host-resolver-rules sends those names to signaling's internet address
// instead of loopback. No --unsafely-treat-insecure-origin-as-secure is
// needed, and none would do: it takes exact origins, and every session has
// its own.
const natSessionsDomain = "sessions.localhost:443"

// browserResolverRules is the Chromium flag value that maps session
// origins to signaling in the lab.
var browserResolverRules = "MAP *.localhost " + natSignalIP

// browserResult is what one topology showed with Chromium as the
// technician.
type browserResult struct {
	topology  string
	kind      string        // toolbar's path kind: direct or relay
	label     string        // toolbar's path text
	title     string        // toolbar's path tooltip: candidate types
	reason    string        // plain-language reason shown when relayed
	first     string        // first selected pair (getStats): "local -> remote"
	final     string        // pair once settled
	connected time.Duration // navigation start to the first selected pair
	settled   time.Duration // navigation start to the expected path
	rendered  time.Duration // test's navigate call to device page rendered in the frame
}

// settleWait bounds how long Chromium may take to move from a first,
// relayed pair to a direct one.
const settleWait = 8 * time.Second

// pathSettle is what window.__portholeSettle returns.
type pathSettle struct {
	First, Final     string
	FirstMs, FinalMs float64
	Settled          bool
}

// pcSpy runs in every document before its scripts: it keeps the page's
// RTCPeerConnections and defines __portholeSettle(wantRelay, ms), which
// resolves once getStats shows a selected pair, and then once the pair's
// relayed-ness is wantRelay (or ms passed), with times from navigation
// start (performance.now).
const pcSpy = `(() => {
	const Native = window.RTCPeerConnection;
	if (!Native || window.__portholePCs) return;
	const pcs = window.__portholePCs = [];
	window.RTCPeerConnection = class extends Native {
		constructor(...args) { super(...args); pcs.push(this); }
	};
	const selected = async () => {
		const pc = pcs[pcs.length - 1];
		if (!pc) return null;
		const stats = new Map();
		(await pc.getStats()).forEach((s) => stats.set(s.id, s));
		for (const s of stats.values()) {
			if (s.type !== 'transport' || !s.selectedCandidatePairId) continue;
			const p = stats.get(s.selectedCandidatePairId);
			if (!p || p.state !== 'succeeded') return null;
			const l = stats.get(p.localCandidateId), r = stats.get(p.remoteCandidateId);
			const d = (c) => c.candidateType + (c.relayProtocol ? '/' + c.relayProtocol : '') + ' ' + c.address + ':' + c.port;
			return {relay: l.candidateType === 'relay' || r.candidateType === 'relay', text: d(l) + ' -> ' + d(r)};
		}
		return null;
	};
	const tick = () => new Promise((res) => setTimeout(res, 10));
	window.__portholeSettle = async (wantRelay, ms) => {
		let first;
		while (!(first = await selected())) await tick();
		const out = {first: first.text, firstMs: performance.now(), final: first.text, finalMs: performance.now(), settled: first.relay === wantRelay};
		const until = performance.now() + ms;
		while (!out.settled && performance.now() < until) {
			await tick();
			const p = await selected();
			if (!p) continue;
			out.final = p.text;
			out.finalMs = performance.now();
			out.settled = p.relay === wantRelay;
		}
		return out;
	};
})()`

// addInitScript makes src run in every new document of the tab.
func addInitScript(src string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src})
		return chromedp.Void{}, err
	}
}

// TestNATBrowser plays the technician with real headless Chromium inside
// the technician's namespace, in the topologies marked browser: the shell
// opens on the session origin, connects to the agent through the lab's
// NATs, and the device's page renders in its frame through the tunnel.
// The toolbar's path (from RTCPeerConnection.getStats) must match the
// topology, and a relayed path must come with its reason.
func TestNATBrowser(t *testing.T) {
	netlab.Require(t)
	testenv.NeedBinary(t, netlab.ChromiumPath)
	bin := stack.Build(t)
	var results []browserResult
	for _, tp := range natTopologies {
		if !tp.browser {
			continue
		}
		t.Run(tp.name, func(t *testing.T) {
			lab := netlab.New(t)
			inet := lab.Internet("203.0.113.0/24", "198.51.100.0/24")
			svc := startNATServices(t, lab, inet, bin, natOptions{relayTLS: tp.relayTLS})
			tech, agentHost, deviceHost := tp.build(lab, inet)
			agent, deviceURL := svc.startSite(t, agentHost, deviceHost, svc.proxySite(t, lab, agentHost, tp.proxy))
			info := svc.createSession(t, tech)

			flags := []chromedp.ExecAllocatorOption{chromedp.Flag("host-resolver-rules", browserResolverRules)}
			if tp.relayTLS {
				// The relay's certificate is from the lab's own CA: trust
				// exactly its key (without this flag Chromium refuses the
				// relay and, with TCP 443 only, finds no pair at all).
				flags = append(flags, chromedp.Flag("ignore-certificate-errors-spki-list", svc.relaySPKI))
			}
			ctx := tech.Chromium(flags...)
			if _, err := chromedp.Run(ctx, addInitScript(pcSpy)); err != nil {
				t.Fatal(err)
			}
			r := browserResult{topology: tp.name}
			start := time.Now()
			if err := chromedp.Do(ctx, chromedp.Navigate(info.ShellOrigin+"/#token="+info.Token)); err != nil {
				t.Fatalf("open the shell: %v", err)
			}
			wctx, cancel := context.WithTimeout(ctx, 40*time.Second)
			defer cancel()
			// The path from getStats, as soon as ICE selects a pair and once
			// it settles: Chromium nominates the first pair that works, which
			// may be through the relay, and moves to a direct one when that
			// succeeds a moment later.
			ps, err := chromedp.Run(wctx, chromedp.Evaluate[pathSettle](
				fmt.Sprintf(`window.__portholeSettle(%v, %d)`, tp.wantRelay, settleWait.Milliseconds()), chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatalf("no candidate pair selected: %v\nagent:\n%s", err, agent.Tail(20))
			}
			r.connected = time.Duration(ps.FirstMs * float64(time.Millisecond))
			r.settled = time.Duration(ps.FinalMs * float64(time.Millisecond))
			r.first = ps.First
			r.final = ps.Final
			// The device's page, rendered in the frame through the tunnel.
			// The frame is on the device origin: a target of its own.
			tab := newTab(t, ctx, info)
			var h1 string
			tab.dev(t, "the device's page in the frame", func(fctx context.Context) (bool, error) {
				var err error
				h1, err = chromedp.Run(fctx, chromedp.Evaluate[string](`document.querySelector('h1')?.textContent || ''`))
				return err == nil && h1 != "", err
			})
			r.rendered = time.Since(start)
			if want := deviceH1(t, deviceHost, deviceURL); h1 != want {
				t.Errorf("the frame shows %q, the device's page says %q", h1, want)
			}
			type toolbar struct {
				Kind, Label, Title, Reason string
			}
			// The toolbar polls getStats every 2 s, and the agent's account
			// of its side (session.path) may arrive after the first pair:
			// wait for both to agree.
			want, wantReason := "direct", ""
			if tp.wantRelay {
				want, wantReason = "relay", tp.browserReason
			}
			tb, err := chromedp.Run(wctx, chromedp.Poll[toolbar](fmt.Sprintf(`(() => {
				const p = document.querySelector('.toolbar .path');
				if (!p || p.dataset.kind !== %q) return null;
				const r = document.querySelector('.toolbar .path-reason');
				const reason = r ? r.textContent : '';
				if (!reason.includes(%q)) return null;
				return {kind: p.dataset.kind, label: p.textContent, title: p.title, reason};
			})()`, want, wantReason), chromedp.WithPollingInterval(20*time.Millisecond)))
			if err != nil {
				label, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.toolbar .path')?.title || ''`))
				reason, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.toolbar .path-reason')?.textContent || ''`))
				t.Fatalf("the toolbar never showed a %s path saying %q (it shows %q, reason %q; getStats: first %s, then %s): %v",
					want, wantReason, label, reason, ps.First, ps.Final, err)
			}
			r.kind, r.label, r.title, r.reason = tb.Kind, tb.Label, tb.Title, tb.Reason

			// A request from the page itself: byte-exact through the worker.
			got := brDev[string](t, tab, `(async () => {
				const res = await w.fetch('/firmware.sha256?size=1048576');
				const body = await w.fetch('/firmware.bin?size=1048576').then((r) => r.arrayBuffer());
				const sum = await crypto.subtle.digest('SHA-256', body);
				const hex = [...new Uint8Array(sum)].map((b) => b.toString(16).padStart(2, '0')).join('');
				return (await res.text()).trim() === hex ? 'ok' : 'mismatch ' + body.byteLength;
			})()`)
			if got != "ok" {
				t.Errorf("1 MiB firmware fetched by the page: %q", got)
			}

			t.Logf("%s: first pair %s after %s, settled on %s after %s; toolbar %q %q (%s); page rendered after %s (wall)",
				tp.name, r.first, r.connected.Round(time.Millisecond), r.final, r.settled.Round(time.Millisecond),
				r.label, r.reason, r.title, r.rendered.Round(time.Millisecond))
			if !ps.Settled {
				t.Errorf("getStats never showed relayed=%v within %s: first %s, last %s", tp.wantRelay, settleWait, r.first, r.final)
			}
			if tp.wantRelay && !strings.Contains(r.reason, tp.browserReason) {
				t.Errorf("relayed with reason %q, want it to say %q", r.reason, tp.browserReason)
			}
			if tp.techTLS && !strings.HasPrefix(r.final, "relay/tls ") {
				t.Errorf("Chromium's end of the pair is %s, want a relay reached over TLS", r.final)
			}
			if !tp.wantRelay && r.reason != "" {
				t.Errorf("a direct path shows a relay reason: %q", r.reason)
			}
			results = append(results, r)
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-22s %-7s %-10s %-10s %-10s %-42s %s\n", "topology (Chromium)", "path", "connected", "settled", "rendered", "selected pair (browser side)", "reason")
	for _, r := range results {
		fmt.Fprintf(&b, "%-22s %-7s %-10s %-10s %-10s %-42s %s\n", r.topology, r.kind,
			r.connected.Round(time.Millisecond), r.settled.Round(time.Millisecond), r.rendered.Round(time.Millisecond), r.final, r.reason)
	}
	t.Log(b.String())
}

// createSession opens a session on the demo device with the technician
// token, from techHost, as the web app does (POST /v1/sessions).
func (s *natServices) createSession(t *testing.T, techHost *netlab.Host) *proto.SessionInfo {
	t.Helper()
	c := techHost.HTTPClient(30 * time.Second)
	defer c.CloseIdleConnections()
	api := &sigclient.API{Base: s.signalURL, Token: s.techToken, Client: c}
	info, err := api.CreateSession(context.Background(), natDeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if info.ShellOrigin == "" || info.DeviceOrigin == "" || info.Token == "" {
		t.Fatalf("session without origin or token: %+v", info)
	}
	return info
}

var h1Pattern = regexp.MustCompile(`<h1>([^<]*)</h1>`)

// deviceH1 is the heading of the device's own status page.
func deviceH1(t *testing.T, deviceHost *netlab.Host, deviceURL string) string {
	t.Helper()
	c := deviceHost.HTTPClient(10 * time.Second)
	defer c.CloseIdleConnections()
	page, _ := natGet(t, c, deviceURL+"/")
	m := h1Pattern.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no <h1> on the device's page")
	}
	return string(m[1])
}
