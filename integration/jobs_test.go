package integration

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	bolt "go.etcd.io/bbolt"

	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/store"
)

// techGet calls signaling's API with the stack's dev technician token.
func techGet(t *testing.T, s *stack.Stack, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.SignalingURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.TechToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// waitJobEntries waits until the stack's only job has n access-log
// entries stored and returns it.
func waitJobEntries(t *testing.T, s *stack.Stack, n uint64) proto.JobView {
	t.Helper()
	var last proto.JobList
	reached := false
	defer func() { // runs as Eventually's t.Fatalf unwinds
		if !reached {
			t.Logf("last job list: %+v", last.Jobs)
		}
	}()
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("the job to reach %d log entries", n), func() bool {
		last = proto.JobList{}
		techGet(t, s, proto.PathJobs, &last)
		return len(last.Jobs) == 1 && last.Jobs[0].LogEntries >= n
	})
	reached = true
	return last.Jobs[0]
}

// TestAccessLogIsCompleteAcrossCutsAndRestarts: N requests through the
// tunnel give exactly N access-log entries, in order and each once, while
// the agent's signaling connection is cut and restored mid-session and
// signaling itself crashes and restarts mid-session; the log then
// verifies untouched.
func TestAccessLogIsCompleteAcrossCutsAndRestarts(t *testing.T) {
	s := stack.Start(t, stack.Options{AgentRelay: true})
	_, m := startCLI(t, s, `serving \S+ web page at (http://\S+/)`, "http", stack.DeviceID, "--listen", "127.0.0.1:0")
	base := strings.TrimSuffix(m[1], "/")
	const perPhase = 25
	var urls []string
	phase := func(name string) {
		for i := range perPhase {
			u := fmt.Sprintf("/api/status?phase=%s&i=%d", name, i)
			resp, err := http.Get(base + u)
			if err != nil {
				t.Fatalf("%s request %d: %v", name, i, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s request %d: %s", name, i, resp.Status)
			}
			urls = append(urls, u)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	phase("before")
	waitJobEntries(t, s, perPhase)

	// The agent's signaling connection breaks: the data path carries on,
	// the agent keeps the entries until it is back and they are
	// acknowledged.
	s.CutAgentLink(t)
	phase("cut")
	if _, err := s.Procs["porthole-signaling"].WaitLine(ctx, regexp.MustCompile(`agent reconnected within its grace`)); err != nil {
		t.Fatal(err)
	}
	waitJobEntries(t, s, 2*perPhase)

	// Signaling crashes and comes back with the same data directory; the
	// session goes on peer to peer meanwhile.
	s.RestartSignaling(t, true)
	phase("restart")
	if _, err := s.Procs["porthole-signaling"].WaitLine(ctx, regexp.MustCompile(`agent online`)); err != nil {
		t.Fatal(err)
	}
	job := waitJobEntries(t, s, 3*perPhase)

	var log proto.JobLog
	techGet(t, s, strings.Replace(proto.PathJobLog, "{id}", job.ID, 1), &log)
	if len(log.Entries) != len(urls) || job.LogEntries != uint64(len(urls)) || job.Requests != int64(len(urls)) {
		t.Fatalf("%d requests, %d entries (job says %d, %d requests)", len(urls), len(log.Entries), job.LogEntries, job.Requests)
	}
	for i, e := range log.Entries {
		if e.Seq != uint64(i+1) || e.URL != urls[i] || e.Method != http.MethodGet || e.Status != http.StatusOK || e.Kind != proto.AccessHTTP || e.RespBytes == 0 {
			t.Fatalf("entry %d = %+v, want GET %s 200", i+1, e.AccessEntry, urls[i])
		}
	}
	var v proto.AuditVerification
	techGet(t, s, strings.Replace(proto.PathJobVerify, "{id}", job.ID, 1), &v)
	if !v.OK || v.Entries != uint64(len(urls)) || v.Attested != uint64(len(urls)) {
		t.Fatalf("verification %+v", v)
	}
	if job.Type != "Open Device Webpage" || job.User != "tech" || job.Device != stack.DeviceID {
		t.Fatalf("job %+v", job)
	}

	// Offline, `porthole-signaling audit verify` proves the same.
	if err := s.Procs["porthole-signaling"].Stop(10 * time.Second); err != nil {
		t.Logf("porthole-signaling: %v", err)
	}
	out, err := exec.Command(s.Bin["porthole-signaling"], "audit", "verify", "--data-dir", s.DataDir, "--session", job.ID).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("ok     session/%s: %d entries, chain intact, checkpoint attests %d", job.ID, len(urls), len(urls))) {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	out, err = exec.Command(s.Bin["porthole-signaling"], "audit", "verify", "--data-dir", s.DataDir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok     admin:") {
		t.Fatalf("audit verify of every log: %v\n%s", err, out)
	}

	// Somebody with the store file removes the last entry together with its
	// checkpoint: the anchor in the data directory still names it.
	db, err := bolt.Open(filepath.Join(s.DataDir, "porthole.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	stream := []byte(store.SessionStream(job.ID))
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("audit")).Bucket(stream).Delete(binary.BigEndian.AppendUint64(nil, uint64(len(urls)))); err != nil {
			return err
		}
		return tx.Bucket([]byte("checkpoints")).Delete(stream)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, err = exec.Command(s.Bin["porthole-signaling"], "audit", "verify", "--data-dir", s.DataDir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "BROKEN session/"+job.ID) || !strings.Contains(string(out), "anchor") {
		t.Fatalf("audit verify after the tail and its checkpoint were removed: %v\n%s", err, out)
	}
	t.Logf("after tampering:\n%s", out)
}

// TestJobsTabShowsAFinishedSessionWithItsLog: after a technician's session
// ends, an admin finds it in the Jobs tab in Chromium, opens it, sees every
// request of its access log, and the log verifies.
func TestJobsTabShowsAFinishedSessionWithItsLog(t *testing.T) {
	const pw = "jobs-test-password-1"
	s := stack.Start(t, stack.Options{Users: []stack.User{{Name: "boss", Password: pw, Admin: true}}})
	cli, m := startCLI(t, s, `serving \S+ web page at (http://\S+/)`, "http", stack.DeviceID, "--listen", "127.0.0.1:0")
	base := strings.TrimSuffix(m[1], "/")
	paths := []string{"/", "/supplies", "/settings", "/logo.png", "/api/status"}
	for _, p := range paths {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	waitJobEntries(t, s, uint64(len(paths)))
	if err := cli.Stop(10 * time.Second); err != nil {
		t.Logf("porthole: %v", err)
	}
	func() {
		var l proto.JobList
		ended := false
		defer func() { // runs as Eventually's t.Fatalf unwinds
			if !ended {
				t.Logf("last job list: %+v", l.Jobs)
			}
		}()
		testenv.Eventually(t, 15*time.Second, "the job to end", func() bool {
			l = proto.JobList{}
			techGet(t, s, proto.PathJobs, &l)
			return len(l.Jobs) == 1 && l.Jobs[0].State == "ended"
		})
		ended = true
	}()

	ctx := brBrowser(t)
	art := testenv.ArtifactsDir(t)
	defer func() {
		if t.Failed() {
			brShot(t, ctx, art, "failure")
		}
	}()
	js := func(expr string) { brEval[bool](t, ctx, "("+expr+", true)") }
	if err := chromedp.Do(ctx, chromedp.Navigate(s.AppURL+"/")); err != nil {
		t.Fatal(err)
	}
	brWait(t, ctx, "the sign-in form", `document.querySelector('#login-form') && !document.querySelector('#signin').hidden`)
	js(`document.querySelector('#login-username').value = 'boss'`)
	js(fmt.Sprintf(`document.querySelector('#login-password').value = %q`, pw))
	js(`document.querySelector('#login-form').requestSubmit()`)
	brWait(t, ctx, "signed in", `!document.querySelector('#nav').hidden`)
	js(`location.hash = '#jobs'`)
	row := `#job-rows tr[data-job]`
	brWait(t, ctx, "the finished job", fmt.Sprintf(`document.querySelector(%q) && document.querySelector(%q).querySelector('.reason').dataset.reason === 'client'`, row, row))
	if got := brEval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).querySelector('.reason').textContent`, row)); got != "Ended by the technician" {
		t.Errorf("end reason reads %q", got)
	}
	if got := brEval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).textContent`, row)); !strings.Contains(got, "Open Device Webpage") || !strings.Contains(got, stack.DeviceID) || !strings.Contains(got, "tech") {
		t.Fatalf("job row: %q", got)
	}
	js(fmt.Sprintf(`document.querySelector(%q).click()`, row))
	brWait(t, ctx, "the job's access log", fmt.Sprintf(`document.querySelectorAll('#log-rows tr').length === %d`, len(paths)))
	for i, p := range paths {
		cell := brEval[string](t, ctx, fmt.Sprintf(`document.querySelector('#log-rows tr[data-seq="%d"]').children[4].textContent`, i+1))
		if cell != p {
			t.Errorf("log entry %d shows %q, want %q", i+1, cell, p)
		}
	}
	js(`document.querySelector('#job-verify').click()`)
	brWait(t, ctx, "the verification", `document.querySelector('#job-verified').textContent !== ''`)
	if got := brEval[string](t, ctx, `document.querySelector('#job-verified').textContent`); !strings.HasPrefix(got, "Untouched") {
		t.Fatalf("verification shows %q", got)
	}
	brShot(t, ctx, art, "jobs-tab")
	har := brEval[string](t, ctx, `document.querySelector('#job-export-har').getAttribute('href')`)
	if !strings.HasSuffix(har, "/export?format=har") {
		t.Fatalf("HAR link %q", har)
	}
}
