package integration

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// relayLostLab is the lab of the relay-loss tests: symmetric NATs on both
// sides (no direct pair works: the session must be relayed), two real
// porthole-turn relays on the internet that signaling chooses between by
// region (the agent is in "eu": relay A, natRelayIP; relay B, natRelayBIP,
// is "us"), and the device on a segment of its own behind the agent.
type relayLostLab struct {
	svc                         *natServices
	tech, agentHost, deviceHost *netlab.Host
	agent                       *proc.Proc
	deviceURL                   string
}

func newRelayLostLab(t *testing.T, bin stack.Binaries) *relayLostLab {
	t.Helper()
	lab := netlab.New(t)
	inet := lab.Internet("203.0.113.0/24", "198.51.100.0/24")
	rl := &relayLostLab{svc: startNATServices(t, lab, inet, bin, natOptions{twoRelays: true})}
	home := lab.NAT("tech-nat", inet, "198.51.100.20", "10.1.0.0/24", netlab.Symmetric)
	site := lab.NAT("site-nat", inet, "203.0.113.20", "192.168.1.0/24", netlab.Symmetric)
	rl.tech = lab.Host("tech", home.LAN(), "10.1.0.10")
	rl.agentHost = lab.Host("agent", site.LAN(), "192.168.1.10")
	devices := lab.Switch("devices", "10.9.0.0/24")
	rl.agentHost.Attach(devices, "10.9.0.1")
	rl.deviceHost = lab.Host("device", devices, "10.9.0.2")
	rl.agent, rl.deviceURL = rl.svc.startSite(t, rl.agentHost, rl.deviceHost, siteOptions{region: "eu"})
	return rl
}

// killRelayA kills relay A's porthole-turn (SIGKILL: no goodbye to its
// clients) and waits until it is gone.
func (rl *relayLostLab) killRelayA(t *testing.T) time.Time {
	t.Helper()
	p := rl.svc.relayProc
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatalf("kill relay A: %v", err)
	}
	killed := time.Now()
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("relay A did not exit after SIGKILL")
	}
	return killed
}

// jobRelays polls the session's job (the only one of the lab's device)
// until done accepts its relays or 10 s pass, and returns the last seen.
// Jobs are recorded in the background: an entry follows the agent's path
// report by a moment.
func (rl *relayLostLab) jobRelays(t *testing.T, done func([]proto.JobRelay) bool) []proto.JobRelay {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []proto.JobRelay
	for {
		var jobs proto.JobList
		rl.svc.apiGet(t, rl.svc.relayB, proto.PathJobs+"?device="+natDeviceID+"&limit=1", &jobs)
		if len(jobs.Jobs) == 1 {
			got = jobs.Jobs[0].Relays
		}
		if done(got) {
			return got
		}
		select {
		case <-ctx.Done():
			return got
		case <-time.After(100 * time.Millisecond): // polling the API: nothing to wait on
		}
	}
}

// checkJobRelaysBefore checks that the job lists relay A alone, open,
// before the kill.
func (rl *relayLostLab) checkJobRelaysBefore(t *testing.T) {
	t.Helper()
	got := rl.jobRelays(t, func(rs []proto.JobRelay) bool { return len(rs) > 0 })
	if want := "turn:" + natRelayIP + ":3478?transport=udp"; len(got) != 1 || got[0].Relay != want || !got[0].Until.IsZero() {
		t.Errorf("the job's relays before the kill: %+v, want %s alone, open", got, want)
	}
}

// checkJobRelays checks that the session's job lists relay A, closed,
// then relay B.
func (rl *relayLostLab) checkJobRelays(t *testing.T) []proto.JobRelay {
	t.Helper()
	relayA, relayB := "turn:"+natRelayIP+":3478?transport=udp", "turn:"+natRelayBIP+":3478?transport=udp"
	got := rl.jobRelays(t, func(rs []proto.JobRelay) bool { return len(rs) >= 2 })
	if len(got) != 2 || got[0].Relay != relayA || got[1].Relay != relayB || got[0].Until.IsZero() || got[0].Until.After(got[1].From) {
		t.Errorf("the job's relays: %+v, want %s until the move, then %s", got, relayA, relayB)
	}
	return got
}

var cliRelayLost = regexp.MustCompile(`relay lost \((\S+)\), reconnecting through relay (\S+) `)

