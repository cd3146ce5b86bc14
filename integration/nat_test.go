package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/turnserver/relay"
)

// blockedWait is how long a probe that must not get through is given.
const blockedWait = 700 * time.Millisecond

// TestNetlab checks the lab itself: that it builds a topology, that a NAT
// lets its LAN out and nothing unsolicited in, that the two mapping
// behaviours really differ, that egress filters hold, and that nothing is
// left behind.
func TestNetlab(t *testing.T) {
	netlab.Require(t)
	var created []string
	t.Run("topology", func(t *testing.T) {
		lab := netlab.New(t)
		inet := lab.Internet("203.0.113.0/24", "198.51.100.0/24")
		refA := lab.Host("refa", inet, "203.0.113.10")
		refB := lab.Host("refb", inet, "198.51.100.10") // another subnet: routed by the internet
		attacker := lab.Host("attacker", inet, "203.0.113.66")
		eimNAT := lab.NAT("eim", inet, "203.0.113.20", "192.168.1.0/24", netlab.EndpointIndependent)
		eimHost := lab.Host("eimhost", eimNAT.LAN(), "192.168.1.10")
		symNAT := lab.NAT("sym", inet, "203.0.113.21", "10.0.2.0/24", netlab.Symmetric)
		symHost := lab.Host("symhost", symNAT.LAN(), "10.0.2.10")
		fwNAT := lab.NAT("fw", inet, "198.51.100.20", "192.168.7.0/24",
			netlab.BlockOutboundUDP(), netlab.AllowOnlyTCP("203.0.113.10", 443))
		fwHost := lab.Host("fwhost", fwNAT.LAN(), "192.168.7.10")
		created = lab.Namespaces()

		reflA, reflB := refA.StartReflector(3478), refB.StartReflector(3478)
		echoA := refA.StartTCPEcho(7)
		echoA443 := refA.StartTCPEcho(443)
		echoB := refB.StartTCPEcho(7)

		t.Run("LANReachesInternetThroughNAT", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for _, h := range []*netlab.Host{eimHost, symHost, refB} {
				for _, dst := range []netip.AddrPort{echoA, echoB} {
					if h == refB && dst == echoB {
						continue
					}
					if err := h.TCPEcho(ctx, dst, "hello from "+h.Name()); err != nil {
						t.Errorf("TCP echo %s -> %s: %v", h.Name(), dst, err)
					}
				}
			}
			c := listenUDP(t, eimHost, "192.168.1.10:0")
			if got, err := netlab.Mapped(c, reflB.Addr(), 2*time.Second); err != nil || got.Addr() != eimNAT.WAN() {
				t.Errorf("UDP from %s seen as %v (%v), want the NAT's address %s", eimHost.Name(), got, err, eimNAT.WAN())
			}
		})

		t.Run("EndpointIndependentMapping", func(t *testing.T) {
			c := listenUDP(t, eimHost, "192.168.1.10:40000")
			a := mustMapped(t, c, reflA.Addr())
			b := mustMapped(t, c, reflB.Addr())
			t.Logf("192.168.1.10:40000 -> %s seen as %s, -> %s seen as %s", reflA.Addr(), a, reflB.Addr(), b)
			if a != b {
				t.Fatalf("endpoint-independent NAT mapped one socket to %s and %s", a, b)
			}
			if a.Addr() != eimNAT.WAN() {
				t.Fatalf("mapped to %s, want the NAT's address %s", a, eimNAT.WAN())
			}
		})

		t.Run("SymmetricMapping", func(t *testing.T) {
			// Random ports per flow may coincide by chance (about 1 in 30,000):
			// three sockets, at least two must show different ports.
			differ := 0
			for i := range 3 {
				c := listenUDP(t, symHost, fmt.Sprintf("10.0.2.10:%d", 40000+i))
				a := mustMapped(t, c, reflA.Addr())
				b := mustMapped(t, c, reflB.Addr())
				t.Logf("10.0.2.10:%d -> %s seen as %s, -> %s seen as %s", 40000+i, reflA.Addr(), a, reflB.Addr(), b)
				if a.Addr() != symNAT.WAN() || b.Addr() != symNAT.WAN() {
					t.Fatalf("mapped to %s and %s, want the NAT's address %s", a, b, symNAT.WAN())
				}
				if a.Port() != b.Port() {
					differ++
				}
			}
			if differ < 2 {
				t.Fatalf("symmetric NAT gave the same port to both destinations for %d of 3 sockets", 3-differ)
			}
		})

		t.Run("NoUnsolicitedInbound", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// The attacker sits on the NAT's link and routes to the LAN
			// directly, so only the firewall stands in the way.
			if _, err := attacker.Run(ctx, "ip", "route", "add", "192.168.1.0/24", "via", eimNAT.WAN().String()); err != nil {
				t.Fatal(err)
			}
			lanEcho := eimHost.StartTCPEcho(8080)
			dctx, dcancel := context.WithTimeout(ctx, blockedWait)
			err := attacker.TCPEcho(dctx, lanEcho, "let me in")
			dcancel()
			if err == nil {
				t.Fatalf("the internet opened a TCP connection to %s behind the NAT", lanEcho)
			}
			// A mapping exists towards reflector A; only A may use it.
			c := listenUDP(t, eimHost, "192.168.1.10:41000")
			mapped := mustMapped(t, c, reflA.Addr())
			ac := listenUDP(t, attacker, "203.0.113.66:3478")
			for _, dst := range []netip.AddrPort{mapped, netip.AddrPortFrom(netip.MustParseAddr("192.168.1.10"), 41000)} {
				if _, err := ac.WriteToUDPAddrPort([]byte("unsolicited"), dst); err != nil {
					t.Fatal(err)
				}
			}
			_ = c.SetReadDeadline(time.Now().Add(blockedWait))
			buf := make([]byte, 100)
			if n, from, err := c.ReadFromUDPAddrPort(buf); err == nil {
				t.Fatalf("LAN host received %q from %s, which it never contacted", buf[:n], from)
			}
		})

		t.Run("EgressFilter", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := fwHost.TCPEcho(ctx, echoA443, "https allowed"); err != nil {
				t.Fatalf("TCP 443 to the allowed host: %v", err)
			}
			dctx, dcancel := context.WithTimeout(ctx, blockedWait)
			defer dcancel()
			if err := fwHost.TCPEcho(dctx, echoA, "port 7"); err == nil {
				t.Errorf("TCP to port 7 passed a site that allows only 443")
			}
			c := listenUDP(t, fwHost, "192.168.7.10:0")
			if got, err := netlab.Mapped(c, reflA.Addr(), blockedWait); !errors.Is(err, netlab.ErrNoAnswer) {
				t.Errorf("UDP left a site that blocks UDP: seen as %v (%v)", got, err)
			}
		})
	})
	if len(created) == 0 {
		return // skipped or failed early
	}
	left, err := netlab.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range created {
		if slices.Contains(left, ns) {
			t.Errorf("namespace %s survived the test's cleanup", ns)
		}
	}
}

