package integration

import (
	"bytes"
	"context"
	"crypto/des" //nolint:gosec // VNC authentication is DES by definition (RFC 6143 §7.2.2)
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// The SSH-and-VNC lab: signaling and the relay on "the internet", the
// technician beside them, the agent with a second leg on a device segment
// where one box runs a real sshd (Debian's openssh-server) and a real VNC
// server (TigerVNC's Xvnc), and nothing else: no web page.
const (
	svTechIP   = "198.51.100.10"
	svAgentIP  = "203.0.113.40"
	svAgentLAN = "10.79.0.10"
	svBoxIP    = "10.79.0.20"
	svBoxMAC   = "02:00:00:79:00:20"
	svVNCPass  = "s3cret-vnc"
)

// sshdDropped matches what sshd logs for a connection opened and closed
// before authentication: what a connect-and-close reachability check
// leaves ("kex_exchange_identification: Connection closed by remote
// host", "Connection closed by … [preauth]"). sshdNormal are [preauth]
// lines of an ordinary public-key login.
var (
	sshdDropped = regexp.MustCompile(`\[preauth\]|Did not receive identification string|kex_exchange_identification|banner exchange`)
	sshdNormal  = regexp.MustCompile(`Postponed publickey for`)
)

// libraryLine matches a log line of a library beneath the CLI (pion's
// logs carry pion=<scope>) or any structured log line at all.
var libraryLine = regexp.MustCompile(`(^|\s)(pion=|level=)`)

type svLab struct {
	t         *testing.T
	bin       stack.Binaries
	svc       *natServices
	tech      *netlab.Host
	agent     *netlab.Host
	box       *netlab.Host
	dir       string
	key       string // the technician's SSH key
	known     string // its known_hosts
	sshd      *proc.Proc
	agentProc *proc.Proc
	xvnc      *proc.Proc
	display   int      // Xvnc's display number
	env       []string // the CLI's environment
	libLines  int      // library log lines the CLI printed, over every run
}

func startSVLab(t *testing.T) *svLab {
	t.Helper()
	sshd := testenv.NeedBinary(t, "sshd")
	testenv.NeedBinary(t, "ssh")
	testenv.NeedBinary(t, "scp")
	xvnc := testenv.NeedBinary(t, "Xvnc")
	vncpasswd := testenv.NeedBinary(t, "vncpasswd")
	keygen := testenv.NeedBinary(t, "ssh-keygen")
	bin := stack.Build(t)
	lab := netlab.New(t)
	inet := lab.Internet("203.0.113.0/24", "198.51.100.0/24")
	l := &svLab{t: t, bin: bin, dir: t.TempDir()}
	l.svc = startNATServices(t, lab, inet, bin)
	l.tech = lab.Host("tech", inet, svTechIP)
	l.agent = lab.Host("agent", inet, svAgentIP)
	devices := lab.Switch("boxes", "10.79.0.0/24")
	l.agent.Attach(devices, svAgentLAN)
	l.box = lab.Host("box", devices, svBoxIP)
	if out, err := exec.Command("ip", "-n", l.box.Namespace(), "link", "set", "eth0", "address", svBoxMAC).CombinedOutput(); err != nil {
		t.Fatalf("set the box's MAC: %v\n%s", err, out)
	}

	// sshd, with its own host key and the technician's key authorised.
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run(keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(l.dir, "host_key"))
	l.key = filepath.Join(l.dir, "id_ed25519")
	run(keygen, "-q", "-t", "ed25519", "-N", "", "-f", l.key)
	pub, _ := os.ReadFile(l.key + ".pub")
	writeFile(t, filepath.Join(l.dir, "authorized_keys"), string(pub))
	l.known = filepath.Join(l.dir, "known_hosts")
	writeFile(t, filepath.Join(l.dir, "sshd_config"), fmt.Sprintf(`ListenAddress %s:22
HostKey %s/host_key
AuthorizedKeysFile %s/authorized_keys
PidFile %s/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
LogLevel VERBOSE
AllowTcpForwarding yes
Subsystem sftp internal-sftp
`, svBoxIP, l.dir, l.dir, l.dir))
	_ = os.MkdirAll("/run/sshd", 0o755) // sshd's privilege separation directory (Debian's unit creates it)
	l.sshd, _ = l.box.StartAndWait("sshd", sshd, []string{"-D", "-e", "-f", filepath.Join(l.dir, "sshd_config")},
		`Server listening on `+regexp.QuoteMeta(svBoxIP), 15*time.Second)

	// Xvnc on port 5900 with VNC authentication; its display number only
	// names its lock file, so take one no other X server holds.
	cmd := exec.Command(vncpasswd, "-f")
	cmd.Stdin = strings.NewReader(svVNCPass + "\n")
	pw, err := cmd.Output()
	if err != nil {
		t.Fatalf("vncpasswd: %v", err)
	}
	writeFile(t, filepath.Join(l.dir, "vncpasswd"), string(pw))
	display := freeDisplay(t)
	l.display = display
	l.xvnc, _ = l.box.StartAndWait("Xvnc", xvnc, []string{fmt.Sprintf(":%d", display), "-rfbport", "5900", "-rfbauth", filepath.Join(l.dir, "vncpasswd"),
		"-SecurityTypes", "VncAuth", "-localhost=0", "-nolisten", "tcp", "-geometry", "320x200", "-depth", "24", "-log", "*:stderr:100"},
		`Listening for VNC connections`, 15*time.Second)

	// A service on the box's own loopback, for ssh -L.
	ln, err := l.box.Listen("127.0.0.1:8000")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "box-local-status-ok") }), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	// The agent declares the box with SSH, VNC and nothing else; and a
	// second device at the same address whose MAC does not match.
	cfg, _ := json.Marshal(map[string]any{
		"server": l.svc.signalURL, "key": l.svc.agentKey,
		"devices": []map[string]any{
			{"id": "box-1", "name": "HMI box", "address": svBoxIP, "mac": svBoxMAC,
				"services": []map[string]any{{"kind": "ssh", "port": 22}, {"kind": "vnc", "port": 5900}}},
			{"id": "box-impostor", "address": svBoxIP, "mac": "02:00:00:79:00:99",
				"services": []map[string]any{{"kind": "ssh", "port": 22}}},
		},
	})
	path := filepath.Join(l.dir, "agent.json")
	writeFile(t, path, string(cfg))
	l.agentProc, _ = l.agent.StartAndWait("porthole-agent", bin["porthole-agent"], []string{"--config", path, "--state-dir", filepath.Join(l.dir, "agent-state"), "--log-level", "info"}, `connected to signaling`, 20*time.Second)
	l.env = []string{"PORTHOLE_SERVER=" + l.svc.signalURL, "PORTHOLE_TOKEN=" + l.svc.techToken, "HOME=" + l.dir}
	return l
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// freeDisplay returns an X display number no running X server uses.
func freeDisplay(t *testing.T) int {
	t.Helper()
	for d := 60 + os.Getpid()%30; d < 200; d++ {
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", d)); errors.Is(err, os.ErrNotExist) {
			return d
		}
	}
	t.Fatal("no free X display number")
	return 0
}

