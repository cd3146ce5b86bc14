package realews

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-dev/porthole/internal/testenv"
)

// CockpitWS is where Debian's cockpit-ws package installs the server.
const CockpitWS = "/usr/lib/cockpit/cockpit-ws"

// Cockpit is a running Cockpit (Debian's cockpit-ws, cockpit-bridge and
// cockpit-system): a real web admin UI whose every page lives on one
// WebSocket (/cockpit/socket, subprotocol cockpit1), which refuses a
// foreign Origin.
type Cockpit struct {
	Port int
}

// StartCockpit runs cockpit-ws on 127.0.0.1 without TLS, with a local
// session (no login: the bridge runs as the server's user), as nobody
// when the test runs as root. It is stopped by t.Cleanup; it skips without
// the packages (fails under PORTHOLE_REQUIRE_ALL=1).
func StartCockpit(t testing.TB) *Cockpit {
	t.Helper()
	_, err := os.Stat(CockpitWS)
	testenv.Require(t, "cockpit-ws at "+CockpitWS, err == nil)
	bridge := testenv.NeedBinary(t, "cockpit-bridge")
	_, err = os.Stat("/usr/share/cockpit/systemd/manifest.json")
	testenv.Require(t, "cockpit-system", err == nil)
	c := &Cockpit{Port: testenv.FreePort(t)}
	home := filepath.Join(t.TempDir(), "home")
	if err := os.MkdirAll(home, 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(home, 0o777) //nolint:gosec // the unprivileged bridge writes its runtime files here
	cmd := exec.Command(CockpitWS, "--port", fmt.Sprint(c.Port), "--address", "127.0.0.1", "--local-session="+bridge)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home, "XDG_RUNTIME_DIR=" + home, "XDG_CACHE_HOME=" + home}
	if os.Getuid() == 0 {
		// The bridge is a shell on the machine: not as root.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start cockpit-ws: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("cockpit-ws:\n%s", stderr.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", c.Port)
	testenv.Eventually(t, 10*time.Second, "cockpit-ws listening", func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	return c
}

// CockpitRun speaks Cockpit's protocol on ws (a fresh /cockpit/socket):
// init, then a stream channel that spawns sh -c script; it returns what the
// script printed.
func CockpitRun(t testing.TB, ws *websocket.Conn, script string) string {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, m, err := ws.ReadMessage()
	if err != nil || !strings.Contains(string(m), `"command":"init"`) {
		t.Fatalf("cockpit init: %q %v", m, err)
	}
	send := func(s string) {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send("\n" + `{"command":"init","version":1}`)
	send("\n" + fmt.Sprintf(`{"command":"open","channel":"p1","payload":"stream","spawn":["sh","-c",%q]}`, script))
	var out strings.Builder
	for {
		_, m, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("cockpit channel: %v (so far %q)", err, out.String())
		}
		ch, body, _ := strings.Cut(string(m), "\n")
		switch {
		case ch == "p1":
			out.WriteString(body)
		case ch == "" && strings.Contains(body, `"command":"close"`) && strings.Contains(body, `"p1"`):
			if !strings.Contains(body, `"exit-status":0`) {
				t.Fatalf("cockpit channel closed: %s", body)
			}
			return out.String()
		}
	}
}
