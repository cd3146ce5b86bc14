package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records Skipf and Fatalf instead of stopping the goroutine.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestRequireSkipsOrFails(t *testing.T) {
	tests := []struct {
		name        string
		env         string
		ok          bool
		wantSkip    bool
		wantFailure bool
	}{
		{"available", "", true, false, false},
		{"available strict", "1", true, false, false},
		{"missing skips", "", false, true, false},
		{"missing skips when env is not 1", "0", false, true, false},
		{"missing fails when strict", "1", false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(RequireAllEnv, tt.env)
			r := &recorder{TB: t}
			Require(r, "widget", tt.ok)
			if (r.skipped != "") != tt.wantSkip || (r.failed != "") != tt.wantFailure {
				t.Fatalf("skipped %q failed %q", r.skipped, r.failed)
			}
			if tt.wantSkip && r.skipped != "skipping: widget not available" {
				t.Errorf("skip message %q", r.skipped)
			}
			if tt.wantFailure && !strings.Contains(r.failed, "widget") {
				t.Errorf("failure message %q", r.failed)
			}
		})
	}
}

func TestNeedBinary(t *testing.T) {
	t.Setenv(RequireAllEnv, "")
	if got := NeedBinary(t, "sh"); !filepath.IsAbs(got) {
		t.Fatalf("NeedBinary(sh) = %q", got)
	}
	r := &recorder{TB: t}
	NeedBinary(r, "porthole-no-such-binary")
	if !strings.Contains(r.skipped, "porthole-no-such-binary") {
		t.Fatalf("skip message %q", r.skipped)
	}
}

func TestListenAndFreePort(t *testing.T) {
	ln := Listen(t)
	if ln.Addr().(*net.TCPAddr).Port == 0 {
		t.Fatal("no port")
	}
	port := FreePort(t)
	ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("FreePort gave a port in use: %v", err)
	}
	ln2.Close()
}

func TestArtifactsDir(t *testing.T) {
	t.Run("sub/case:1", func(t *testing.T) {
		dir := ArtifactsDir(t)
		root := RepoRoot(t)
		want := filepath.Join(root, "artifacts", "TestArtifactsDir", "sub", "case_1")
		if dir != want {
			t.Fatalf("ArtifactsDir = %q, want %q", dir, want)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			t.Fatalf("not created: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(filepath.Join(root, "artifacts", "TestArtifactsDir")) })
	})
}

func TestStartRedisAnswersAndStops(t *testing.T) {
	var addr string
	t.Run("run", func(t *testing.T) {
		addr = StartRedis(t)
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(conn)
		send := func(cmd string) string {
			t.Helper()
			if _, err := conn.Write([]byte(cmd)); err != nil {
				t.Fatal(err)
			}
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			return line
		}
		if got := send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"); got != "+OK\r\n" {
			t.Fatalf("SET: %q", got)
		}
		if got := send("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"); got != "$1\r\n" {
			t.Fatalf("GET: %q", got)
		}
	})
	if addr == "" {
		return // skipped: no redis-server
	}
	// The subtest's cleanup stopped the server: nothing answers on its port any more.
	if err := ping(addr); err == nil {
		t.Fatalf("redis at %s still answers after the test ended", addr)
	}
}

func TestStartRedisTwiceGivesTwoServers(t *testing.T) {
	a, b := StartRedis(t), StartRedis(t)
	if a == b {
		t.Fatalf("same address twice: %s", a)
	}
}

func TestEventually(t *testing.T) {
	t.Run("holds at once", func(t *testing.T) {
		r := &recorder{TB: t}
		calls := 0
		Eventually(r, time.Second, "x", func() bool { calls++; return true })
		if r.failed != "" || calls != 1 {
			t.Fatalf("failed %q after %d calls", r.failed, calls)
		}
	})
	t.Run("holds later", func(t *testing.T) {
		r := &recorder{TB: t}
		calls := 0
		Eventually(r, 5*time.Second, "x", func() bool { calls++; return calls >= 3 })
		if r.failed != "" || calls != 3 {
			t.Fatalf("failed %q after %d calls", r.failed, calls)
		}
	})
	t.Run("fails on timeout", func(t *testing.T) {
		r := &recorder{TB: t}
		calls := 0
		start := time.Now()
		Eventually(r, 100*time.Millisecond, "the moon", func() bool { calls++; return false })
		took := time.Since(start)
		if want := "timed out after 100ms waiting for the moon"; r.failed != want {
			t.Fatalf("failed %q, want %q", r.failed, want)
		}
		if took < 100*time.Millisecond || took > 2*time.Second {
			t.Fatalf("gave up after %s, want about 100ms", took)
		}
		if calls < 3 {
			t.Fatalf("cond polled %d times in 100ms, want it polled repeatedly", calls)
		}
	})
}
