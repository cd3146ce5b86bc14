// Package netlab builds small real networks on one Linux machine for
// Porthole's end-to-end tests: network namespaces joined by veth pairs and
// bridges, NAT routers made with nftables masquerading and stateful
// firewalls, and hosts on which the project's real binaries run.
//
// It follows wireguard-go's tests/netns.sh, in Go and with t.Cleanup in
// place of a shell trap:
//
//	lab := netlab.New(t)                                  // skips without root, ip or nft
//	inet := lab.Internet("203.0.113.0/24", "198.51.100.0/24")
//	signal := lab.Host("signal", inet, "203.0.113.10")
//	nat := lab.NAT("site-nat", inet, "203.0.113.20", "192.168.1.0/24",
//		netlab.Symmetric, netlab.BlockOutboundUDP())
//	agent := lab.Host("agent", nat.LAN(), "192.168.1.10")
//	p := agent.Start("porthole-agent", bin, args)         // an integration/proc.Proc
//	conn, err := agent.DialContext(ctx, "tcp", "203.0.113.10:443")
//
// "The internet" is a namespace with a bridge that routes between the
// documentation prefixes it is given (203.0.113.0/24, 198.51.100.0/24,
// 198.18.0.0/15); LANs behind NATs use 10.0.0.0/8 or 192.168.0.0/16. Every
// namespace has its loopback up; only routers forward.
//
// Names: namespaces are called phl-<pid>-<n>-<role>, so a run's namespaces
// are unique and CleanStale can tell leftovers of a crashed run (their PID
// is dead) from those of a run still going. Interfaces are created inside
// their namespaces, so their short names (eth0, wan0, br0, v<n>) never meet
// the host's or another run's.
//
// Probes for the lab's own tests: Host.StartReflector and Mapped show the
// public address a NAT gives a UDP flow (a minimal STUN), Host.StartTCPEcho
// and Host.TCPEcho check TCP reachability. Lab.Switch makes a router-less
// private segment and Host.Attach gives a host a second leg on one (a relay
// host's own data-centre LAN).
//
// Sockets: Host.ListenUDP, Host.Listen and Host.DialContext open sockets
// inside the host's namespace from the test process itself (a locked OS
// thread switched with setns(2)); processes run inside it through
// "ip netns exec".
package netlab
