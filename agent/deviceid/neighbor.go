package deviceid

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ErrNoNeighbor means the neighbour table has no complete entry for an
// address: the device is not on a link the agent shares (it is behind a
// router, or it is one of the agent's own addresses), or it did not answer.
var ErrNoNeighbor = errors.New("no neighbour table entry (is the device on the agent's own network segment?)")

// NeighborMAC returns the kernel's neighbour-table entry for ip: from
// /proc/net/arp for IPv4 (the calling thread's network namespace), from
// `ip -6 neigh` for IPv6.
func NeighborMAC(ip netip.Addr) (net.HardwareAddr, error) {
	ip = ip.Unmap()
	if ip.Is4() {
		b, err := os.ReadFile("/proc/thread-self/net/arp")
		if err != nil {
			if b, err = os.ReadFile("/proc/net/arp"); err != nil {
				return nil, err
			}
		}
		return ParseARP(b, ip)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "-6", "neigh", "show", ip.String()).Output()
	if err != nil {
		return nil, fmt.Errorf("ip -6 neigh: %w", err)
	}
	return ParseIPNeigh(out, ip)
}

// ParseARP finds ip in the text of /proc/net/arp:
//
//	IP address       HW type     Flags       HW address            Mask     Device
//	192.168.1.20     0x1         0x2         02:00:00:00:00:01     *        eth0
//
// Entries whose flags lack ATF_COM (0x2) are incomplete and ignored.
func ParseARP(b []byte, ip netip.Addr) (net.HardwareAddr, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[0] != ip.String() {
			continue
		}
		var flags int
		if _, err := fmt.Sscanf(f[2], "0x%x", &flags); err != nil || flags&0x2 == 0 {
			continue
		}
		mac, err := net.ParseMAC(f[3])
		if err != nil || isZero(mac) {
			continue
		}
		return mac, nil
	}
	return nil, ErrNoNeighbor
}

// ParseIPNeigh finds ip in the output of `ip neigh show`:
//
//	fe80::1 dev eth0 lladdr 02:00:00:00:00:01 REACHABLE
func ParseIPNeigh(b []byte, ip netip.Addr) (net.HardwareAddr, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil || a.WithZone("") != ip.WithZone("") {
			continue
		}
		for i := 1; i+1 < len(f); i++ {
			if f[i] == "lladdr" {
				if f[len(f)-1] == "FAILED" || f[len(f)-1] == "INCOMPLETE" {
					break
				}
				mac, err := net.ParseMAC(f[i+1])
				if err == nil && !isZero(mac) {
					return mac, nil
				}
			}
		}
	}
	return nil, ErrNoNeighbor
}

func isZero(mac net.HardwareAddr) bool {
	for _, b := range mac {
		if b != 0 {
			return false
		}
	}
	return true
}
