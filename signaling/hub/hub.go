// Package hub is signaling's in-memory switchboard: it keeps the registry of
// connected agents and the devices they declare, the table of sessions with
// their lifetimes, and one connection object per WebSocket that routes
// validated messages between a session's client and its agent.
//
// The hub does not authenticate anybody and does not speak HTTP: the server
// package checks credentials and Origin, upgrades the request, and hands the
// WebSocket to ServeAgent or ServeClient with the identity it proved.
//
// All state lives under one mutex. Nothing blocks while holding it: messages
// for other connections go into their bounded send queues, and a connection
// whose queue is full is disconnected rather than waited for.
package hub

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// Defaults for zero Options fields.
const (
	DefaultSessionTTL     = proto.MaxSessionTTL
	DefaultReadyTimeout   = 10 * time.Second
	DefaultClientGrace    = 30 * time.Second
	DefaultPingInterval   = 20 * time.Second
	DefaultPongWait       = 30 * time.Second
	DefaultWriteWait      = 10 * time.Second
	DefaultHelloTimeout   = 10 * time.Second
	DefaultMaxQueue       = 64
	DefaultMaxBadMessages = 8
	// tombstoneTTL is how long an ended session is remembered so that
	// messages still in flight for it are answered session_ended instead of
	// counting against their sender as messages for a foreign session.
	tombstoneTTL = time.Minute
)

// Options configure a Hub. Zero values mean the defaults above.
type Options struct {
	Logger         *slog.Logger
	Now            func() time.Time // defaults to time.Now; timers always use real durations
	Node           string           // this node's name, sent in welcome
	SessionTTL     time.Duration
	ReadyTimeout   time.Duration // how long OpenSession waits for the agent's session.ready
	ClientGrace    time.Duration // how long a session survives without a client connection
	PingInterval   time.Duration
	PongWait       time.Duration
	WriteWait      time.Duration
	HelloTimeout   time.Duration // how long a new connection may take to send hello
	MaxQueue       int           // messages queued per connection before it is disconnected
	MaxBadMessages int           // refused messages a connection may send before it is disconnected
	// Limits bound the messages of one session and one connection, and an
	// agent's queue (limits.go).
	Limits Limits
	// ICEServers returns the ICE servers (with minted TURN credentials) for
	// a session whose agent is at agent (relays.go). Nil means none.
	ICEServers func(session string, expires time.Time, agent AgentPlace) []proto.ICEServer
	// RefreshICEServers is ICEServers for a session that lost a relay
	// (ice.refresh): the relays with a URL in failed are left out when
	// another is configured. Nil uses ICEServers.
	RefreshICEServers func(session string, expires time.Time, agent AgentPlace, failed []string) []proto.ICEServer
	// Relays are the relay URLs agents are asked to measure in their
	// welcome (proto.TypeRelayRTT). Nil asks for none.
	Relays []string
	// Grant signs the session grant sent to the agent with session.open
	// (package enroll). The hub fills the session, agent, device, user and
	// expiry; the signer may add the customer's policy (proto/policy.go)
	// and sets the issue time. Nil sends none; an error refuses the
	// session. It is called with the hub's lock held.
	Grant func(g *proto.Grant) (string, error)
	// AgentGrace is how long a live session waits for its agent to
	// reconnect after its connection dropped before it ends with
	// agent_lost; zero ends it at once.
	AgentGrace time.Duration
	// Events, if set, is told every step of every session's life, in
	// order (events.go). It is called with the hub's lock held and must
	// not block.
	Events func(Event)
	// AccessLog, if set, stores a batch of an agent's access log for
	// session (package jobs) and returns the highest sequence number
	// stored, which the agent gets as log.ack. Nil refuses access logs.
	AccessLog func(ctx context.Context, agent, session string, l *proto.AccessLog) (uint64, error)
	// Recording, if set, stores a chunk of a session's terminal recording
	// from its agent and returns the last chunk number stored, which the
	// agent takes as acknowledged.
	Recording func(ctx context.Context, agent, session string, c *proto.RecordingChunk) (uint64, error)
	// Presence, if set, is told when an agent comes online on this hub
	// (with the devices it declares) and when its connection goes, so a
	// cluster can publish which node holds which agent (package bus). It
	// is called with the hub's lock held, in order, and must not block.
	Presence func(agent string, devices []proto.Device, online bool)
	// AgentSite, if set, returns the site an agent is assigned to ("" for
	// none): the scope in which its device IDs must be unique (agents.go).
	// It is called from the agent's read goroutine without the hub's lock,
	// once per hello that declares devices, and may do store I/O.
	AgentSite func(agent string) string
	// Inventory, if set, keeps the agents' adopted devices and discovery
	// scans (inventory.go); nil refuses their reports.
	Inventory InventoryHooks
	// SiteName, if set, returns the name of a site ("" when unknown),
	// which session.ready tells the session window. It is called without
	// the hub's lock, once per session opened, and may do store I/O.
	SiteName func(site string) string
	// Prepare, if set, decides the customer's policy for a session before
	// it is created on this hub (the node that holds the device's agent):
	// the approval and scope its grant carries and a shorter lifetime.
	// It is called without the hub's lock and may do store I/O; an error
	// refuses the session and is returned to the opener as is. declared
	// is the policy the agent declared for the device in its hello (the
	// site's own floor, which the agent enforces), nil when none.
	Prepare func(ctx context.Context, user, agent, site, device string, declared *proto.AgentPolicy) (*Prepared, error)
	// Adopt, if set, returns the sessions another node handed over for
	// agent when it drained (drain.go), which this hub then serves. It is
	// called from the agent's read goroutine without the hub's lock, once
	// per agent hello, and may do store I/O.
	Adopt func(agent string) []SessionState
}

