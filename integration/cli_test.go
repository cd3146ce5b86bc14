package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/technician"
	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// startCLI runs the porthole CLI with args against s and waits for want.
func startCLI(t *testing.T, s *stack.Stack, want string, args ...string) (*proc.Proc, []string) {
	t.Helper()
	p, err := proc.Start("porthole", s.Bin["porthole"], append([]string{"--loopback-only"}, args...), proc.Options{
		Env: []string{"PORTHOLE_SERVER=" + s.SignalingURL, "PORTHOLE_TOKEN=" + s.TechToken},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := p.WaitLine(ctx, regexp.MustCompile(want))
	if err != nil {
		t.Fatal(err)
	}
	return p, m
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", u, err)
	}
	return resp, b
}

// TestCLIServesDevicePage fetches the demo device's pages through
// `porthole http`, on the direct path and with the relay forced, and
// compares every body with the device's own answer byte for byte.
func TestCLIServesDevicePage(t *testing.T) {
	s := stack.Start(t, stack.Options{})
	for _, tc := range []struct {
		name  string
		args  []string
		path  string
		relay bool
	}{
		{"direct", nil, "direct path", false},
		{"relayed", []string{"--relay"}, "relayed through TURN", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "http", stack.DeviceID, "--listen", "127.0.0.1:0")
			p, m := startCLI(t, s, `serving \S+ web page at (http://\S+/)`, args...)
			base := strings.TrimSuffix(m[1], "/")
			if _, err := p.WaitLine(context.Background(), regexp.MustCompile(regexp.QuoteMeta(tc.path))); err != nil {
				t.Fatalf("CLI did not report %q: %v", tc.path, err)
			}
			direct := "http://" + s.DeviceAddr
			for _, path := range []string{"/", "/supplies", "/settings", "/logo.png", "/api/status", "/firmware.bin?size=3000000"} {
				resp, body := get(t, http.DefaultClient, base+path)
				dresp, dbody := get(t, http.DefaultClient, direct+path)
				if resp.StatusCode != dresp.StatusCode {
					t.Errorf("%s: status %d through the tunnel, %d direct", path, resp.StatusCode, dresp.StatusCode)
				}
				if path == "/api/status" {
					continue // live counters differ between two calls
				}
				if sha256.Sum256(body) != sha256.Sum256(dbody) {
					t.Errorf("%s: body differs through the tunnel (%d bytes vs %d)", path, len(body), len(dbody))
				}
				if ct := resp.Header.Get("Content-Type"); ct != dresp.Header.Get("Content-Type") {
					t.Errorf("%s: content type %q, want %q", path, ct, dresp.Header.Get("Content-Type"))
				}
			}
			// A large download streams byte-exact.
			const size = 64 << 20
			_, want := get(t, http.DefaultClient, fmt.Sprintf("%s/firmware.sha256?size=%d", direct, size))
			resp, err := http.Get(fmt.Sprintf("%s/firmware.bin?size=%d", base, size))
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			if err != nil || n != size {
				t.Fatalf("firmware: %d bytes, err %v", n, err)
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != strings.TrimSpace(string(want)) {
				t.Fatalf("firmware checksum %s, want %s", got, want)
			}
			// The technician's terminal after a connect, pages and a 64 MiB
			// download: a few lines of Porthole's own (issue 23 counted 98
			// library warnings on a connect and 986 during a download), no
			// library log, no log-formatted line.
			out := p.Tail(1000)
			t.Logf("the CLI printed:\n%s", out)
			if n := strings.Count(out, "\n"); n > 12 {
				t.Errorf("the CLI printed %d lines", n)
			}
			if m := regexp.MustCompile(`level=|pion|\b(ice|sctp|dtls|turn)\b.*(Failed|warn)|^\s*\d{4}/\d\d/\d\d `).FindString(out); m != "" {
				t.Errorf("a library log line reached the terminal (%q)", m)
			}
		})
	}
}

