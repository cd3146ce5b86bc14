package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RedisProc is a redis-server (or redis-sentinel) process that a test
// controls: it can be killed, paused and started again on the same port
// and directory.
type RedisProc struct {
	Addr string
	Dir  string

	t      testing.TB
	bin    string
	args   []string
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartRedisProc starts bin (redis-server or redis-sentinel) with args on
// a free loopback port in a fresh directory, and waits for PONG. conf, if
// not empty, is written to redis.conf in that directory and passed first
// (redis-sentinel needs a config file it can rewrite); "port N" and "dir D"
// are added to it. The process is killed when the test ends.
func StartRedisProc(t testing.TB, bin, conf string, args ...string) *RedisProc {
	t.Helper()
	dir := t.TempDir()
	for attempt := range 3 {
		port := FreePort(t)
		p := &RedisProc{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir, t: t, bin: bin}
		if conf != "" {
			path := filepath.Join(dir, "redis.conf")
			body := fmt.Sprintf("%s\nport %d\nbind 127.0.0.1\ndir %s\nprotected-mode no\n", conf, port, dir)
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			p.args = append(p.args, path)
		} else {
			p.args = append(p.args, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir, "--protected-mode", "no")
		}
		p.args = append(p.args, "--daemonize", "no", "--loglevel", "notice")
		p.args = append(p.args, args...)
		err := p.Start()
		if err == nil {
			t.Cleanup(p.Kill)
			return p
		}
		if !strings.Contains(err.Error(), "Address already in use") || attempt == 2 {
			t.Fatalf("start %s: %v", bin, err)
		}
	}
	return nil
}

// Start starts the process (again, after Kill) and waits for PONG.
func (p *RedisProc) Start() error {
	logFile, err := os.OpenFile(filepath.Join(p.Dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		return err
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(p.cmd, p.exited)
	deadline := time.NewTimer(redisStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := ping(p.Addr); err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited: %s", p.bin, p.Log())
		case <-deadline.C:
			p.Kill()
			return fmt.Errorf("no PONG from %s within %s; log: %s", p.Addr, redisStartTimeout, p.Log())
		case <-tick.C:
		}
	}
}

// Log returns the process's log so far.
func (p *RedisProc) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.Dir, "redis.log"))
	return strings.TrimSpace(string(b))
}

// Kill sends SIGKILL (no shutdown, no final fsync) and waits for the exit.
func (p *RedisProc) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a paused process dies too
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Pause stops the process with SIGSTOP; Resume continues it.
func (p *RedisProc) Pause() { _ = p.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused process.
func (p *RedisProc) Resume() { _ = p.cmd.Process.Signal(syscall.SIGCONT) }

// StartRedisCluster starts n redis-server processes with cluster-enabled,
// joins them into a Redis Cluster of n primaries (no replicas) with
// redis-cli --cluster create, and returns their addresses once every node
// reports cluster_state:ok. It skips (or fails under PORTHOLE_REQUIRE_ALL=1)
// when redis-server or redis-cli is missing.
func StartRedisCluster(t testing.TB, n int) []*RedisProc {
	t.Helper()
	server := NeedBinary(t, "redis-server")
	cli := NeedBinary(t, "redis-cli")
	nodes := make([]*RedisProc, n)
	create := []string{"--cluster", "create"}
	for i := range nodes {
		nodes[i] = StartRedisProc(t, server, "", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no", "--loglevel", "warning")
		create = append(create, nodes[i].Addr)
	}
	create = append(create, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, create...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	Eventually(t, 30*time.Second, "cluster_state:ok on every node", func() bool {
		for _, nd := range nodes {
			h, p, _ := net.SplitHostPort(nd.Addr)
			out, err := exec.Command(cli, "-h", h, "-p", p, "cluster", "info").Output()
			if err != nil || !strings.Contains(string(out), "cluster_state:ok") {
				return false
			}
		}
		return true
	})
	return nodes
}