// Prepared is what Options.Prepare decided for one session.
type Prepared struct {
	Approval *proto.GrantApproval
	Scope    *proto.GrantScope
	TTL      time.Duration // when not zero and shorter than SessionTTL, the session's lifetime
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	setDefault(&o.SessionTTL, DefaultSessionTTL)
	setDefault(&o.ReadyTimeout, DefaultReadyTimeout)
	setDefault(&o.ClientGrace, DefaultClientGrace)
	setDefault(&o.PingInterval, DefaultPingInterval)
	setDefault(&o.PongWait, DefaultPongWait)
	setDefault(&o.WriteWait, DefaultWriteWait)
	setDefault(&o.HelloTimeout, DefaultHelloTimeout)
	setDefault(&o.MaxQueue, DefaultMaxQueue)
	if o.MaxBadMessages <= 0 {
		o.MaxBadMessages = DefaultMaxBadMessages
	}
	o.Limits.setDefaults(o.MaxQueue)
	if o.ICEServers == nil {
		o.ICEServers = func(string, time.Time, AgentPlace) []proto.ICEServer { return nil }
	}
	if o.RefreshICEServers == nil {
		servers := o.ICEServers
		o.RefreshICEServers = func(id string, exp time.Time, p AgentPlace, _ []string) []proto.ICEServer { return servers(id, exp, p) }
	}
}

// Hub routes signaling messages. Create it with New; it is safe for
// concurrent use.
type Hub struct {
	opt Options
	log *slog.Logger

	// wg counts every goroutine the hub started (connection pumps and
	// running timer callbacks); Close waits for it.
	wg sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	draining bool                      // Drain was called: no new sessions, clients or agents (drain.go)
	conns    map[*conn]struct{}        // every live connection
	agents   map[string]*conn          // agent ID → its newest connection
	devices  map[deviceKey]deviceEntry // (agent, device ID) → its declaration (agents.go)
	byID     map[string][]string       // device ID → the agents declaring it
	sessions map[string]*session       // session ID → session (ended ones until their tombstone expires)
	tokens   map[[32]byte]*session     // SHA-256 of a session token → live session
}

// New returns a hub. It does no I/O and starts no goroutines.
func New(opt Options) *Hub {
	opt.setDefaults()
	return &Hub{
		opt:      opt,
		log:      opt.Logger,
		conns:    make(map[*conn]struct{}),
		agents:   make(map[string]*conn),
		devices:  make(map[deviceKey]deviceEntry),
		byID:     make(map[string][]string),
		sessions: make(map[string]*session),
		tokens:   make(map[[32]byte]*session),
	}
}

// Close ends every session, disconnects every connection and returns once
// all goroutines the hub started have returned. It is idempotent.
func (h *Hub) Close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		for _, s := range h.sessions {
			h.endLocked(s, proto.EndError, "signaling is shutting down", nil,
				proto.Errorf(proto.CodeUnavailable, "signaling is shutting down"))
			s.stopTimersLocked()
		}
		for c := range h.conns {
			c.closeAfterFlush(1001, "signaling is shutting down") // websocket.CloseGoingAway
		}
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// afterFunc runs f after d on its own goroutine, counted in h.wg, unless the
// hub has closed by then. f runs with h.mu held.
func (h *Hub) afterFunc(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.closed {
			return
		}
		h.wg.Add(1) // under h.mu with closed false: Close's Wait cannot have started
		defer h.wg.Done()
		f()
	})
}
