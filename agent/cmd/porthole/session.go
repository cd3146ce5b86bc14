package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/porthole-dev/porthole/agent/technician"
	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/proto"
)

// httpClient is the client for the API: through the proxy when the
// environment names one.
func (a *app) httpClient() *http.Client {
	if a.client == nil {
		return &http.Client{Timeout: 30 * time.Second}
	}
	return a.client
}

func defineHTTP(fs *flag.FlagSet) func(context.Context, *app, []string) error {
	listen := fs.String("listen", "127.0.0.1:8080", "local `address` to serve the device's page on (port 0 picks a free one)")
	return func(ctx context.Context, a *app, args []string) error {
		if len(args) != 1 {
			return usageErrorf("http", "usage: porthole http DEVICE [--listen ADDR]")
		}
		device := args[0]
		return a.listenAndServe(ctx, device, 0, *listen, func(s *technician.Session, ln net.Listener) error {
			fmt.Fprintf(a.stdout, "serving %s's web page at http://%s/ — press Ctrl-C to end the session\n", device, ln.Addr())
			return s.ServeHTTP(ctx, ln)
		})
	}
}

func defineForward(fs *flag.FlagSet) func(context.Context, *app, []string) error {
	listen := fs.String("listen", "", "local `address` to listen on, e.g. 127.0.0.1:2222 (port 0 picks a free one)")
	stdio := fs.Bool("stdio", false, "carry one connection on stdin and stdout instead (ssh's ProxyCommand)")
	return func(ctx context.Context, a *app, args []string) error {
		if len(args) != 2 || (*listen == "") == !*stdio {
			return usageErrorf("forward", "usage: porthole forward DEVICE PORT --listen ADDR, or porthole forward --stdio DEVICE PORT")
		}
		device := args[0]
		port, err := strconv.Atoi(args[1])
		if err != nil || port < 1 || port > 65535 {
			return usageErrorf("forward", "PORT must be a number from 1 to 65535, not %q", args[1])
		}
		if *stdio {
			return a.forwardStdio(ctx, device, port)
		}
		return a.listenAndServe(ctx, device, port, *listen, func(s *technician.Session, ln net.Listener) error {
			fmt.Fprintf(a.stdout, "forwarding %s to %s port %d — press Ctrl-C to end the session\n", ln.Addr(), device, port)
			return s.Forward(ctx, ln, port, func(err error) {
				// Each refused connection says why, here as on the agent.
				a.fail(explainDial(err, device, port))
			})
		})
	}
}

// open opens a session to device and reports how it connected. quiet
// (stdin and stdout are the stream) shows progress only for waits longer
// than a moment, on stderr.
func (a *app) open(ctx context.Context, device string, quiet bool) (*technician.Session, error) {
	start := time.Now()
	p := newProgress(a.stderr, quiet && !a.verbose)
	defer p.stop()
	s, err := technician.Open(ctx, technician.Config{
		Server: a.server, Token: a.token, Device: device,
		RelayOnly: a.relay, LoopbackOnly: a.loopback, Logger: a.log,
		Progress:   p.set,
		HTTPClient: a.httpClient(), Egress: a.egress,
	})
	if err != nil {
		return nil, err
	}
	if quiet && !a.verbose {
		return s, nil
	}
	path, pair := "unknown path", ""
	if pi, err := s.Path(); err == nil {
		pair = fmt.Sprintf("selected candidate pair: %s (you) <-> %s (agent)\n", pi.Local, pi.Remote)
		path = "direct path"
		if pi.Relayed {
			path = "relayed through TURN"
		}
		if pi.RTT > 0 {
			path += fmt.Sprintf(", RTT %s", pi.RTT.Round(100*time.Microsecond))
		}
	}
	fmt.Fprintf(a.stderr, "connected to %s in %s (%s); the session ends at %s\n",
		device, time.Since(start).Round(time.Millisecond), path, s.Info.Expires.Local().Format("15:04:05"))
	fmt.Fprint(a.stderr, pair)
	return s, nil
}

