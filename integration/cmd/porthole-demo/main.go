// Command porthole-demo runs a complete local Porthole on loopback: a demo
// device (a printer's admin page), porthole-turn, porthole-signaling and a
// porthole-agent fronting the device. It prints what to open, and stops
// everything on Ctrl-C. `make run` builds the binaries and starts it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/internal/version"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "porthole-demo:", err)
		os.Exit(1)
	}
}

func run() error {
	port := flag.Int("port", 8080, "signaling HTTP port on 127.0.0.1")
	turnPort := flag.Int("turn-port", 3478, "TURN/STUN port on 127.0.0.1 (UDP and TCP)")
	verbose := flag.Bool("v", false, "show the components' logs")
	brand := flag.String("brand", "", "branding file for the app (porthole-signaling --brand), e.g. deploy/branding/brand.json")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Print(version.Get("porthole-demo"))
		return nil
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	binDir := filepath.Dir(self)
	bin := func(name string) string { return filepath.Join(binDir, name) }
	for _, b := range []string{"porthole-signaling", "porthole-turn", "porthole-agent", "porthole-demo-device", "porthole"} {
		if _, err := os.Stat(bin(b)); err != nil {
			return fmt.Errorf("%s not found next to porthole-demo: run 'make build' first", b)
		}
	}
	dir, err := os.MkdirTemp("", "porthole-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	agentKey, techToken, turnSecret := randHex(16), randHex(16), randHex(32)
	turnSecretFile := filepath.Join(dir, "turn.secret")
	if err := os.WriteFile(turnSecretFile, []byte(turnSecret), 0o600); err != nil {
		return err
	}

	var logs io.Writer = io.Discard
	if *verbose {
		logs = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var procs []*proc.Proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			_ = procs[i].Stop(5 * time.Second)
		}
	}()
	startWait := func(name string, args []string, ready string) ([]string, error) {
		fmt.Printf("starting %s…\n", name)
		p, err := proc.Start(name, bin(name), args, proc.Options{Out: logs})
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		m, err := p.WaitLine(wctx, regexp.MustCompile(ready))
		if err != nil && strings.Contains(err.Error(), "address already in use") {
			return nil, fmt.Errorf("%w\nhint: another demo (or program) holds the port; stop it, or choose other ports with --port and --turn-port", err)
		}
		return m, err
	}

	m, err := startWait("porthole-demo-device", []string{"--listen", "127.0.0.1:0"}, `listening on http://(\S+)`)
	if err != nil {
		return err
	}
	deviceAddr := m[1]
	host, devPort, err := splitHostPort(deviceAddr)
	if err != nil {
		return err
	}

	turnAddr := fmt.Sprintf("127.0.0.1:%d", *turnPort)
	if _, err := startWait("porthole-turn", []string{
		"--udp", turnAddr, "--tcp", turnAddr, "--public-ip", "127.0.0.1",
		"--secret-file", turnSecretFile,
		// Everything runs on loopback here, so the relay must be allowed
		// to reach loopback peers; production relays refuse them.
		"--allow-peer", "127.0.0.0/8", "--allow-own-host",
	}, `listening`); err != nil {
		return err
	}

	sigAddr := fmt.Sprintf("127.0.0.1:%d", *port)
	appOrigin := fmt.Sprintf("http://localhost:%d", *port)
	dataDir := filepath.Join(dir, "signaling")
	creds, err := seedAccounts(bin("porthole-signaling"), dataDir)
	if err != nil {
		return err
	}
	// The agent enrolls like a real one: a one-time token, then mutual TLS.
	enrollToken, err := EnrollToken(bin("porthole-signaling"), dataDir, "demo", "demo-agent")
	if err != nil {
		return err
	}
	sigArgs := []string{
		"--listen", sigAddr,
		"--data-dir", dataDir,
		"--agent-listen", "127.0.0.1:0",
		"--app-origin", appOrigin,
		// Development mode keeps the terminal example below working with a
		// dev token that may open the printer whatever its setting.
		"--insecure-dev-tokens",
		"--agent-key", "demo-agent=" + agentKey,
		"--tech-token", techToken + "=demo-technician",
		"--turn-secret-file", turnSecretFile,
		"--ice-url", "stun:" + turnAddr,
		"--ice-url", "turn:" + turnAddr + "?transport=udp",
		"--ice-url", "turn:" + turnAddr + "?transport=tcp",
		"--sessions-scheme", "http",
		// Sessions live under a registrable domain of their own, apart from
		// the app: shell-<id>.sessions.localhost and <id>.sessions.localhost.
		"--sessions-domain", fmt.Sprintf("sessions.localhost:%d", *port),
		"--allowed-origin", appOrigin,
		"--allowed-origin", fmt.Sprintf("http://127.0.0.1:%d", *port),
	}
	if *brand != "" {
		sigArgs = append(sigArgs, "--brand", *brand)
	}
	if _, err := startWait("porthole-signaling", sigArgs, `listening on`); err != nil {
		return err
	}

	agentCfg := map[string]any{
		"server": "http://" + sigAddr,
		"key":    agentKey,
		"devices": []map[string]any{{
			"id": "printer-1", "name": "Porthole LaserJet 4000 (demo)", "scheme": "http",
			"address": host, "httpPort": devPort,
		}},
	}
	cfgPath := filepath.Join(dir, "agent.json")
	b, _ := json.MarshalIndent(agentCfg, "", "  ")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return err
	}
	agentState := filepath.Join(dir, "agent-state")
	if err := Enroll(bin("porthole-agent"), "http://"+sigAddr, enrollToken, agentState); err != nil {
		return err
	}
	if _, err := startWait("porthole-agent", []string{"--config", cfgPath, "--state-dir", agentState, "--loopback-only"}, `connected to signaling`); err != nil {
		return err
	}
	if err := waitOnline(ctx, "http://"+sigAddr, techToken); err != nil {
		return err
	}

	fmt.Printf(`
Porthole demo is running (all on loopback; logs with -v).

  In Chromium, open the app and sign in:
      %s/

  Accounts (passwords are new every run):
      admin       %-22s  users, sites, roles, agents
      configurer  %-22s  turns "Remote access enabled" on for the printer
      technician  %-22s  opens the printer once it is enabled

  The printer starts with remote access disabled: sign in as configurer,
  enable it, then sign in as technician and click Open.

  Or from a terminal (development token, ignores the setting), serve the printer's page on a local port:
      PORTHOLE_SERVER=http://%s PORTHOLE_TOKEN=%s \
        %s --loopback-only http printer-1 --listen 127.0.0.1:8090
      then open http://127.0.0.1:8090/  (login: admin / admin)

  Forward a raw TCP port the same way:
      ... %s --loopback-only forward printer-1 %d --listen 127.0.0.1:9100

Press Ctrl-C to stop everything.
`, appOrigin, creds["admin"], creds["configurer"], creds["technician"], sigAddr, techToken, bin("porthole"), bin("porthole"), devPort)

	select {
	case <-ctx.Done():
	case <-anyExited(procs):
		for _, p := range procs {
			select {
			case <-p.Exited():
				return fmt.Errorf("%s exited unexpectedly (%v):\n%s", p.Name, p.ExitErr(), p.Tail(20))
			default:
			}
		}
	}
	fmt.Println("\nstopping…")
	return nil
}

