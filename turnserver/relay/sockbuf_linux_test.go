//go:build linux

package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// records returns the JSON log records whose msg starts with prefix.
func (b *lockedBuffer) records(t *testing.T, prefix string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.b.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if msg, _ := rec["msg"].(string); strings.HasPrefix(msg, prefix) {
			out = append(out, rec)
		}
	}
	return out
}

func sockoptInt(t *testing.T, c syscall.Conn, opt int) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

func procInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

// TestSocketBuffersAsAskedOrKernelMax: every SO_REUSEPORT listener socket
// and every relay socket gets SocketBuffer bytes of receive and send
// buffer (past net.core.rmem_max as root, through SO_RCVBUFFORCE), or the
// kernel's maximum without the privilege, and the log states what the
// kernel granted.
func TestSocketBuffersAsAskedOrKernelMax(t *testing.T) {
	if reusePort == nil {
		t.Skip("no SO_REUSEPORT here")
	}
	rmax := procInt(t, "/proc/sys/net/core/rmem_max")
	wmax := procInt(t, "/proc/sys/net/core/wmem_max")
	const size = 6 << 20
	privileged := unix.Geteuid() == 0 // root has CAP_NET_ADMIN unless a container dropped it
	var logs lockedBuffer
	srv := startServer(t, Config{UDPListen: "127.0.0.1:0", UDPSockets: 3, SocketBuffer: size,
		Allow: []netip.Prefix{loopback8}, AllowOwnHost: true,
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})

	check := func(what string, c syscall.Conn) (int, int) {
		rcv, snd := sockoptInt(t, c, unix.SO_RCVBUF), sockoptInt(t, c, unix.SO_SNDBUF)
		wantR, wantS := 2*min(size, rmax), 2*min(size, wmax)
		if privileged && rcv >= 2*size {
			wantR = 2 * size
		}
		if privileged && snd >= 2*size {
			wantS = 2 * size
		}
		if rcv < wantR || snd < wantS {
			t.Errorf("%s: SO_RCVBUF %d, SO_SNDBUF %d; want at least %d and %d (asked %d, rmem_max %d, wmem_max %d)",
				what, rcv, snd, wantR, wantS, size, rmax, wmax)
		}
		return rcv, snd
	}
	if len(srv.udp) != 3 {
		t.Fatalf("%d UDP listener sockets, want 3", len(srv.udp))
	}
	var rcv0, snd0 int
	for i, l := range srv.udp {
		if got := l.LocalAddr().String(); got != srv.Addrs().UDP.String() {
			t.Errorf("listener %d on %s, want the shared %s", i, got, srv.Addrs().UDP)
		}
		c, ok := l.PacketConn.(syscall.Conn)
		if !ok {
			t.Fatalf("listener %d: %T", i, l.PacketConn)
		}
		rcv0, snd0 = check(fmt.Sprint("listener ", i), c)
	}
	recs := logs.records(t, "socket buffers")
	var listenerLog map[string]any
	for _, r := range recs {
		if r["sockets"] == "udp listener" {
			listenerLog = r
		}
	}
	if listenerLog == nil {
		t.Fatalf("no socket buffers log line for the listeners; got %v", recs)
	}
	if listenerLog["recv_granted"] != float64(rcv0) || listenerLog["send_granted"] != float64(snd0) || listenerLog["asked"] != float64(size) {
		t.Errorf("log %v, want asked %d, recv_granted %d, send_granted %d", listenerLog, size, rcv0, snd0)
	}
	t.Logf("asked %d: kernel reports SO_RCVBUF %d, SO_SNDBUF %d (rmem_max %d, privileged %v)", size, rcv0, snd0, rmax, privileged)

	user, pass := validCreds("s_buffers")
	newRawClient(t, srv.Addrs().UDP, user, pass).allocate()
	srv.relayMu.RLock()
	relays := make([]*relayConn, 0, len(srv.relays))
	for r := range srv.relays {
		relays = append(relays, r)
	}
	srv.relayMu.RUnlock()
	if len(relays) != 1 {
		t.Fatalf("%d relay sockets, want 1", len(relays))
	}
	c, ok := relays[0].PacketConn.(syscall.Conn)
	if !ok {
		t.Fatalf("relay socket: %T", relays[0].PacketConn)
	}
	check("relay socket", c)
	relayLogged := false
	for _, r := range logs.records(t, "socket buffers") {
		relayLogged = relayLogged || r["sockets"] == "relay"
	}
	if !relayLogged {
		t.Error("no socket buffers log line for the relay sockets")
	}
}
