package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/devtools"
	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
)

// Figure names of the bulk group (issue 21): a firmware-sized download and
// a firmware form POST, in Chromium through the session, through the CLI's
// `porthole http` (a Go client) and in Chromium directly on the device, all
// in the same run.
const (
	figBulkDownDirect  = "bulk download, Chromium direct on the device"
	figBulkDownCLI     = "bulk download, porthole http (CLI)"
	figBulkDownSession = "bulk download, Chromium through the session"
	figBulkUpDirect    = "bulk upload (POST), Chromium direct on the device"
	figBulkUpCLI       = "bulk upload (POST), porthole http (CLI)"
	figBulkUpSession   = "bulk upload (POST), Chromium through the session"
	figBulkDrops       = "datagrams dropped per session transfer on loopback (pion packetio + kernel UDP RcvbufErrors)"
)

// packetioDrop is what pion logs for each datagram its packetio buffer drops.
const packetioDrop = "Buffer is full"

// transfer is one bulk transfer: its rate, the CPU each process spent on
// it, and the datagrams dropped meanwhile.
type transfer struct {
	mbs   float64
	cpu   map[string]time.Duration
	bytes int64
	drops drops
}

type drops struct {
	packetio, kernel int
	sockets          map[string]int // per process, the kernel's drops on its UDP sockets
}

func (d drops) total() int { return d.packetio + d.kernel }

// bulkProcs are the processes whose CPU a transfer is charged with.
type bulkProcs struct {
	st      *stack.Stack
	cli     *proc.Proc
	browser int // Chromium's browser process; its descendants count too
}

func (b bulkProcs) cpu() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, name := range []string{"porthole-agent", "porthole-signaling", "porthole-demo-device"} {
		if p := b.st.Procs[name]; p != nil {
			out[name], _ = procCPU(p.Pid())
		}
	}
	if b.cli != nil {
		out["porthole (CLI)"], _ = procCPU(b.cli.Pid())
	}
	if b.browser != 0 {
		for _, pid := range processTree(b.browser) {
			c, _ := procCPU(pid)
			out[fmt.Sprintf("%s%d", chromiumPid, pid)] = c
		}
	}
	return out
}

// chromiumPid prefixes the CPU of each of Chromium's processes in a cpu
// map; measure sums them (a process that exited meanwhile is not counted,
// one that started counts from zero).
const chromiumPid = "chromium pid "

// udpDrops is the kernel's per-socket drop counters of the UDP sockets of
// the given processes (/proc/net/udp and udp6, by socket inode), summed per
// process name.
func udpDrops(pids map[string][]int) map[string]int {
	owner := map[string]string{} // socket inode → process name
	for name, ps := range pids {
		for _, pid := range ps {
			fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
			for _, fd := range fds {
				l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
				if ino, ok := strings.CutPrefix(l, "socket:["); ok && err == nil {
					owner[strings.TrimSuffix(ino, "]")] = name
				}
			}
		}
	}
	out := map[string]int{}
	for _, file := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 13 {
				continue
			}
			if name, ok := owner[f[9]]; ok {
				n, _ := strconv.Atoi(f[len(f)-1])
				out[name] += n
			}
		}
	}
	return out
}

func (b bulkProcs) drops() drops {
	d := drops{kernel: udpRcvbufErrors()}
	pids := map[string][]int{}
	for name, p := range map[string]*proc.Proc{"porthole-agent": b.st.Procs["porthole-agent"], "porthole (CLI)": b.cli} {
		if p != nil {
			d.packetio += p.Count(packetioDrop)
			pids[name] = []int{p.Pid()}
		}
	}
	if b.browser != 0 {
		pids["chromium"] = processTree(b.browser)
	}
	d.sockets = udpDrops(pids)
	return d
}