// TestCLILoginFormAndRedirects drives the device's login and settings forms
// through the tunnel: cookies set by the device, a redirect after login, and
// a form POST.
func TestCLILoginFormAndRedirects(t *testing.T) {
	s := stack.Start(t, stack.Options{})
	_, m := startCLI(t, s, `serving \S+ web page at (http://\S+/)`, "http", stack.DeviceID, "--listen", "127.0.0.1:0")
	base := strings.TrimSuffix(m[1], "/")
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}

	resp, err := c.PostForm(base+"/login", url.Values{"username": {"admin"}, "password": {"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "Welcome, admin") {
		t.Fatalf("after login: status %d, body does not welcome admin:\n%.300s", resp.StatusCode, body)
	}
	resp, err = c.PostForm(base+"/settings", url.Values{"hostname": {"NPI-TEST"}, "location": {"Floor 3"}, "contact": {"it@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Request.URL.Path != "/settings" || !strings.Contains(string(body), "Floor 3") {
		t.Fatalf("settings were not saved and shown: final URL %s\n%.300s", resp.Request.URL, body)
	}
	// Redirects are the device's to give and the client's to follow: the
	// tunnel hands the 302 back as it is.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(base + "/redirect-external")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("off-device redirect: status %d, want 302 passed through", resp.StatusCode)
	}
}

// TestCLIForwardsTCP forwards the device's port as raw TCP and speaks HTTP
// over it by hand.
func TestCLIForwardsTCP(t *testing.T) {
	s := stack.Start(t, stack.Options{})
	_, m := startCLI(t, s, `forwarding (\S+) to`, "forward", stack.DeviceID, fmt.Sprint(s.DevicePort), "--listen", "127.0.0.1:0")
	conn, err := net.DialTimeout("tcp", m[1], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, "GET /api/status HTTP/1.1\r\nHost: printer\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "HTTP/1.1 200") || !strings.Contains(string(b), "serial") {
		t.Fatalf("raw HTTP over the forwarded port:\n%.400s", b)
	}

	conn.Close() // the stream's access-log entry is written when it ends

	// The live session is listed, as a table and as the API's JSON.
	env := []string{"PORTHOLE_SERVER=" + s.SignalingURL, "PORTHOLE_TOKEN=" + s.TechToken}
	var live proto.JobList
	out, err := runCLI(t, s, env, "sessions", "--json")
	if err != nil || json.Unmarshal([]byte(out), &live) != nil || len(live.Jobs) != 1 || live.Jobs[0].Device != stack.DeviceID ||
		!live.Jobs[0].Live {
		t.Fatalf("sessions --json: %v\n%s", err, out)
	}
	if out, err := runCLI(t, s, env, "sessions"); err != nil || !regexp.MustCompile(live.Jobs[0].ID+`\s+`+stack.DeviceID+`\s+Open Device \S+\s+connected`).MatchString(out) {
		t.Fatalf("sessions: %v\n%s", err, out)
	}
	// The agent ships its access log every second.
	testenv.Eventually(t, 10*time.Second, "jobs --json to list the session with its TCP stream", func() bool {
		var jobs proto.JobList
		out, err := runCLI(t, s, env, "jobs", "--json", "--device", stack.DeviceID)
		return err == nil && json.Unmarshal([]byte(out), &jobs) == nil && len(jobs.Jobs) > 0 && jobs.Jobs[0].ID == live.Jobs[0].ID && jobs.Jobs[0].TCPStreams >= 1
	})
	if out, err := runCLI(t, s, env, "jobs"); err != nil || !strings.Contains(out, live.Jobs[0].ID) || !strings.HasPrefix(out, "JOB ") {
		t.Fatalf("jobs: %v\n%s", err, out)
	}
}

// TestSessionRefusals checks that what the agent does not declare is
// refused with a clear code and leaves the session working.
func TestSessionRefusals(t *testing.T) {
	s := stack.Start(t, stack.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	_, err := technician.Open(ctx, technician.Config{Server: s.SignalingURL, Token: s.TechToken, Device: "no-such-device", LoopbackOnly: true})
	if code := proto.CodeOf(err); code != proto.CodeNotFound {
		t.Fatalf("unknown device: code %s (%v), want not_found", code, err)
	}
	_, err = technician.Open(ctx, technician.Config{Server: s.SignalingURL, Token: "wrong", Device: stack.DeviceID, LoopbackOnly: true})
	if code := proto.CodeOf(err); code != proto.CodeUnauthorized {
		t.Fatalf("wrong token: code %s (%v), want unauthorized", code, err)
	}

	sess, err := technician.Open(ctx, technician.Config{Server: s.SignalingURL, Token: s.TechToken, Device: stack.DeviceID, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	for _, port := range []int{22, 6379, 1} {
		_, err := sess.Client.DialTCP(ctx, port)
		var pe *proto.Error
		if !errors.As(err, &pe) || pe.Code != proto.CodePortNotAllowed {
			t.Fatalf("undeclared port %d: %v, want port_not_allowed", port, err)
		}
	}
	// The session is unharmed.
	c := &http.Client{Transport: sess.Client, Timeout: 20 * time.Second}
	resp, body := get(t, c, "http://device/api/status")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "serial") {
		t.Fatalf("after refusals: status %d body %.200s", resp.StatusCode, body)
	}
}
