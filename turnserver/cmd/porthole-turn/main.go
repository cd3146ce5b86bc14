// Command porthole-turn is Porthole's STUN/TURN relay. It parses flags and
// the environment into relay.Config and runs the relay until SIGINT/SIGTERM.
//
// The shared secret comes from --secret-file or PORTHOLE_TURN_SECRET, never
// from a flag, so it does not show up in process listings.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/porthole-dev/porthole/internal/logflag"
	"github.com/porthole-dev/porthole/internal/promserve"
	"github.com/porthole-dev/porthole/internal/version"
	"github.com/porthole-dev/porthole/turnserver/relay"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "porthole-turn:", err)
		os.Exit(1)
	}
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func run() error {
	var (
		udp        = flag.String("udp", "0.0.0.0:3478", "UDP listen address (empty to disable)")
		udpSockets = flag.Int("udp-sockets", 0, "UDP sockets sharing the UDP address with SO_REUSEPORT, each with its own read loop (0: one per CPU)")
		sockBuf    = flag.Int("socket-buffer", relay.DefaultSocketBuffer, "receive and send buffer bytes of every UDP listener and relay socket (past net.core.rmem_max as root; -1: kernel default); the granted size is logged")
		tcp        = flag.String("tcp", "0.0.0.0:3478", "TCP listen address (empty to disable)")
		tlsAddr    = flag.String("tls", "", "TLS listen address, e.g. 0.0.0.0:5349 (needs --cert and --key)")
		certFile   = flag.String("cert", "", "TLS certificate chain (PEM)")
		keyFile    = flag.String("key", "", "TLS private key (PEM)")
		publicIP   = flag.String("public-ip", "", "IPv4 address advertised as the relayed address (default: the listener's, if concrete)")
		bindIP     = flag.String("relay-bind-ip", "", "local IPv4 address relay sockets bind to (default 0.0.0.0)")
		relayPorts = flag.String("relay-ports", "", "UDP port range of relayed addresses, e.g. 49152-65535, for the relay's firewall (default: any)")
		realm      = flag.String("realm", relay.DefaultRealm, "STUN/TURN realm")
		secretFile = flag.String("secret-file", "", "file holding the shared TURN REST API secret (else $PORTHOLE_TURN_SECRET)")
		maxLife    = flag.Duration("max-credential-lifetime", relay.DefaultMaxCredentialLifetime, "refuse credentials expiring further ahead than this")
		maxAllocs  = flag.Int("max-allocations", relay.DefaultMaxAllocationsPerCredential, "live allocations allowed per credential")
		logLevel   = flag.String("log-level", "info", "debug, info, warn or error")
		metrics    = flag.String("metrics-listen", "", "address serving Prometheus metrics at /metrics, e.g. 127.0.0.1:9641 (default off)")
		ownHost    = flag.Bool("allow-own-host", false, "let peers reach this host's own addresses (only when every peer runs on this machine: the loopback demo and tests)")
		allowPeers listFlag
		services   listFlag
	)
	flag.Var(&allowPeers, "allow-peer", "peer prefix to allow although denied by default, e.g. 10.0.0.0/8 (repeatable)")
	flag.Var(&services, "service-port", "further local ip:port peers must never reach, e.g. metrics (repeatable)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Print(version.Get("porthole-turn"))
		return nil
	}

	logger, err := logflag.New(*logLevel)
	if err != nil {
		return err
	}

	secret, err := loadSecret(*secretFile, os.Getenv("PORTHOLE_TURN_SECRET"))
	if err != nil {
		return err
	}
	cfg := relay.Config{
		Realm:                       *realm,
		Secret:                      secret,
		UDPListen:                   *udp,
		UDPSockets:                  *udpSockets,
		SocketBuffer:                *sockBuf,
		TCPListen:                   *tcp,
		TLSListen:                   *tlsAddr,
		MaxCredentialLifetime:       *maxLife,
		MaxAllocationsPerCredential: *maxAllocs,
		AllowOwnHost:                *ownHost,
		Logger:                      logger,
	}
	if *tlsAddr != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if *publicIP != "" {
		if cfg.PublicIP, err = netip.ParseAddr(*publicIP); err != nil {
			return fmt.Errorf("--public-ip: %w", err)
		}
	}
	if *bindIP != "" {
		if cfg.RelayBindIP, err = netip.ParseAddr(*bindIP); err != nil {
			return fmt.Errorf("--relay-bind-ip: %w", err)
		}
	}
	if *relayPorts != "" {
		if cfg.RelayPortMin, cfg.RelayPortMax, err = parsePortRange(*relayPorts); err != nil {
			return fmt.Errorf("--relay-ports: %w", err)
		}
	}
	for _, s := range allowPeers {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("--allow-peer: %w", err)
		}
		cfg.Allow = append(cfg.Allow, p)
	}
	for _, s := range services {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return fmt.Errorf("--service-port: %w", err)
		}
		cfg.ServicePorts = append(cfg.ServicePorts, ap)
	}

	reg := prometheus.NewRegistry()
	if *metrics != "" {
		cfg.Metrics = reg
		if err := promserve.RegisterRuntime(reg); err != nil {
			return err
		}
		ms, err := promserve.Start(*metrics, reg, logger)
		if err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		defer ms.Shutdown(context.Background())
		// Never reachable through the relay; a wildcard listener on the
		// loopback and relay addresses, as the TURN listeners are.
		if ap, err := netip.ParseAddrPort(ms.Addr().String()); err == nil {
			ips := []netip.Addr{ap.Addr()}
			if ap.Addr().IsUnspecified() {
				ips = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback(), cfg.PublicIP, cfg.RelayBindIP}
			}
			for _, ip := range ips {
				if ip.IsValid() && !ip.IsUnspecified() {
					cfg.ServicePorts = append(cfg.ServicePorts, netip.AddrPortFrom(ip, ap.Port()))
				}
			}
		}
		fmt.Printf("porthole-turn metrics on http://%s%s\n", ms.Addr(), promserve.Path)
	}
	srv, err := relay.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
		a := srv.Addrs()
		fmt.Printf("porthole-turn listening udp=%s tcp=%s tls=%s\n", show(a.UDP), show(a.TCP), show(a.TLS))
	case err := <-errc:
		return err
	}
	return <-errc
}

// show prints an unconfigured listener as "-".
func show(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return "-"
	}
	return ap.String()
}

// loadSecret reads the secret from file (trailing newline trimmed) or env.
func loadSecret(file, env string) ([]byte, error) {
	switch {
	case file != "" && env != "":
		return nil, errors.New("set either --secret-file or PORTHOLE_TURN_SECRET, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--secret-file: %w", err)
		}
		return bytes.TrimRight(b, "\r\n"), nil
	case env != "":
		return []byte(env), nil
	default:
		return nil, errors.New("no secret: set --secret-file or PORTHOLE_TURN_SECRET")
	}
}

// parsePortRange parses "MIN-MAX" (inclusive, 1–65535).
func parsePortRange(s string) (uint16, uint16, error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want MIN-MAX, e.g. 49152-65535", s)
	}
	a, err1 := strconv.ParseUint(lo, 10, 16)
	b, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || a == 0 || b == 0 || a > b {
		return 0, 0, fmt.Errorf("%q: want MIN-MAX with 1 ≤ MIN ≤ MAX ≤ 65535", s)
	}
	return uint16(a), uint16(b), nil
}
