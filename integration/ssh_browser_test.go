package integration

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/chromedp/cdproto/network"
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
	waitTerm := func(what, re string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !brEval[bool](t, bctx, re+`.test(`+terminalText+`)`); {
			if time.Now().After(deadline) {
				t.Fatalf("%s never appeared in the terminal; it shows %q", what, brEval[string](t, bctx, terminalText))
			}
			time.Sleep(50 * time.Millisecond) // polling the page, which has no event for the test to wait on
		}
	}

	// A bigger window: the terminal follows, and the device gets the
	// window change (recorded as an "r" event).
	cols := brEval[int](t, bctx, `document.querySelectorAll('#terminal-view .xterm-rows > div').length`)
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1000, 640)); err != nil {
		t.Fatalf("resize the window: %v", err)
	}
	brWait(t, bctx, "the terminal to follow the window", fmt.Sprintf(`document.querySelectorAll('#terminal-view .xterm-rows > div').length > %d`, cols))

	// top, full screen: its header line on the xterm screen, then q.
	topHeader := `/top - \d+:\d+:\d+ up /`
	if err := chromedp.Do(bctx, insertText("top"), chromedp.KeyEvent("\r")); err != nil {
		t.Fatalf("type top: %v", err)
	}
	waitTerm("top's header", topHeader)
	brShot(t, bctx, art, "ssh-terminal-top")
	if err := chromedp.Do(bctx, insertText("q")); err != nil {
		t.Fatalf("quit top: %v", err)
	}
	waitTerm("the shell after top", `/^(?![\s\S]*top - \d+:\d+:\d+ up )/`)

	// A password prompt that does not echo (read -s): what is typed there
	// shows nowhere, so the output-only recording cannot hold it.
	const promptPassword = "Pr0mpt-typed-secret-5519"
	// chromedp's Enter may reach the shell twice (keydown and keypress):
	// the prompt comes back should an empty line reach it, and the
	// password is typed once the prompt is the terminal's last line.
	if err := chromedp.Do(bctx, insertText(`while read -rs -p 'Password: ' pw && [ -z "$pw" ]; do :; done; echo; echo "read $((40+2)) ${#pw}"`), chromedp.KeyEvent("\r")); err != nil {
		t.Fatalf("type read: %v", err)
	}
	waitTerm("the password prompt", `/\nPassword:[ a-zA-Z:]*$/`)
	if err := chromedp.Do(bctx, insertText(promptPassword), chromedp.KeyEvent("\r")); err != nil {
		t.Fatalf("type the prompt's password: %v", err)
	}
	waitTerm("the read's answer", `/\nread 42 \d+/`)
	// uname -a once more: top cleared the screen that showed it, and the
	// replay's last screen shows this one.
	if err := chromedp.Do(bctx, insertText("uname -a"), chromedp.KeyEvent("\r")); err != nil {
		t.Fatalf("type uname -a: %v", err)
	}
	waitTerm("uname -a's output again", `/read 42 [\s\S]*\nLinux \S+ `+regexp.QuoteMeta(strings.TrimSpace(string(want)))+` /`)
	termSession := sessions[len(sessions)-1]

	// The shell exits (sshd's session process with it, which holds the
	// output of the sshd about to be stopped): the terminal says so.
	if err := chromedp.Do(bctx, insertText("exit"), chromedp.KeyEvent("\r")); err != nil {
		t.Fatalf("type exit: %v", err)
	}
	brWait(t, bctx, "the terminal closed after exit", `document.body.dataset.terminal === 'closed'`)
	if err := api.EndSession(context.Background(), termSession); err != nil {
		t.Logf("end the terminal's session: %v", err)
	}

	// The recording: asciicast v2 from the agent, in the job.
	var cast []byte
	testenv.Eventually(t, 20*time.Second, "the terminal's recording in the job", func() bool {
		cast, err = api.JobRecording(context.Background(), termSession)
		return err == nil && strings.Contains(string(cast), "read 42")
	})
	output, resizes := checkAsciicast(t, cast)
	if resizes == 0 {
		t.Errorf("the recording has no window change")
	}
	if !regexp.MustCompile(`Linux \S+ ` + regexp.QuoteMeta(strings.TrimSpace(string(want))) + ` `).MatchString(output) {
		t.Errorf("the recording lacks uname -a's output")
	}
	if !regexp.MustCompile(`top - \d+:\d+:\d+ up `).MatchString(output) {
		t.Errorf("the recording lacks top's header")
	}
	for _, secret := range []string{wrongPassword, promptPassword, strings.Split(strings.TrimSpace(string(keyPEM)), "\n")[1]} {
		if strings.Contains(string(cast), secret) {
			t.Errorf("the recording holds a secret (%.6s…)", secret)
		}
	}
	// The job's type follows its access log, whose terminal entry is
	// written when the stream closes and shipped within a few seconds: it
	// may still say "Open Device Webpage" when the recording is complete.
	jobType := ""
	testenv.Eventually(t, 20*time.Second, "the terminal's job to be an Open Device Terminal job", func() bool {
		job, err := api.Jobs(context.Background(), url.Values{"device": {"box-1"}})
		if err != nil {
			return false
		}
		for _, j := range job.Jobs {
			if j.ID == termSession {
				jobType = j.Type
			}
		}
		return jobType == "Open Device Terminal"
	})
	t.Logf("the terminal's job is of type %q", jobType)
	t.Logf("terminal recording: %d bytes of asciicast v2", len(cast))

	// The Jobs tab replays it: the replay's screen shows uname's output.
	actx, cancelApp := chromedp.NewContext(bctx)
	defer cancelApp()
	// The app in a tab of its own, signed in by the technician's token
	// (the lab's signaling takes development tokens).
	if err := chromedp.Do(actx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(actx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(actx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": "Bearer " + l.svc.techToken}}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(actx, chromedp.Navigate(l.svc.signalURL+"/#jobs/"+termSession)); err != nil {
		t.Fatalf("open the Jobs tab: %v", err)
	}
	brWait(t, actx, "the replay player", `document.querySelector('#job-replay')?.dataset.replay === 'paused'`)
	brEval[bool](t, actx, `(() => { const s = document.querySelector('#job-replay .cast-speed'); s.value = '16'; s.dispatchEvent(new Event('change'));
		document.querySelector('#job-replay .cast-play').click(); return true; })()`)
	brWait(t, actx, "the replay to end", `document.querySelector('#job-replay').dataset.replay === 'done'`)
	unameRe := `/Linux \S+ ` + regexp.QuoteMeta(strings.TrimSpace(string(want))) + ` /`
	for deadline := time.Now().Add(10 * time.Second); !brEval[bool](t, actx, unameRe+`.test(document.querySelector('#job-replay .xterm-rows').innerText)`); {
		if time.Now().After(deadline) {
			t.Fatalf("the replay's screen lacks uname -a's output: %q", brEval[string](t, actx, `document.querySelector('#job-replay .xterm-rows').innerText`))
		}
		time.Sleep(50 * time.Millisecond) // polling the page, which has no event for the test to wait on
	}
	if err := chromedp.Do(actx, chromedp.EmulateViewport(1000, 760)); err != nil {
		t.Fatal(err)
	}
	brEval[bool](t, actx, `(document.querySelector('#job-replay-box').scrollIntoView({block: 'start'}), true)`)
	brShot(t, actx, art, "jobs-terminal-replay")

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

// checkAsciicast checks rec is asciicast v2 (a header with width, height
// and timestamp, then events with times that never go back, of codes
// "o" and "r" only: no input is recorded) and returns its output.
func checkAsciicast(t *testing.T, rec []byte) (output string, resizes int) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(rec), "\n"), "\n")
	var head struct {
		Version, Width, Height int
		Timestamp              int64
	}
	if err := json.Unmarshal([]byte(lines[0]), &head); err != nil || head.Version != 2 || head.Width < 1 || head.Height < 1 || head.Timestamp < 1 {
		t.Fatalf("recording header %q: %v", lines[0], err)
	}
	var out strings.Builder
	last := -1.0
	for i, line := range lines[1:] {
		var ev []json.RawMessage
		var tm float64
		var code, data string
		if err := json.Unmarshal([]byte(line), &ev); err != nil || len(ev) != 3 ||
			json.Unmarshal(ev[0], &tm) != nil || json.Unmarshal(ev[1], &code) != nil || json.Unmarshal(ev[2], &data) != nil {
			t.Fatalf("recording line %d is no event: %q", i+2, line)
		}
		if tm < last {
			t.Fatalf("recording line %d: time %f after %f", i+2, tm, last)
		}
		last = tm
		switch code {
		case "o":
			out.WriteString(data)
		case "r":
			resizes++
		default:
			t.Fatalf("recording line %d: event %q (only output and resizes are recorded)", i+2, code)
		}
	}
	if last <= 0 {
		t.Fatalf("recording without timing: last event at %f", last)
	}
	t.Logf("recording: %d events over %.1f s, %d window changes", len(lines)-1, last, resizes)
	return out.String(), resizes
}

// insertText types text as one input event (Input.insertText).
func insertText(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
		return err
	})
}
