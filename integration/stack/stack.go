// Package stack starts a complete Porthole on loopback from the project's
// real binaries — demo device, porthole-turn, porthole-signaling and
// porthole-agent — for end-to-end tests and benchmarks.
package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/internal/testenv"
)

// Binaries are the built commands, by name.
type Binaries map[string]string

var (
	buildOnce sync.Once
	built     Binaries
	buildDir  string
	buildErr  error
)

// RemoveBuilt deletes what Build compiled (about 100 MB a test process).
// The binaries serve every test of the process, so no test's cleanup may
// remove them: each package that calls Build calls RemoveBuilt from its
// TestMain after m.Run. Without it every `go test` run left its directory
// in /tmp, and a day of runs filled the disk.
func RemoveBuilt() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// Build compiles the project's commands once per test process into a
// temporary directory and returns their paths.
func Build(t testing.TB) Binaries {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "porthole-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		root := testenv.RepoRoot(t)
		pkgs := []string{
			"./signaling/cmd/porthole-signaling",
			"./turnserver/cmd/porthole-turn",
			"./agent/cmd/porthole-agent",
			"./agent/cmd/porthole",
			"./integration/cmd/porthole-demo-device",
		}
		cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, pkgs...)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		built = Binaries{}
		for _, p := range pkgs {
			built[filepath.Base(p)] = filepath.Join(dir, filepath.Base(p))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// Options shape a stack.
type Options struct {
	// Devices beyond the demo device, as agent config entries.
	ExtraDevices []map[string]any
	// SignalingArgs are appended to porthole-signaling's flags.
	SignalingArgs []string
	// Verbose copies all process output to the test log.
	Verbose bool
	// AgentArgs are appended to porthole-agent's flags (e.g.
	// "--debug-addr", "127.0.0.1:0"; read the address from
	// Procs["porthole-agent"] with WaitLine).
	AgentArgs []string
	// DeviceArgs are appended to porthole-demo-device's flags (e.g.
	// "--strict-origin").
	DeviceArgs []string
	// LegacyTLS also serves the demo device on a TLS 1.0-only port and an
	// http port that redirects to it, declared as LegacyTLSDeviceID and
	// RedirectDeviceID.
	LegacyTLS bool
	// Users are created (with `porthole-signaling admin`) before
	// signaling starts. The agent is always in site SiteID.
	Users []User
	// AgentRelay puts a TCP relay between the agent and signaling's agent
	// listener, so a test can cut the agent's signaling connection
	// (CutAgentLink) while everything else stays up (restart.go).
	AgentRelay bool
	// NoAgent leaves the agent to the test: the stack enrolls and starts
	// none, and gives the enrollment token (EnrollToken) and the agent's
	// configuration (AgentConfig) instead, e.g. for an installed package.
	NoAgent bool
	// AgentPolicy and DeviceActions are the demo device's "policy" and
	// "actions" in the agent's file (agent/daemon/policy.go).
	AgentPolicy   map[string]any
	DeviceActions []string
	// ICEFront, if set, is given porthole-turn's address once it listens
	// and returns the address signaling hands out instead (STUN and TURN
	// over UDP only), e.g. a delay relay in front of it (the bench's
	// page loads at a simulated path delay).
	ICEFront func(turnAddr string) string
	// Redis is a redis:// URL: signaling (and its admin commands) keep
	// their state there instead of the data directory's bbolt file.
	Redis string
}

// User is an account a stack creates.
type User struct {
	Name, Password string
	Admin          bool
	Roles          []string // roles on SiteID: "configurer", "user"
}

// SiteID is the site the stack's agent belongs to.
const SiteID = "lab"

// AgentID is the stack's agent.
const AgentID = "test-agent"

// Stack is a running local Porthole.
type Stack struct {
	Bin        Binaries
	Dir        string
	DeviceAddr string // host:port of the demo device
	DevicePort int
	// With Options.LegacyTLS: the demo device's TLS 1.0-only https port
	// and its http port that redirects there.
	DeviceLegacyPort, DeviceRedirectPort int
	TURNAddr                             string
	SignalingURL                         string // http://127.0.0.1:port
	AppURL                               string // http://localhost:port, the app origin browsers use
	// SessionsHost is the sessions domain, sessions.localhost:port: each
	// session's window is on shell-<id>.SessionsHost and its device pages
	// on <id>.SessionsHost, all same-site with each other (localhost is a
	// TLD to Chromium) and cross-site to the app.
	SessionsHost string
	DataDir      string // signaling's store
	// AgentStateDir is the agent's enrollment (key, certificate, CA).
	AgentStateDir string
	AgentKey      string
	TechToken     string
	TURNSecret    string
	Procs         map[string]*proc.Proc
	// With Options.NoAgent: the one-time enrollment token of AgentID, and
	// the agent configuration file's JSON (the demo device).
	EnrollToken string
	AgentConfig []byte

	sigArgs   []string    // porthole-signaling's flags, for RestartSignaling
	storeArgs []string    // the admin commands' store flags beyond --data-dir
	agentArgs []string    // porthole-agent's flags, for StartAgent
	out       io.Writer   // process output, nil unless Verbose
	relay     *agentRelay // with Options.AgentRelay
}

// DeviceID is the demo device's ID in every stack.
const DeviceID = "printer-1"

// With Options.LegacyTLS, the demo device is also declared as these two:
// its TLS 1.0-only https port (LegacyTLSDeviceID), and its http port that
// redirects everything there (RedirectDeviceID, which declares both ports
// and the https one as its httpsPort).
const (
	LegacyTLSDeviceID = "printer-tls10"
	RedirectDeviceID  = "printer-https"
)

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// Start brings up a stack and registers its teardown with t.Cleanup.
func Start(t testing.TB, opts Options) *Stack {
	t.Helper()
	s := &Stack{
		Bin: Build(t), Dir: t.TempDir(), Procs: map[string]*proc.Proc{},
		AgentKey: randHex(16), TechToken: randHex(16), TURNSecret: randHex(32),
	}
	var out io.Writer
	if opts.Verbose {
		out = testLogWriter{t}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := func(name string, args []string, ready string) []string {
		t.Helper()
		p, err := proc.Start(name, s.Bin[name], args, proc.Options{Out: out})
		if err != nil {
			t.Fatal(err)
		}
		s.Procs[name] = p
		t.Cleanup(func() {
			if err := p.Stop(10 * time.Second); err != nil {
				t.Logf("%s: %v\n%s", name, err, p.Tail(30))
			}
		})
		m, err := p.WaitLine(ctx, regexp.MustCompile(ready))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	devArgs := append([]string{"--listen", "127.0.0.1:0"}, opts.DeviceArgs...)
	if opts.LegacyTLS {
		devArgs = append(devArgs, "--legacy-https", "127.0.0.1:0", "--https-redirect", "127.0.0.1:0")
	}
	m := start("porthole-demo-device", devArgs, `demo device listening on http://(\S+)`)
	s.DeviceAddr = m[1]
	_, portStr, _ := net.SplitHostPort(s.DeviceAddr)
	s.DevicePort, _ = strconv.Atoi(portStr)
	if opts.LegacyTLS {
		port := func(re string) int {
			m, err := s.Procs["porthole-demo-device"].WaitLine(ctx, regexp.MustCompile(re))
			if err != nil {
				t.Fatal(err)
			}
			p, _ := strconv.Atoi(m[1])
			return p
		}
		s.DeviceLegacyPort = port(`legacy https listening on https://127\.0\.0\.1:(\d+)`)
		s.DeviceRedirectPort = port(`https redirect listening on http://127\.0\.0\.1:(\d+)`)
	}

	secretFile := filepath.Join(s.Dir, "turn.secret")
	if err := os.WriteFile(secretFile, []byte(s.TURNSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	turnPort := testenv.FreePort(t)
	s.TURNAddr = fmt.Sprintf("127.0.0.1:%d", turnPort)
	start("porthole-turn", []string{
		"--udp", s.TURNAddr, "--tcp", s.TURNAddr, "--public-ip", "127.0.0.1",
		"--secret-file", secretFile, "--allow-peer", "127.0.0.0/8", "--allow-own-host",
	}, `listening`)

	sigPort := testenv.FreePort(t)
	s.SignalingURL = fmt.Sprintf("http://127.0.0.1:%d", sigPort)
	s.SessionsHost = fmt.Sprintf("sessions.localhost:%d", sigPort)
	s.AppURL = fmt.Sprintf("http://localhost:%d", sigPort)
	s.DataDir = filepath.Join(s.Dir, "signaling-data")
	if opts.Redis != "" {
		s.storeArgs = []string{"--redis", opts.Redis}
	}
	s.admin(t, "site", "--id", SiteID, "--name", "Lab")
	s.admin(t, "agent", "--id", AgentID, "--site", SiteID)
	enrollToken, err := EnrollToken(s.Bin["porthole-signaling"], s.DataDir, SiteID, AgentID, s.storeArgs...)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range opts.Users {
		pwFile := filepath.Join(s.Dir, "pw-"+u.Name)
		if err := os.WriteFile(pwFile, []byte(u.Password), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := "user"
		if u.Admin {
			cmd = "create"
		}
		args := []string{cmd, "--name", u.Name, "--password-file", pwFile}
		if len(u.Roles) > 0 {
			args = append(args, "--role", SiteID+"="+strings.Join(u.Roles, ","))
		}
		s.admin(t, args...)
	}
	args := []string{
		"--listen", fmt.Sprintf("127.0.0.1:%d", sigPort),
		"--data-dir", s.DataDir,
		"--agent-listen", "127.0.0.1:0", // agents enroll and connect with mutual TLS
		"--app-origin", s.AppURL,
		// The dev technician token opens printer-1 at once, whether or not
		// remote access is enabled for it: the tests of the data path need
		// no accounts. Tests of identity and access use Users.
		"--insecure-dev-tokens",
		"--agent-key", AgentID + "=" + s.AgentKey,
		"--tech-token", s.TechToken + "=tech",
		"--turn-secret-file", secretFile,
		"--sessions-scheme", "http",
		"--sessions-domain", s.SessionsHost,
		"--allowed-origin", s.AppURL,
	}
	if opts.ICEFront != nil {
		front := opts.ICEFront(s.TURNAddr)
		args = append(args, "--ice-url", "stun:"+front, "--ice-url", "turn:"+front+"?transport=udp")
	} else {
		args = append(args,
			"--ice-url", "stun:"+s.TURNAddr,
			"--ice-url", "turn:"+s.TURNAddr+"?transport=udp",
			"--ice-url", "turn:"+s.TURNAddr+"?transport=tcp")
	}
	args = append(args, s.storeArgs...)
	if opts.AgentRelay {
		agentPort := testenv.FreePort(t)
		s.relay = startAgentRelay(t, fmt.Sprintf("127.0.0.1:%d", agentPort))
		for i := range args {
			if args[i] == "--agent-listen" {
				args[i+1] = fmt.Sprintf("127.0.0.1:%d", agentPort)
			}
		}
		args = append(args, "--agent-url", "wss://"+s.relay.addr)
	}
	s.sigArgs = append(args, opts.SignalingArgs...)
	s.out = out
	start("porthole-signaling", s.sigArgs, `listening on`)

	devices := []map[string]any{{
		"id": DeviceID, "name": "Demo printer", "scheme": "http",
		"address": "127.0.0.1", "httpPort": s.DevicePort,
		// The names the demo device writes into its pages (quirks.go).
		"names": []string{"npi4000-demo", "npi4000-demo.local"},
	}}
	if opts.AgentPolicy != nil {
		devices[0]["policy"] = opts.AgentPolicy
	}
	if opts.DeviceActions != nil {
		devices[0]["actions"] = opts.DeviceActions
	}
	if opts.LegacyTLS {
		devices = append(devices, map[string]any{
			"id": LegacyTLSDeviceID, "name": "Demo printer (TLS 1.0)", "scheme": "https",
			"address": "127.0.0.1", "httpPort": s.DeviceLegacyPort,
			"names": []string{"npi4000-demo", "npi4000-demo.local"},
		}, map[string]any{
			"id": RedirectDeviceID, "name": "Demo printer (https only)", "scheme": "http",
			"address": "127.0.0.1", "httpPort": s.DeviceRedirectPort,
			"ports": []int{s.DeviceRedirectPort, s.DeviceLegacyPort}, "httpsPort": s.DeviceLegacyPort,
			"names": []string{"npi4000-demo", "npi4000-demo.local"},
		})
	}
	devices = append(devices, opts.ExtraDevices...)
	cfg, _ := json.Marshal(map[string]any{"server": s.SignalingURL, "key": s.AgentKey, "devices": devices})
	if opts.NoAgent {
		// Without the pre-shared key: an installed agent runs on its
		// enrollment only.
		s.EnrollToken = enrollToken
		s.AgentConfig, _ = json.MarshalIndent(map[string]any{"devices": devices}, "", "  ")
		return s
	}
	cfgPath := filepath.Join(s.Dir, "agent.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	s.AgentStateDir = filepath.Join(s.Dir, "agent-state")
	if err := Enroll(s.Bin["porthole-agent"], s.SignalingURL, enrollToken, s.AgentStateDir); err != nil {
		t.Fatal(err)
	}
	s.agentArgs = append([]string{"--config", cfgPath, "--state-dir", s.AgentStateDir, "--loopback-only"}, opts.AgentArgs...)
	start("porthole-agent", s.agentArgs, `connected to signaling`)
	s.WaitOnline(t, DeviceID)
	return s
}

// admin runs `porthole-signaling admin ARGS --data-dir DataDir`.
func (s *Stack) admin(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command(s.Bin["porthole-signaling"], append(append(append([]string{"admin"}, args...), "--data-dir", s.DataDir), s.storeArgs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("porthole-signaling admin %v: %v\n%s", args, err, out)
	}
}

// WaitOnline waits until signaling lists device as online.
func (s *Stack) WaitOnline(t testing.TB, device string) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, fmt.Sprintf("device %s to come online", device), func() bool {
		req, _ := http.NewRequest(http.MethodGet, s.SignalingURL+"/v1/devices", nil)
		req.Header.Set("Authorization", "Bearer "+s.TechToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		var l struct {
			Devices []struct {
				ID     string `json:"id"`
				Online bool   `json:"online"`
			} `json:"devices"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&l)
		resp.Body.Close()
		for _, d := range l.Devices {
			if d.ID == device && d.Online {
				return true
			}
		}
		return false
	})
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
