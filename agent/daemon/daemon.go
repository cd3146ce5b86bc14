// Package daemon is the on-site agent: it keeps one outbound signaling
// connection, answers sessions for its declared devices, and serves each
// session's tunnel towards those devices and nothing else.
package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porthole-dev/porthole/agent/accesslog"
	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/agent/deviceproxy"
	"github.com/porthole-dev/porthole/agent/discovery"
	"github.com/porthole-dev/porthole/agent/egress"
	"github.com/porthole-dev/porthole/agent/enroll"
	"github.com/porthole-dev/porthole/agent/scope"
	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/agent/termrec"
	"github.com/porthole-dev/porthole/agent/tlscompat"
	"github.com/porthole-dev/porthole/proto"
)

// Config configures an agent. Zero values are safe defaults where a field
// says so.
type Config struct {
	// Server is signaling's base URL (http:// or https://).
	Server string
	// Key is the agent's pre-shared key (interim, until enrollment).
	Key string
	// Devices are the declared devices; the agent reaches nothing else.
	Devices []DeviceConfig
	// Logger; nil discards.
	Logger *slog.Logger
	// LoopbackOnly restricts ICE to loopback (local demo and tests).
	LoopbackOnly bool
	// MinBackoff and MaxBackoff bound the jittered reconnect delay
	// (defaults 500 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// MaxSessions bounds concurrent sessions (default 16).
	MaxSessions int
	// MaxSessionTTL caps a session's lifetime whatever signaling says
	// (default and maximum 30 minutes).
	MaxSessionTTL time.Duration
	// Software is announced in hello.
	Software string
	// Enrollment, if set, is the agent's enrollment (agent/enroll): the
	// agent connects to its agent URL with mutual TLS instead of Server
	// and Key, renews its certificate, and accepts only sessions whose
	// grant verifies with its grant key.
	Enrollment *enroll.State
	// Checker verifies devices before every session; nil means a default
	// deviceid.Checker (the system's resolver and neighbour table).
	Checker *deviceid.Checker
	// Pins holds the TLS certificates of https devices pinned at first
	// use (identity.go); nil keeps them in memory for the process's life.
	// porthole-agent keeps them in its state directory.
	Pins *deviceid.PinStore
	// SSHPins holds the SSH host keys of the devices' SSH services pinned
	// at the first browser terminal (terminal.go); nil keeps them beside
	// Pins (its directory's ssh-host-keys), or in memory when Pins does.
	SSHPins *deviceid.PinStore
	// TLS remembers the rung of the legacy TLS ladder (agent/tlscompat)
	// each device needs; nil remembers in memory for the process's life.
	// porthole-agent keeps it in its state directory.
	TLS *tlscompat.Store
	// AccessLog records every exchange served and is shipped to
	// signaling (accesslog.go); nil means one in memory with the default
	// capacity. The agent stops serving while it is full.
	AccessLog *accesslog.Log
	// Recordings keeps the browser terminals' recordings until signaling
	// has them (terminal.go); nil means a set in memory. porthole-agent
	// spools it in its state directory.
	Recordings *termrec.Set
	// Clock times session lifetimes; nil means the real clock.
	Clock Clock
	// Region names where the agent is (e.g. "eu-west"), announced in
	// hello: signaling hands its sessions the TURN relays of that region
	// first. Empty leaves the choice to measured round trips (relays.go).
	Region string
	// Egress is the way out of the site: direct, or through its HTTP
	// proxy (agent/egress) for the signaling connection, certificate
	// renewal and TURN over TCP/TLS. Nil means direct.
	Egress *egress.Egress
	// RootCAs verify signaling (pre-shared key mode) and the relays'
	// TLS; nil means the system's roots. (An enrolled agent trusts only
	// its enrollment's CA for signaling.)
	RootCAs *x509.CertPool
	// Scope is the part of the site's network the agent may ever reach
	// (agent/scope). Devices signaling sends (the inventory adopted in the
	// app, inventory.go) are checked against it before they are served
	// and on every dial; nil refuses every adopted device. Devices of the
	// agent's own file are bounded by it only when BoundFileDevices says
	// so (the site declared a scope in the file).
	Scope            *scope.Scope
	BoundFileDevices bool
	// Scanner, if set, runs discovery (agent/discovery) when signaling
	// asks and every DiscoveryInterval (0: only when asked), reporting
	// what it finds to signaling (discover.go).
	Scanner           *discovery.Scanner
	DiscoveryInterval time.Duration
	// Policy is the site's own policy (policy.go): the floor of every
	// device without one of its own.
	Policy *PolicyConfig
}