// measure runs fn, which moves n bytes, and returns its transfer.
func (b bulkProcs) measure(t testing.TB, n int64, fn func() time.Duration) transfer {
	c0, d0 := b.cpu(), b.drops()
	d := fn()
	c1, d1 := b.cpu(), b.drops()
	tr := transfer{mbs: float64(n) / d.Seconds() / 1e6, cpu: map[string]time.Duration{}, bytes: n,
		drops: drops{packetio: d1.packetio - d0.packetio, kernel: d1.kernel - d0.kernel}}
	for k, v := range c1 {
		if pid, ok := strings.CutPrefix(k, chromiumPid); ok {
			tr.cpu["chromium (all processes)"] += v - c0[k]
			// And per kind of process, so the profile says where
			// Chromium's CPU goes (renderer, network service, GPU …).
			n, _ := strconv.Atoi(pid)
			tr.cpu["chromium "+chromiumKind(n)] += v - c0[k]
			continue
		}
		tr.cpu[k] = v - c0[k]
	}
	for k, v := range d1.sockets {
		if n := v - d0.sockets[k]; n != 0 {
			if tr.drops.sockets == nil {
				tr.drops.sockets = map[string]int{}
			}
			tr.drops.sockets[k] = n
		}
	}
	return tr
}

// chromiumKind is the kind of a Chromium process from its command line:
// "browser", "renderer", "network" (the network service, whose UDP
// sockets WebRTC uses), "gpu", or another --type or utility sub-type.
func chromiumKind(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "gone"
	}
	kind, sub := "browser", ""
	// Chromium rewrites its argv: the arguments may be NUL- or space-separated.
	for _, a := range strings.FieldsFunc(string(b), func(r rune) bool { return r == 0 || r == ' ' }) {
		if v, ok := strings.CutPrefix(a, "--type="); ok {
			kind = v
		}
		if v, ok := strings.CutPrefix(a, "--utility-sub-type="); ok {
			sub = v
		}
	}
	switch {
	case kind == "gpu-process":
		return "gpu"
	case strings.Contains(sub, "NetworkService"):
		return "network"
	case sub != "":
		return strings.TrimSuffix(strings.TrimPrefix(sub, "network.mojom."), "Service")
	}
	return kind
}

// processTree is pid and its descendants.
func processTree(root int) []int {
	parents := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parents[ppid] = append(parents[ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, parents[out[i]]...)
	}
	return out
}

// udpRcvbufErrors is the kernel's count of UDP datagrams dropped for a full
// socket receive buffer (/proc/net/snmp, all sockets: other work on the
// machine counts too).
func udpRcvbufErrors() int {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var names []string
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(fields) {
				v, _ := strconv.Atoi(fields[i])
				return v
			}
		}
	}
	return 0
}

// downloadJS fetches url in the page and reads the body to its end,
// returning the bytes, the milliseconds it took and its stalls: the reads
// that waited more than 50 ms, and the milliseconds they waited (SCTP's
// 1 s retransmission timeout after lost datagrams shows here).
const downloadJS = `(async () => {
	const t0 = performance.now();
	const res = await fetch(%q, {cache: 'no-store'});
	const rd = res.body.getReader();
	let n = 0, last = performance.now(), stalls = 0, stalledMs = 0;
	for (;;) {
		const {done, value} = await rd.read();
		const now = performance.now();
		if (now - last > 50) { stalls++; stalledMs += now - last; }
		last = now;
		if (done) break;
		n += value.byteLength;
	}
	return {bytes: n, ms: performance.now() - t0, stalls, stalledMs};
})()`

// uploadJS posts n bytes to /upload as a firmware form would send its
// file (the body built before the clock starts) and returns the bytes the
// device counted and the milliseconds.
const uploadJS = `(async () => {
	const body = new Uint8Array(%d);
	for (let i = 0; i < body.length; i += 4096) body[i] = i & 0xff;
	const t0 = performance.now();
	const reply = await fetch('/upload', {method: 'POST', body, headers: {'Content-Type': 'application/octet-stream'}}).then((r) => r.json());
	return {bytes: reply.bytes, ms: performance.now() - t0};
})()`

type jsTransfer struct {
	Bytes     int64   `json:"bytes"`
	Ms        float64 `json:"ms"`
	Stalls    int     `json:"stalls"`
	StalledMs float64 `json:"stalledMs"`
}

