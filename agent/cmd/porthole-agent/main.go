// Command porthole-agent is the on-site Porthole agent: it connects out to
// signaling and lets authorised technicians reach the devices declared in
// its configuration file, and nothing else.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/porthole-dev/porthole/agent/daemon"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "porthole-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		configPath = flag.String("config", "/etc/porthole/agent.json", "agent configuration file (JSON)")
		server     = flag.String("server", "", "signaling base URL; overrides the config file")
		loopback   = flag.Bool("loopback-only", false, "use only loopback ICE candidates (local demo and tests)")
		logLevel   = flag.String("log-level", "info", "debug, info, warn or error")
	)
	flag.Parse()
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	fc, err := daemon.LoadFile(*configPath)
	if err != nil {
		return err
	}
	if *server != "" {
		fc.Server = *server
	}
	if k := strings.TrimSpace(os.Getenv("PORTHOLE_AGENT_KEY")); k != "" {
		fc.Key = k
	}
	agent, err := daemon.New(daemon.Config{
		Server:       fc.Server,
		Key:          fc.Key,
		Devices:      fc.Devices,
		Logger:       logger,
		LoopbackOnly: *loopback,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("porthole-agent starting", "server", fc.Server, "devices", len(fc.Devices))
	return agent.Run(ctx)
}
