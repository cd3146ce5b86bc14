package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/porthole-dev/porthole/integration/demodevice"
	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// discoveryLAN is a site LAN for discovery tests: a printer with a real
// snmpd (Printer-MIB serial), a real ippeveprinter and a real
// avahi-daemon publishing _ipp._tcp and _http._tcp; a plain HTTP device;
// a host that answers SNMP, mDNS and HTTP with garbage, oversize and
// endless replies; and, outside the scope, a host whose listeners count
// every contact.
type discoveryLAN struct {
	lab                      *netlab.Lab
	agent, printer, web, bad *netlab.Host
	outside                  *netlab.Host
	outsideHits              atomic.Int64
	serial                   string
}

const (
	discPrinterMAC = "02:00:00:78:00:20"
	discWebMAC     = "02:00:00:78:00:30"
	discScope      = "10.78.0.0/25" // .200 is on the same link, outside
)

func newDiscoveryLAN(t *testing.T) *discoveryLAN {
	t.Helper()
	lab := netlab.New(t)
	snmpd := testenv.NeedBinary(t, "snmpd")
	avahi := testenv.NeedBinary(t, "avahi-daemon")
	ippeve := testenv.NeedBinary(t, "ippeveprinter")
	unshare := testenv.NeedBinary(t, "unshare")
	dbusDaemon := testenv.NeedBinary(t, "dbus-daemon")
	d := &discoveryLAN{lab: lab, serial: "PHL-78-SERIAL"}
	lan := lab.Switch("lan", "10.78.0.0/24")
	d.agent = lab.Host("agent", lan, "10.78.0.10")
	d.printer = lab.Host("printer", lan, "10.78.0.20")
	d.web = lab.Host("web", lan, "10.78.0.30")
	d.bad = lab.Host("bad", lan, "10.78.0.40")
	d.outside = lab.Host("outside", lan, "10.78.0.200")
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("-n", d.printer.Namespace(), "link", "set", "eth0", "address", discPrinterMAC)
	ip("-n", d.web.Namespace(), "link", "set", "eth0", "address", discWebMAC)
	for _, h := range []*netlab.Host{d.agent, d.printer, d.bad, d.outside} {
		// A switch gives no default route; mDNS needs one for its group.
		ip("-n", h.Namespace(), "route", "add", "224.0.0.0/4", "dev", "eth0")
	}

	// The plain HTTP device.
	serveHTTP(t, d.web, "10.78.0.30:80", demodevice.New(demodevice.Config{Serial: "WEB-1", MAC: discWebMAC}).Handler())

	// The printer: snmpd, ippeveprinter on 8631, avahi-daemon.
	dir := t.TempDir()
	conf := filepath.Join(dir, "snmpd.conf")
	writeFile(t, conf, `agentaddress udp:10.78.0.20:161
rocommunity public 10.78.0.0/24
sysName printer-snmp
sysDescr Example Office 3000 (snmpd)
override .1.3.6.1.2.1.43.5.1.1.17.1 octet_str "`+d.serial+`"
`)
	sp := d.printer.Start("snmpd", snmpd, []string{"-f", "-Lo", "-C", "-c", conf, "-p", filepath.Join(dir, "snmpd.pid")},
		"SNMP_PERSISTENT_DIR="+filepath.Join(dir, "persist"), "MIBS=")
	t.Cleanup(func() { _ = sp.Stop(5 * time.Second) })
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if _, err := sp.WaitLine(sctx, regexp.MustCompile(`NET-SNMP version`)); err != nil {
		t.Fatalf("snmpd did not start: %v\n%s", err, sp.Tail(20))
	}
	// ippeveprinter insists on an IPv6 listener too: loopback's will do.
	if out, err := exec.Command("ip", "netns", "exec", d.printer.Namespace(), "sysctl", "-q", "-w",
		"net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.lo.disable_ipv6=0").CombinedOutput(); err != nil {
		t.Fatalf("sysctl: %v\n%s", err, out)
	}
	spool := filepath.Join(dir, "spool")
	if err := os.MkdirAll(spool, 0o755); err != nil {
		t.Fatal(err)
	}
	// ippeveprinter registers its services with avahi-daemon over D-Bus:
	// a private bus, an avahi-daemon on it in a private mount namespace
	// (it keeps its pid file in /run/avahi-daemon and reads services from
	// /etc/avahi/services), then the printer.
	bus := filepath.Join(dir, "bus")
	busConf := filepath.Join(dir, "dbus.conf")
	writeFile(t, busConf, `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=`+bus+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/><allow receive_sender="*"/>
  </policy>
</busconfig>
`)
	db := d.printer.Start("dbus-daemon", dbusDaemon, []string{"--config-file=" + busConf, "--nofork", "--nopidfile", "--print-address"})
	t.Cleanup(func() { _ = db.Stop(5 * time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := db.WaitLine(ctx, regexp.MustCompile(`unix:path=`)); err != nil {
		t.Fatalf("dbus-daemon did not start: %v\n%s", err, db.Tail(20))
	}
	busEnv := "DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + bus
	services := filepath.Join(dir, "services")
	if err := os.MkdirAll(services, 0o755); err != nil {
		t.Fatal(err)
	}
	avahiConf := filepath.Join(dir, "avahi-daemon.conf")
	writeFile(t, avahiConf, `[server]
host-name=printer
domain-name=local
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-addresses=yes
publish-hinfo=no
publish-workstation=no
publish-aaaa-on-ipv4=no
[reflector]
[rlimits]
`)
	run := filepath.Join(dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	av := d.printer.Start("avahi-daemon", unshare, []string{"-m", "sh", "-c",
		"mkdir -p /run/avahi-daemon && mount --bind " + run + " /run/avahi-daemon && mount --bind " + services +
			" /etc/avahi/services && exec " + avahi + " -f " + avahiConf + " --no-chroot --no-drop-root --no-rlimits"}, busEnv)
	t.Cleanup(func() { _ = av.Stop(5 * time.Second) })
	if _, err := av.WaitLine(ctx, regexp.MustCompile(`Server startup complete`)); err != nil {
		t.Fatalf("avahi-daemon did not start: %v\n%s", err, av.Tail(30))
	}
	// It listens on the addresses its host name resolves to, for IPv4 and
	// IPv6 both: a private /etc/hosts names them.
	hosts := filepath.Join(dir, "hosts")
	writeFile(t, hosts, "127.0.0.1 localhost\n10.78.0.20 printer\n::1 printer\n")
	ipp := d.printer.Start("ippeveprinter", unshare, []string{"-m", "sh", "-c", "mount --bind " + hosts + " /etc/hosts && exec " + ippeve +
		` -M Example -m "Office 3000" -p 8631 -d ` + spool + ` -l "Front desk" -v "Office 3000 printer"`}, busEnv)
	t.Cleanup(func() { _ = ipp.Stop(5 * time.Second) })
	browse := testenv.NeedBinary(t, "avahi-browse")
	waitFor(t, 20*time.Second, "ippeveprinter's registration with avahi", func() bool {
		out, _ := exec.Command("ip", "netns", "exec", d.printer.Namespace(), "env", busEnv, browse, "-p", "-t", "-k", "_ipp._tcp").Output()
		return strings.Contains(string(out), ";eth0;IPv4;Office\\0323000\\032printer;_ipp._tcp")
	})

	d.startBadDevice(t)
	d.startOutside(t)
	return d
}

func serveHTTP(t *testing.T, h *netlab.Host, addr string, handler http.Handler) {
	t.Helper()
	ln, err := h.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
}

// startBadDevice answers SNMP with garbage, an oversize datagram and a
// stream of replies; mDNS queries with garbage, a flood of instances and
// answers pointing outside the scope; HTTP with an endless page.
func (d *discoveryLAN) startBadDevice(t *testing.T) {
	t.Helper()
	snmp, err := d.bad.ListenUDP("10.78.0.40:161")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snmp.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := snmp.ReadFromUDP(buf)
			if err != nil {
				return
			}
			junk := make([]byte, 200)
			for i := range junk {
				junk[i] = byte(rand.IntN(256))
			}
			_, _ = snmp.WriteToUDP(junk, from)
			_, _ = snmp.WriteToUDP(append([]byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff}, make([]byte, 60000)...), from)
			for range 200 {
				_, _ = snmp.WriteToUDP([]byte{0x30, 0x03, 0x02, 0x01, 0x01}, from)
			}
		}
	}()
	var mc *net.UDPConn
	if err := d.bad.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		mc, err = net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mc.Close() })
	reply, err := d.bad.ListenUDP("10.78.0.40:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reply.Close() })
	go func() {
		buf := make([]byte, 9000)
		for {
			n, from, err := mc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var q dns.Msg
			// Only the agent's queries (from a port other than 5353), not
			// the printer's own avahi-daemon probing the link.
			if from.Port == 5353 || q.Unpack(buf[:n]) != nil || len(q.Question) == 0 || q.Response {
				continue
			}
			_, _ = reply.WriteToUDP([]byte("\x00\x00\x84\x00garbage that is no DNS message"), from)
			_, _ = reply.WriteToUDP(make([]byte, 8900), from)
			name := q.Question[0].Name
			for i := range 300 {
				inst := fmt.Sprintf("evil-%d.%s", i, name)
				target := "127.0.0.1"
				if i == 0 {
					target = "10.78.0.200" // the out-of-scope host: never to be contacted
				}
				m := new(dns.Msg)
				m.Response, m.Authoritative = true, true
				m.Id = q.Id
				hdr := func(n string, t uint16) dns.RR_Header {
					return dns.RR_Header{Name: n, Rrtype: t, Class: dns.ClassINET, Ttl: 120}
				}
				m.Answer = []dns.RR{
					&dns.PTR{Hdr: hdr(name, dns.TypePTR), Ptr: inst},
					&dns.SRV{Hdr: hdr(inst, dns.TypeSRV), Target: fmt.Sprintf("evil-%d.local.", i), Port: 80},
					&dns.TXT{Hdr: hdr(inst, dns.TypeTXT), Txt: []string{"ty=" + strings.Repeat("X", 250), "rp=ipp/print"}},
					&dns.A{Hdr: hdr(fmt.Sprintf("evil-%d.local.", i), dns.TypeA), A: net.ParseIP(target)},
				}
				if b, err := m.Pack(); err == nil {
					_, _ = reply.WriteToUDP(b, from)
				}
			}
		}
	}()
	serveHTTP(t, d.bad, "10.78.0.40:80", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<html><head><title>"))
		chunk := []byte(strings.Repeat("endless ", 1024))
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
}

// startOutside listens where discovery could go if it left the scope:
// TCP 80, 443, 631, 8631 and UDP 161, counting every contact.
func (d *discoveryLAN) startOutside(t *testing.T) {
	t.Helper()
	for _, port := range []int{80, 443, 631, 8631} {
		ln, err := d.outside.Listen(fmt.Sprintf("10.78.0.200:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				d.outsideHits.Add(1)
				c.Close()
			}
		}()
	}
	u, err := d.outside.ListenUDP("10.78.0.200:161")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := u.ReadFromUDP(buf); err != nil {
				return
			}
			d.outsideHits.Add(1)
		}
	}()
}

type discoverOutput struct {
	Scope      string             `json:"scope"`
	Devices    []proto.Discovered `json:"devices"`
	Probes     int64              `json:"probes"`
	Refused    int64              `json:"refused"`
	Truncated  bool               `json:"truncated"`
	DurationMS int64              `json:"durationMs"`
}

// discover runs `porthole-agent discover` in the agent's namespace.
func (d *discoveryLAN) discover(t *testing.T, args ...string) (*discoverOutput, string) {
	t.Helper()
	bins := stack.Build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", d.agent.Namespace(), bins["porthole-agent"], "discover"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("porthole-agent discover: %v\n%s", err, stderr.String())
	}
	var res discoverOutput
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("discover output: %v\n%s", err, out)
	}
	return &res, stderr.String()
}

func findAddr(res *discoverOutput, addr string) *proto.Discovered {
	for i := range res.Devices {
		if res.Devices[i].Addr == addr {
			return &res.Devices[i]
		}
	}
	return nil
}

// TestDiscoveryFindsRealDevicesInScope: the sweep, the neighbour table,
// real snmpd, avahi-daemon and ippeveprinter, and the HTTP probe together
// find the printer (MAC, serial, model, uuid, IPP and web services) and
// the plain HTTP device (MAC, page title); the garbage device costs
// bounded time and log lines; nothing outside the scope is contacted or
// reported.
func TestDiscoveryFindsRealDevicesInScope(t *testing.T) {
	d := newDiscoveryLAN(t)
	// snmpd and ippeveprinter start asynchronously: wait until they answer.
	waitFor(t, 15*time.Second, "ippeveprinter and snmpd", func() bool {
		c, err := d.agent.DialContext(context.Background(), "tcp", "10.78.0.20:8631")
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	stack.Build(t) // not part of the scan's time
	start := time.Now()
	res, logs := d.discover(t, "--scope", discScope, "--rate", "200", "--burst", "20", "--timeout", "1s")
	took := time.Since(start)
	t.Logf("scan: %d devices, %d probes, %d refused, %d ms (wall %v)", len(res.Devices), res.Probes, res.Refused, res.DurationMS, took.Round(time.Millisecond))
	for _, dev := range res.Devices {
		b, _ := json.Marshal(dev)
		t.Logf("found %s", b)
	}

	p := findAddr(res, "10.78.0.20")
	if p == nil {
		t.Fatalf("printer not found\n%s", logs)
	}
	if p.MAC != discPrinterMAC || p.Serial != d.serial || p.Type != "printer" {
		t.Errorf("printer identity: %+v", p)
	}
	if !strings.Contains(p.Model, "Office 3000") || p.UUID == "" {
		t.Errorf("printer model/uuid from IPP: %q %q", p.Model, p.UUID)
	}
	if p.Description != "Example Office 3000 (snmpd)" {
		t.Errorf("sysDescr %q", p.Description)
	}
	for _, src := range []string{"mdns", "arp", "snmp", "ipp"} {
		if !slices.Contains(p.Sources, src) {
			t.Errorf("printer not seen by %s: %v", src, p.Sources)
		}
	}
	if !slices.ContainsFunc(p.Services, func(s proto.DiscoveredService) bool { return s.Port == 8631 }) {
		t.Errorf("printer's IPP port missing: %+v", p.Services)
	}

	w := findAddr(res, "10.78.0.30")
	if w == nil || w.MAC != discWebMAC || len(w.Services) == 0 || w.Services[0].Port != 80 || w.Services[0].Title == "" {
		t.Errorf("plain HTTP device: %+v", w)
	}

	// The garbage device: found (it answers on 80), the endless page's
	// title cut at the bound, nothing from its SNMP garbage, and log
	// lines for what it sent.
	b := findAddr(res, "10.78.0.40")
	if b == nil {
		t.Errorf("the garbage device was not found at all")
	} else if b.Serial != "" || b.Description != "" || len(b.Services) != 1 || len(b.Services[0].Title) > proto.MaxShortText {
		t.Errorf("garbage decoded into %+v", b)
	}
	for _, want := range []string{"snmp: replies that did not decode", "mdns: packets refused", "outside the scope"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no log line %q", want)
		}
	}
	for _, dev := range res.Devices {
		if dev.Addr == "10.78.0.200" || dev.Addr == "127.0.0.1" || strings.HasPrefix(dev.Model, "XXXX") {
			t.Errorf("reported %+v from outside the scope", dev)
		}
	}
	if n := d.outsideHits.Load(); n != 0 {
		t.Errorf("the out-of-scope host was contacted %d times", n)
	}
	if res.Refused == 0 {
		t.Errorf("the mDNS answers pointing outside the scope were not counted as refused")
	}
	if took > 60*time.Second {
		t.Errorf("the scan took %v", took)
	}
}

// TestDiscoveryRateIsBounded counts, with an nftables counter in the
// agent's namespace, the TCP connection attempts and UDP datagrams the
// scan sends, against the wall time: at most the configured rate (plus
// its burst).
func TestDiscoveryRateIsBounded(t *testing.T) {
	d := newDiscoveryLAN(t)
	testenv.NeedBinary(t, "nft")
	ctx := context.Background()
	rules := `table inet count {
  counter probes {}
  chain out { type filter hook output priority 0; policy accept;
    oifname "eth0" tcp flags & (syn|ack) == syn counter name probes
    oifname "eth0" meta l4proto udp counter name probes
  }
}`
	cmd := exec.Command("ip", "netns", "exec", d.agent.Namespace(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	const rate, burst = 40, 5
	stack.Build(t)
	start := time.Now()
	res, _ := d.discover(t, "--scope", discScope, "--rate", strconv.Itoa(rate), "--burst", strconv.Itoa(burst), "--timeout", "1s")
	took := time.Since(start).Seconds()
	out, err := d.agent.Run(ctx, "nft", "list", "counter", "inet", "count", "probes")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("counter: %s", out)
	}
	packets, _ := strconv.Atoi(m[1])
	// Probes that open a connection count once (the SYN); an mDNS query
	// or SNMP request is one datagram, plus the re-queries mDNS sends for
	// incomplete answers; retransmitted SYNs of silent addresses count
	// again. The scan's own count is the limiter's.
	measured := float64(packets) / took
	limiterRate := float64(res.Probes) / took
	t.Logf("rate: %d probes by the limiter, %d packets on the wire in %.2f s: %.1f probes/s, %.1f packets/s (limit %d/s, burst %d)",
		res.Probes, packets, took, limiterRate, measured, rate, burst)
	if limiterRate > rate*1.1+float64(burst)/took {
		t.Errorf("%.1f probes/s over the limit of %d", limiterRate, rate)
	}
	if res.Probes < 100 {
		t.Errorf("only %d probes: the sweep of a /25 did not run", res.Probes)
	}
	if d.outsideHits.Load() != 0 {
		t.Errorf("out-of-scope host contacted")
	}
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %v", what, within)
		}
		time.Sleep(100 * time.Millisecond) // polling an external process's readiness, bounded
	}
}