// sshOpts are the technician's own ssh options: this key, a known_hosts
// of the test's, no ~/.ssh/config.
func (l *svLab) sshOpts() []string {
	return []string{"-F", "/dev/null", "-i", l.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=" + l.known, "-l", "root"}
}

// runTech runs a command in the technician's namespace with the CLI's
// environment and returns stdout and stderr.
func (l *svLab) runTech(ctx context.Context, name string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.tech.Namespace(), name}, args...)...)
	cmd.Env = append(os.Environ(), l.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	l.countLibraryLines(stderr.String())
	return stdout.String(), stderr.String(), err
}

func (l *svLab) countLibraryLines(out string) {
	for _, line := range strings.Split(out, "\n") {
		if libraryLine.MatchString(line) {
			l.libLines++
		}
	}
}

// vncOnce opens a session with `porthole forward … 5900`, authenticates
// to the VNC server through it with the right password and ends it.
func (l *svLab) vncOnce(extra ...string) (string, error) {
	args := append(append([]string{}, extra...), "forward", "box-1", "5900", "--listen", "127.0.0.1:0")
	p, m := l.tech.StartAndWait("porthole forward", l.bin["porthole"], args, `forwarding (\S+) to`, 30*time.Second, l.env...)
	defer func() {
		_ = p.Stop(10 * time.Second)
		l.countLibraryLines(p.Tail(2000))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := l.tech.DialContext(ctx, "tcp", m[1])
	if err != nil {
		return "", err
	}
	defer c.Close()
	return rfbAuth(c, svVNCPass)
}

// TestSSHAndVNCDevice: a box with only SSH and VNC is declared, checked
// and opened twenty times without one connection from the checks to
// either service: the VNC server still takes the right password (TigerVNC
// blacklists an address after a few connections dropped before
// authentication), and sshd logs no dropped connection. `porthole ssh`
// runs a command with the system's ssh; scp copies 50 MiB both ways,
// byte-exact (throughput logged); ssh -L forwards a port; a device whose
// MAC does not match is refused before anything reaches the box. No
// library log line reaches the technician's terminal, except with
// --verbose.
func TestSSHAndVNCDevice(t *testing.T) {
	l := startSVLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// The device list shows the services and what the agent found.
	out, _, err := l.runTech(ctx, l.bin["porthole"], "devices", "--json")
	if err != nil {
		t.Fatalf("devices: %v", err)
	}
	var list proto.DeviceList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("devices --json: %v\n%s", err, out)
	}
	var box *proto.DeviceStatus
	for i := range list.Devices {
		if list.Devices[i].ID == "box-1" {
			box = &list.Devices[i]
		}
	}
	if box == nil || box.HTTPPort != 0 || len(box.Services) != 2 || box.Health == nil || !box.Health.Reachable {
		t.Fatalf("box-1 as listed: %+v health %+v", box, box.Health)
	}

	sshdConns := func() (conns, accepted int, dropped []string) {
		for _, line := range strings.Split(l.sshd.Tail(2000), "\n") {
			switch {
			case strings.Contains(line, "Connection from "):
				conns++
			case strings.Contains(line, "Accepted publickey"):
				accepted++
			case sshdDropped.MatchString(line) && !sshdNormal.MatchString(line):
				dropped = append(dropped, line)
			}
		}
		return
	}

	// Twenty sessions: ten run a command over ssh, ten authenticate to
	// the VNC server with the right password.
	var sshSetup []time.Duration
	for i := range 10 {
		start := time.Now()
		args := append([]string{"ssh", "box-1"}, l.sshOpts()...)
		args = append(args, "echo", fmt.Sprintf("hello-from-session-%d", i), "&&", "uname", "-s")
		stdout, stderr, err := l.runTech(ctx, l.bin["porthole"], args...)
		if err != nil || !strings.Contains(stdout, fmt.Sprintf("hello-from-session-%d\nLinux", i)) {
			t.Fatalf("porthole ssh, session %d: %v\nstdout %q\nstderr %s\nsshd:\n%s", i, err, stdout, stderr, l.sshd.Tail(20))
		}
		sshSetup = append(sshSetup, time.Since(start))
		if desc, err := l.vncOnce(); err != nil {
			t.Fatalf("VNC through the session, session %d: %v\nXvnc:\n%s", 10+i, err, l.xvnc.Tail(20))
		} else if i == 0 {
			t.Logf("VNC server through Porthole: %s", desc)
		}
	}
	t.Logf("porthole ssh (session, ssh handshake, command): %v", sshSetup)
	if desc, err := l.vncOnce(); err != nil {
		t.Fatalf("after 20 sessions the VNC server refuses the right password: %v", err)
	} else {
		t.Logf("after 20 sessions the VNC server still accepts the password: %s", desc)
	}
	if strings.Contains(l.xvnc.Tail(2000), "blacklisted") {
		t.Fatalf("Xvnc blacklisted somebody:\n%s", l.xvnc.Tail(30))
	}
	conns, accepted, dropped := sshdConns()
	if conns != 10 || accepted != 10 || len(dropped) != 0 {
		t.Fatalf("sshd saw %d connections, %d authenticated, dropped: %q (want 10, 10, none)", conns, accepted, dropped)
	}

	// The impostor: same address, another MAC. Refused by the agent;
	// nothing reaches sshd.
	args := append([]string{"ssh", "box-impostor"}, l.sshOpts()...)
	_, stderr, err := l.runTech(ctx, l.bin["porthole"], append(args, "true")...)
	if err == nil || !strings.Contains(stderr, "MAC address is \""+svBoxMAC+"\", expected \"02:00:00:79:00:99\"") {
		t.Fatalf("ssh to the impostor: %v\n%s", err, stderr)
	}
	if c, _, _ := sshdConns(); c != conns {
		t.Fatalf("the refused session reached sshd (%d connections, was %d)", c, conns)
	}

	// scp, 50 MiB each way, with the entry `porthole ssh --config` prints.
	cfgText, _, err := l.runTech(ctx, l.bin["porthole"], "ssh", "--config", "box-1")
	if err != nil || !strings.Contains(cfgText, "ProxyCommand ") || !strings.Contains(cfgText, "forward --stdio box-1 %p") {
		t.Fatalf("ssh --config: %v\n%s", err, cfgText)
	}
	cfg := filepath.Join(l.dir, "ssh_config")
	writeFile(t, cfg, cfgText+fmt.Sprintf("    User root\n    IdentityFile %s\n    IdentitiesOnly yes\n    BatchMode yes\n"+
		"    StrictHostKeyChecking accept-new\n    UserKnownHostsFile %s\n", l.key, l.known))
	const size = 50 << 20
	src := filepath.Join(l.dir, "upload.bin")
	blob := make([]byte, size)
	_, _ = rand.Read(blob)
	writeFile(t, src, string(blob))
	want := sha256.Sum256(blob)
	remote := filepath.Join(l.dir, "on-the-box.bin")
	back := filepath.Join(l.dir, "download.bin")
	for _, step := range []struct {
		what, from, to, check string
	}{
		{"upload", src, "box-1:" + remote, remote},
		{"download", "box-1:" + remote, back, back},
	} {
		start := time.Now()
		if _, stderr, err := l.runTech(ctx, "scp", "-F", cfg, "-q", step.from, step.to); err != nil {
			t.Fatalf("scp %s: %v\n%s", step.what, err, stderr)
		}
		took := time.Since(start)
		got, err := os.ReadFile(step.check)
		if err != nil || sha256.Sum256(got) != want {
			t.Fatalf("scp %s: %d bytes, not byte-exact (%v)", step.what, len(got), err)
		}
		t.Logf("scp %s of 50 MiB through Porthole: %s, %.1f Mbit/s (session setup and ssh handshake included)", step.what,
			took.Round(time.Millisecond), float64(size*8)/took.Seconds()/1e6)
	}

	// ssh -L: a service on the box's own loopback, reached from the
	// technician's machine.
	fwdArgs := append([]string{"ssh", "box-1"}, l.sshOpts()...)
	fwdArgs = append(fwdArgs, "-N", "-L", "127.0.0.1:18000:127.0.0.1:8000")
	fwd := l.tech.Start("porthole ssh -L", l.bin["porthole"], fwdArgs, l.env...)
	hc := l.tech.HTTPClient(5 * time.Second)
	var body []byte
	testenv.Eventually(t, 30*time.Second, "the ssh -L forward to answer", func() bool {
		resp, err := hc.Get("http://127.0.0.1:18000/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK
	})
	if string(body) != "box-local-status-ok" {
		t.Fatalf("through ssh -L: %q", body)
	}
	_ = fwd.Stop(10 * time.Second)
	l.countLibraryLines(fwd.Tail(2000))

	if l.libLines != 0 {
		t.Fatalf("%d library log lines reached the technician's terminal", l.libLines)
	}
	// --verbose shows them (the count above could find them).
	l.libLines = 0
	if _, err := l.vncOnce("--verbose"); err != nil {
		t.Fatal(err)
	}
	if l.libLines == 0 {
		t.Fatal("--verbose showed no log lines: the library-line count cannot see them")
	}
	t.Logf("--verbose: %d log lines on one VNC session", l.libLines)

	// Controls: what the old check did, a connection opened and dropped
	// on the service port, is what these servers count. Six from the
	// agent's address, and TigerVNC refuses the right password from it.
	for range 6 {
		c, err := l.agent.DialContext(ctx, "tcp", svBoxIP+":5900")
		if err == nil {
			time.Sleep(20 * time.Millisecond)
			c.Close()
		}
	}
	c, err := l.agent.DialContext(ctx, "tcp", svBoxIP+":5900")
	if err != nil {
		t.Fatal(err)
	}
	_, err = rfbAuth(c, svVNCPass)
	c.Close()
	if err == nil {
		t.Fatal("control: TigerVNC still accepted the password after six dropped connections; the test could not see a blacklist")
	}
	t.Logf("control: after six connect-and-close probes TigerVNC refuses the right password: %v", err)
	c, err = l.agent.DialContext(ctx, "tcp", svBoxIP+":22")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	testenv.Eventually(t, 10*time.Second, "sshd to log the dropped control connection", func() bool {
		_, _, d := sshdConns()
		return len(d) > 0
	})
}

// rfbAuth speaks RFB 3.8 (RFC 6143) on c up to the server's ServerInit:
// version, VNC authentication with password, ClientInit. It returns the
// framebuffer size and desktop name.
func rfbAuth(c net.Conn, password string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	ver := make([]byte, 12)
	if _, err := io.ReadFull(c, ver); err != nil {
		return "", fmt.Errorf("read version: %w", err)
	}
	if !bytes.HasPrefix(ver, []byte("RFB 003.")) {
		return "", fmt.Errorf("not an RFB server: %q", ver)
	}
	if _, err := c.Write([]byte("RFB 003.008\n")); err != nil {
		return "", err
	}
	n := make([]byte, 1)
	if _, err := io.ReadFull(c, n); err != nil {
		return "", fmt.Errorf("read security types: %w", err)
	}
	if n[0] == 0 {
		return "", fmt.Errorf("connection refused by the server: %q", rfbReason(c))
	}
	types := make([]byte, n[0])
	if _, err := io.ReadFull(c, types); err != nil || !bytes.Contains(types, []byte{2}) {
		return "", fmt.Errorf("security types %v (%v): no VNC authentication", types, err)
	}
	if _, err := c.Write([]byte{2}); err != nil {
		return "", err
	}
	challenge := make([]byte, 16)
	if _, err := io.ReadFull(c, challenge); err != nil {
		return "", fmt.Errorf("read challenge: %w", err)
	}
	// The key is the password's first 8 bytes, each bit-reversed.
	key := make([]byte, 8)
	copy(key, password)
	for i, b := range key {
		var r byte
		for range 8 {
			r, b = r<<1|b&1, b>>1
		}
		key[i] = r
	}
	block, err := des.NewCipher(key) //nolint:gosec // the protocol's own cipher
	if err != nil {
		return "", err
	}
	resp := make([]byte, 16)
	block.Encrypt(resp[:8], challenge[:8])
	block.Encrypt(resp[8:], challenge[8:])
	if _, err := c.Write(resp); err != nil {
		return "", err
	}
	var result uint32
	if err := binary.Read(c, binary.BigEndian, &result); err != nil {
		return "", fmt.Errorf("read security result: %w", err)
	}
	if result != 0 {
		return "", fmt.Errorf("authentication failed: %q", rfbReason(c))
	}
	if _, err := c.Write([]byte{1}); err != nil { // ClientInit: shared
		return "", err
	}
	head := make([]byte, 24)
	if _, err := io.ReadFull(c, head); err != nil {
		return "", fmt.Errorf("read ServerInit: %w", err)
	}
	name := make([]byte, min(binary.BigEndian.Uint32(head[20:]), 256))
	if _, err := io.ReadFull(c, name); err != nil {
		return "", err
	}
	return fmt.Sprintf("%dx%d desktop %q", binary.BigEndian.Uint16(head[0:]), binary.BigEndian.Uint16(head[2:]), name), nil
}

func rfbReason(r io.Reader) string {
	var n uint32
	if binary.Read(r, binary.BigEndian, &n) != nil {
		return ""
	}
	b := make([]byte, min(n, 512))
	_, _ = io.ReadFull(r, b)
	return string(b)
}