// TestNATRelayLost kills the relay a session goes
// through (relay A, SIGKILL) while the technician's CLI serves numbered
// requests and one long streaming response. Both peers notice the broken
// relayed pair, ask signaling for the session's relays without A, get B
// (with credentials) and restart ICE through it: every request answered
// exactly once (the device counts what it served), the stream intact, the
// CLI says "relay lost …, reconnecting through relay B" and then
// "restored", and the job lists A and then B with times.
func TestNATRelayLost(t *testing.T) {
	netlab.Require(t)
	bin := stack.Build(t)
	rl := newRelayLostLab(t, bin)
	base, r := rl.svc.connectCLI(t, rl.tech, rl.agent, "relay A, then B")
	cli := r.proc
	t.Logf("connected: %s (%s); agent's pair %s", r.path, r.cliPair, r.pair)
	if r.path != "relayed through TURN" || !strings.Contains(r.pair, natRelayIP+":") {
		t.Fatalf("the session is not relayed through relay A (%s): %s, %s", natRelayIP, r.path, r.pair)
	}
	rl.checkJobRelaysBefore(t)

	tc := rl.tech.HTTPClient(90 * time.Second)
	defer tc.CloseIdleConnections()
	dc := rl.deviceHost.HTTPClient(10 * time.Second)
	defer dc.CloseIdleConnections()
	before := deviceRequests(t, dc, rl.deviceURL)

	const total = 30
	load := startSeqLoad(tc, base, total, 5)
	<-load.reached
	killed := rl.killRelayA(t)
	t.Logf("relay A (%s) killed", natRelayIP)

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	lost, err := cli.WaitLine(ctx, cliRelayLost)
	if err != nil {
		t.Fatalf("the CLI did not say the relay was lost: %v\nCLI:\n%s\nagent:\n%s", err, cli.Tail(30), rl.agent.Tail(30))
	}
	m, err := cli.WaitLine(ctx, cliRestored)
	if err != nil {
		t.Fatalf("the session did not recover: %v\nCLI:\n%s\nagent:\n%s", err, cli.Tail(30), rl.agent.Tail(30))
	}
	restored := time.Since(killed)
	load.wait()
	n, first := load.firstAfter(killed)
	t.Logf("CLI: relay lost (%s), reconnecting through relay %s; restored %s after the kill (%s after the break was noticed, %s restart(s)): %s",
		lost[1], lost[2], restored.Round(time.Millisecond), m[1], m[2], m[3])
	if lost[1] != natRelayIP+":3478" || !strings.HasPrefix(lost[2], natRelayBIP+":3478") {
		t.Errorf("the CLI lost %s and moved to %s; want %s:3478 to %s:3478", lost[1], lost[2], natRelayIP, natRelayBIP)
	}
	if !strings.Contains(m[3], " "+natRelayBIP+":") || strings.Contains(m[3], " "+natRelayIP+":") {
		t.Errorf("the restored path is not through relay B (%s) alone: %s", natRelayBIP, m[3])
	}
	if _, err := rl.agent.WaitLine(ctx, agentRestarted); err != nil {
		t.Errorf("the agent did not see an ICE restart: %v", err)
	}
	if _, err := rl.agent.WaitLine(ctx, regexp.MustCompile(`msg="relays refreshed for the session".*relays="?turn:`+regexp.QuoteMeta(natRelayBIP))); err != nil {
		t.Errorf("the agent did not take relay B from signaling: %v", err)
	}
	load.check(t)
	if got, want := deviceRequests(t, dc, rl.deviceURL)-before, int64(total+1+1); got != want {
		t.Errorf("the device served %d requests during the test, want %d (lost or duplicated requests)", got, want)
	}
	relays := rl.checkJobRelays(t)
	if n == 0 {
		t.Fatal("no request was answered after the kill")
	}
	t.Logf("relay A killed: first request sent after the kill (#%d, through relay B: A was dead) answered %s after the kill; CLI restored %s after the kill; job relays %+v",
		n, first.Sub(killed).Round(time.Millisecond), restored.Round(time.Millisecond), relays)
}

// TestNATRelayLostBrowser is TestNATRelayLost with real headless Chromium
// as the technician: the device's page in the shell's frame sends numbered
// requests and reads a streaming response while relay A is killed. The
// shell asks signaling for the session's relays without A, applies them
// with setConfiguration, restarts ICE through relay B, and says so in the
// toolbar ("Relay lost (A); reconnecting through relay B…", then
// "restored"); every request is answered exactly once and the job lists
// both relays.
func TestNATRelayLostBrowser(t *testing.T) {
	netlab.Require(t)
	testenv.NeedBinary(t, netlab.ChromiumPath)
	bin := stack.Build(t)
	rl := newRelayLostLab(t, bin)
	b := runBrowserBreak(t, rl.svc, rl.tech, rl.deviceHost, rl.deviceURL, rl.agent, func() time.Time {
		rl.checkJobRelaysBefore(t)
		killed := rl.killRelayA(t)
		t.Logf("relay A (%s) killed", natRelayIP)
		return killed
	})
	want := fmt.Sprintf("Relay lost (%s:3478); reconnecting through relay %s:3478", natRelayIP, natRelayBIP)
	if !slices.ContainsFunc(b.Notices, func(n string) bool { return strings.HasPrefix(n, want) }) {
		t.Errorf("the toolbar did not say %q: %q", want, b.Notices)
	}
	if !strings.Contains(b.after.First, natRelayBIP) || strings.Contains(b.after.First, natRelayIP+":") {
		t.Errorf("the browser's pair is not through relay B (%s): %s", natRelayBIP, b.after.First)
	}
	relays := rl.checkJobRelays(t)
	t.Logf("relay A killed (Chromium): first request sent after the kill (through relay B) answered %d ms after the kill; toolbar restored %s after it; pair now %s; job relays %+v",
		b.firstMS, b.recovered.Round(time.Millisecond), b.after.First, relays)
}
