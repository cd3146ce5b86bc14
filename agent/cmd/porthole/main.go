// Command porthole is the technician's command-line client: it lists
// devices, serves a device's web page on a local port, and forwards a
// device's TCP port, each over a peer-to-peer WebRTC tunnel.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/porthole-dev/porthole/agent/login"
	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/agent/technician"
	"github.com/porthole-dev/porthole/proto"
)

const usage = `usage: porthole [global flags] COMMAND [args]

Commands:
  login [--no-browser] [--timeout D]
                                   sign in through your browser (OAuth with PKCE); the
                                   token is kept in your config directory for --server
  logout                           revoke and forget the token of --server
  devices                          list the devices you may open
  http DEVICE [--listen ADDR]      serve DEVICE's web page on ADDR (default 127.0.0.1:8080)
  forward DEVICE PORT --listen ADDR
                                   forward local ADDR to TCP PORT of DEVICE

Global flags (also as environment variables):
  --server URL    signaling URL (PORTHOLE_SERVER, default http://127.0.0.1:8080)
  --token TOKEN   API token (PORTHOLE_TOKEN); without it, the one 'porthole login' keeps
  --relay         force the TURN relay (for testing relayed paths)
  --loopback-only use only loopback ICE candidates (local demo and tests)
  -v              verbose logs
`

type globals struct {
	server, token      string
	relay, loopback, v bool
	creds              login.Credentials // where `porthole login` keeps tokens
}

func main() {
	// The data path allocates per SCTP packet; a larger GC target trades
	// a few MiB of heap for throughput (integration/bench). GOGC in the
	// environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "porthole:", err)
		var pe *proto.Error
		if errors.As(err, &pe) {
			fmt.Fprintln(os.Stderr, hint(pe.Code))
		}
		os.Exit(1)
	}
}

// hint tells the user what to do next for the common refusals.
func hint(c proto.Code) string {
	switch c {
	case proto.CodeUnauthorized:
		return "hint: run 'porthole login' (or check --token / PORTHOLE_TOKEN)."
	case proto.CodeAgentOffline:
		return "hint: the site's agent is not connected; check that porthole-agent runs and reaches signaling."
	case proto.CodeNotFound, proto.CodeDeviceNotFound:
		return "hint: run 'porthole devices' to see the device IDs you may open."
	case proto.CodePortNotAllowed:
		return "hint: the agent's configuration does not declare that port for the device."
	}
	return ""
}

