package integration

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

var updateGolden = flag.Bool("update", false, "rewrite the CLI's golden error files (integration/testdata/cli-errors)")

// TestCLIErrorsGolden runs the real CLI against a real stack into every
// failure a technician commonly meets and compares what it prints (and
// its exit code) with golden files: what happened and what to do next,
// never a raw Go error. Addresses, ports and times are replaced by
// placeholders. Run with -update to rewrite them.
func TestCLIErrorsGolden(t *testing.T) {
	const pw = "errors-test-password"
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	s := stack.Start(t, stack.Options{Users: []stack.User{{Name: "tech", Password: pw, Roles: []string{"user"}}},
		ExtraDevices: []map[string]any{{"id": "gw-2", "address": "127.0.0.1", "services": []map[string]any{{"kind": "tcp", "port": closedPort}}}}})
	home := t.TempDir()
	env := cliEnv(s, home)
	dev := []string{"PORTHOLE_TOKEN=" + s.TechToken}

	// A real API token of a technician whose device is disabled, and one
	// that expires in a second.
	cookies := browserLogin(t, s, "tech", pw)
	login := &http.Cookie{Name: "__Host-porthole", Value: cookieValue(cookies, "__Host-porthole")}
	var userTok, shortTok proto.CreatedToken
	apiCall(t, s, login, http.MethodPost, proto.PathTokens, &proto.NewToken{Name: "errors test", Scopes: []string{proto.ScopeRead, proto.ScopeSessions}}, &userTok)
	apiCall(t, s, login, http.MethodPost, proto.PathTokens, &proto.NewToken{Name: "short", Scopes: []string{proto.ScopeRead}, ExpiresIn: 1}, &shortTok)

	// A stored login that has ended (the credentials file of `porthole
	// login`).
	credDir := filepath.Join(home, ".config", "porthole")
	if err := os.MkdirAll(credDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(credDir, "credentials.json"), fmt.Sprintf(`{"servers":{%q:{"server":%q,"accessToken":"phx_ended","created":"2026-01-01T00:00:00Z","expires":"2026-01-31T00:00:00Z"}}}`,
		s.SignalingURL, s.SignalingURL))

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	time.Sleep(1100 * time.Millisecond) // the short token's second

	cases := []struct {
		name string
		env  []string
		args []string
	}{
		{"server-down", dev, []string{"--server", "http://" + closedAddr, "devices"}},
		{"wrong-url", dev, []string{"--server", "http://" + s.DeviceAddr, "devices"}},
		{"not-a-url", dev, []string{"--server", "porthole.example.com", "devices"}},
		{"not-signed-in", []string{"XDG_CONFIG_HOME=" + t.TempDir()}, []string{"devices"}},
		{"login-ended", nil, []string{"devices"}},
		{"token-expired", []string{"PORTHOLE_TOKEN=" + shortTok.Token}, []string{"devices"}},
		{"token-refused", []string{"PORTHOLE_TOKEN=not-a-token"}, []string{"devices"}},
		{"device-disabled", []string{"PORTHOLE_TOKEN=" + userTok.Token}, []string{"--loopback-only", "http", stack.DeviceID, "--listen", "127.0.0.1:0"}},
		{"unknown-device", dev, []string{"forward", "no-such-printer", "22", "--listen", "127.0.0.1:0"}},
		{"undeclared-port", dev, []string{"forward", stack.DeviceID, "22", "--listen", "127.0.0.1:0"}},
		{"port-in-use", dev, []string{"--loopback-only", "http", stack.DeviceID, "--listen", busy.Addr().String()}},
		{"device-port-closed", dev, []string{"--loopback-only", "forward", "--stdio", "gw-2", fmt.Sprint(closedPort)}},
		{"usage", dev, []string{"forward", stack.DeviceID}},
		{"unknown-command", dev, []string{"frobnicate"}},
	}
	run := func(name string, extra []string, args []string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, s.Bin["porthole"], args...)
		cmd.Env = append(append(os.Environ(), env...), extra...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprintf("$ porthole %s\nexit %d\n%s", strings.Join(args, " "), code, stderr.String())
		got = normalizeCLI(got, s, busy.Addr().String(), closedAddr)
		path := filepath.Join("testdata", "cli-errors", name+".txt")
		if *updateGolden {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, got)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run with -update to create)", name, err)
		}
		if got != string(want) {
			t.Errorf("%s: the CLI says\n%s\nwant\n%s", name, got, want)
		}
		if code == 0 {
			t.Errorf("%s: exit 0", name)
		}
		if strings.Contains(stderr.String(), "level=") || strings.Contains(stdout.String(), "level=") {
			t.Errorf("%s: a log line reached the terminal:\n%s", name, stderr.String())
		}
	}
	for _, tc := range cases {
		run(tc.name, tc.env, tc.args)
	}
	// Last: the site's agent goes away.
	if err := s.Procs["porthole-agent"].Stop(10 * time.Second); err != nil {
		t.Logf("agent: %v", err)
	}
	waitOffline(t, s, stack.DeviceID)
	run("device-offline", dev, []string{"--loopback-only", "http", stack.DeviceID, "--listen", "127.0.0.1:0"})
}

// normalizeCLI replaces what differs between runs with placeholders.
func normalizeCLI(s string, st *stack.Stack, busy, closed string) string {
	r := strings.NewReplacer(st.SignalingURL, "http://SIGNALING", "http://"+st.DeviceAddr, "http://DEVICE", busy, "127.0.0.1:BUSY", closed, "127.0.0.1:CLOSED",
		st.AppURL, "http://APP")
	s = r.Replace(s)
	s = regexp.MustCompile(`(web|tcp):\d+`).ReplaceAllString(s, "$1:PORT")
	s = strings.ReplaceAll(s, closed[strings.LastIndex(closed, ":")+1:], "CLOSED")
	s = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`).ReplaceAllString(s, "TIME")
	// The agent's account of its path (session.path) races a failure on
	// the device's side: whether it is printed first is timing, not the
	// error's wording, which is what these files pin (the NAT lab checks
	// the line itself).
	s = regexp.MustCompile(`(?m)^the agent's side: .*\n`).ReplaceAllString(s, "")
	return s
}

// waitOffline waits until signaling lists device as offline.
func waitOffline(t *testing.T, s *stack.Stack, device string) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, device+" to go offline", func() bool {
		out, _ := exec.Command(s.Bin["porthole"], "--server", s.SignalingURL, "--token", s.TechToken, "devices").CombinedOutput()
		return regexp.MustCompile(device + `\s+\S.*\s+offline\s`).Match(out)
	})
}
