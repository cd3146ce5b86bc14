// Package discovery finds the devices in an agent's scope (agent/scope)
// and what they say about themselves, so that an admin adopts them from
// the app instead of writing a file at the site.
//
// Sources sit behind one small interface (Source) and run in stages: the
// first finds hosts (a TCP sweep of the scope's ports, mDNS/DNS-SD), the
// second adds MAC addresses from the neighbour table, the third asks each
// host found (SNMP, IPP Get-Printer-Attributes, an HTTP probe for the
// page title). Every source goes through one Scan, which is where the
// bounds live, whatever the source:
//
//   - rate: every connection attempt, datagram or query takes a token from
//     one limiter (Config.Rate, default 100 per second, burst 10), and at
//     most Config.Concurrency (default 16) are in flight;
//   - size: a sweep covers at most Config.MaxHosts addresses (default
//     4096, so a /16 is covered over 16 scans, each resuming where the
//     last stopped), a scan reports at most proto.MaxDiscoveredPerRun
//     devices, every reply is read up to Config.MaxReply bytes (64 KiB);
//   - time: a scan ends after Config.MaxDuration (default 5 minutes) and
//     every probe after Config.Timeout (default 2 seconds);
//   - place: every dial passes scope.Control after name resolution, and
//     every finding outside the scope is dropped and logged, so nothing
//     outside the site's subnets is contacted or reported.
package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/porthole-dev/porthole/agent/scope"
	"github.com/porthole-dev/porthole/proto"
)

// Source is one way of learning about devices.
type Source interface {
	// Name names the source in findings and logs ("snmp").
	Name() string
	// Discover learns what it can, reporting with scan.Report. It asks
	// scan.Wait before every packet or connection it causes and dials
	// only with scan.Dial. An error is logged; the scan goes on.
	Discover(ctx context.Context, scan *Scan) error
}

// Config bounds a scanner. Zero values mean the defaults in the package
// documentation.
type Config struct {
	Scope *scope.Scope
	// Stages run one after the other; the sources of one stage run side
	// by side. Nil means DefaultStages().
	Stages [][]Source
	// Rate is probes per second (all sources together); Burst the
	// limiter's burst.
	Rate  float64
	Burst int
	// Concurrency bounds probes in flight.
	Concurrency int
	// MaxHosts bounds the addresses one sweep covers.
	MaxHosts int
	// MaxDuration bounds a scan; Timeout one probe.
	MaxDuration, Timeout time.Duration
	// MaxReply bounds the bytes read of any one reply.
	MaxReply int64
	// Dial opens connections (UDP and TCP); nil means a net.Dialer. The
	// scanner adds the scope's check in front of it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger; nil discards.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultRate        = 100
	DefaultBurst       = 10
	DefaultConcurrency = 16
	DefaultMaxHosts    = 4096
	DefaultMaxDuration = 5 * time.Minute
	DefaultTimeout     = 2 * time.Second
	DefaultMaxReply    = 64 << 10
)

// DefaultStages are the sources a scan runs by default.
func DefaultStages() [][]Source {
	return [][]Source{
		{&Sweep{}, &MDNS{}},
		{&Neighbors{}},
		{&SNMP{}, &IPP{}, &HTTPTitle{}},
	}
}

// Scanner runs scans. It is safe for concurrent use; scans do not overlap
// (Scan waits for one in progress).
type Scanner struct {
	cfg     Config
	log     *slog.Logger
	limiter *rate.Limiter
	sem     chan struct{}

	mu     sync.Mutex // one scan at a time; guards cursor
	cursor int        // where the next sweep resumes
}

// New validates cfg and builds a scanner. It does no I/O.
func New(cfg Config) (*Scanner, error) {
	if cfg.Scope == nil {
		return nil, errors.New("discovery: a scope is required")
	}
	if cfg.Stages == nil {
		cfg.Stages = DefaultStages()
	}
	cfg.Rate = cmp.Or(cfg.Rate, DefaultRate)
	cfg.Burst = cmp.Or(cfg.Burst, DefaultBurst)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, DefaultConcurrency)
	cfg.MaxHosts = cmp.Or(cfg.MaxHosts, DefaultMaxHosts)
	cfg.MaxDuration = cmp.Or(cfg.MaxDuration, DefaultMaxDuration)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.MaxReply = cmp.Or(cfg.MaxReply, DefaultMaxReply)
	if cfg.Rate < 0 || cfg.Burst < 0 || cfg.Concurrency < 0 || cfg.MaxHosts < 0 || cfg.MaxReply < 0 {
		return nil, errors.New("discovery: negative bounds")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scanner{cfg: cfg, log: cfg.Logger, limiter: rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst),
		sem: make(chan struct{}, cfg.Concurrency)}, nil
}

