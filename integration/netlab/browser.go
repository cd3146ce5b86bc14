package netlab

import (
	"context"
	"os/exec"
	"syscall"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/internal/testenv"
)

// ChromiumPath is where the lab looks for Chromium.
const ChromiumPath = "/usr/bin/chromium"

// Chromium starts headless Chromium inside the host's namespace, so its
// sockets — HTTP, WebSocket and WebRTC alike — start there and cross the
// host's NAT and firewall like a real technician's browser. extra adds
// flags (e.g. chromedp.Flag("host-resolver-rules", …)). DevTools speaks
// over a pipe (file descriptors 3 and 4), which "ip netns exec" passes on,
// so the test process drives the browser without any socket into the
// namespace. The browser stops when the test ends.
//
// Flags: those of NOTES-browser.md for a closed network, and a fresh
// profile per call (chromedp's temporary user-data-dir).
func (h *Host) Chromium(extra ...chromedp.ExecAllocatorOption) context.Context {
	t := h.lab.t
	t.Helper()
	testenv.NeedBinary(t, ChromiumPath)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// ip netns exec NS chromium ARGS...: ip execs Chromium in place
			// and the pipe descriptors (ExtraFiles) stay open across it.
			ip, err := exec.LookPath("ip")
			if err != nil {
				ip = "/usr/sbin/ip"
			}
			cmd.Args = append([]string{"ip", "netns", "exec", h.ns, cmd.Path}, cmd.Args[1:]...)
			cmd.Path = ip
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		}),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		acancel()
	})
	// Start the browser now, with a context that is not limited in time:
	// the first Run's context is the browser's lifetime.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("netlab: start Chromium in %s: %v", h.name, err)
	}
	return ctx
}
