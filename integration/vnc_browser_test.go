package integration

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// TestVNCBrowser is the device's screen in the session window: real
// Chromium on the technician's host, noVNC in the shell on a data channel,
// the agent at the site, TigerVNC's Xvnc on the box with a real X client
// (xev) on its screen, which prints every key and click that reaches the
// server. The view-only session goes first: when the
// key of the second session appears in xev's output, X has delivered
// everything before it, so the view-only key and clicks must be absent.
func TestVNCBrowser(t *testing.T) {
	netlab.Require(t)
	testenv.NeedBinary(t, netlab.ChromiumPath)
	xev := testenv.NeedBinary(t, "xev")
	l := startSVLab(t)
	dpy := fmt.Sprintf(":%d", l.display)

	// xev's own window covers the screen, under the pointer (the X
	// server's focus follows it, there being no window manager): it prints
	// every key and button that reaches the server, and its Expose says it
	// is on the screen.
	xevProc := l.box.Start("xev", xev, []string{"-display", dpy, "-geometry", "320x200+0+0"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := xevProc.WaitLine(ctx, regexp.MustCompile(`^Expose event`)); err != nil {
		t.Fatalf("xev's window never appeared: %v\n%s", err, xevProc.Tail(20))
	}

	hc := l.tech.HTTPClient(30 * time.Second)
	defer hc.CloseIdleConnections()
	api := &sigclient.API{Base: l.svc.signalURL, Token: l.svc.techToken, Client: hc}
	open := func() *proto.SessionInfo {
		info, err := api.CreateSession(context.Background(), "box-1")
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	bctx := l.tech.Chromium(chromedp.Flag("host-resolver-rules", browserResolverRules))
	art := testenv.ArtifactsDir(t)

	connect := func(info *proto.SessionInfo, viewOnly bool) {
		t.Helper()
		q := "/?porthole-view=vnc&port=5900"
		if viewOnly {
			q += "&view-only=1"
		}
		start := time.Now()
		if err := chromedp.Do(bctx, chromedp.Navigate(info.ShellOrigin+q+"#token="+info.Token)); err != nil {
			t.Fatalf("open the shell: %v", err)
		}
		brWait(t, bctx, "the VNC password prompt", `document.querySelector('#screen-password')`)
		if err := chromedp.Do(bctx, chromedp.SendKeys("#screen-password", svVNCPass+"\r")); err != nil {
			t.Fatalf("type the VNC password: %v", err)
		}
		brWait(t, bctx, "noVNC connected", `document.body.dataset.screen === 'connected'`)
		// Pixels of the device's screen on noVNC's canvas: xev's
		// window and its subwindow, so at least two colours.
		brWait(t, bctx, "the framebuffer on the canvas", `(() => {
			const c = document.querySelector('#screen-view canvas');
			if (!c || !c.width) return false;
			const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
			const seen = new Set();
			for (let i = 0; i < d.length; i += 4) { seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); if (seen.size > 1) return true; }
			return false;
		})()`)
		t.Logf("VNC (view-only %v): shell open to framebuffer on the canvas in %s", viewOnly, time.Since(start).Round(time.Millisecond))
	}

	// 1. View-only: a key and a click on the canvas must not reach X.
	first := open()
	connect(first, true)
	brShot(t, bctx, art, "vnc-viewer-view-only")
	if err := chromedp.Do(bctx, chromedp.Click("#screen-view canvas"), chromedp.KeyEvent("w")); err != nil {
		t.Fatalf("click and key in view-only: %v", err)
	}

	// 2. Interactive: the key reaches the server.
	second := open()
	connect(second, false)
	if err := chromedp.Do(bctx, chromedp.KeyEvent("q")); err != nil {
		t.Fatalf("key press: %v", err)
	}
	kctx, kcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer kcancel()
	if _, err := xevProc.WaitLine(kctx, regexp.MustCompile(`keysym 0x71, q\)`)); err != nil {
		t.Fatalf("the key typed in noVNC never reached the X server: %v\n%s", err, xevProc.Tail(30))
	}
	brShot(t, bctx, art, "vnc-viewer")
	out := xevProc.Tail(100000)
	qAt := strings.Index(out, "keysym 0x71, q)")
	earlier := out[:qAt]
	if strings.Contains(earlier, "keysym 0x77, w)") || strings.Contains(earlier, "ButtonPress") {
		t.Errorf("input of the view-only session reached the X server:\n%s", earlier)
	}

	// Both sessions are jobs of their own: "Open Device Screen" (every
	// stream went to the device's VNC service), with the stream's bytes
	// once the viewer's connection ended (its access-log entry is written
	// then). The first ended when its window went to the second session.
	for _, info := range []*proto.SessionInfo{second, first} {
		if err := api.EndSession(context.Background(), info.Session); err != nil {
			t.Logf("end session %s: %v", info.Session, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := api.Jobs(context.Background(), url.Values{"device": {"box-1"}})
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		var got []string
		for _, j := range l.Jobs {
			if j.ID != first.Session && j.ID != second.Session {
				continue
			}
			got = append(got, fmt.Sprintf("%s %q streams=%d bytes=%d/%d state=%s", j.ID, j.Type, j.TCPStreams, j.ReqBytes, j.RespBytes, j.State))
			if j.Type == "Open Device Screen" && j.TCPStreams == 1 && j.RespBytes > 0 && j.State == "ended" {
				done++
			}
		}
		if done == 2 {
			t.Logf("jobs: %s", strings.Join(got, "; "))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two VNC sessions are not both ended \"Open Device Screen\" jobs with their bytes: %s", strings.Join(got, "; "))
		}
		time.Sleep(200 * time.Millisecond) // polling the API, which has no push for jobs
	}
	// The agent kept the first stream view-only and says so in its access
	// log; the second was interactive.
	for _, c := range []struct {
		info *proto.SessionInfo
		want bool
	}{{first, true}, {second, false}} {
		var log proto.JobLog
		techGetVia(t, l.tech, l.svc, c.info.Session, &log)
		if len(log.Entries) != 1 || log.Entries[0].ViewOnly != c.want {
			t.Errorf("job %s: access log %+v, want one stream with viewOnly=%v", c.info.Session, log.Entries, c.want)
		}
	}
}