// Scope returns the scanner's scope.
func (s *Scanner) Scope() *scope.Scope { return s.cfg.Scope }

// Result is what one scan found.
type Result struct {
	Started  time.Time          `json:"started"`
	Duration time.Duration      `json:"-"`
	Devices  []proto.Discovered `json:"devices"` // sorted by address
	// Probes counts the packets and connections the scan caused;
	// Refused the findings and dials it dropped for leaving the scope.
	Probes  int64 `json:"probes"`
	Refused int64 `json:"refused"`
	// Truncated says a bound cut the scan short (time or devices).
	Truncated bool `json:"truncated,omitempty"`
}

// Run performs one scan.
func (s *Scanner) Run(ctx context.Context) (*Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.MaxDuration)
	defer cancel()
	sc := &Scan{s: s, devices: map[netip.Addr]*entry{}, started: time.Now()}
	for _, stage := range s.cfg.Stages {
		var wg sync.WaitGroup
		for _, src := range stage {
			wg.Go(func() {
				if err := src.Discover(ctx, sc); err != nil && ctx.Err() == nil {
					s.log.Info("discovery source failed", "source", src.Name(), "err", err)
				}
			})
		}
		wg.Wait()
		if ctx.Err() != nil {
			break
		}
	}
	res := &Result{Started: sc.started, Duration: time.Since(sc.started), Probes: sc.probes.Load(), Refused: sc.refused.Load()}
	if ctx.Err() != nil {
		res.Truncated = true
	}
	sc.mu.Lock()
	res.Truncated = res.Truncated || sc.full
	for _, e := range sc.devices {
		d := e.d
		d.Type = guessType(&d)
		res.Devices = append(res.Devices, d)
	}
	sc.mu.Unlock()
	slices.SortFunc(res.Devices, func(a, b proto.Discovered) int { return a.IP().Compare(b.IP()) })
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return res, fmt.Errorf("discovery: %w", err)
	}
	s.log.Info("discovery scan done", "devices", len(res.Devices), "probes", res.Probes, "refused", res.Refused,
		"took", res.Duration.Round(time.Millisecond), "truncated", res.Truncated)
	return res, nil
}

// Scan is one scan in progress: what sources report into and draw their
// bounds from.
type Scan struct {
	s       *Scanner
	started time.Time
	probes  atomic.Int64
	refused atomic.Int64

	mu      sync.Mutex
	devices map[netip.Addr]*entry
	full    bool
}

type entry struct {
	d     proto.Discovered
	hints map[string]string // between sources: "ipp.rp" → resource path
}

// Scope returns the scan's scope.
func (sc *Scan) Scope() *scope.Scope { return sc.s.cfg.Scope }

// Logger returns the scanner's logger.
func (sc *Scan) Logger() *slog.Logger { return sc.s.log }

// Timeout is the bound of one probe.
func (sc *Scan) Timeout() time.Duration { return sc.s.cfg.Timeout }

// MaxReply is the bound of one reply, in bytes.
func (sc *Scan) MaxReply() int64 { return sc.s.cfg.MaxReply }

// Wait takes one probe token: it blocks until the rate allows one more
// packet or connection, or ctx ends.
func (sc *Scan) Wait(ctx context.Context) error {
	if err := sc.s.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("discovery rate: %w", err)
	}
	sc.probes.Add(1)
	return nil
}

// Each runs fn for every address, at most Config.Concurrency at a time,
// and returns when all have returned or ctx ended.
func (sc *Scan) Each(ctx context.Context, addrs []netip.Addr, fn func(context.Context, netip.Addr)) {
	var wg sync.WaitGroup
	for _, a := range addrs {
		select {
		case sc.s.sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sc.s.sem }()
			fn(ctx, a)
		})
	}
	wg.Wait()
}

// Dial connects to addr (an IP address and port) if the scope allows the
// address, through Config.Dial with the scope's check at connect time.
func (sc *Scan) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("discovery dial %q: %w", addr, err)
	}
	if err := sc.Scope().CheckAddr(ap.Addr()); err != nil {
		sc.refused.Add(1)
		sc.s.log.Warn("discovery refused a dial outside the scope", "addr", addr, "err", err)
		return nil, err
	}
	if sc.s.cfg.Dial != nil {
		return sc.s.cfg.Dial(ctx, network, addr)
	}
	d := net.Dialer{Timeout: sc.Timeout(), ControlContext: sc.Scope().Control}
	return d.DialContext(ctx, network, addr)
}