// BulkBrowserFigures measures a firmware-sized download and upload in
// Chromium through the session, through the CLI and in Chromium directly
// on the device, each run in the same browser and stack, with the CPU per
// GiB of every process and the datagrams dropped.
func BulkBrowserFigures(t testing.TB, r *Report, cfg Config) {
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Skipf("bulk group: no Chromium at %s", ChromiumPath)
	}
	st := stack.Start(t, stack.Options{})
	cli, err := proc.Start("porthole", st.Bin["porthole"], []string{"--loopback-only", "http", stack.DeviceID, "--listen", "127.0.0.1:0"},
		proc.Options{Env: []string{"PORTHOLE_SERVER=" + st.SignalingURL, "PORTHOLE_TOKEN=" + st.TechToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cli.Stop(10 * time.Second) }()
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	m, err := cli.WaitLine(wctx, regexp.MustCompile(`serving \S+ web page at (http://\S+/)`))
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	cliBase := strings.TrimSuffix(m[1], "/")
	down, up := cfg.BulkBrowserDown, cfg.BulkBrowserUp
	all := map[string][]transfer{}
	for i := range cfg.BulkBrowserRuns {
		ctx, cancel, pid := newChromium(t)
		procs := bulkProcs{st: st, cli: cli, browser: pid}
		// The session: its device frame, loaded.
		info := benchSession(t, st)
		if err := chromedp.Do(ctx, chromedp.Navigate(info.ShellOrigin+"/#token="+info.Token)); err != nil {
			t.Fatalf("open the shell: %v", err)
		}
		tg := devtools.New(ctx)
		inFrame := func() (context.Context, error) { return tg.Find("iframe", devtools.OnOrigin(info.DeviceOrigin)) }
		pollTarget(t, tg, inFrame, fmt.Sprintf(navLoadJS, "/"))
		fctx, err := inFrame()
		if err != nil {
			t.Fatal(err)
		}
		sessionProcs := procs
		sessionProcs.cli = nil
		all[figBulkDownSession] = append(all[figBulkDownSession], sessionProcs.measure(t, down, func() time.Duration {
			return inPage(t, fctx, fmt.Sprintf(downloadJS, fmt.Sprintf("/firmware.bin?size=%d", down)), down)
		}))
		all[figBulkUpSession] = append(all[figBulkUpSession], sessionProcs.measure(t, up, func() time.Duration {
			return inPage(t, fctx, fmt.Sprintf(uploadJS, up), up)
		}))
		_, _ = chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { document.querySelector('.toolbar button.end')?.click(); return true; })()`))
		tg.Close()

		// The CLI, as a Go client would use it (no Chromium).
		cliProcs := procs
		cliProcs.browser = 0
		all[figBulkDownCLI] = append(all[figBulkDownCLI], cliProcs.measure(t, down, func() time.Duration {
			return goDownload(t, fmt.Sprintf("%s/firmware.bin?size=%d", cliBase, down), down)
		}))
		all[figBulkUpCLI] = append(all[figBulkUpCLI], cliProcs.measure(t, up, func() time.Duration {
			return goUpload(t, cliBase+"/upload", up)
		}))

		// Chromium directly on the device.
		if err := chromedp.Do(ctx, chromedp.Navigate("http://"+st.DeviceAddr+"/")); err != nil {
			t.Fatalf("open the device: %v", err)
		}
		directProcs := procs
		directProcs.cli = nil
		all[figBulkDownDirect] = append(all[figBulkDownDirect], directProcs.measure(t, down, func() time.Duration {
			return inPage(t, ctx, fmt.Sprintf(downloadJS, fmt.Sprintf("/firmware.bin?size=%d", down)), down)
		}))
		all[figBulkUpDirect] = append(all[figBulkUpDirect], directProcs.measure(t, up, func() time.Duration {
			return inPage(t, ctx, fmt.Sprintf(uploadJS, up), up)
		}))
		cancel()
		logf(t, "bulk run %d: download session %.1f, CLI %.1f, direct %.1f MB/s; upload session %.1f, CLI %.1f, direct %.1f MB/s", i,
			last(all[figBulkDownSession]).mbs, last(all[figBulkDownCLI]).mbs, last(all[figBulkDownDirect]).mbs,
			last(all[figBulkUpSession]).mbs, last(all[figBulkUpCLI]).mbs, last(all[figBulkUpDirect]).mbs)
	}
	var dropSamples []float64
	for _, g := range []struct {
		size                int64
		direct, cli, sessin string
		what                string
	}{
		{down, figBulkDownDirect, figBulkDownCLI, figBulkDownSession, "download"},
		{up, figBulkUpDirect, figBulkUpCLI, figBulkUpSession, "upload"},
	} {
		for _, name := range []string{g.direct, g.cli, g.sessin} {
			f := r.Add(fmt.Sprintf("%s, %d MiB", name, g.size>>20), "MB/s", rates(all[name]))
			f.Annotate("CPU-s per GiB: %s; datagrams dropped per transfer: %s", cpuPerGiB(all[name]), dropNote(all[name]))
			if name == g.sessin {
				f = r.Against(f, fmt.Sprintf("%s, %d MiB", g.cli, g.size>>20))
				f.Check("≥ 70% of the CLI's", f.Ratio >= 0.7)
				for _, tr := range all[name] {
					dropSamples = append(dropSamples, float64(tr.drops.total()))
				}
			}
		}
	}
	f := r.Add(figBulkDrops, "datagrams", dropSamples)
	f.Check("0 on loopback", f.Max == 0)
	f.Annotate("kernel counter is system-wide (other work on the machine counts too)")
}

func last(ts []transfer) transfer {
	if len(ts) == 0 {
		return transfer{}
	}
	return ts[len(ts)-1]
}

func rates(ts []transfer) []float64 {
	out := make([]float64, len(ts))
	for i, tr := range ts {
		out[i] = tr.mbs
	}
	return out
}

// cpuPerGiB is each process's median CPU seconds per GiB moved.
func cpuPerGiB(ts []transfer) string {
	per := map[string][]float64{}
	var names []string
	for _, tr := range ts {
		for k, v := range tr.cpu {
			if _, ok := per[k]; !ok {
				names = append(names, k)
			}
			per[k] = append(per[k], v.Seconds()/(float64(tr.bytes)/(1<<30)))
		}
	}
	var b strings.Builder
	slices.Sort(names)
	for _, k := range names {
		fmt.Fprintf(&b, "%s %.1f, ", k, medianOf(per[k]))
	}
	return strings.TrimSuffix(b.String(), ", ")
}

func dropNote(ts []transfer) string {
	var b strings.Builder
	for _, tr := range ts {
		fmt.Fprintf(&b, "%d packetio + %d kernel", tr.drops.packetio, tr.drops.kernel)
		if len(tr.drops.sockets) > 0 {
			fmt.Fprintf(&b, " (on the sockets of %v)", tr.drops.sockets)
		}
		b.WriteString(", ")
	}
	return strings.TrimSuffix(b.String(), ", ")
}

// inPage runs a transfer script in the page of ctx and returns its time.
func inPage(t testing.TB, ctx context.Context, js string, want int64) time.Duration {
	tctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	res, err := chromedp.Run(tctx, chromedp.Evaluate[jsTransfer](js, chromedp.EvalAwaitPromise))
	if err != nil || res.Bytes != want {
		t.Fatalf("transfer in Chromium: %d of %d bytes: %v", res.Bytes, want, err)
	}
	if res.Stalls > 0 {
		logf(t, "transfer in Chromium: %d reads waited over 50 ms, %.0f ms in all", res.Stalls, res.StalledMs)
	}
	return time.Duration(res.Ms * float64(time.Millisecond))
}

func goDownload(t testing.TB, url string, want int64) time.Duration {
	t0 := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != want {
		t.Fatalf("download through the CLI: %d of %d bytes: %v", n, want, err)
	}
	return time.Since(t0)
}

func goUpload(t testing.TB, url string, n int64) time.Duration {
	t0 := time.Now()
	req, err := http.NewRequest(http.MethodPost, url, io.LimitReader(&patternReader{left: n}, n))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var got struct {
		Bytes int64 `json:"bytes"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Bytes != n {
		t.Fatalf("upload through the CLI: %d %.200s", resp.StatusCode, body)
	}
	return time.Since(t0)
}

// newChromium starts a browser with a fresh profile; it returns its tab's
// context, the function that stops it and the browser process's pid.
func newChromium(t testing.TB) (context.Context, context.CancelFunc, int) {
	dir, err := os.MkdirTemp("", "porthole-bench-chromium-")
	if err != nil {
		t.Fatal(err)
	}
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
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		cancel()
		acancel()
		t.Fatalf("start Chromium: %v", err)
	}
	pid := 0
	if c := chromedp.FromContext(ctx); c != nil && c.Browser != nil && c.Browser.Process() != nil {
		pid = c.Browser.Process().Pid
	}
	return ctx, func() {
		cancel()
		acancel()
		os.RemoveAll(dir)
	}, pid
}
