package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/porthole-dev/porthole/agent/daemon"
	"github.com/porthole-dev/porthole/agent/discovery"
	"github.com/porthole-dev/porthole/agent/scope"
)

// discoverCmd runs one discovery scan in the site's scope and prints what
// it found as JSON: what the agent would report to signaling, for an
// admin to see (and for the namespace tests).
func discoverCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("porthole-agent discover", flag.ContinueOnError)
	var (
		cidrs     = fs.String("scope", "", "comma-separated subnets the agent may reach (default: its own interfaces' subnets)")
		ports     = fs.String("ports", "", "comma-separated TCP ports the agent may reach (default: 80,443 plus adopted devices' ports)")
		rateFlag  = fs.Float64("rate", discovery.DefaultRate, "probes per second, all sources together")
		burst     = fs.Int("burst", discovery.DefaultBurst, "probe burst")
		maxHosts  = fs.Int("max-hosts", discovery.DefaultMaxHosts, "addresses one sweep covers")
		timeout   = fs.Duration("timeout", discovery.DefaultTimeout, "bound of one probe")
		maxDur    = fs.Duration("max-duration", discovery.DefaultMaxDuration, "bound of the scan")
		community = fs.String("snmp-community", "public", "comma-separated SNMP v2c communities to try")
		logLevel  = fs.String("log-level", "info", "debug, info, warn or error (logs go to stderr)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	sc, err := buildScope(*cidrs, *ports)
	if err != nil {
		return err
	}
	stages := discovery.DefaultStages()
	for _, st := range stages {
		for _, src := range st {
			if s, ok := src.(*discovery.SNMP); ok {
				s.Communities = splitList(*community)
			}
		}
	}
	scanner, err := discovery.New(discovery.Config{Scope: sc, Stages: stages, Rate: *rateFlag, Burst: *burst,
		MaxHosts: *maxHosts, Timeout: *timeout, MaxDuration: *maxDur, Logger: logger})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("discovery starting", "scope", sc.String())
	res, err := scanner.Run(ctx)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Scope string `json:"scope"`
		*discovery.Result
		DurationMS int64 `json:"durationMs"`
	}{sc.String(), res, res.Duration.Milliseconds()})
}

// siteScope builds the running agent's scope from its file (default: its
// own interfaces' subnets, ports 80/443 plus the adopted devices') and its
// discovery scanner, unless the file turns discovery off.
func siteScope(fc *daemon.FileConfig, logger *slog.Logger) (*scope.Scope, *discovery.Scanner, time.Duration, error) {
	own, err := scope.Interfaces()
	if err != nil {
		return nil, nil, 0, err
	}
	var cfg scope.Config
	if fc.Scope != nil {
		cfg = *fc.Scope
	}
	sc, err := scope.New(cfg, own)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("agent config: %w", err)
	}
	dc := fc.Discovery
	if dc != nil && dc.Off {
		return sc, nil, 0, nil
	}
	interval, err := dc.IntervalOrDefault()
	if err != nil {
		return nil, nil, 0, err
	}
	stages := discovery.DefaultStages()
	if dc != nil && len(dc.SNMPCommunities) > 0 {
		for _, st := range stages {
			for _, src := range st {
				if s, ok := src.(*discovery.SNMP); ok {
					s.Communities = dc.SNMPCommunities
				}
			}
		}
	}
	var rate float64
	if dc != nil {
		rate = dc.Rate
	}
	scanner, err := discovery.New(discovery.Config{Scope: sc, Stages: stages, Rate: rate, Logger: logger.With("part", "discovery")})
	if err != nil {
		return nil, nil, 0, err
	}
	return sc, scanner, interval, nil
}

func discoveryState(s *discovery.Scanner, every time.Duration) string {
	switch {
	case s == nil:
		return "off"
	case every == 0:
		return "on demand"
	}
	return "on demand and every " + every.String()
}

// buildScope makes the site's scope from the flags or config fields.
func buildScope(cidrs, ports string) (*scope.Scope, error) {
	own, err := scope.Interfaces()
	if err != nil {
		return nil, err
	}
	cfg := scope.Config{CIDRs: splitList(cidrs)}
	for _, p := range splitList(ports) {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("port %q: %w", p, err)
		}
		cfg.Ports = append(cfg.Ports, n)
	}
	return scope.New(cfg, own)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
