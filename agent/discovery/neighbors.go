package discovery

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/porthole-dev/porthole/proto"
)

// Neighbors reads the kernel's IPv4 neighbour table (/proc/net/arp of the
// agent's network namespace) and reports every complete entry in scope
// with its MAC address. It sends nothing on the network: the sweep's
// attempts filled the table.
type Neighbors struct {
	// Path is the table to read; "" means /proc/thread-self/net/arp
	// (falling back to /proc/net/arp).
	Path string
}

// Name implements Source.
func (*Neighbors) Name() string { return "arp" }

// Discover implements Source.
func (n *Neighbors) Discover(_ context.Context, sc *Scan) error {
	var b []byte
	var err error
	if n.Path != "" {
		b, err = readBounded(n.Path, 4<<20)
	} else if b, err = readBounded("/proc/thread-self/net/arp", 4<<20); err != nil {
		b, err = readBounded("/proc/net/arp", 4<<20)
	}
	if err != nil {
		return fmt.Errorf("neighbour table: %w", err)
	}
	for ip, mac := range ParseARPTable(b) {
		if sc.Scope().CheckAddr(ip) != nil {
			continue // the table holds the router and more: not findings
		}
		sc.Report(n.Name(), proto.Discovered{Addr: ip.String(), MAC: mac.String()})
	}
	return nil
}

func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// ParseARPTable returns the complete entries (flags with ATF_COM, 0x2, and
// a non-zero address) of a /proc/net/arp text:
//
//	IP address       HW type     Flags       HW address            Mask     Device
//	192.168.1.20     0x1         0x2         02:00:00:00:00:01     *        eth0
func ParseARPTable(b []byte) map[netip.Addr]net.HardwareAddr {
	out := map[netip.Addr]net.HardwareAddr{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		ip, err := netip.ParseAddr(f[0])
		if err != nil || !ip.Is4() {
			continue
		}
		var flags int
		if _, err := fmt.Sscanf(f[2], "0x%x", &flags); err != nil || flags&0x2 == 0 {
			continue
		}
		mac, err := net.ParseMAC(f[3])
		if err != nil || len(mac) != 6 || bytes.Equal(mac, make(net.HardwareAddr, 6)) {
			continue
		}
		out[ip] = mac
	}
	return out
}
