package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

const (
	invAgentIP   = "203.0.113.41"
	invAgentLAN  = "10.81.0.10"
	invDeviceIP  = "10.81.0.20"
	invDeviceMAC = "02:00:00:81:00:20"
	invTechIP    = "198.51.100.11"
)

// apiClient calls signaling's API with the lab's technician token.
type apiClient struct {
	t     *testing.T
	c     *http.Client
	base  string
	token string
}

func (a *apiClient) do(method, path string, body, out any) int {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		a.t.Logf("%s %s: %s %s", method, path, resp.Status, b)
	}
	return resp.StatusCode
}

// inventoryLab is a site whose agent declares no device in its file: a
// LAN with one device (a fixed MAC), signaling and a relay on the
// "internet", a technician's host.
type inventoryLab struct {
	bin       stack.Binaries
	svc       *natServices
	tech, dev *netlab.Host
	agent     *proc.Proc
	api       *apiClient
}

func newInventoryLab(t *testing.T, opt natOptions) *inventoryLab {
	t.Helper()
	bin := stack.Build(t)
	lab := netlab.New(t)
	inet := lab.Internet("203.0.113.0/24", "198.51.100.0/24")
	svc := startNATServices(t, lab, inet, bin, opt)
	tech := lab.Host("tech", inet, invTechIP)
	agentHost := lab.Host("agent", inet, invAgentIP)
	lan := lab.Switch("plant", "10.81.0.0/24")
	agentHost.Attach(lan, invAgentLAN)
	dev := lab.Host("printer", lan, invDeviceIP)
	if out, err := exec.Command("ip", "-n", dev.Namespace(), "link", "set", "eth0", "address", invDeviceMAC).CombinedOutput(); err != nil {
		t.Fatalf("set the device's MAC: %v\n%s", err, out)
	}
	dev.StartAndWait("porthole-demo-device", bin["porthole-demo-device"], []string{"--listen", invDeviceIP + ":80"}, `listening on`, 15*time.Second)

	api := &apiClient{t: t, c: tech.HTTPClient(15 * time.Second), base: svc.signalURL, token: svc.techToken}
	t.Cleanup(api.c.CloseIdleConnections)
	if st := api.do("POST", proto.PathSites, proto.NewSite{ID: "plant", Name: "Plant 7"}, nil); st != http.StatusCreated && st != http.StatusOK {
		t.Fatalf("create site: %d", st)
	}
	if st := api.do("PUT", "/v1/agents/site-agent", proto.AgentUpdate{Name: "Plant 7 agent", Site: "plant"}, nil); st != http.StatusOK {
		t.Fatalf("assign the agent: %d", st)
	}

	// Nothing per device at the site: the server, the key and the scope.
	dir := t.TempDir()
	cfg, _ := json.Marshal(map[string]any{"server": svc.signalURL, "key": svc.agentKey, "devices": []any{},
		"scope": map[string]any{"cidrs": []string{"10.81.0.16/28"}}, "discovery": map[string]any{"interval": "0", "rate": 200}})
	path := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	agent, _ := agentHost.StartAndWait("porthole-agent", bin["porthole-agent"], []string{"--config", path, "--log-level", "info"},
		`connected to signaling`, 20*time.Second)
	return &inventoryLab{bin: bin, svc: svc, tech: tech, dev: dev, agent: agent, api: api}
}