// Agent is a running on-site agent.
type Agent struct {
	cfg Config
	log *slog.Logger

	devMu    sync.RWMutex
	devices  map[string]*device // the file's and the adopted ones (inventory.go)
	scanning atomic.Bool        // a discovery scan in progress (discover.go)

	conn      atomic.Pointer[sigclient.Conn]
	connected atomic.Bool
	route     atomic.Value // string: how the current connection reaches signaling (egress.Route)
	pinging   atomic.Bool  // checkSignaling running

	alog  *accesslog.Log
	recs  *termrec.Set // the browser terminals' recordings (terminal.go)
	clock Clock

	mu       sync.Mutex
	sessions map[string]*session
	granted  map[string]time.Time // session IDs of grants already used, until they expire

	wg sync.WaitGroup // session openings in progress, certificate renewal
}

type device struct {
	cfg   DeviceConfig
	proxy *deviceproxy.Proxy
	// adopted says the device came from signaling's inventory, not the
	// agent's file.
	adopted bool
}

// New validates cfg and builds an agent. It does no I/O.
func New(cfg Config) (*Agent, error) {
	if cfg.Server == "" && cfg.Enrollment == nil {
		return nil, errors.New("agent: server URL is required")
	}
	if cfg.Key == "" && cfg.Enrollment == nil {
		return nil, errors.New("agent: an enrollment or a key is required")
	}
	if cfg.Region != "" && !proto.ValidRegion(cfg.Region) {
		return nil, fmt.Errorf("agent: region %q: want lower-case letters, digits, '.', '_' or '-'", cfg.Region)
	}
	if cfg.Checker == nil {
		cfg.Checker = &deviceid.Checker{}
	}
	if cfg.Pins == nil {
		cfg.Pins = &deviceid.PinStore{}
	}
	if cfg.SSHPins == nil {
		cfg.SSHPins = sshPinsBeside(cfg.Pins)
	}
	if cfg.TLS == nil {
		cfg.TLS = &tlscompat.Store{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 16
	}
	if cfg.MaxSessionTTL <= 0 || cfg.MaxSessionTTL > proto.MaxSessionTTL {
		cfg.MaxSessionTTL = proto.MaxSessionTTL
	}
	if cfg.Software == "" {
		cfg.Software = "porthole-agent/dev"
	}
	if cfg.Recordings == nil {
		cfg.Recordings = termrec.New(termrec.Config{Logger: cfg.Logger})
	}
	if cfg.AccessLog == nil {
		cfg.AccessLog, _ = accesslog.Open(accesslog.Config{Logger: cfg.Logger}) // in memory: cannot fail
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Egress == nil {
		cfg.Egress = egress.Direct()
	}
	if cfg.Enrollment != nil {
		cfg.Enrollment.SetEgress(cfg.Egress) // renewals leave as the signaling connection does
	}
	if err := validatePolicy(cfg.Policy, "site"); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, devices: map[string]*device{}, sessions: map[string]*session{}, granted: map[string]time.Time{},
		alog: cfg.AccessLog, clock: cfg.Clock, recs: cfg.Recordings}
	for _, dc := range cfg.Devices {
		d, err := dc.normalize()
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		if _, dup := a.devices[d.ID]; dup {
			return nil, fmt.Errorf("agent: device %s declared twice", d.ID)
		}
		if cfg.BoundFileDevices {
			if cfg.Scope == nil {
				return nil, errors.New("agent: bounding the file's devices needs a scope")
			}
			if err := checkScope(cfg.Scope, d, true); err != nil {
				return nil, fmt.Errorf("agent: device %s: %w", d.ID, err)
			}
			d.scope = cfg.Scope
		}
		p, err := deviceproxy.New(d.proxyDevice(), cfg.Logger.With("device", d.ID))
		if err != nil {
			return nil, fmt.Errorf("agent: device %s: %w", d.ID, err)
		}
		a.devices[d.ID] = &device{cfg: d, proxy: p}
	}
	return a, nil
}

// Connected reports whether the agent currently has a signaling connection
// that completed the hello exchange.
func (a *Agent) Connected() bool { return a.connected.Load() }

// Run keeps the agent connected until ctx ends, reconnecting with jittered
// exponential backoff. It returns after every session and goroutine ended.
func (a *Agent) Run(ctx context.Context) error {
	defer a.closeAllSessions(proto.EndByAgent, "agent shutting down")
	defer a.wg.Wait() // before closeAllSessions: openings in progress end first
	if e := a.cfg.Enrollment; e != nil {
		a.wg.Go(func() { e.RenewLoop(ctx, a.log, 0) })
	}
	a.wg.Go(func() { a.shipAccessLog(ctx) })
	a.wg.Go(func() { a.shipRecordings(ctx) })
	if a.cfg.Scanner != nil && a.cfg.DiscoveryInterval > 0 {
		a.wg.Go(func() { a.discoverLoop(ctx) })
	}
	backoff := a.cfg.MinBackoff
	for {
		var renewed <-chan struct{} // nil (never ready) without enrollment
		if e := a.cfg.Enrollment; e != nil {
			renewed = e.Renewed()
		}
		start := time.Now()
		err := a.runConn(ctx)
		a.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > time.Minute {
			backoff = a.cfg.MinBackoff // it was a healthy connection
		}
		// Full jitter: spread reconnects of many agents after an outage.
		wait := time.Duration(rand.Int64N(int64(backoff))) + a.cfg.MinBackoff/2
		var dr *drained
		if errors.As(err, &dr) {
			// The node is shutting down and handed this agent's sessions
			// over: reconnect now (to another node), not after a backoff.
			wait, backoff = dr.retry, a.cfg.MinBackoff
			a.log.Info("signaling node draining; reconnecting to another node", "in", wait)
		}
		a.log.Warn("signaling connection lost; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
			backoff = min(backoff*2, a.cfg.MaxBackoff)
		case <-renewed:
			// An expired certificate was refused; the renewal that just
			// succeeded is what the connection waited for.
			backoff = a.cfg.MinBackoff
		}
	}
}

func (a *Agent) runConn(ctx context.Context) error {
	url, opts := a.dialOptions()
	route := a.cfg.Egress.Route(url)
	a.route.Store(route)
	a.log.Debug("connecting to signaling", "url", url, "signaling", route)
	conn, err := sigclient.Dial(ctx, url, opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	// The inventory with each device's reachability and identity.
	hello := &proto.Hello{Role: proto.RoleAgent, Software: a.cfg.Software, Devices: a.inventory(ctx), Region: a.cfg.Region,
		Fetch: proto.FetchVersion, Inventory: true}
	if err := conn.Send(proto.TypeHello, "", hello); err != nil {
		return err
	}
	a.conn.Store(conn)
	defer a.conn.CompareAndSwap(conn, nil)
	// Exchanges carried over this connection (fallback.go) end with it.
	connCtx, connDone := context.WithCancel(ctx)
	defer connDone()
	for {
		select {
		case <-ctx.Done():
			return nil
		case env, ok := <-conn.Incoming():
			if !ok {
				return conn.Err()
			}
			if proto.IsFetch(env.Type) {
				a.handleFetch(connCtx, conn, env)
				continue
			}
			if env.Type == proto.TypeDrain {
				var d proto.Drain
				if err := proto.DecodeData(env, &d); err != nil {
					a.log.Warn("bad drain message", "err", err)
					continue
				}
				return &drained{retry: d.RetryAfter(), msg: d.Message}
			}
			a.handle(ctx, env)
		}
	}
}

// signalingRoute says how the agent reaches signaling: "direct" or "via
// proxy HOST:PORT".
func (a *Agent) signalingRoute() string {
	r, _ := a.route.Load().(string)
	if r == "" {
		return a.cfg.Egress.Route(a.cfg.Server)
	}
	return r
}

// send sends on the current signaling connection, if any.
func (a *Agent) send(typ proto.MsgType, session string, payload any) error {
	c := a.conn.Load()
	if c == nil {
		return sigclient.ErrClosed
	}
	return c.Send(typ, session, payload)
}

func (a *Agent) handle(ctx context.Context, env *proto.Envelope) {
	switch env.Type {
	case proto.TypeWelcome:
		var w proto.Welcome
		if err := proto.DecodeData(env, &w); err != nil {
			a.log.Warn("bad welcome", "err", err)
			return
		}
		a.alog.Rewind() // a new connection: ship what the last one did not get acknowledged
		a.recs.Rewind()
		a.connected.Store(true)
		a.log.Info("connected to signaling", "agent", w.ID, "node", w.Node, "devices", a.deviceCount(), "signaling", a.signalingRoute())
		if len(w.Relays) > 0 {
			a.wg.Go(func() { a.measureRelays(ctx, w.Relays) })
		}
	case proto.TypeInventory:
		var inv proto.Inventory
		if err := proto.DecodeData(env, &inv); err != nil {
			a.log.Warn("inventory refused: malformed", "err", err)
			_ = a.send(proto.TypeError, "", &proto.Error{Code: proto.CodeOf(err), Message: "inventory refused: " + err.Error()})
			return
		}
		// Health checks of the adopted devices take a moment.
		a.wg.Go(func() { a.applyInventory(ctx, &inv) })
	case proto.TypeDiscoveryRun:
		var run proto.DiscoveryRun
		if err := proto.DecodeData(env, &run); err != nil {
			a.log.Warn("discovery.run refused: malformed", "err", err)
			return
		}
		a.startDiscovery(ctx, "asked by signaling")
	case proto.TypeSessionOpen:
		// The device check takes a moment: do not hold up other sessions'
		// messages meanwhile.
		a.wg.Go(func() { a.openSession(ctx, env) })
	case proto.TypeSessionEnd:
		var e proto.SessionEnd
		_ = proto.DecodeData(env, &e)
		if s := a.takeSession(env.Session); s != nil {
			a.log.Info("session ended by signaling", "session", s.id, "reason", e.Reason)
			s.close()
			a.alog.End(s.id)
			a.recs.End(s.id)
		}
	case proto.TypeRecordingAck:
		var ack proto.RecordingAck
		if err := proto.DecodeData(env, &ack); err == nil {
			a.recs.Ack(env.Session, ack.Seq)
		}
	case proto.TypeAccessAck:
		var ack proto.AccessAck
		if err := proto.DecodeData(env, &ack); err == nil {
			a.alog.Ack(env.Session, ack.Seq)
		}
	case proto.TypeOffer, proto.TypeCandidate:
		s := a.session(env.Session)
		if s == nil {
			// Signaling thinks this agent serves the session (after a
			// restart of this process, say): end it rather than leave the
			// technician waiting.
			_ = a.send(proto.TypeSessionEnd, env.Session, &proto.SessionEnd{Reason: proto.EndByAgent, Message: "the agent does not know this session (it restarted)"})
			return
		}
		if err := a.handlePeering(ctx, s, env); err != nil {
			a.log.Info("signaling message refused", "session", s.id, "type", env.Type, "err", err)
			_ = a.send(proto.TypeError, env.Session, &proto.Error{Code: proto.CodeOf(err), Message: err.Error()})
		}
	case proto.TypeICEServers:
		if s := a.session(env.Session); s != nil {
			a.applyICEServers(s, env)
		}
	case proto.TypeError:
		var e proto.Error
		_ = proto.DecodeData(env, &e)
		a.log.Warn("signaling reported an error", "session", env.Session, "code", e.Code, "message", e.Message)
	default:
		a.log.Debug("ignoring message", "type", env.Type)
	}
}

func (a *Agent) session(id string) *session {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessions[id]
}

func (a *Agent) takeSession(id string) *session {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[id]
	delete(a.sessions, id)
	return s
}

// endSession removes a session and tells signaling why, once.
func (a *Agent) endSession(s *session, reason proto.EndReason, msg string) {
	if a.takeSession(s.id) != s {
		return
	}
	a.log.Info("session ended", "session", s.id, "device", s.device.cfg.ID, "reason", reason, "message", msg)
	_ = a.send(proto.TypeSessionEnd, s.id, &proto.SessionEnd{Reason: reason, Message: msg})
	s.close()
	a.alog.End(s.id)
	a.recs.End(s.id)
}

// endSessionID ends session id, if it is still open.
func (a *Agent) endSessionID(id string, reason proto.EndReason, msg string) {
	if s := a.session(id); s != nil {
		a.endSession(s, reason, truncate(msg, proto.MaxText))
	}
}

func (a *Agent) closeAllSessions(reason proto.EndReason, msg string) {
	a.mu.Lock()
	all := make([]*session, 0, len(a.sessions))
	for _, s := range a.sessions {
		all = append(all, s)
	}
	a.mu.Unlock()
	for _, s := range all {
		a.endSession(s, reason, msg)
	}
}

// drained is runConn's error when signaling asked the agent to reconnect
// elsewhere (proto.TypeDrain).
type drained struct {
	retry time.Duration
	msg   string
}

func (d *drained) Error() string { return "signaling is draining: " + d.msg }
