// Command porthole-signaling runs Porthole's signaling server: the
// technician API and the WebSockets that agents and technician clients
// meet on. `porthole-signaling admin …` manages accounts in the data
// directory while the server is stopped (see admin.go).
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/porthole-dev/porthole/internal/certfile"
	"github.com/porthole-dev/porthole/internal/logflag"
	"github.com/porthole-dev/porthole/internal/promserve"
	"github.com/porthole-dev/porthole/internal/version"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/auditlog"
	"github.com/porthole-dev/porthole/signaling/preflight"
	"github.com/porthole-dev/porthole/signaling/server"
	"github.com/porthole-dev/porthole/signaling/turncred"
	"github.com/porthole-dev/porthole/signaling/webhook"
	"github.com/porthole-dev/porthole/web"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "admin" {
		if err := admin(os.Args[2:], os.Stdout); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return // the usage was printed
			}
			fmt.Fprintln(os.Stderr, "porthole-signaling admin:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "audit" {
		if err := audit(os.Args[2:], os.Stdout); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return
			}
			fmt.Fprintln(os.Stderr, "porthole-signaling audit:", err)
			os.Exit(1)
		}
		return
	}
	args, checkOnly := os.Args[1:], false
	if len(args) > 1 && args[0] == "config" && args[1] == "check" {
		args, checkOnly = args[2:], true // config.go
	}
	if err := run(args, checkOnly); err != nil {
		fmt.Fprintln(os.Stderr, "porthole-signaling:", err)
		os.Exit(1)
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// pairs is a repeatable name=value flag.
type pairs map[string]string

func (p pairs) String() string {
	if len(p) == 0 {
		return ""
	}
	return fmt.Sprintf("%d entries", len(p))
}
func (p pairs) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" || val == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	p[k] = val
	return nil
}

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// run starts the server with the settings of args, the environment and
// the configuration file (config.go); with checkOnly it prints them and
// the preflight findings and returns.
func run(args []string, checkOnly bool) error {
	var (
		listen        = flag.String("listen", "127.0.0.1:8080", "address to listen on (port 0 picks one)")
		drainTimeout  = flag.Duration("drain-timeout", 30*time.Second, "on SIGTERM, how long to drain (hand agents and sessions to the other nodes) before exiting; 0 exits at once")
		dataDir       = flag.String("data-dir", "", "directory of the embedded store (required)")
		appOrigin     = flag.String("app-origin", "", "the app's own origin, e.g. https://app.example.com (OAuth issuer)")
		devTokens     = flag.Bool("insecure-dev-tokens", false, "development mode: accept --tech-token dev tokens and #token= session links")
		agentKeys     = pairs{}
		agentKeysFile = flag.String("agent-keys-file", "", "file of id=key lines")
		techTokens    = pairs{}
		techFile      = flag.String("tech-tokens-file", "", "file of token=user lines")
		turnFile      = flag.String("turn-secret-file", "", "file holding the TURN secret shared with porthole-turn")
		turnSecret    = flag.String("turn-secret", "", "the TURN secret itself (prefer turn-secret-file or the environment: flags show in ps)")
		iceURLs       list
		turnRelays    list
		origins       list
		sessDomain    = flag.String("sessions-domain", "", "registrable domain of the session origins (shell-<id>.D and <id>.D), e.g. sessions.localhost:8080 or porthole-sessions.example")
		sessScheme    = flag.String("sessions-scheme", "", "scheme of session origins: https (default) or http")
		node          = flag.String("node", "", "node name (default: host name)")
		tlsCert       = flag.String("tls-cert", "", "TLS certificate file (serve HTTPS)")
		tlsKey        = flag.String("tls-key", "", "TLS key file")
		logLevel      = flag.String("log-level", "info", "debug, info, warn or error")
		agentListen   = flag.String("agent-listen", "", "address of the agents' mutual-TLS listener (enables enrollment; port 0 picks one)")
		agentURL      = flag.String("agent-url", "", "wss://host:port agents are told to use (default: from --agent-listen)")
		metricsAddr   = flag.String("metrics-listen", "", "address serving Prometheus metrics at /metrics, e.g. 127.0.0.1:9640 (default off)")
		redisURL      = flag.String("redis", "", "redis://host:port[/db] (or a Sentinel URL with master_name=, or a Redis Cluster URL with cluster=true; see README, Redis high availability): keep state in Redis and join the cluster of nodes sharing it (node names must differ)")
		sessionTTL    = flag.Duration("session-ttl", 0, "how long a session lasts before it ends on its own (default and at most 30m)")
		requestExpiry = flag.Duration("request-expiry", 0, "how long a technician's approval request waits for a site admin's answer (default 10m, at most 1h)")
		brandFile     = flag.String("brand", "", "JSON file of the app's product name, logo and colours (see README, Branding)")
	)
	flag.Var(agentKeys, "agent-key", "agent credential id=key (repeatable)")
	flag.Var(techTokens, "tech-token", "technician dev token token=user (repeatable)")
	flag.Var(&iceURLs, "ice-url", "stun:, turn: or turns: URL handed to peers (repeatable)")
	flag.Var(&turnRelays, "turn-relay", "region=turn:URL[,URL…]: a TURN relay in a region; sessions get the nearest to their agent (repeatable)")
	flag.Var(&origins, "allowed-origin", "exact browser origin allowed to call the API (repeatable)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	prod := productionFlags(flag.CommandLine) // config.go
	parsed, err := parseSettings(flag.CommandLine, args, checkOnly)
	if err != nil {
		return err
	}
	if *showVersion {
		fmt.Print(version.Get("porthole-signaling"))
		return nil
	}

	log, err := logflag.New(*logLevel)
	if err != nil {
		return err
	}

	if missing := web.MissingAssets(); len(missing) > 0 && !checkOnly {
		log.Warn("this binary was built without `make web`: the app is unstyled", "missing", missing)
	}
	brand := web.DefaultBrand()
	if *brandFile != "" {
		if brand, err = web.LoadBrand(*brandFile); err != nil {
			return fmt.Errorf("--brand: %w", err)
		}
		log.Info("branding loaded", "file", *brandFile, "name", brand.Name())
	}

	if err := readPairs(*agentKeysFile, agentKeys); err != nil {
		return err
	}
	if err := readPairs(*techFile, techTokens); err != nil {
		return err
	}
	secret := []byte(*turnSecret)
	if *turnFile != "" {
		b, err := os.ReadFile(*turnFile)
		if err != nil {
			return err
		}
		secret = []byte(strings.TrimSpace(string(b)))
	}
	relays := make([]turncred.Relay, 0, len(turnRelays))
	for _, v := range turnRelays {
		r, err := turncred.ParseRelay(v)
		if err != nil {
			return fmt.Errorf("--turn-relay: %w", err)
		}
		relays = append(relays, r)
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if *node == "" {
		*node, _ = os.Hostname()
	}
	findings := preflight.Check(preflight.Config{
		Listen: *listen, TLSCertFile: *tlsCert, TLSKeyFile: *tlsKey, AppOrigin: *appOrigin,
		SessionsDomain: *sessDomain, SessionsScheme: *sessScheme, ICEURLs: iceURLs, TURNRelays: len(relays),
		TURNSecret: len(secret) > 0, DevTokens: *devTokens, AgentListen: *agentListen,
		LocalLogin: prod.localLogin, OIDCIssuer: prod.oidcIssuer, OIDCClientID: prod.oidcClientID,
	})
	if checkOnly {
		return printCheck(os.Stdout, parsed, findings)
	}
	if err := logFindings(log, findings); err != nil {
		return err
	}

	if *dataDir == "" {
		return errors.New("--data-dir is required: it holds users, sites and device settings (with --redis: the agents' CA)")
	}
	st, err := openStore(*dataDir, *redisURL)
	if err != nil {
		return err
	}
	defer st.Close()
	clusterBus, err := clusterBus(st, *node, log)
	if err != nil {
		return err
	}
	if clusterBus != nil {
		log.Info("cluster mode: state and routing in Redis", "node", *node)
		defer clusterBus.Close() // after the server: releases this node's agents at once
	}
	// The key that signs audit checkpoints lives in the data directory
	// (every node of a cluster needs the same one).
	signer, err := auditKey(*dataDir, true)
	if err != nil {
		return err
	}
	// Every signed head is also appended to an anchor file outside the
	// store (one per node in a cluster, since nodes may share the
	// directory). A new anchor pins the logs as they stand (first use).
	anchorNode := ""
	if clusterBus != nil {
		anchorNode = *node
	}
	anchor, created, err := auditlog.OpenAnchor(auditlog.AnchorPath(*dataDir, anchorNode))
	if err != nil {
		return err
	}
	defer anchor.Close()
	signer = signer.WithAnchor(anchor)
	if created {
		n, err := auditlog.Bootstrap(context.Background(), st, signer, time.Now())
		if err != nil {
			return fmt.Errorf("audit anchor: %w", err)
		}
		log.Info("audit anchor created; existing logs pinned as they stand", "path", anchor.Path(), "logs", n)
	}
	if *devTokens {
		log.Warn("development mode: dev technician tokens and fragment session tokens are accepted")
	}

	var agents *agentListener
	if *agentListen != "" {
		if agents, err = setupAgentListener(*agentListen, *agentURL, *dataDir, st, signer, prod, log); err != nil {
			return err
		}
	}

	var reg *prometheus.Registry
	if *metricsAddr != "" {
		reg = prometheus.NewRegistry()
		if err := promserve.RegisterRuntime(reg); err != nil {
			return err
		}
	}
	sessionScheme := *sessScheme
	if sessionScheme == "" {
		sessionScheme = "https"
	}
	sessionWeb := web.Options{TokenEndpoint: tokenEndpoint(*appOrigin), AppOrigin: *appOrigin, Scheme: sessionScheme, Brand: brand}
	ssoProvider, err := prod.ssoProvider(*appOrigin, log) // config.go
	if err != nil {
		return err
	}
	// Webhooks: every node delivers the events it emits (package webhook).
	hooks, err := webhook.New(webhook.Config{Store: st, Logger: log.With("part", "webhook"), Metrics: registerer(reg),
		AllowPrivate: prod.webhookPrivate, BaseDelay: prod.webhookRetry})
	if err != nil {
		return err
	}
	defer hooks.Close() // after the server: its last events are queued
	if prod.webhookPrivate {
		log.Warn("webhook endpoints may be private or loopback addresses (--webhook-allow-private)")
	}
	srv, err := server.New(server.Config{
		Notify:       hooks.Notify,
		Webhooks:     hooks,
		SSO:          ssoProvider,
		SSOName:      prod.oidcName,
		NoLocalLogin: !prod.localLogin,
		Enroll:       agents.service(),
		Logger:       log,
		AuditKey:     signer.Key(),
		AuditAnchor:  anchor,
		// A single node signs every head itself; a cluster node's anchor
		// holds only its own heads.
		AuditAnchorComplete: clusterBus == nil,
		Store:               st,
		AppOrigin:           *appOrigin,
		InsecureDevTokens:   *devTokens,
		RequestExpiry:       *requestExpiry,
		SessionTTL:          *sessionTTL,
		AgentKeys:           agentKeys,
		TechnicianTokens:    techTokens,
		TURNSecret:          secret,
		ICEURLs:             iceURLs,
		TURNRelays:          relays,
		AllowedOrigins:      origins,
		SessionsDomain:      *sessDomain,
		SessionsScheme:      *sessScheme,
		Node:                *node,
		Bus:                 clusterBus,
		Metrics:             registerer(reg),
		// The browser app and each session's two origins (the session
		// window and the device's pages) are embedded in this binary; the
		// server itself knows nothing about them.
		Web:       web.AppWith(web.AppOptions{Brand: brand}),
		ShellWeb:  web.Shell(sessionWeb),
		DeviceWeb: web.Device(sessionWeb),
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	if n, err := srv.RecoverJobs(context.Background()); err != nil {
		return err
	} else if n > 0 {
		log.Info("jobs left open by an earlier run ended at their expiry", "jobs", n)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if reg != nil {
		ms, err := promserve.Start(*metricsAddr, reg, log)
		if err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		defer ms.Shutdown(context.Background())
		fmt.Printf("porthole-signaling metrics on http://%s%s\n", ms.Addr(), promserve.Path)
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // hijacked WebSockets set their own deadlines
		WriteTimeout:      30 * time.Second, // POST /v1/sessions waits at most ReadyTimeout
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if *tlsCert != "" {
		scheme = "https"
	}
	fmt.Printf("porthole-signaling listening on %s://%s\n", scheme, ln.Addr())

	if *tlsCert != "" {
		// Reloaded when an ACME client or the operator replaces the files.
		certs, err := certfile.New(*tlsCert, *tlsKey, 0, log)
		if err != nil {
			return err
		}
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
	}
	errc := make(chan error, 1)
	go func() {
		if *tlsCert != "" {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	var agentHS *http.Server
	if agents != nil {
		agentHS = agents.serve(srv, log, errc)
	}
	// Approval requests nobody answers expire on time, webhook included.
	sweepCtx, endSweep := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		srv.SweepRequests(sweepCtx, 15*time.Second)
	}()
	defer func() {
		endSweep()
		<-swept
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if *drainTimeout > 0 {
		drain(srv, log, *drainTimeout)
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Close() // ends sessions and WebSockets, which Shutdown does not track
	if agentHS != nil {
		_ = agentHS.Shutdown(shutCtx)
	}
	if err := hs.Shutdown(shutCtx); err != nil {
		return err
	}
	<-errc
	return nil
}

// registerer is reg as a prometheus.Registerer, nil (no metrics) when reg
// is nil.
func registerer(reg *prometheus.Registry) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return reg
}

func tokenEndpoint(appOrigin string) string {
	if appOrigin == "" {
		return ""
	}
	return appOrigin + proto.PathToken
}

// readPairs adds the name=value lines of file (if named) to p. Blank lines
// and lines starting with # are skipped.
func readPairs(file string, p pairs) error {
	if file == "" {
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := p.Set(line); err != nil {
			return fmt.Errorf("%s:%d: %w", file, n, err)
		}
	}
	return sc.Err()
}

// drain hands this node's agents and sessions to the other nodes of the
// cluster (server.Drain) and waits until none is left or timeout passed,
// saying how many remain every second.
func drain(srv *server.Server, log *slog.Logger, timeout time.Duration) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	agents, sessions, _ := srv.Remaining(ctx)
	log.Info("draining: no new work; handing agents and sessions to the other nodes", "agents", agents, "sessions", sessions, "timeout", timeout)
	handed := srv.Drain(ctx)
	// The agents' connections close as each reconnects elsewhere, and the
	// node it reaches takes its sessions: look often, say so once a second.
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	said := start
	for {
		agents, sessions, unadopted := srv.Remaining(ctx)
		if agents == 0 && sessions == 0 && unadopted == 0 {
			log.Info("drained", "sessions_handed_over", handed, "took", time.Since(start).Round(time.Millisecond))
			return
		}
		select {
		case <-ctx.Done():
			log.Warn("drain timed out; what remains ends now", "agents", agents, "sessions", sessions,
				"agents_not_yet_adopted", unadopted, "sessions_handed_over", handed)
			return
		case now := <-tick.C:
			if now.Sub(said) >= time.Second {
				said = now
				log.Info("draining", "agents_remaining", agents, "sessions_remaining", sessions,
					"agents_not_yet_adopted", unadopted, "sessions_handed_over", handed)
			}
		}
	}
}

// drainPoll is how often drain looks at what remains.
const drainPoll = 100 * time.Millisecond