// TestDiscoverAdoptOpenWithoutRestart: an agent with no devices in its
// file and a declared scope finds a device on its LAN when the app asks,
// a configurer adopts and enables it, and a technician opens it — while
// the agent process keeps running; a device removed in the app can no
// longer be opened. The device is checked by the MAC the scan saw.
func TestDiscoverAdoptOpenWithoutRestart(t *testing.T) {
	l := newInventoryLab(t, natOptions{})
	bin, svc, tech, dev, agent, api := l.bin, l.svc, l.tech, l.dev, l.agent, l.api
	pid := agent.Pid()

	var started proto.DiscoverStarted
	if st := api.do("POST", "/v1/sites/plant/discover", nil, &started); st != http.StatusAccepted || len(started.Asked) != 1 {
		t.Fatalf("discover: %d %+v", st, started)
	}
	var found *proto.DiscoveredCandidate
	testenv.Eventually(t, 90*time.Second, "the scan to report the device", func() bool {
		var list proto.DiscoveredList
		api.do("GET", "/v1/sites/plant/discovered", nil, &list)
		for _, a := range list.Agents {
			for i := range a.Candidates {
				if a.Candidates[i].Addr == invDeviceIP {
					found = &a.Candidates[i]
				}
			}
		}
		return found != nil
	})
	if !strings.EqualFold(found.MAC, invDeviceMAC) || len(found.Services) == 0 {
		t.Fatalf("candidate %+v: want the device's MAC and its web service", found)
	}
	var view proto.DeviceView
	if st := api.do("POST", proto.PathAdopt, proto.Adopt{Agent: "site-agent", Addr: invDeviceIP, Name: "Line printer"}, &view); st != http.StatusCreated {
		t.Fatalf("adopt: %d", st)
	}
	if view.ID != "line-printer-20" || view.Enabled {
		t.Fatalf("adopted %+v: want line-printer-20, disabled", view)
	}
	enabled := true
	if st := api.do("PATCH", "/v1/devices/"+view.ID, proto.DeviceUpdate{Enabled: &enabled}, nil); st != http.StatusOK {
		t.Fatalf("enable: %d", st)
	}
	testenv.Eventually(t, 20*time.Second, "the adopted device to be online", func() bool {
		var list proto.DeviceList
		api.do("GET", proto.PathDevices, nil, &list)
		for _, d := range list.Devices {
			if d.ID == view.ID && d.Online && d.Adopted && d.Health != nil && d.Health.Reachable {
				return true
			}
		}
		return false
	})

	// Open it: the CLI's local page is the device's page.
	cli := tech.Start("porthole", bin["porthole"], []string{"http", view.ID, "--listen", "127.0.0.1:8080"},
		"PORTHOLE_SERVER="+svc.signalURL, "PORTHOLE_TOKEN="+svc.techToken)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	if _, err := cli.WaitLine(ctx, regexp.MustCompile(`serving \S+ web page at http://127.0.0.1:8080/`)); err != nil {
		t.Fatalf("open the adopted device: %v\nagent:\n%s", err, agent.Tail(30))
	}
	tc := tech.HTTPClient(20 * time.Second)
	defer tc.CloseIdleConnections()
	got, status := natGet(t, tc, "http://127.0.0.1:8080/")
	want, _ := natGet(t, dev.HTTPClient(10*time.Second), "http://"+invDeviceIP+"/")
	if status != http.StatusOK || !bytes.Equal(got, want) {
		t.Fatalf("through the session: %d, %d bytes; the device's own page is %d bytes", status, len(got), len(want))
	}
	_ = cli.Stop(5 * time.Second)

	// Removed in the app: the agent stops serving it, still without a restart.
	if st := api.do("DELETE", "/v1/devices/"+view.ID+"?agent=site-agent", nil, nil); st != http.StatusNoContent {
		t.Fatalf("remove: %d", st)
	}
	// removed=1: WaitLine also matches earlier lines, and the agent's first
	// inventory (empty, at start) was applied=0 too.
	if _, err := agent.WaitLine(ctx, regexp.MustCompile(`msg="inventory applied" applied=0 refused=0 removed=1`)); err != nil {
		t.Fatalf("the agent did not apply the removal: %v", err)
	}
	// The agent logs before signaling has its inventory.applied: wait for
	// signaling to drop the device from its list.
	testenv.Eventually(t, 20*time.Second, "the removed device to leave the device list", func() bool {
		var list proto.DeviceList
		if api.do("GET", proto.PathDevices, nil, &list) != http.StatusOK {
			return false
		}
		for _, d := range list.Devices {
			if d.ID == view.ID {
				return false
			}
		}
		return true
	})
	var sess proto.SessionInfo
	if st := api.do("POST", proto.PathSessions, proto.CreateSession{Device: view.ID}, &sess); st != http.StatusNotFound {
		t.Fatalf("a session on the removed device: %d, want 404", st)
	}
	select {
	case <-agent.Exited():
		t.Fatalf("the agent exited: %v", agent.ExitErr())
	default:
	}
	if agent.Pid() != pid {
		t.Fatalf("the agent restarted (pid %d, was %d)", agent.Pid(), pid)
	}
	t.Logf("discovered %s (%s, %d services), adopted as %s, opened and removed; agent pid %d throughout",
		found.Addr, found.MAC, len(found.Services), view.ID, pid)
}

// TestOfflineDevicesListedAfterSignalingRestart: with the agent off,
// signaling restarts; the agent's devices are still listed, offline,
// with when they were last seen.
func TestOfflineDevicesListedAfterSignalingRestart(t *testing.T) {
	const pw = "inventory-admin-password"
	s := stack.Start(t, stack.Options{Users: []stack.User{{Name: "root", Password: pw, Admin: true}}})
	s.StopAgent(t)
	stopped := time.Now()
	s.RestartSignaling(t, false)
	c := apiLogin(t, s, "root", pw)
	var list proto.DeviceList
	apiCall(t, s, c, http.MethodGet, proto.PathDevices, nil, &list)
	var d *proto.DeviceStatus
	for i := range list.Devices {
		if list.Devices[i].ID == stack.DeviceID {
			d = &list.Devices[i]
		}
	}
	if d == nil {
		t.Fatalf("device %s not listed after the restart: %+v", stack.DeviceID, list.Devices)
	}
	if d.Online || d.LastSeen.IsZero() || d.LastSeen.After(stopped) || d.Name == "" {
		t.Fatalf("device %+v: want offline, named, last seen before the agent stopped (%v)", d, stopped)
	}
}

