package integration

import (
	"bufio"
	"context"
	"debug/pe"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
)

// buildPackages runs `make packages` into dir: the .deb and .rpm files
// of porthole-agent, porthole-signaling and porthole-turn.
func buildPackages(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("make", "-s", "packages", "PKG_DIR="+dir)
	cmd.Dir = testenv.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make packages: %v\n%s", err, out)
	}
}

// TestPackages builds the packages once with `make packages` (nfpm) and
// checks them: the .rpm files with rpm (rpm), the agent's .deb installed
// with dpkg and started from what it installed (agent-deb), and the
// server installed from its .deb by the README's own commands
// (server-readme, server_install_test.go).
func TestPackages(t *testing.T) {
	testenv.NeedBinary(t, "make")
	dir := t.TempDir()
	buildPackages(t, dir)
	t.Run("rpm", func(t *testing.T) { testPackagesRPM(t, dir) })
	t.Run("agent-deb", func(t *testing.T) { testAgentDeb(t, dir) })
	t.Run("server-readme", func(t *testing.T) { testServerInstallFromREADME(t, dir) })
}

func onePackage(t *testing.T, dir, glob string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, glob))
	if len(m) != 1 {
		t.Fatalf("%s in %s: %v", glob, dir, m)
	}
	return m[0]
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// unitValues reads the values of key in a systemd unit file.
func unitValues(t *testing.T, path, key string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.TrimSpace(k) == key {
			vs = append(vs, strings.TrimSpace(v))
		}
	}
	return vs
}

// testAgentDeb checks porthole-agent's .deb from dir, installs and enrolls
// it by README "Installing an agent at a site" (apt-get, the device list,
// enroll as its user), checks what it put on the machine (binary, unit,
// configuration, its own system user with no shell), has systemd-analyze
// verify the unit and rate its sandbox, then starts the unit's ExecStart
// as the unit would run it (its User, no capabilities, no_new_privs: this machine
// has no systemd running) against a live signaling server, which sees the
// agent's device online. Purging the package removes the user and state.
func testAgentDeb(t *testing.T, dir string) {
	testenv.NeedRoot(t)
	testenv.NeedBinary(t, "dpkg")
	testenv.NeedBinary(t, "setpriv")
	analyze := testenv.NeedBinary(t, "systemd-analyze")
	if exec.Command("dpkg", "-s", "porthole-agent").Run() == nil {
		t.Fatal("porthole-agent is already installed on this machine; the test installs and purges its own: dpkg --purge porthole-agent")
	}
	deb := onePackage(t, dir, "porthole-agent_*.deb")

	contents := mustRun(t, "dpkg-deb", "--contents", deb)
	for _, want := range []string{"./usr/bin/porthole-agent", "./usr/lib/systemd/system/porthole-agent.service", "./etc/porthole/agent.json"} {
		if !strings.Contains(contents, want) {
			t.Fatalf("%s lacks %s:\n%s", filepath.Base(deb), want, contents)
		}
	}
	if conf := mustRun(t, "dpkg-deb", "--info", deb, "conffiles"); !strings.Contains(conf, "/etc/porthole/agent.json") {
		t.Fatalf("agent.json is not a conffile (an upgrade would overwrite the site's devices): %q", conf)
	}

	// README "Installing an agent at a site", word for word but for the
	// server's address and the token the app shows; its $EDITOR puts the
	// stack's device list in place.
	s := stack.Start(t, stack.Options{NoAgent: true})
	devices := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(devices, s.AgentConfig, 0o644); err != nil {
		t.Fatal(err)
	}
	out, systemctl := runREADMEBlock(t, "install-agent", dir,
		[]string{"https://porthole.example.com", s.SignalingURL, "phe_…", s.EnrollToken}, "EDITOR=cp "+devices)
	t.Logf("README block install-agent:\n%s", out)
	purged := false
	t.Cleanup(func() {
		if !purged {
			if out, err := exec.Command("dpkg", "--purge", "porthole-agent").CombinedOutput(); err != nil {
				t.Errorf("dpkg --purge porthole-agent: %v\n%s", err, out)
			}
		}
	})
	pw := strings.Split(strings.TrimSpace(mustRun(t, "getent", "passwd", "porthole-agent")), ":")
	if len(pw) != 7 || pw[6] != "/usr/sbin/nologin" || pw[2] == "0" {
		t.Fatalf("porthole-agent user: %v", pw)
	}
	if fi, err := os.Stat("/var/lib/porthole-agent"); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state directory: %v %v", fi, err)
	}
	if v := mustRun(t, "/usr/bin/porthole-agent", "--version"); !strings.HasPrefix(v, "porthole-agent ") {
		t.Fatalf("--version: %q", v)
	}

	unit := "/usr/lib/systemd/system/porthole-agent.service"
	if out, err := exec.Command(analyze, "verify", unit).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// systemd's own rating of the sandbox: 0 (locked down) to 10 (none).
	sec, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", unit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`).FindSubmatch(sec)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, sec)
	}
	t.Logf("systemd-analyze security: exposure %s %s", m[1], m[2])
	if string(m[2]) != "OK" {
		t.Fatalf("exposure %s %s, want OK (below 2.0):\n%s", m[1], m[2], sec)
	}
	if caps := unitValues(t, unit, "CapabilityBoundingSet"); len(caps) != 1 || caps[0] != "" {
		t.Fatalf("CapabilityBoundingSet %q: the agent needs no capability", caps)
	}
	user := unitValues(t, unit, "User")
	exec0 := unitValues(t, unit, "ExecStart")
	if len(user) != 1 || user[0] != "porthole-agent" || len(exec0) != 1 {
		t.Fatalf("unit User %q ExecStart %q", user, exec0)
	}

	if systemctl != "enable --now porthole-agent" {
		t.Fatalf("systemctl asked %q", systemctl)
	}
	// As the unit would: its user, no capabilities at all, no way to gain any.
	asUnit := []string{"--reuid", user[0], "--regid", user[0], "--init-groups", "--no-new-privs",
		"--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"}
	p, err := proc.Start("porthole-agent (deb)", "/usr/bin/setpriv", append(asUnit, strings.Fields(exec0[0])...), proc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = p.Stop(10 * time.Second)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := p.WaitLine(ctx, regexp.MustCompile(`connected to signaling`)); err != nil {
		t.Fatalf("the installed agent did not connect: %v\n%s", err, p.Tail(30))
	}
	s.WaitOnline(t, stack.DeviceID)
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("installed agent: %v\n%s", err, p.Tail(20))
	}
	stopped = true

	mustRun(t, "dpkg", "--purge", "porthole-agent")
	purged = true
	if exec.Command("getent", "passwd", "porthole-agent").Run() == nil {
		t.Error("purge left the porthole-agent user")
	}
	for _, gone := range []string{"/usr/bin/porthole-agent", unit, "/var/lib/porthole-agent", "/etc/porthole/agent.json"} {
		if _, err := os.Stat(gone); err == nil {
			t.Errorf("purge left %s", gone)
		}
	}
}

