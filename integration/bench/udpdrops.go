package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// udpSocketDrops maps each UDP socket of process pid (by inode) to its local
// port and the kernel's per-socket drop counter (the last column of
// /proc/net/udp and udp6).
type udpSocket struct {
	port  int
	drops int64
}

func udpSocketDrops(pid int) (map[string]udpSocket, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, fmt.Errorf("sockets of %d: %w", pid, err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	out := map[string]udpSocket{}
	for _, table := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("udp sockets: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode ref pointer drops
			f := strings.Fields(sc.Text())
			if len(f) < 13 || !inodes[f[9]] {
				continue
			}
			_, portHex, _ := strings.Cut(f[1], ":")
			port, _ := strconv.ParseInt(portHex, 16, 32)
			drops, err := strconv.ParseInt(f[len(f)-1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("udp sockets: drops %q: %w", f[len(f)-1], err)
			}
			out[f[9]] = udpSocket{port: int(port), drops: drops}
		}
	}
	return out, nil
}

// dropsSince sums the drops each socket in now gained since before (a
// socket new since then counts from zero), split into the sockets on
// port and the others.
func dropsSince(before, now map[string]udpSocket, port int) (onPort, others int64) {
	for ino, s := range now {
		d := s.drops - before[ino].drops
		if s.port == port {
			onPort += d
		} else {
			others += d
		}
	}
	return onPort, others
}