// TestUIDiscoverAdoptEnableOpen plays the configurer in real Chromium in
// the technician's namespace: sign in, scan the site from the Discovered
// panel, adopt the device the agent found with one click, turn remote
// access on and open it; the device's page renders in the session window.
// The agent is never restarted.
func TestUIDiscoverAdoptEnableOpen(t *testing.T) {
	testenv.NeedBinary(t, netlab.ChromiumPath)
	const appOrigin = "http://app.localhost:443"
	l := newInventoryLab(t, natOptions{appOrigin: appOrigin})
	pid := l.agent.Pid()
	const pw = "inventory-ui-password-1"
	var u proto.UserView
	if st := l.api.do("POST", proto.PathUsers, proto.NewUser{Name: "conf", Password: pw}, &u); st != http.StatusCreated && st != http.StatusOK {
		t.Fatalf("create user: %d", st)
	}
	if st := l.api.do("PUT", "/v1/users/"+u.ID+"/roles/plant", proto.RoleUpdate{Roles: []string{"configurer", "user"}}, nil); st != http.StatusOK {
		t.Fatalf("roles: %d", st)
	}
	ctx := l.tech.Chromium(chromedp.Flag("host-resolver-rules", browserResolverRules))
	art := testenv.ArtifactsDir(t)
	defer func() {
		if t.Failed() {
			brShot(t, ctx, art, "failure")
		}
	}()
	js := func(expr string) { brEval[bool](t, ctx, "("+expr+", true)") }
	if err := chromedp.Do(ctx, chromedp.Navigate(appOrigin+"/")); err != nil {
		t.Fatal(err)
	}
	brWait(t, ctx, "the sign-in form", `document.querySelector('#login-form') && !document.querySelector('#signin').hidden`)
	js(fmt.Sprintf(`document.querySelector('#login-username').value = %q`, "conf"))
	js(fmt.Sprintf(`document.querySelector('#login-password').value = %q`, pw))
	js(`document.querySelector('#login-form').requestSubmit()`)

	panel := `#sites section[data-site="plant"] details.discovered`
	brWait(t, ctx, "the site's Discovered panel", fmt.Sprintf(`document.querySelector(%q)`, panel))
	js(fmt.Sprintf(`document.querySelector(%q).open = true`, panel))
	js(fmt.Sprintf(`document.querySelector('%s button.scan-now').click()`, panel))
	cand := fmt.Sprintf(`%s li.candidate[data-addr=%q]`, panel, invDeviceIP)
	brWaitFor(t, ctx, 90*time.Second, "the scan's candidate", fmt.Sprintf(`document.querySelector('%s button.adopt')`, cand))
	if text := brEval[string](t, ctx, fmt.Sprintf(`document.querySelector('%s').innerText`, cand)); !strings.Contains(strings.ToLower(text), invDeviceMAC) {
		t.Errorf("the candidate does not show its MAC: %q", text)
	}
	brShot(t, ctx, art, "discovered")
	js(fmt.Sprintf(`document.querySelector('%s input.adopt-name').value = 'Line printer'`, cand))
	js(fmt.Sprintf(`document.querySelector('%s button.adopt').click()`, cand))

	const id = "line-printer-20"
	toggle := fmt.Sprintf(`#sites li[data-device=%q] input.enable-toggle`, id)
	brWait(t, ctx, "the adopted device in the site's list", fmt.Sprintf(`document.querySelector(%q)`, toggle))
	js(fmt.Sprintf(`document.querySelector(%q).click()`, toggle))
	// The list's search: a word of the name finds it, another word nothing.
	search := func(q string) {
		js(fmt.Sprintf(`(() => { const i = document.querySelector('#df-q'); i.value = %q; i.dispatchEvent(new Event('input', {bubbles: true})); })()`, q))
	}
	search("no such device")
	brWait(t, ctx, "the no-match note", `!document.querySelector('#no-match').hidden && !document.querySelector('#sites li.device')`)
	search("line")
	brWait(t, ctx, "the device found by its name", fmt.Sprintf(`document.querySelector('#no-match').hidden && document.querySelector('#sites li[data-device=%q] .type-icon')`, id))
	open := fmt.Sprintf(`#sites li[data-device=%q] button.open`, id)
	brWaitFor(t, ctx, 30*time.Second, "an enabled Open button", fmt.Sprintf(`document.querySelector(%q) && !document.querySelector(%q).disabled`, open, open))
	brShot(t, ctx, art, "adopted")
	js(`document.querySelector('#same-tab').checked = true`)
	js(fmt.Sprintf(`document.querySelector(%q).click()`, open))
	brWait(t, ctx, "the session window", `location.hostname.startsWith('shell-') && document.querySelector('iframe.device')`)
	shellOrigin := brEval[string](t, ctx, `location.origin`)
	tab := newTab(t, ctx, &proto.SessionInfo{ShellOrigin: shellOrigin, DeviceOrigin: strings.Replace(shellOrigin, "://shell-", "://", 1)})
	tab.waitDev(t, "the adopted device's page in the session window", `d.readyState === 'complete' && d.body.innerText.includes('Porthole LaserJet 4000')`)
	brShot(t, ctx, art, "session")
	if l.agent.Pid() != pid {
		t.Fatal("the agent restarted")
	}
}
