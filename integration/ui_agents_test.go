package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// TestUIDeviceHealthEnrollAndRevoke checks the agent side of the app in
// Chromium: the device list shows what the agent found when it checked
// each device (the demo printer reachable, a declared device nobody
// answers for unreachable, with the reason); an admin creates an
// enrollment token for the site, sees it once with the command to run,
// and that very command enrolls an agent; the admin revokes the running
// agent, which drops it at once.
func TestUIDeviceHealthEnrollAndRevoke(t *testing.T) {
	const pw = "ui-agents-password-1"
	dead := testenv.FreePort(t) // nothing listens there
	s := stack.Start(t, stack.Options{
		Users: []stack.User{
			{Name: "boss", Password: pw, Admin: true},
			{Name: "conf", Password: pw, Roles: []string{"configurer"}},
		},
		ExtraDevices: []map[string]any{{
			"id": "scanner-1", "name": "Gone scanner", "scheme": "http", "address": "127.0.0.1", "httpPort": dead,
		}},
	})
	ctx := brBrowser(t)
	art := testenv.ArtifactsDir(t)
	defer func() {
		if t.Failed() {
			brShot(t, ctx, art, "failure")
		}
	}()
	js := func(expr string) { brEval[bool](t, ctx, "("+expr+", true)") }
	login := func(name string) {
		if err := chromedp.Do(ctx, chromedp.Navigate(s.AppURL+"/")); err != nil {
			t.Fatal(err)
		}
		brWait(t, ctx, "the sign-in form", `document.querySelector('#login-form') && !document.querySelector('#signin').hidden`)
		js(fmt.Sprintf(`document.querySelector('#login-username').value = %q`, name))
		js(fmt.Sprintf(`document.querySelector('#login-password').value = %q`, pw))
		js(`document.querySelector('#login-form').requestSubmit()`)
	}

	// 1. Health in the device list, as the configurer sees it.
	login("conf")
	cell := func(dev string) string {
		return fmt.Sprintf(`document.querySelector('#sites li[data-device=%q] .health')`, dev)
	}
	brWait(t, ctx, "the printer's health", cell(stack.DeviceID))
	brWait(t, ctx, "the scanner's health", cell("scanner-1"))
	if got := brEval[string](t, ctx, cell(stack.DeviceID)+`.dataset.health + ' ' + `+cell(stack.DeviceID)+`.textContent`); got != "ok Reachable" {
		t.Errorf("printer health cell %q, want Reachable", got)
	}
	// In words, with the agent's own finding (a Go error) behind Details.
	scanner := brEval[string](t, ctx, cell("scanner-1")+`.dataset.health + ' ' + `+cell("scanner-1")+`.textContent`)
	if want := fmt.Sprintf("bad Unreachable — no answer on port %d", dead); scanner != want {
		t.Errorf("scanner health cell %q, want %q", scanner, want)
	}
	reason := brEval[string](t, ctx, `document.querySelector('#sites li[data-device="scanner-1"] details.raw .raw-detail').textContent`)
	if len(reason) < len("What the agent found: ")+5 {
		t.Errorf("scanner details %q, want the agent's reason", reason)
	}
	if title := brEval[string](t, ctx, cell(stack.DeviceID)+`.title`); !strings.HasPrefix(title, "Checked ") {
		t.Errorf("printer health title %q, want when it was checked", title)
	}
	brShot(t, ctx, art, "device-health")
	js(`document.querySelector('#signout').click()`)
	brWait(t, ctx, "signed out", `!document.querySelector('#signin').hidden`)

	// 2. The admin creates an enrollment token for the lab.
	login("boss")
	brWait(t, ctx, "the device list", `!document.querySelector('#devices').hidden`)
	js(`location.hash = '#admin/agents'`)
	brWait(t, ctx, "the site in the enrollment form", `[...document.querySelectorAll('#enroll-site option')].some((o) => o.value === 'lab')`)
	js(`document.querySelector('#enroll-site').value = 'lab'`)
	js(`document.querySelector('#enroll-agent').value = 'front-desk'`)
	js(`document.querySelector('#enroll-form').requestSubmit()`)
	brWait(t, ctx, "the enrollment command", `!document.querySelector('#enroll-result').hidden && document.querySelector('#enroll-command').textContent`)
	brShot(t, ctx, art, "enrollment-token")
	command := brEval[string](t, ctx, `document.querySelector('#enroll-command').textContent`)
	m := regexp.MustCompile(`^porthole-agent enroll --server (\S+) --token (phe_\S+)$`).FindStringSubmatch(command)
	if m == nil || m[1] != s.AppURL {
		t.Fatalf("enrollment command %q, want porthole-agent enroll --server %s --token phe_…", command, s.AppURL)
	}
	if about := brEval[string](t, ctx, `document.querySelector('#enroll-for').textContent`); !strings.Contains(about, "front-desk") || !strings.Contains(about, "Lab") {
		t.Errorf("enrollment details %q", about)
	}
	// The command as shown enrolls an agent on the device.
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	state := filepath.Join(t.TempDir(), "state")
	if out, err := exec.CommandContext(cctx, s.Bin["porthole-agent"], "enroll", "--server", m[1], "--token", m[2], "--state-dir", state).CombinedOutput(); err != nil {
		t.Fatalf("the shown command: %v\n%s", err, out)
	}
	// Shown once: Done takes it off the page.
	js(`document.querySelector('#enroll-done').click()`)
	if brEval[string](t, ctx, `document.querySelector('#enroll-command').textContent`) != "" {
		t.Error("the enrollment token stays on the page after Done")
	}

	// 3. Revoke the running agent: it is dropped and its devices go offline.
	revoke := fmt.Sprintf(`document.querySelector('#agent-rows tr[data-agent=%q] button.revoke')`, stack.AgentID)
	brWait(t, ctx, "the agent's Revoke button", revoke)
	js(`window.confirm = () => true`)
	js(revoke + `.click()`)
	brWait(t, ctx, "the revocation message beside the agent", fmt.Sprintf(`document.querySelector('#agent-rows tr[data-agent=%q] [data-note]')?.textContent === 'Agent %s revoked and disconnected.'`, stack.AgentID, stack.AgentID))
	brShot(t, ctx, art, "agent-revoked")
	waitNotOnline(t, s, stack.DeviceID)
	if out, err := exec.CommandContext(cctx, s.Bin["porthole-agent"], "enroll", "--server", m[1], "--token", m[2], "--state-dir", filepath.Join(t.TempDir(), "again")).CombinedOutput(); err == nil {
		t.Fatalf("the enrollment token worked twice:\n%s", out)
	}
}

// waitNotOnline waits until signaling no longer lists device as online.
func waitNotOnline(t *testing.T, s *stack.Stack, device string) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, fmt.Sprintf("device %s to go offline after its agent was revoked", device), func() bool {
		req, _ := http.NewRequest(http.MethodGet, s.SignalingURL+proto.PathDevices, nil)
		req.Header.Set("Authorization", "Bearer "+s.TechToken)
		var l proto.DeviceList
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		_ = json.NewDecoder(resp.Body).Decode(&l)
		resp.Body.Close()
		for _, d := range l.Devices {
			if d.ID == device && d.Online {
				return false
			}
		}
		return true
	})
}
