package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// jobLogWhere waits until the stack's job for session has a log entry
// for which match holds, and returns the log.
func jobLogWhere(t *testing.T, s *stack.Stack, session, what string, match func(proto.LoggedAccess) bool) []proto.LoggedAccess {
	t.Helper()
	var log proto.JobLog
	testenv.Eventually(t, 30*time.Second, what, func() bool {
		log = proto.JobLog{}
		techGet(t, s, strings.Replace(proto.PathJobLog, "{id}", session, 1), &log)
		for _, e := range log.Entries {
			if match(e) {
				return true
			}
		}
		return false
	})
	return log.Entries
}

// TestBrowserReadOnlyRefusesASettingsPost: on a device whose site policy
// is read-only, the technician sees its pages, and submitting its settings
// form in Chromium gets the agent's page that says why; the device never
// sees the POST, and the job's log has it as a refused change with the
// form's fields.
func TestBrowserReadOnlyRefusesASettingsPost(t *testing.T) {
	const pw = "boss-password-1"
	s := stack.Start(t, stack.Options{AgentPolicy: map[string]any{"readOnly": true}, Users: []stack.User{{Name: "boss", Password: pw, Admin: true}}})
	ctx := brBrowser(t)
	info := brSession(t, s)
	b := brOpen(t, ctx, info, "/")
	b.navigate(t, "/settings", `d.getElementById('hostname') !== null && d.querySelector('form[action="/settings"] button[type=submit]') !== null`)
	brDev[bool](t, b, `(d.getElementById('hostname').value = 'CHANGED-BY-TECH', d.querySelector('form[action="/settings"] button[type=submit]').click(), true)`)
	b.waitDev(t, "the agent's refusal page",
		`(d.getElementById('porthole-refusal')?.textContent || '').startsWith("This session is read-only: the site's policy allows viewing, not changes")`)
	brShot(t, ctx, testenv.ArtifactsDir(t), "read-only-refusal")
	title := brDev[string](t, b, `d.querySelector('h1').textContent`)
	if title != "Refused by the site's policy" {
		t.Errorf("refusal page heading %q", title)
	}

	// The device kept its settings: it never saw the POST.
	resp, err := http.Get(fmt.Sprintf("http://%s/settings", s.DeviceAddr))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "CHANGED-BY-TECH") {
		t.Fatal("the device's settings changed under a read-only policy")
	}
	entries := jobLogWhere(t, s, info.Session, "the refused POST in the job's log", func(e proto.LoggedAccess) bool {
		return e.Method == http.MethodPost && e.URL == "/settings"
	})
	for _, e := range entries {
		if e.Method != http.MethodPost {
			continue
		}
		if !e.Change || !strings.HasPrefix(e.Refused, proto.ReadOnlyRefusal) || e.Status != http.StatusForbidden || e.Form == nil {
			t.Fatalf("refused POST entry %+v", e.AccessEntry)
		}
		found := false
		for _, f := range e.Form.Fields {
			found = found || f.Name == "hostname" && f.Value == "CHANGED-BY-TECH"
		}
		if !found {
			t.Errorf("form fields %+v", e.Form.Fields)
		}
	}

	// The Jobs view puts the refused change first, with its fields.
	js := func(expr string) { brEval[bool](t, ctx, "("+expr+", true)") }
	if err := chromedp.Do(ctx, chromedp.Navigate(s.AppURL+"/")); err != nil {
		t.Fatal(err)
	}
	brWait(t, ctx, "the sign-in form", `document.querySelector('#login-form') && !document.querySelector('#signin').hidden`)
	js(`document.querySelector('#login-username').value = 'boss'`)
	js(fmt.Sprintf(`document.querySelector('#login-password').value = %q`, pw))
	js(`document.querySelector('#login-form').requestSubmit()`)
	brWait(t, ctx, "signed in", `!document.querySelector('#nav').hidden`)
	js(fmt.Sprintf(`location.hash = '#jobs/%s'`, info.Session))
	brWait(t, ctx, "the job's changes", `!document.querySelector('#job-changes').hidden && document.querySelector('#job-change-rows li.refused')`)
	brShot(t, ctx, testenv.ArtifactsDir(t), "job-changes")
	if got := brEval[string](t, ctx, `document.querySelector('#job-changes-summary').textContent`); got != "1 settings change attempt refused" {
		t.Errorf("changes summary %q", got)
	}
	row := brEval[string](t, ctx, `document.querySelector('#job-change-rows li.refused').textContent`)
	if !strings.Contains(row, "POST /settings") || !strings.Contains(row, "hostname=CHANGED-BY-TECH") || !strings.Contains(row, "read-only") {
		t.Errorf("change row %q", row)
	}
	if got := brEval[string](t, ctx, `document.querySelector('#log-rows tr.refused')?.children[5].textContent || ''`); got != "refused" {
		t.Errorf("log row status %q", got)
	}
}