func run(args []string, stdout, stderr io.Writer) error {
	g := globals{server: envOr("PORTHOLE_SERVER", "http://127.0.0.1:8080"), token: os.Getenv("PORTHOLE_TOKEN")}
	fs := flag.NewFlagSet("porthole", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	fs.StringVar(&g.server, "server", g.server, "")
	fs.StringVar(&g.token, "token", g.token, "")
	fs.BoolVar(&g.relay, "relay", false, "")
	fs.BoolVar(&g.loopback, "loopback-only", false, "")
	fs.BoolVar(&g.v, "v", false, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no command given")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	level := slog.LevelWarn
	if g.v {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if dir, err := os.UserConfigDir(); err == nil {
		g.creds.Path = filepath.Join(dir, "porthole", "credentials.json")
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "login":
		sub := flag.NewFlagSet("login", flag.ContinueOnError)
		sub.SetOutput(stderr)
		noBrowser := sub.Bool("no-browser", false, "only print the address to open")
		timeout := sub.Duration("timeout", 5*time.Minute, "how long to wait for the approval")
		if err := sub.Parse(rest); err != nil {
			return err
		}
		if sub.NArg() != 0 {
			return errors.New("usage: porthole login [--no-browser] [--timeout D]")
		}
		var open func(string)
		// Without a display, xdg-open may start a text browser in this
		// terminal: then only print the address.
		if !*noBrowser && (os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != "") {
			open = openBrowser
		}
		return loginCmd(ctx, g, open, *timeout, stdout)
	case "logout":
		if len(rest) != 0 {
			return errors.New("usage: porthole logout")
		}
		return logoutCmd(ctx, g, stdout)
	}
	if cmd == "devices" || cmd == "http" || cmd == "forward" {
		if err := g.resolveToken(time.Now()); err != nil {
			return err
		}
	}
	switch cmd {
	case "devices":
		return devices(ctx, g, stdout)
	case "http":
		sub := flag.NewFlagSet("http", flag.ContinueOnError)
		sub.SetOutput(stderr)
		listen := sub.String("listen", "127.0.0.1:8080", "local address to serve the device's page on")
		pos, err := parseInterspersed(sub, rest)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return errors.New("usage: porthole http DEVICE [--listen ADDR]")
		}
		return serveHTTP(ctx, g, logger, pos[0], *listen, stdout)
	case "forward":
		sub := flag.NewFlagSet("forward", flag.ContinueOnError)
		sub.SetOutput(stderr)
		listen := sub.String("listen", "", "local address to listen on, e.g. 127.0.0.1:2222")
		pos, err := parseInterspersed(sub, rest)
		if err != nil {
			return err
		}
		if len(pos) != 2 || *listen == "" {
			return errors.New("usage: porthole forward DEVICE PORT --listen ADDR")
		}
		port, err := strconv.Atoi(pos[1])
		if err != nil || port < 1 || port > 65535 {
			return fmt.Errorf("PORT must be a number from 1 to 65535, not %q", pos[1])
		}
		return forward(ctx, g, logger, pos[0], port, *listen, stdout)
	}
	fs.Usage()
	return fmt.Errorf("unknown command %q", cmd)
}

// parseInterspersed lets flags follow positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func devices(ctx context.Context, g globals, out io.Writer) error {
	api := &sigclient.API{Base: g.server, Token: g.token}
	l, err := api.Devices(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tNAME\tAGENT\tSTATUS\tPORTS")
	for _, d := range l.Devices {
		status := "offline"
		if d.Online {
			status = "online"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", d.ID, d.Name, d.Agent, status, d.Ports)
	}
	return tw.Flush()
}

func open(ctx context.Context, g globals, logger *slog.Logger, device string, out io.Writer) (*technician.Session, error) {
	start := time.Now()
	s, err := technician.Open(ctx, technician.Config{
		Server: g.server, Token: g.token, Device: device,
		RelayOnly: g.relay, LoopbackOnly: g.loopback, Logger: logger,
		Progress: func(msg string) { fmt.Fprintln(out, msg) },
	})
	if err != nil {
		return nil, err
	}
	path, pair := "unknown path", ""
	if p, err := s.Path(); err == nil {
		pair = fmt.Sprintf("selected candidate pair: %s (you) <-> %s (agent)\n", p.Local, p.Remote)
		path = "direct path"
		if p.Relayed {
			path = "relayed through TURN"
		}
		if p.RTT > 0 {
			path += fmt.Sprintf(", RTT %s", p.RTT.Round(100*time.Microsecond))
		}
	}
	fmt.Fprintf(out, "connected to %s in %s (%s); the session ends at %s\n",
		device, time.Since(start).Round(time.Millisecond), path, s.Info.Expires.Local().Format("15:04:05"))
	fmt.Fprint(out, pair)
	return s, nil
}

func serveHTTP(ctx context.Context, g globals, logger *slog.Logger, device, listen string, out io.Writer) error {
	return listenAndServe(ctx, g, logger, device, listen, out, func(s *technician.Session, ln net.Listener) error {
		fmt.Fprintf(out, "serving %s's web page at http://%s/ — press Ctrl-C to end the session\n", device, ln.Addr())
		return s.ServeHTTP(ctx, ln)
	})
}

func forward(ctx context.Context, g globals, logger *slog.Logger, device string, port int, listen string, out io.Writer) error {
	return listenAndServe(ctx, g, logger, device, listen, out, func(s *technician.Session, ln net.Listener) error {
		fmt.Fprintf(out, "forwarding %s to %s port %d — press Ctrl-C to end the session\n", ln.Addr(), device, port)
		return s.Forward(ctx, ln, port)
	})
}

// listenAndServe listens first (so a busy address fails before a session is
// opened), opens the session, runs serve until the session or ctx ends, and
// reports how the session ended.
func listenAndServe(ctx context.Context, g globals, logger *slog.Logger, device, listen string, out io.Writer,
	serve func(*technician.Session, net.Listener) error) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (choose another address with --listen)", listen, err)
	}
	defer ln.Close()
	s, err := open(ctx, g, logger, device, out)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := serve(s, ln); err != nil {
		return err
	}
	return reportEnd(s, out)
}

func reportEnd(s *technician.Session, out io.Writer) error {
	if e := s.EndReason(); e != nil && e.Reason != proto.EndByClient {
		return fmt.Errorf("the session ended: %s (%s)", e.Reason, e.Message)
	}
	fmt.Fprintln(out, "session ended")
	return nil
}
