package bench

import (
	"net"
	"strings"
)

// selected returns a predicate over group names for a comma-separated
// list (empty: everything).
func selected(list string) func(string) bool {
	if list == "" {
		return func(string) bool { return true }
	}
	set := map[string]bool{}
	for _, g := range strings.Split(list, ",") {
		set[strings.TrimSpace(g)] = true
	}
	return func(g string) bool { return set[g] }
}

func listenUDPPort(port int) (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
}
