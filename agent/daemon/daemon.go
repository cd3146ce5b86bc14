// Package daemon is the on-site agent: it keeps one outbound signaling
// connection, answers sessions for its declared devices, and serves each
// session's tunnel towards those devices and nothing else.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porthole-dev/porthole/agent/deviceproxy"
	"github.com/porthole-dev/porthole/agent/sigclient"
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
}

// Agent is a running on-site agent.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	devices map[string]*device

	conn      atomic.Pointer[sigclient.Conn]
	connected atomic.Bool

	mu       sync.Mutex
	sessions map[string]*session
}

type device struct {
	cfg   DeviceConfig
	proxy *deviceproxy.Proxy
}

// New validates cfg and builds an agent. It does no I/O.
func New(cfg Config) (*Agent, error) {
	if cfg.Server == "" {
		return nil, errors.New("agent: server URL is required")
	}
	if cfg.Key == "" {
		return nil, errors.New("agent: key is required")
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
	if cfg.MaxSessionTTL <= 0 || cfg.MaxSessionTTL > 30*time.Minute {
		cfg.MaxSessionTTL = 30 * time.Minute
	}
	if cfg.Software == "" {
		cfg.Software = "porthole-agent/dev"
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, devices: map[string]*device{}, sessions: map[string]*session{}}
	for _, dc := range cfg.Devices {
		d, err := dc.normalize()
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		if _, dup := a.devices[d.ID]; dup {
			return nil, fmt.Errorf("agent: device %s declared twice", d.ID)
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
	backoff := a.cfg.MinBackoff
	for {
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
		a.log.Warn("signaling connection lost; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, a.cfg.MaxBackoff)
	}
}

func (a *Agent) runConn(ctx context.Context) error {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+a.cfg.Key)
	conn, err := sigclient.Dial(ctx, sigclient.SocketURL(a.cfg.Server, proto.PathAgentSocket), sigclient.Options{
		Header: h,
		Logger: a.log,
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	hello := &proto.Hello{Role: proto.RoleAgent, Software: a.cfg.Software}
	for _, d := range a.devices {
		hello.Devices = append(hello.Devices, d.cfg.declaration())
	}
	if err := conn.Send(proto.TypeHello, "", hello); err != nil {
		return err
	}
	a.conn.Store(conn)
	defer a.conn.CompareAndSwap(conn, nil)
	for {
		select {
		case <-ctx.Done():
			return nil
		case env, ok := <-conn.Incoming():
			if !ok {
				return conn.Err()
			}
			a.handle(ctx, env)
		}
	}
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
		a.connected.Store(true)
		a.log.Info("connected to signaling", "agent", w.ID, "node", w.Node, "devices", len(a.devices))
	case proto.TypeSessionOpen:
		a.openSession(ctx, env)
	case proto.TypeSessionEnd:
		var e proto.SessionEnd
		_ = proto.DecodeData(env, &e)
		if s := a.takeSession(env.Session); s != nil {
			a.log.Info("session ended by signaling", "session", s.id, "reason", e.Reason)
			s.close()
		}
	case proto.TypeOffer, proto.TypeCandidate:
		s := a.session(env.Session)
		if s == nil {
			_ = a.send(proto.TypeError, env.Session, proto.Errorf(proto.CodeSessionNotFound, "no such session on this agent"))
			return
		}
		if err := a.handlePeering(ctx, s, env); err != nil {
			a.log.Info("signaling message refused", "session", s.id, "type", env.Type, "err", err)
			_ = a.send(proto.TypeError, env.Session, &proto.Error{Code: proto.CodeOf(err), Message: err.Error()})
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
