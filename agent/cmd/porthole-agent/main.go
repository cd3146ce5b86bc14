// Command porthole-agent is the on-site Porthole agent: it connects out to
// signaling and lets authorised technicians reach the devices declared in
// its configuration file, and nothing else.
//
// tlssha1=1 lets a TLS 1.2 device that signs its key exchange with SHA-1
// (old printers do) be reached; Go 1.25 refuses those signatures by
// default and the setting is process-wide (agent/tlscompat explains why
// nothing else needs one).
//
//go:debug tlssha1=1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"golang.org/x/net/http/httpproxy"

	"github.com/porthole-dev/porthole/agent/accesslog"
	"github.com/porthole-dev/porthole/agent/daemon"
	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/agent/termrec"
	"github.com/porthole-dev/porthole/agent/tlscompat"
	"github.com/porthole-dev/porthole/internal/version"
)

func main() {
	// The data path allocates per SCTP packet; a larger GC target trades
	// a few MiB of heap for throughput (integration/bench). GOGC in the
	// environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	// porthole-agent enroll …, porthole-agent trust …, porthole-agent
	// run …; bare flags mean run.
	if len(os.Args) > 1 && os.Args[1] == "enroll" {
		if err := enrollCmd(os.Args[2:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return // the usage was printed
			}
			fmt.Fprintln(os.Stderr, "porthole-agent enroll:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "trust" {
		if err := trustCmd(os.Args[2:], os.Stdout); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return
			}
			fmt.Fprintln(os.Stderr, "porthole-agent trust:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "ssh-host-keys" {
		if err := sshKeysCmd(os.Args[2:], os.Stdout); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return
			}
			fmt.Fprintln(os.Stderr, "porthole-agent ssh-host-keys:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "service" {
		if err := serviceCmd(os.Args[2:], os.Stdout); err != nil { // service_windows.go
			if errors.Is(err, flag.ErrHelp) {
				return
			}
			fmt.Fprintln(os.Stderr, "porthole-agent service:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "discover" {
		if err := discoverCmd(os.Args[2:], os.Stdout); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return
			}
			fmt.Fprintln(os.Stderr, "porthole-agent discover:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "run" {
		os.Args = append(os.Args[:1], os.Args[2:]...)
	}
	if ok, err := runAsService(); ok || err != nil { // Windows' service manager started us
		if err != nil {
			fmt.Fprintln(os.Stderr, "porthole-agent:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "porthole-agent:", err)
		os.Exit(1)
	}
}

// run runs the agent with the command line's flags until ctx ends,
// logging to logOut.
func run(ctx context.Context, logOut io.Writer) error {
	var (
		configPath = flag.String("config", defaultConfig, "agent configuration file (JSON)")
		server     = flag.String("server", "", "signaling base URL; overrides the config file")
		loopback   = flag.Bool("loopback-only", false, "use only loopback ICE candidates (local demo and tests)")
		logLevel   = flag.String("log-level", "info", "debug, info, warn or error")
		debugAddr  = flag.String("debug-addr", "", "serve expvar, pprof and /debug/heap on this loopback address (host:port; port 0 picks one)")
		stateDir   = flag.String("state-dir", "", "enrollment state directory (default: the config's stateDir, else "+defaultStateDir+")")
		logCap     = flag.Int("access-log-capacity", 0, "access-log entries kept until signaling acknowledges them; serving stops while full (default 4096)")
	)
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Print(version.Get("porthole-agent"))
		return nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))

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
	enrollment, err := loadEnrollment(*stateDir, fc, logger)
	if err != nil {
		return err
	}
	roots, err := fc.Roots()
	if err != nil {
		return err
	}
	// The proxy: the config's entry, else the environment's convention
	// (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), read here and nowhere else.
	eg, err := fc.Egress(*httpproxy.FromEnvironment(), roots)
	if err != nil {
		return err
	}
	// The access log's spool lives beside the enrollment, so entries not
	// yet acknowledged survive a restart of the agent.
	alog, err := accesslog.Open(accesslog.Config{Dir: filepath.Join(stateDirOf(*stateDir, fc), "accesslog"), Capacity: *logCap, Logger: logger})
	if err != nil {
		return err
	}
	defer alog.Close()
	// So are the terminal recordings not yet acknowledged.
	recs, err := termrec.Open(termrec.Config{Dir: filepath.Join(stateDirOf(*stateDir, fc), "recordings"), Logger: logger})
	if err != nil {
		return err
	}
	defer recs.Close()
	sc, scanner, interval, err := siteScope(fc, logger)
	if err != nil {
		return err
	}
	agent, err := daemon.New(daemon.Config{
		Scope:             sc,
		BoundFileDevices:  fc.Scope != nil,
		Scanner:           scanner,
		DiscoveryInterval: interval,
		AccessLog:         alog,
		Recordings:        recs,
		Enrollment:        enrollment,
		Server:            fc.Server,
		Key:               fc.Key,
		Devices:           fc.Devices,
		Policy:            fc.Policy,
		Logger:            logger,
		LoopbackOnly:      *loopback,
		Region:            fc.Region,
		Pins:              &deviceid.PinStore{Dir: tlsPinDir(stateDirOf(*stateDir, fc))},
		SSHPins:           &deviceid.PinStore{Dir: sshPinDir(stateDirOf(*stateDir, fc))},
		Egress:            eg,
		RootCAs:           roots,
		TLS:               &tlscompat.Store{Dir: filepath.Join(stateDirOf(*stateDir, fc), "tls-compat")},
	})
	if err != nil {
		return err
	}
	if *debugAddr != "" {
		if err := serveDebug(ctx, *debugAddr, logger); err != nil {
			return err
		}
	}
	logger.Info("porthole-agent starting", "server", fc.Server, "devices", len(fc.Devices), "proxy", eg.String(),
		"scope", sc.String(), "discovery", discoveryState(scanner, interval))
	return agent.Run(ctx)
}