// seedAccounts creates the demo's site, puts its agent there, and creates
// an admin, a configurer and a technician with fresh passwords, before
// signaling starts. It returns name → password.
func seedAccounts(signaling, dataDir string) (map[string]string, error) {
	adminCmd := func(args ...string) error {
		out, err := exec.Command(signaling, append(append([]string{"admin"}, args...), "--data-dir", dataDir)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("porthole-signaling admin %s: %v\n%s", args[0], err, out)
		}
		return nil
	}
	if err := adminCmd("site", "--id", "demo", "--name", "Demo site"); err != nil {
		return nil, err
	}
	if err := adminCmd("agent", "--id", "demo-agent", "--site", "demo"); err != nil {
		return nil, err
	}
	creds := map[string]string{}
	for _, u := range []struct{ name, cmd, role string }{
		{"admin", "create", ""}, {"configurer", "user", "configurer"}, {"technician", "user", "user"},
	} {
		pw := randHex(8)
		creds[u.name] = pw
		f := filepath.Join(dataDir, "pw")
		if err := os.WriteFile(f, []byte(pw), 0o600); err != nil {
			return nil, err
		}
		args := []string{u.cmd, "--name", u.name, "--password-file", f}
		if u.role != "" {
			args = append(args, "--role", "demo="+u.role)
		}
		err := adminCmd(args...)
		os.Remove(f)
		if err != nil {
			return nil, err
		}
	}
	return creds, nil
}

func anyExited(ps []*proc.Proc) <-chan struct{} {
	ch := make(chan struct{})
	for _, p := range ps {
		go func() {
			<-p.Exited()
			select {
			case ch <- struct{}{}:
			default:
			}
		}()
	}
	return ch
}

func waitOnline(ctx context.Context, base, token string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/devices", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var l struct {
				Devices []struct{ Online bool } `json:"devices"`
			}
			_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&l)
			resp.Body.Close()
			if len(l.Devices) > 0 && l.Devices[0].Online {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("the agent did not come online within 15 s (run with -v to see the logs)")
		case <-tick.C:
		}
	}
}

func splitHostPort(addr string) (string, int, error) {
	var host string
	var port int
	re := regexp.MustCompile(`^(.*):(\d+)$`)
	m := re.FindStringSubmatch(addr)
	if m == nil {
		return "", 0, fmt.Errorf("bad address %q", addr)
	}
	host = m[1]
	_, err := fmt.Sscan(m[2], &port)
	return host, port, err
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
