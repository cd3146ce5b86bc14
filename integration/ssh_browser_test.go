package integration

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/internal/testenv"
)

// TestSSHBrowser is the device's terminal in the session window: real
// Chromium on the technician's host, xterm.js in the shell on a data
// channel, the agent at the site as the SSH client, OpenSSH's sshd on the
// box. A wrong password is refused (sshd allows keys only) and never
// appears in the agent's log or the access log; the technician's key,
// pasted into the login form, logs in and `uname -a` prints in the
// terminal; after the box's host key changed, the next terminal is
// refused with both fingerprints.
func TestSSHBrowser(t *testing.T) {
	netlab.Require(t)
	testenv.NeedBinary(t, netlab.ChromiumPath)
	l := startSVLab(t)
	hc := l.tech.HTTPClient(30 * time.Second)
	defer hc.CloseIdleConnections()
	api := &sigclient.API{Base: l.svc.signalURL, Token: l.svc.techToken, Client: hc}
	bctx := l.tech.Chromium(chromedp.Flag("host-resolver-rules", browserResolverRules))
	art := testenv.ArtifactsDir(t)
	keyPEM, err := os.ReadFile(l.key)
	if err != nil {
		t.Fatal(err)
	}
	const wrongPassword = "Tr0ub4dor-wrong-password-7731"

	var sessions []string
	login := func(user string, password, key string) {
		t.Helper()
		info, err := api.CreateSession(context.Background(), "box-1")
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, info.Session)
		if err := chromedp.Do(bctx, chromedp.Navigate(info.ShellOrigin+"/?porthole-view=ssh&port=22#token="+info.Token)); err != nil {
			t.Fatalf("open the shell: %v", err)
		}
		brWait(t, bctx, "the SSH login form", `document.querySelector('#terminal-user')`)
		fill, _ := json.Marshal(map[string]string{"user": user, "password": password, "key": key})
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`(() => { const v = `+string(fill)+`;
			document.querySelector('#terminal-user').value = v.user;
			document.querySelector('#terminal-password').value = v.password;
			document.querySelector('#terminal-key').value = v.key;
			document.querySelector('#terminal-connect').click(); return true; })()`)); err != nil {
			t.Fatalf("fill in the login: %v", err)
		}
	}
	terminalText := `(document.querySelector('#terminal-view')?.innerText || '')`

	// 1. A wrong password: refused, and the password is nowhere.
	login("root", wrongPassword, "")
	brWait(t, bctx, "the wrong password refused", `document.body.dataset.terminal === 'refused'`)
	if msg := brEval[string](t, bctx, `document.querySelector('#terminal-view').dataset.error`); !strings.Contains(msg, "refused the login") || strings.Contains(msg, wrongPassword) {
		t.Fatalf("refusal shown: %q", msg)
	}

	// 2. The technician's key: a shell, and uname -a in the terminal.
	start := time.Now()
	login("root", "", string(keyPEM))
	brWait(t, bctx, "the terminal connected", `document.body.dataset.terminal === 'connected'`)
	firstKey := brEval[string](t, bctx, `document.body.dataset.hostKey`)
	if !strings.HasPrefix(firstKey, "SHA256:") {
		t.Fatalf("host key %q", firstKey)
	}
	want, err := exec.Command("uname", "-r").Output()
	if err != nil {
		t.Fatal(err)
	}
	// The command as one input event (chromedp's key events each give
	// xterm.js a keydown and a keypress, so every character twice), then
	// Enter.
	if err := chromedp.Do(bctx, chromedp.Focus("#terminal-view .xterm-helper-textarea"), insertText("uname -a"), chromedp.KeyEvent("\r")); err != nil {
		t.Fatalf("type uname -a: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); !brEval[bool](t, bctx, `/\nLinux \S+ `+regexp.QuoteMeta(strings.TrimSpace(string(want)))+` /.test(`+terminalText+`)`); {
		if time.Now().After(deadline) {
			t.Fatalf("uname -a's output never appeared in the terminal; it shows %q (state %s, html %s)", brEval[string](t, bctx, terminalText),
				brEval[string](t, bctx, `document.body.dataset.terminal`), brEval[string](t, bctx, `document.querySelector('#stage').innerHTML.slice(0, 1500)`))
		}
		time.Sleep(50 * time.Millisecond) // polling the page, which has no event for the test to wait on
	}
	t.Logf("SSH terminal: login form submitted to uname -a output in %s; host key %s", time.Since(start).Round(time.Millisecond), firstKey)
	brShot(t, bctx, art, "ssh-terminal")

	// The shell exits (sshd's session process with it, which holds the
	// output of the sshd about to be stopped): the terminal says so.
	if err := chromedp.Do(bctx, insertText("exit"), chromedp.KeyEvent("\r")); err != nil {
		t.Fatalf("type exit: %v", err)
	}
	brWait(t, bctx, "the terminal closed after exit", `document.body.dataset.terminal === 'closed'`)

	// 3. The box's host key changes: refused with both fingerprints.
	if err := l.sshd.Stop(5 * time.Second); err != nil {
		t.Logf("stop sshd: %v", err)
	}
	hostKey := filepath.Join(l.dir, "host_key")
	_ = os.Remove(hostKey)
	_ = os.Remove(hostKey + ".pub")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("new host key: %v\n%s", err, out)
	}
	l.sshd, _ = l.box.StartAndWait("sshd-new-key", testenv.NeedBinary(t, "sshd"), []string{"-D", "-e", "-f", filepath.Join(l.dir, "sshd_config")},
		`Server listening on `+regexp.QuoteMeta(svBoxIP), 15*time.Second)
	login("root", "", string(keyPEM))
	brWait(t, bctx, "the changed host key refused", `document.body.dataset.terminal === 'refused'`)
	msg := brEval[string](t, bctx, `document.querySelector('#terminal-view').dataset.error`)
	if !strings.Contains(msg, firstKey) || strings.Count(msg, "SHA256:") != 2 || !strings.Contains(msg, "changed") {
		t.Fatalf("the changed host key's refusal does not show both fingerprints: %q", msg)
	}
	t.Logf("changed host key refused: %s", msg)
	brShot(t, bctx, art, "ssh-terminal-host-key-changed")

	// The secrets are in no log: the agent's, sshd's, the access log.
	keyBody := strings.Split(strings.TrimSpace(string(keyPEM)), "\n")[1]
	for _, info := range sessions {
		_ = api.EndSession(context.Background(), info)
	}
	jobs, err := api.Jobs(context.Background(), url.Values{"device": {"box-1"}})
	if err != nil {
		t.Fatal(err)
	}
	jobsJSON, _ := json.Marshal(jobs)
	for name, text := range map[string]string{"agent log": l.agentProc.Tail(1 << 20), "sshd log": l.sshd.Tail(1 << 20), "jobs and access log": string(jobsJSON)} {
		if strings.Contains(text, wrongPassword) || strings.Contains(text, keyBody) {
			t.Errorf("the %s holds the password or the private key", name)
		}
	}
	if !strings.Contains(l.agentProc.Tail(1<<20), "terminal refused") {
		t.Errorf("the agent logged no refused terminal:\n%s", l.agentProc.Tail(30))
	}
}

// insertText types text as one input event (Input.insertText).
func insertText(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
		return err
	})
}