// control is the scope's dial check in the form of net.Dialer.Control,
// for libraries that take one (gosnmp).
func (sc *Scan) control(network, address string, c syscall.RawConn) error {
	err := sc.Scope().Control(context.Background(), network, address, c)
	if err != nil {
		sc.refused.Add(1)
	}
	return err
}

// Hosts returns the addresses found so far, sorted.
func (sc *Scan) Hosts() []netip.Addr {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	out := make([]netip.Addr, 0, len(sc.devices))
	for a := range sc.devices {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Device returns a copy of what is known of addr.
func (sc *Scan) Device(addr netip.Addr) (proto.Discovered, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	e, ok := sc.devices[addr.Unmap()]
	if !ok {
		return proto.Discovered{}, false
	}
	d := e.d
	d.Services = slices.Clone(d.Services)
	return d, true
}

func (sc *Scan) hint(addr netip.Addr, key string) string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if e, ok := sc.devices[addr.Unmap()]; ok {
		return e.hints[key]
	}
	return ""
}

func (sc *Scan) setHint(addr netip.Addr, key, value string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if e, ok := sc.devices[addr.Unmap()]; ok {
		if e.hints == nil {
			e.hints = map[string]string{}
		}
		e.hints[key] = value
	}
}

// Report merges what source learnt about d.Addr into the scan. A finding
// outside the scope is dropped and logged; so is one past the scan's
// device bound, or one that does not validate (text too long and the
// like).
func (sc *Scan) Report(source string, d proto.Discovered) {
	ip, err := netip.ParseAddr(d.Addr)
	if err == nil {
		err = sc.Scope().CheckAddr(ip)
	}
	if err != nil {
		sc.refused.Add(1)
		sc.s.log.Info("discovery finding outside the scope dropped", "source", source, "addr", d.Addr, "err", err)
		return
	}
	ip = ip.Unmap()
	d.Addr = ip.String()
	sanitize(&d)
	if err := d.Validate(); err != nil {
		sc.s.log.Info("discovery finding dropped", "source", source, "addr", d.Addr, "err", err)
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	e, ok := sc.devices[ip]
	if !ok {
		if len(sc.devices) >= proto.MaxDiscoveredPerRun {
			if !sc.full {
				sc.s.log.Warn("discovery scan reached its device limit", "limit", proto.MaxDiscoveredPerRun)
			}
			sc.full = true
			return
		}
		e = &entry{d: proto.Discovered{Addr: d.Addr}}
		sc.devices[ip] = e
	}
	merge(&e.d, &d)
	if !slices.Contains(e.d.Sources, source) {
		e.d.Sources = append(e.d.Sources, source)
	}
}

func merge(dst, src *proto.Discovered) {
	set := func(d *string, s string) {
		if *d == "" {
			*d = s
		}
	}
	set(&dst.MAC, src.MAC)
	set(&dst.Hostname, src.Hostname)
	set(&dst.Vendor, src.Vendor)
	set(&dst.Model, src.Model)
	set(&dst.Serial, src.Serial)
	set(&dst.UUID, src.UUID)
	set(&dst.Description, src.Description)
	set(&dst.Type, src.Type)
	for _, s := range src.Services {
		i := slices.IndexFunc(dst.Services, func(x proto.DiscoveredService) bool { return x.Port == s.Port })
		switch {
		case i < 0 && len(dst.Services) < proto.MaxPorts:
			dst.Services = append(dst.Services, s)
		case i >= 0:
			x := &dst.Services[i]
			if x.Kind == proto.ServiceTCP && s.Kind != proto.ServiceTCP {
				x.Kind, x.Scheme = s.Kind, s.Scheme
			}
			set(&x.Name, s.Name)
			set(&x.Title, s.Title)
		}
	}
	slices.SortFunc(dst.Services, func(a, b proto.DiscoveredService) int { return a.Port - b.Port })
}

// guessType names what the device probably is, for people and icons.
func guessType(d *proto.Discovered) string {
	if d.Type != "" {
		return d.Type
	}
	for _, s := range d.Services {
		if s.Name == "ipp" || s.Name == "ipps" || s.Name == "_printer._tcp" || s.Name == "_pdl-datastream._tcp" || s.Port == 9100 {
			return "printer"
		}
	}
	if d.Serial != "" && slices.Contains(d.Sources, "snmp") {
		return "printer" // prtGeneralSerialNumber answered
	}
	for _, k := range []proto.ServiceKind{proto.ServiceWeb, proto.ServiceSSH, proto.ServiceVNC} {
		if slices.ContainsFunc(d.Services, func(s proto.DiscoveredService) bool { return s.Kind == k }) {
			return string(k)
		}
	}
	return ""
}
