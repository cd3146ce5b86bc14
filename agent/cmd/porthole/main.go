// Command porthole is the technician's command-line client: it signs in,
// lists devices, sessions and jobs, serves a device's web page on a local
// port, forwards a device's TCP port (or carries it on stdin/stdout for
// OpenSSH's ProxyCommand), and runs the system's ssh through Porthole, each
// session over a peer-to-peer WebRTC tunnel. The commands are in
// commands.go, what errors tell the user in errors.go, shell completion in
// completion.go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/porthole-dev/porthole/agent/egress"
	"github.com/porthole-dev/porthole/agent/login"
	"github.com/porthole-dev/porthole/internal/version"
)

func main() {
	// The data path allocates per SCTP packet; a larger GC target trades
	// a few MiB of heap for throughput (integration/bench). GOGC in the
	// environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// app is one invocation: the global flags and where output goes.
type app struct {
	server, token   string
	relay, loopback bool
	verbose         bool
	creds           login.Credentials // where `porthole login` keeps tokens

	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	getenv func(string) string
	// egress and client: direct, or through HTTPS_PROXY/HTTP_PROXY
	// (NO_PROXY for exceptions), as the environment says.
	egress *egress.Egress
	client *http.Client
}

// run parses the global flags, runs one command and returns the exit code
// (exit codes: errors.go).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	a.server = envOr(a.getenv, "PORTHOLE_SERVER", "http://127.0.0.1:8080")
	a.token = a.getenv("PORTHOLE_TOKEN")
	if dir, err := os.UserConfigDir(); err == nil {
		a.creds.Path = filepath.Join(dir, "porthole", "credentials.json")
	}
	fs := flag.NewFlagSet("porthole", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.globalFlags(fs)
	showVersion := fs.Bool("version", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return exitOK
		}
		return a.fail(usageErrorf("", "%v", err))
	}
	a.log = newLogger(stderr, a.verbose)
	if *showVersion {
		fmt.Fprint(stdout, version.Get("porthole"))
		return exitOK
	}
	if fs.NArg() == 0 {
		printUsage(stderr)
		return a.fail(usageErrorf("", "no command given"))
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	c := findCommand(name)
	if c == nil || c.hidden && name != "__complete" {
		return a.fail(usageErrorf("", "unknown command %q", name))
	}
	if err := a.runCommand(ctx, c, rest); err != nil {
		return a.fail(err)
	}
	return exitOK
}

// globalFlags registers the flags every command accepts, before or after
// its name.
func (a *app) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&a.server, "server", a.server, "the Porthole server's `URL` (PORTHOLE_SERVER)")
	fs.StringVar(&a.token, "token", a.token, "API `token` (PORTHOLE_TOKEN); without it, the one 'porthole login' keeps")
	fs.BoolVar(&a.relay, "relay", a.relay, "force the TURN relay (to test relayed paths)")
	fs.BoolVar(&a.loopback, "loopback-only", a.loopback, "use only loopback ICE candidates (local demo and tests)")
	fs.BoolVar(&a.verbose, "verbose", a.verbose, "log what happens, including the WebRTC library's own logs")
	fs.BoolVar(&a.verbose, "v", a.verbose, "short for --verbose")
}

// setupEgress decides, from the environment, how the commands reach the
// server: directly or through HTTPS_PROXY/HTTP_PROXY. It runs after every
// flag is parsed, since --server may follow the command's name and its
// scheme picks the proxy.
func (a *app) setupEgress() error {
	eg, err := egress.New(egress.Config{Proxy: proxyEnv(a.getenv), AuthHint: "give them as user:password@ in HTTPS_PROXY"})
	if err != nil {
		return &userError{what: err.Error(), next: "check HTTPS_PROXY and HTTP_PROXY (http://host:port)", code: exitUsage}
	}
	scheme, _, _ := strings.Cut(a.server, ":")
	a.egress, a.client = eg, eg.HTTPClient(scheme, nil, 30*time.Second)
	return nil
}

// proxyEnv reads the proxy settings as net/http.ProxyFromEnvironment does
// (upper case first, then lower case).
func proxyEnv(getenv func(string) string) httpproxy.Config {
	first := func(names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	return httpproxy.Config{
		HTTPProxy:  first("HTTP_PROXY", "http_proxy"),
		HTTPSProxy: first("HTTPS_PROXY", "https_proxy"),
		NoProxy:    first("NO_PROXY", "no_proxy"),
		CGI:        getenv("REQUEST_METHOD") != "",
	}
}

func envOr(getenv func(string) string, k, def string) string {
	if v := getenv(k); v != "" {
		return v
	}
	return def
}
