package realews

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/internal/testenv"
)

// Monit is a running monit (Debian's package) with its web admin UI: HTTP
// Basic login, status pages with a meta refresh and X-Frame-Options, and
// forms whose POST must carry the HttpOnly securitytoken cookie the page
// set along with the same value in a hidden field (403 otherwise), then
// redirects (302) back to the page.
type Monit struct {
	Port       int
	User, Pass string
	// Check is the name of the one service monit watches (a file), whose
	// page has the Disable/Enable monitoring form.
	Check string
}

// StartMonit runs monit in the foreground on 127.0.0.1; it is stopped by
// t.Cleanup. It skips without monit (fails under PORTHOLE_REQUIRE_ALL=1).
func StartMonit(t testing.TB) *Monit {
	t.Helper()
	bin := testenv.NeedBinary(t, "monit")
	m := &Monit{Port: testenv.FreePort(t), User: "admin", Pass: "monit", Check: "porthole-check"}
	dir := t.TempDir()
	rc := filepath.Join(dir, "monitrc")
	conf := fmt.Sprintf(`set daemon 30
set pidfile %[1]s/monit.pid
set idfile %[1]s/monit.id
set statefile %[1]s/monit.state
set logfile %[1]s/monit.log
set httpd port %[2]d and use address 127.0.0.1
    allow %[3]s:%[4]s
check file %[5]s with path %[6]s
`, dir, m.Port, m.User, m.Pass, m.Check, rc)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil { // monit refuses a control file others can read
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-c", rc).CombinedOutput(); err != nil {
		t.Fatalf("monit config: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-I", "-c", rc)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start monit: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "monit.log"))
			t.Logf("monit:\n%s\n%s", out.String(), log)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", m.Port)
	testenv.Eventually(t, 10*time.Second, "monit listening", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return m
}

var monitToken = regexp.MustCompile(`name='securitytoken' value='([0-9a-f]+)'`)

// MonitToken is the form token on a monit page, or "".
func MonitToken(page string) string {
	if m := monitToken.FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return ""
}