// listenAndServe checks the device (and port), listens first (so a busy
// address fails before a session is opened), opens the session, runs
// serve until the session or ctx ends, and reports how the session ended.
func (a *app) listenAndServe(ctx context.Context, device string, port int, listen string,
	serve func(*technician.Session, net.Listener) error) error {
	if _, err := a.findDevice(ctx, device, port); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		what := fmt.Sprintf("cannot listen on %s: %v", listen, errors.Unwrap(err))
		if errors.Is(err, syscall.EADDRINUSE) {
			what = fmt.Sprintf("%s is already in use by another program", listen)
		}
		return &userError{what: what, next: "choose another address with --listen (port 0 picks a free one)", code: exitError, err: err}
	}
	defer ln.Close()
	s, err := a.open(ctx, device, false)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := serve(s, ln); err != nil {
		return err
	}
	return a.reportEnd(s)
}

func (a *app) reportEnd(s *technician.Session) error {
	if e := s.EndReason(); e != nil && e.Reason != proto.EndByClient {
		return &userError{what: fmt.Sprintf("the session ended: %s (%s)", e.Message, e.Reason),
			next: "open a new session to carry on", code: exitError}
	}
	fmt.Fprintln(a.stderr, "session ended")
	return nil
}

// forwardStdio carries one TCP connection to port of device on stdin and
// stdout, with half-close both ways: EOF on stdin half-closes the
// connection to the device, and the device's EOF closes stdout. Nothing
// but the stream is written to stdout.
func (a *app) forwardStdio(ctx context.Context, device string, port int) error {
	// ssh closes our stdout when it is done; writes must fail with EPIPE
	// rather than kill the process before it ends the session.
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	defer signal.Stop(sigpipe)
	if _, err := a.findDevice(ctx, device, port); err != nil {
		return err
	}
	s, err := a.open(ctx, device, true)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := s.Client.DialTCP(ctx, port)
	if err != nil {
		return explainDial(err, device, port)
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.Ended():
			cancel()
		case <-pctx.Done():
		}
	}()
	err = tunnel.Pipe(pctx, &stdioConn{r: a.stdin, w: a.stdout}, st)
	if e := s.EndReason(); e != nil && e.Reason != proto.EndByClient {
		return a.reportEnd(s)
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("the connection to %s port %d broke: %w", device, port, err)
	}
	return nil
}

// stdioConn is stdin and stdout as one stream. CloseWrite closes stdout
// (the reader sees EOF); Close closes both.
type stdioConn struct {
	r    io.Reader
	w    io.Writer
	once sync.Once
}

func (c *stdioConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *stdioConn) Write(p []byte) (int, error) { return c.w.Write(p) }

func (c *stdioConn) CloseWrite() error {
	if wc, ok := c.w.(io.Closer); ok {
		return wc.Close()
	}
	return nil
}

func (c *stdioConn) Close() error {
	c.once.Do(func() {
		_ = c.CloseWrite()
		if rc, ok := c.r.(io.Closer); ok {
			_ = rc.Close()
		}
	})
	return nil
}

// progress shows what a session waits for. Each stage is printed when it
// starts, and again every remindEvery while it lasts, with the time it has
// taken. quiet (the terminal belongs to ssh) prints a stage only once it
// has lasted quietAfter.
type progress struct {
	w     io.Writer
	quiet bool

	mu      sync.Mutex
	msg     string
	since   time.Time
	shown   bool
	timer   *time.Timer
	stopped bool
}

const (
	quietAfter  = 2 * time.Second
	remindEvery = 10 * time.Second
)

func newProgress(w io.Writer, quiet bool) *progress { return &progress{w: w, quiet: quiet} }

func (p *progress) set(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		// After the session is up, progress is news (an ICE restart).
		fmt.Fprintln(p.w, msg)
		return
	}
	p.msg, p.since, p.shown = msg, time.Now(), false
	if p.timer != nil {
		p.timer.Stop()
	}
	wait := remindEvery
	if p.quiet {
		wait = quietAfter
	} else {
		fmt.Fprintln(p.w, msg)
		p.shown = true
	}
	p.timer = time.AfterFunc(wait, func() { p.tick(msg) })
}

func (p *progress) tick(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.msg != msg {
		return
	}
	if p.shown {
		fmt.Fprintf(p.w, "still waiting (%s): %s\n", time.Since(p.since).Round(time.Second), msg)
	} else {
		fmt.Fprintf(p.w, "porthole: %s\n", msg)
		p.shown = true
	}
	p.timer = time.AfterFunc(remindEvery, func() { p.tick(msg) })
}

func (p *progress) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.timer != nil {
		p.timer.Stop()
	}
}
