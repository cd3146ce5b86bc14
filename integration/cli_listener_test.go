package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
)

// TestCLIListenerRefusesOtherSitesInChromium serves the demo device with
// `porthole http` on 127.0.0.1 and visits it the three ways a technician's
// browser can, in Chromium (which resolves every *.localhost name to
// loopback itself, as a rebinding DNS answer would):
//   - a page of another site (http://evil.localhost:<port>/) posts the
//     device's settings form to the listener, by a form into a hidden
//     frame and by a no-cors fetch: both refused by the listener, neither
//     reaches the device, the settings stay;
//   - a page whose own name resolves to the listener
//     (http://rebind.localhost:<listener port>/, the DNS rebinding
//     attack): refused, the page reads nothing of the device;
//   - the listener's own page, opened at its address: the device's form
//     posts and is saved, with the device checking Origin (--strict-origin):
//     the agent makes the listener's own origin, and only it, the
//     device's.
func TestCLIListenerRefusesOtherSitesInChromium(t *testing.T) {
	s := stack.Start(t, stack.Options{DeviceArgs: []string{"--strict-origin"}})
	ctx := brBrowser(t)
	cli, m := startCLI(t, s, `serving \S+ web page at (http://\S+/)`, "http", stack.DeviceID, "--listen", "127.0.0.1:0")
	base := strings.TrimSuffix(m[1], "/")
	lu, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	port := lu.Port()
	device := s.Procs["porthole-demo-device"]
	hostname := func() string {
		_, body := get(t, http.DefaultClient, "http://"+s.DeviceAddr+"/settings")
		m := regexp.MustCompile(`id="hostname" name="hostname" value="([^"]*)"`).FindStringSubmatch(string(body))
		if m == nil {
			t.Fatalf("no host name field on the device's settings page:\n%.400s", body)
		}
		return m[1]
	}
	before := hostname()

	// 1. Another site posts to the listener.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>evil</title>
<iframe name="sink"></iframe>
<form id="f" method="post" action="%[1]s/settings" target="sink">
<input name="hostname" value="PWNED-FORM"><input name="location" value="x"><input name="contact" value="x">
</form>
<script>
window.fetchDone = '';
fetch('%[1]s/settings', {method: 'POST', mode: 'no-cors', body: new URLSearchParams({hostname: 'PWNED-FETCH', location: 'x', contact: 'x'})})
  .then(() => { window.fetchDone = 'sent'; }, (e) => { window.fetchDone = 'failed: ' + e; });
document.getElementById('f').submit();
</script>`, base)
	}))
	defer evil.Close()
	eu, _ := url.Parse(evil.URL)
	evilOrigin := "http://evil.localhost:" + eu.Port()
	brNavigate(t, ctx, evilOrigin+"/")
	brWait(t, ctx, "the evil page's fetch", `window.fetchDone !== ''`)
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Two refusals, each naming the other site.
	for range 2 {
		if _, err := cli.WaitLine(wctx, regexp.MustCompile(`request refused.*another site.*method=POST.*origin=`+regexp.QuoteMeta(evilOrigin))); err != nil {
			t.Fatalf("the listener did not refuse the cross-site POST: %v", err)
		}
	}
	// WaitLine may see the same line twice; wait for the second refusal
	// itself before counting.
	testenv.Eventually(t, 30*time.Second, "the listener's second refusal", func() bool {
		return strings.Count(cli.Tail(200), "origin="+evilOrigin) >= 2
	})
	if n := strings.Count(cli.Tail(200), "origin="+evilOrigin); n != 2 {
		t.Errorf("%d refusals of %s, want 2 (the form and the fetch):\n%s", n, evilOrigin, cli.Tail(20))
	}
	if got := hostname(); got != before {
		t.Fatalf("the device's host name is %q after the cross-site posts, want %q", got, before)
	}
	if tail := device.Tail(200); strings.Contains(tail, "evil.localhost") || strings.Contains(tail, "PWNED") {
		t.Errorf("the cross-site posts reached the device:\n%s", tail)
	}

	// 2. A name of the attacker's that resolves to the listener.
	rebind := "http://rebind.localhost:" + port
	brNavigate(t, ctx, rebind+"/settings")
	text := brEval[string](t, ctx, `document.body.innerText`)
	if !strings.Contains(text, "DNS rebinding") || strings.Contains(text, "General Settings") {
		t.Fatalf("the rebinding page reads: %.300s", text)
	}
	if got := brEval[string](t, ctx, `fetch('/api/status').then((r) => r.status + ' ' + r.statusText)`); !strings.HasPrefix(got, "403") {
		t.Errorf("a fetch from the rebinding page: %s, want 403", got)
	}

	// 3. The listener's own page: the form posts, and the device, which
	// checks Origin, takes it.
	brNavigate(t, ctx, base+"/settings")
	brWait(t, ctx, "the settings form", `document.getElementById('hostname')`)
	// The form's page marks its window: the answer is a new document.
	brEval[bool](t, ctx, `(window.__formPage = true, document.getElementById('hostname').value = 'NPI-OWN-PAGE', document.querySelector('form button[type=submit]').click(), true)`)
	brWait(t, ctx, "the saved settings", `!window.__formPage && document.readyState === 'complete' && document.getElementById('hostname')?.value === 'NPI-OWN-PAGE'`)
	if got := hostname(); got != "NPI-OWN-PAGE" {
		t.Fatalf("the device's host name is %q after the listener's own page posted, want NPI-OWN-PAGE", got)
	}
	if strings.Contains(device.Tail(200), "cross-origin form refused") {
		t.Errorf("the device refused a post as cross-origin:\n%s", device.Tail(20))
	}
}

// brNavigate loads u in the tab of ctx and waits for its load event.
func brNavigate(t testing.TB, ctx context.Context, u string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
}
