package discovery

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/mdns"

	"github.com/porthole-dev/porthole/proto"
)

// DefaultMDNSServices are the DNS-SD service types MDNS asks for.
var DefaultMDNSServices = []string{"_ipp._tcp", "_ipps._tcp", "_http._tcp", "_printer._tcp", "_pdl-datastream._tcp"}

// MDNS asks the link for DNS-SD services (two PTR queries per service type
// to 224.0.0.251:5353, with hashicorp/mdns, which decodes the answers
// with miekg/dns) and reports each instance whose address is in scope,
// with its host name, port and what its TXT record says (ty or product:
// make and model; UUID). Answers are collected for Window per service
// type; at most MaxEntries instances per type are kept, so a device that
// answers without end fills a bounded buffer and is logged, and answers
// that do not decode are counted and logged once per query.
type MDNS struct {
	Services []string
	// Window is how long answers are collected per service type, over
	// its two queries; 0 means 1.5 seconds.
	Window time.Duration
	// MaxEntries bounds the instances kept per service type; 0 means 256.
	MaxEntries int
	// Interface, if set, is where queries go out.
	Interface *net.Interface
}

// Name implements Source.
func (*MDNS) Name() string { return "mdns" }

// Discover implements Source.
func (m *MDNS) Discover(ctx context.Context, sc *Scan) error {
	services := m.Services
	if services == nil {
		services = DefaultMDNSServices
	}
	window := m.Window
	if window == 0 {
		window = 1500 * time.Millisecond
	}
	maxEntries := m.MaxEntries
	if maxEntries == 0 {
		maxEntries = 256
	}
	// Each service type is asked twice, half the window each: one lost
	// datagram (the question or the answer) would otherwise hide a device
	// for the whole scan, and RFC 6762 §5.2 has queriers repeat a question
	// anyway. The answers of both rounds merge in the scan.
	rounds := make([]string, 0, 2*len(services))
	for _, svc := range services {
		rounds = append(rounds, svc, svc)
	}
	window /= 2
	for _, svc := range rounds {
		if err := sc.Wait(ctx); err != nil {
			return err
		}
		// The library hands each instance over without blocking and drops
		// it when the channel is full, so the channel is drained while the
		// query runs: otherwise a host that floods the link with made-up
		// instances fills it before a real printer's answer arrives
		// (avahi waits 20–120 ms before answering a shared record).
		entries := make(chan *mdns.ServiceEntry, 64)
		lw := &libLog{}
		params := &mdns.QueryParam{Service: svc, Domain: "local", Timeout: window, Entries: entries,
			Interface: m.Interface, DisableIPv6: true, Logger: log.New(lw, "", 0)}
		done := make(chan mdnsTally)
		go func() { done <- m.collect(sc, svc, entries, maxEntries) }()
		err := mdns.QueryContext(ctx, params)
		close(entries)
		tally := <-done
		if bad := lw.lines.Load(); bad > 0 {
			sc.Logger().Info("mdns: packets refused or library complaints", "service", svc, "count", bad, "first", lw.first.Load())
		}
		if tally.overHost > 0 {
			sc.Logger().Warn("mdns: a host announced more instances than kept; the rest was dropped",
				"service", svc, "perHost", mdnsPerHost, "dropped", tally.overHost)
		}
		if tally.overTotal > 0 {
			sc.Logger().Warn("mdns: answer limit reached; the rest was dropped", "service", svc, "limit", maxEntries, "dropped", tally.overTotal)
		}
		if err != nil {
			return fmt.Errorf("mdns %s: %w", svc, err)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// mdnsPerHost bounds the instances kept per announced address and
// service type: a printer announces one or two, so a host announcing
// hundreds cannot use up the bound for everyone else.
const mdnsPerHost = 16

type mdnsTally struct{ overHost, overTotal int }

// collect reports the instances as they arrive, at most maxEntries and
// mdnsPerHost per address, and counts what it dropped.
func (m *MDNS) collect(sc *Scan, svc string, entries <-chan *mdns.ServiceEntry, maxEntries int) mdnsTally {
	var t mdnsTally
	kept, perHost := 0, map[netip.Addr]int{}
	for e := range entries {
		ip, ok := netip.AddrFromSlice(e.AddrV4)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		switch {
		case perHost[ip] >= mdnsPerHost:
			t.overHost++
		case kept >= maxEntries:
			t.overTotal++
		default:
			perHost[ip]++ // at most maxEntries keys: kept bounds them
			kept++
			m.report(sc, svc, e)
		}
	}
	return t
}

func (m *MDNS) report(sc *Scan, svc string, e *mdns.ServiceEntry) {
	ip, ok := netip.AddrFromSlice(e.AddrV4)
	if !ok || e.Port <= 0 || e.Port > 65535 {
		return
	}
	d := proto.Discovered{Addr: ip.Unmap().String(), Hostname: strings.TrimSuffix(e.Host, ".")}
	txt := map[string]string{}
	for i, f := range e.InfoFields {
		if i >= 64 {
			break
		}
		k, v, _ := strings.Cut(f, "=")
		txt[strings.ToLower(k)] = v
	}
	d.Model = txt["ty"]
	if d.Model == "" {
		d.Model = strings.Trim(txt["product"], "()")
	}
	d.UUID = txt["uuid"]
	s := proto.DiscoveredService{Kind: proto.ServiceTCP, Port: e.Port, Name: svc}
	switch svc {
	case "_http._tcp":
		s.Kind, s.Scheme = proto.ServiceWeb, "http"
	case "_ipp._tcp":
		s.Name = "ipp"
	case "_ipps._tcp":
		s.Name = "ipps"
	}
	d.Services = []proto.DiscoveredService{s}
	if svc == "_ipp._tcp" || svc == "_printer._tcp" || svc == "_pdl-datastream._tcp" || svc == "_ipps._tcp" {
		d.Type = "printer"
	}
	sc.Report(m.Name(), d)
	if svc == "_ipp._tcp" {
		sc.setHint(ip.Unmap(), "ipp.port", fmt.Sprint(e.Port))
		if rp := txt["rp"]; rp != "" && len(rp) < 128 {
			sc.setHint(ip.Unmap(), "ipp.rp", "/"+strings.TrimPrefix(rp, "/"))
		}
	}
}

// libLog takes hashicorp/mdns's log lines (one per packet that does not
// decode, among others) and counts them instead of printing them, so a
// flood of garbage makes one line in the agent's log, not thousands.
type libLog struct {
	lines atomic.Int64
	first atomic.Value // string
}

func (l *libLog) Write(p []byte) (int, error) {
	if l.lines.Add(1) == 1 {
		l.first.Store(clean(string(p), 200))
	}
	return len(p), nil
}