// testPackagesRPM checks the .rpm files nfpm built in dir beside the .deb ones:
// name, architecture, files, scriptlets, and an install into an empty
// root with rpm itself, whose binary then runs.
func testPackagesRPM(t *testing.T, dir string) {
	rpm := testenv.NeedBinary(t, "rpm")
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	for _, name := range []string{"porthole-agent", "porthole-signaling", "porthole-turn"} {
		t.Run(name, func(t *testing.T) {
			pkg := onePackage(t, dir, name+"-*."+arch+".rpm")
			if got := mustRun(t, rpm, "-qp", "--queryformat", "%{NAME} %{ARCH}", pkg); got != name+" "+arch {
				t.Fatalf("rpm says %q", got)
			}
			files := mustRun(t, rpm, "-qlp", pkg)
			for _, want := range []string{"/usr/bin/" + name, "/usr/lib/systemd/system/" + name + ".service"} {
				if !strings.Contains(files, want) {
					t.Fatalf("%s lacks %s:\n%s", filepath.Base(pkg), want, files)
				}
			}
			if scripts := mustRun(t, rpm, "-qp", "--scripts", pkg); !strings.Contains(scripts, "useradd --system") {
				t.Fatalf("no user created at install:\n%s", scripts)
			}
			root := t.TempDir()
			mustRun(t, rpm, "--root", root, "--initdb")
			mustRun(t, rpm, "--root", root, "-i", "--nodeps", "--noscripts", "--nosignature", pkg)
			if v := mustRun(t, filepath.Join(root, "usr/bin", name), "--version"); !strings.HasPrefix(v, name+" ") {
				t.Fatalf("installed %s --version: %q", name, v)
			}
		})
	}
}

// TestAgentBuildsAsWindowsService cross-compiles porthole-agent for
// Windows and checks that the executable carries the service code (the
// service manager's control loop and `service install`). It cannot run
// here: there is no Windows on this machine.
func TestAgentBuildsAsWindowsService(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "porthole-agent.exe")
	cmd := exec.Command("go", "build", "-o", exe, "./agent/cmd/porthole-agent")
	cmd.Dir = testenv.RepoRoot(t)
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=windows go build: %v\n%s", err, out)
	}
	f, err := pe.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
		t.Fatalf("machine %#x", f.Machine)
	}
	want := map[string]bool{
		"golang.org/x/sys/windows/svc.Run":                      false,
		"golang.org/x/sys/windows/svc/mgr.(*Mgr).CreateService": false,
		"main.(*service).Execute":                               false,
		"main.protectStateDir":                                  false,
	}
	for _, s := range f.Symbols {
		if _, ok := want[s.Name]; ok {
			want[s.Name] = true
		}
	}
	for name, found := range want {
		if !found {
			t.Errorf("%s not in the Windows executable", name)
		}
	}
}