// TestNetlabCleanStale removes the namespaces of dead runs and leaves
// those of live ones.
func TestNetlabCleanStale(t *testing.T) {
	netlab.New(t) // prerequisites, and the first CleanStale
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("%s%d-1-stale", netlab.Prefix, dead.Process.Pid)
	live := fmt.Sprintf("%s%d-999999-live", netlab.Prefix, os.Getpid())
	for _, ns := range []string{stale, live} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v %s", ns, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	if _, err := netlab.CleanStale(); err != nil {
		t.Fatal(err)
	}
	left, _ := netlab.List()
	if slices.Contains(left, stale) {
		t.Errorf("stale namespace %s (PID %d is dead) was kept", stale, dead.Process.Pid)
	}
	if !slices.Contains(left, live) {
		t.Errorf("namespace %s of this live process was removed", live)
	}
}

func listenUDP(t *testing.T, h *netlab.Host, addr string) *net.UDPConn {
	t.Helper()
	c, err := h.ListenUDP(addr)
	if err != nil {
		t.Fatalf("UDP socket on %s: %v", h.Name(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustMapped(t *testing.T, c *net.UDPConn, refl netip.AddrPort) netip.AddrPort {
	t.Helper()
	got, err := netlab.Mapped(c, refl, 2*time.Second)
	if err != nil {
		t.Fatalf("mapping towards %s: %v", refl, err)
	}
	return got
}

// natTopology is one network arrangement of issue 7: build makes the
// technician's host, the agent's host and the device's host in lab.
type natTopology struct {
	name      string
	wantRelay bool
	mayRelay  bool // whether either path is acceptable (recorded, not asserted)
	// agentCand, if set, is the candidate type the agent's end must have.
	agentCand string
	// agentTCP: the agent's relay candidate must be allocated over TCP
	// (its related address is the agent's own TCP socket, not 0.0.0.0).
	agentTCP bool
	// browser: TestNATBrowser runs the topology with Chromium as the
	// technician too; browserReason is what its toolbar must say when
	// the path is relayed.
	browser       bool
	browserReason string
	// relayTLS: the relay offers TURN over TLS on 443 and plain TCP on
	// 3478 (natOptions.relayTLS) instead of plain TCP on 443.
	relayTLS bool
	// techTLS: the technician's end must be a relay reached over TLS too
	// (checked for Chromium, whose getStats names the relay protocol).
	techTLS bool
	// proxy: the site's only way out is this real proxy on natProxyIP
	// (proxySite); the agent is configured for it.
	proxy proxyKind
	// techProxy: the technician's network, too, lets only its own proxy
	// (at techProxyIP) out; the CLI uses it through HTTPS_PROXY.
	techProxy proxyKind
	// agentRelay, if set, is how the agent must reach the relay (tcp,
	// tls), and siteReason what it must say the site allows.
	agentRelay, siteReason string
	// download is the size of the byte-exact firmware download (8 MiB
	// if 0).
	download int
	build    func(lab *netlab.Lab, inet *netlab.Segment) (tech, agent, device *netlab.Host)
}

var natTopologies = []natTopology{
	{name: "1-public", build: func(lab *netlab.Lab, inet *netlab.Segment) (_, _, _ *netlab.Host) {
		return lab.Host("tech", inet, "198.51.100.50"),
			lab.Host("agent", inet, "203.0.113.50"),
			lab.Host("device", inet, "203.0.113.51")
	}},
	{name: "2-eim-both", browser: true, build: func(lab *netlab.Lab, inet *netlab.Segment) (_, _, _ *netlab.Host) {
		home := lab.NAT("tech-nat", inet, "198.51.100.20", "10.1.0.0/24", netlab.EndpointIndependent)
		site := lab.NAT("site-nat", inet, "203.0.113.20", "192.168.1.0/24", netlab.EndpointIndependent)
		return lab.Host("tech", home.LAN(), "10.1.0.10"),
			lab.Host("agent", site.LAN(), "192.168.1.10"),
			lab.Host("device", site.LAN(), "192.168.1.20")
	}},
	{name: "3-symmetric-both", wantRelay: true, agentRelay: "udp", siteReason: "no direct path through the NATs", browser: true, browserReason: "symmetric NAT", build: func(lab *netlab.Lab, inet *netlab.Segment) (_, _, _ *netlab.Host) {
		home := lab.NAT("tech-nat", inet, "198.51.100.20", "10.1.0.0/24", netlab.Symmetric)
		site := lab.NAT("site-nat", inet, "203.0.113.20", "192.168.1.0/24", netlab.Symmetric)
		return lab.Host("tech", home.LAN(), "10.1.0.10"),
			lab.Host("agent", site.LAN(), "192.168.1.10"),
			lab.Host("device", site.LAN(), "192.168.1.20")
	}},
	{name: "4-site-tcp443-only", wantRelay: true, agentCand: "relay", agentTCP: true, agentRelay: "tcp", siteReason: "UDP blocked at the site",
		browser: true, browserReason: "UDP blocked at the site", build: func(lab *netlab.Lab, inet *netlab.Segment) (_, _, _ *netlab.Host) {
			home := lab.NAT("tech-nat", inet, "198.51.100.20", "10.1.0.0/24", netlab.EndpointIndependent)
			site := lab.NAT("site-nat", inet, "203.0.113.20", "192.168.1.0/24", netlab.EndpointIndependent,
				netlab.BlockOutboundUDP(), netlab.AllowOnlyTCP(natRelayIP, 443), netlab.AllowOnlyTCP(natSignalIP, 443))
			return lab.Host("tech", home.LAN(), "10.1.0.10"),
				lab.Host("agent", site.LAN(), "192.168.1.10"),
				lab.Host("device", site.LAN(), "192.168.1.20")
		}},
	{name: "5-symmetric-tech-eim-site", mayRelay: true, build: func(lab *netlab.Lab, inet *netlab.Segment) (_, _, _ *netlab.Host) {
		home := lab.NAT("tech-nat", inet, "198.51.100.20", "10.1.0.0/24", netlab.Symmetric)
		site := lab.NAT("site-nat", inet, "203.0.113.20", "192.168.1.0/24", netlab.EndpointIndependent)
		return lab.Host("tech", home.LAN(), "10.1.0.10"),
			lab.Host("agent", site.LAN(), "192.168.1.10"),
			lab.Host("device", site.LAN(), "192.168.1.20")
	}},
	{name: "6-same-lan", build: func(lab *netlab.Lab, inet *netlab.Segment) (_, _, _ *netlab.Host) {
		site := lab.NAT("site-nat", inet, "203.0.113.20", "192.168.1.0/24", netlab.EndpointIndependent)
		return lab.Host("tech", site.LAN(), "192.168.1.30"),
			lab.Host("agent", site.LAN(), "192.168.1.10"),
			lab.Host("device", site.LAN(), "192.168.1.20")
	}},
	// The relay serves TURN over plain TCP on 3478 and over TLS on 443; the
	// site lets only TCP 443 out, so the agent's relay connection must be
	// TLS (a firewall that inspects protocols on 443 would drop plain TURN).
	{name: "7-site-tls443-only", wantRelay: true, agentCand: "relay", agentTCP: true, relayTLS: true,
		agentRelay: "tls", siteReason: "site lets only TLS out", browser: true, browserReason: "site lets only TLS out",
		build: func(lab *netlab.Lab, inet *netlab.Segment) (_, _, _ *netlab.Host) {
			home := lab.NAT("tech-nat", inet, "198.51.100.20", "10.1.0.0/24", netlab.EndpointIndependent)
			site := lab.NAT("site-nat", inet, "203.0.113.20", "192.168.1.0/24", netlab.EndpointIndependent,
				netlab.BlockOutboundUDP(), netlab.AllowOnlyTCP(natRelayIP, 443), netlab.AllowOnlyTCP(natSignalIP, 443))
			return lab.Host("tech", home.LAN(), "10.1.0.10"),
				lab.Host("agent", site.LAN(), "192.168.1.10"),
				lab.Host("device", site.LAN(), "192.168.1.20")
		}},
	// The site's only way out is squid on its LAN: UDP and every direct TCP
	// connection are dropped by the site's firewall. The agent reaches
	// signaling and the relay (TURN over TLS on 443) through CONNECT.
	{name: "8-site-proxy-only", wantRelay: true, agentCand: "relay", agentTCP: true, relayTLS: true, proxy: "squid",
		agentRelay: "tls", siteReason: "site allows only an HTTP proxy", browser: true, browserReason: "site allows only an HTTP proxy",
		download: 50 << 20, build: proxyOnlySite},
	// The technician's network is as closed as the site's: both ends reach
	// the relay only by TURN over TLS on 443.
	{name: "11-both-tls443-only", wantRelay: true, agentCand: "relay", agentTCP: true, relayTLS: true, techTLS: true,
		agentRelay: "tls", siteReason: "site lets only TLS out", browser: true, browserReason: "site lets only TLS out",
		build: func(lab *netlab.Lab, inet *netlab.Segment) (_, _, _ *netlab.Host) {
			only443 := []netlab.NATOption{netlab.EndpointIndependent, netlab.BlockOutboundUDP(),
				netlab.AllowOnlyTCP(natRelayIP, 443), netlab.AllowOnlyTCP(natSignalIP, 443)}
			home := lab.NAT("tech-nat", inet, "198.51.100.20", "10.1.0.0/24", only443...)
			site := lab.NAT("site-nat", inet, "203.0.113.20", "192.168.1.0/24", only443...)
			return lab.Host("tech", home.LAN(), "10.1.0.10"),
				lab.Host("agent", site.LAN(), "192.168.1.10"),
				lab.Host("device", site.LAN(), "192.168.1.20")
		}},
	{name: "9-site-proxy-basic-auth", wantRelay: true, agentCand: "relay", agentTCP: true, relayTLS: true, proxy: "squid-auth",
		agentRelay: "tls", siteReason: "site allows only an HTTP proxy", download: 50 << 20, build: proxyOnlySite},
	// Both ends behind proxies: the technician's CLI, too, reaches
	// signaling and the relay only through its network's squid.
	{name: "12-both-behind-proxies", wantRelay: true, agentCand: "relay", agentTCP: true, relayTLS: true, proxy: "squid-auth", techProxy: "squid",
		agentRelay: "tls", siteReason: "site allows only an HTTP proxy",
		build: func(lab *netlab.Lab, inet *netlab.Segment) (_, _, _ *netlab.Host) {
			home := lab.NAT("tech-nat", inet, "198.51.100.20", "10.1.0.0/24", netlab.EndpointIndependent,
				netlab.BlockOutboundUDP(), netlab.AllowOnlyTCPFrom(techProxyIP))
			site := lab.NAT("site-nat", inet, "203.0.113.20", "192.168.1.0/24", netlab.EndpointIndependent,
				netlab.BlockOutboundUDP(), netlab.AllowOnlyTCPFrom(natProxyIP))
			return lab.Host("tech", home.LAN(), "10.1.0.10"),
				lab.Host("agent", site.LAN(), "192.168.1.10"),
				lab.Host("device", site.LAN(), "192.168.1.20")
		}},
	{name: "10-site-tinyproxy-basic-auth", wantRelay: true, agentCand: "relay", agentTCP: true, relayTLS: true, proxy: "tinyproxy-auth",
		agentRelay: "tls", siteReason: "site allows only an HTTP proxy", build: proxyOnlySite},
}

// proxyOnlySite is a site whose firewall lets only its proxy's TCP out
// (the proxy host itself is added by proxySite).
func proxyOnlySite(lab *netlab.Lab, inet *netlab.Segment) (_, _, _ *netlab.Host) {
	home := lab.NAT("tech-nat", inet, "198.51.100.20", "10.1.0.0/24", netlab.EndpointIndependent)
	site := lab.NAT("site-nat", inet, "203.0.113.20", "192.168.1.0/24", netlab.EndpointIndependent,
		netlab.BlockOutboundUDP(), netlab.AllowOnlyTCPFrom(natProxyIP))
	return lab.Host("tech", home.LAN(), "10.1.0.10"),
		lab.Host("agent", site.LAN(), "192.168.1.10"),
		lab.Host("device", site.LAN(), "192.168.1.20")
}

// TestNATTopologies runs the real binaries — porthole-turn and
// porthole-signaling on the internet, porthole-agent and the demo device
// at the site, the porthole CLI at the technician's — in each topology of
// issue 7, checks the path ICE selected (direct whenever a direct path
// exists, relayed otherwise), fetches device pages byte-exact through the
// tunnel, and logs a table of path and time to connected.
func TestNATTopologies(t *testing.T) {
	netlab.Require(t)
	bin := stack.Build(t)
	var results []natResult
	for _, tp := range natTopologies {
		t.Run(tp.name, func(t *testing.T) {
			lab := netlab.New(t)
			inet := lab.Internet("203.0.113.0/24", "198.51.100.0/24")
			svc := startNATServices(t, lab, inet, bin, natOptions{relayTLS: tp.relayTLS})
			tech, agentHost, deviceHost := tp.build(lab, inet)
			agent, deviceURL := svc.startSite(t, agentHost, deviceHost, svc.proxySite(t, lab, agentHost, tp.proxy))
			var cliEnv []string
			if tp.techProxy != "" {
				u := startProxy(t, lab.Host("tech-proxy", tech.Segment(), techProxyIP), tp.techProxy)
				cliEnv = []string{"HTTPS_PROXY=" + u, "HTTP_PROXY=" + u}
			}
			base, r := svc.connectCLI(t, tech, agent, tp.name, cliEnv...)
			if tp.techProxy != "" && !strings.Contains(r.cliPair, "related "+tech.Addr().String()+":") {
				t.Errorf("the CLI's end is not a relay reached over TCP through its proxy: %s", r.cliPair)
			}
			t.Logf("%s: %s in %s (RTT %s); %s", tp.name, r.path, r.connected, r.rtt, r.pair)
			relayed := r.path == "relayed through TURN"
			if !tp.mayRelay && relayed != tp.wantRelay {
				t.Errorf("%s: ICE chose %q (%s), want relayed=%v", tp.name, r.path, r.pair, tp.wantRelay)
			}
			if r.agentCand == "" {
				t.Errorf("the agent did not log its selected candidate pair")
			} else if pairRelayed := r.agentCand == "relay" || r.techCand == "relay"; pairRelayed != relayed {
				t.Errorf("the CLI says %q but the agent selected %s", r.path, r.pair)
			}
			if tp.agentCand != "" && r.agentCand != tp.agentCand {
				t.Errorf("the agent's end of the pair is %s, want %s: %s", r.agentCand, tp.agentCand, r.pair)
			}
			if tp.agentTCP && !strings.Contains(r.pair, "related "+agentHost.Addr().String()+":") {
				t.Errorf("the agent's relay candidate was not allocated over TCP: %s", r.pair)
			}
			r.site = svc.checkSitePath(t, tp, r)
			svc.checkJobAndHealth(t, tp)
			r.download = checkFetch(t, tech, deviceHost, base, deviceURL, tp.download)
			if tp.proxy.auth() {
				checkNoProxySecret(t, agent.Tail(100000))
			}
			results = append(results, r)
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-28s %-21s %-9s %-9s %-24s %-40s %-12s %s\n", "topology", "path", "connected", "CLI wall", "candidates agent / tech", "agent's side", "download", "selected pair (agent side)")
	for _, r := range results {
		fmt.Fprintf(&b, "%-28s %-21s %-9s %-9s %-24s %-40s %-12s %s\n", r.topology, r.path, r.connected, r.wall.Round(time.Millisecond),
			r.agentTypes+" / "+r.techTypes, r.site, r.download, r.pair)
	}
	t.Log(b.String())
}

// TestNATRelayPolicy shows in the lab that porthole-turn's deny-by-default
// peer policy holds: the relay host has a leg on a private data-centre LAN
// that it can reach itself, yet a TURN client on the internet cannot use
// the relay to send there, while public peers are relayed as usual.
func TestNATRelayPolicy(t *testing.T) {
	lab := netlab.New(t)
	bin := stack.Build(t)
	inet := lab.Internet("203.0.113.0/24", "198.51.100.0/24")
	dc := lab.Switch("dc-lan", "10.20.0.0/24")
	svc := startNATServices(t, lab, inet, bin)
	svc.relay.Attach(dc, "10.20.0.1")
	internal := lab.Host("internal", dc, "10.20.0.5")
	public := lab.Host("public", inet, "198.51.100.10")
	client := lab.Host("client", inet, "198.51.100.50")
	internalRefl := internal.StartReflector(3478)
	publicRefl := public.StartReflector(3478)

	// Control: the relay host itself reaches the internal service.
	own := listenUDP(t, svc.relay, "10.20.0.1:0")
	if _, err := netlab.Mapped(own, internalRefl.Addr(), 2*time.Second); err != nil {
		t.Fatalf("the relay host cannot reach its own LAN, so the test proves nothing: %v", err)
	}
	controlProbes := internalRefl.Received()

	user, pass := proto.MintTURN(svc.secret, "lab-session", time.Now().Add(5*time.Minute))
	conn := listenUDP(t, client, "198.51.100.50:0")
	tc, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: natRelayIP + ":3478", TURNServerAddr: natRelayIP + ":3478",
		Conn: conn, Username: user, Password: pass, Realm: relay.DefaultRealm,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Listen(); err != nil {
		t.Fatal(err)
	}
	rc, err := tc.Allocate()
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	defer rc.Close()
	relayed := rc.LocalAddr().String()
	t.Logf("relayed address %s", relayed)

	// A public peer is relayed: the reflector sees the relay's address.
	if _, err := rc.WriteTo([]byte("hello"), net.UDPAddrFromAddrPort(publicRefl.Addr())); err != nil {
		t.Fatalf("relay to a public peer: %v", err)
	}
	_ = rc.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 200)
	n, from, err := rc.ReadFrom(buf)
	if err != nil || from.String() != publicRefl.Addr().String() || string(buf[:n]) != relayed {
		t.Fatalf("public peer through the relay: %q from %v (%v), want %q from %s", buf[:n], from, err, relayed, publicRefl.Addr())
	}

	// The relay host's own LAN is refused, and nothing arrives there.
	if _, err := rc.WriteTo([]byte("let me in"), net.UDPAddrFromAddrPort(internalRefl.Addr())); err == nil {
		t.Errorf("the relay accepted a permission for %s on its own private LAN", internalRefl.Addr())
	}
	_ = rc.SetReadDeadline(time.Now().Add(blockedWait))
	if n, from, err := rc.ReadFrom(buf); err == nil {
		t.Fatalf("an answer came back from %v through the relay: %q", from, buf[:n])
	}
	if n := internalRefl.Received() - controlProbes; n != 0 {
		t.Fatalf("the internal service received %d datagrams through the relay", n)
	}
}
