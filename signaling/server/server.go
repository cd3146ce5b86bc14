// Package server is signaling's HTTP face: the technician API
// (/v1/devices, /v1/sessions), the agent and session WebSockets, and the
// per-session web origins. It checks every credential and Origin before a
// WebSocket upgrade and hands proven connections to the hub, which routes
// their messages.
//
// A Server does not listen: mount Handler on any http.Server (or an
// httptest.Server in tests) and call Close to end every session and
// connection.
package server

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/accounts"
	"github.com/porthole-dev/porthole/signaling/auditlog"
	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/cluster"
	"github.com/porthole-dev/porthole/signaling/hub"
	"github.com/porthole-dev/porthole/signaling/inventory"
	"github.com/porthole-dev/porthole/signaling/jobs"
	"github.com/porthole-dev/porthole/signaling/metrics"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/turncred"
)

// Server is a signaling server. Create it with New.
type Server struct {
	cfg      Config
	log      *slog.Logger
	hub      *hub.Hub
	agents   []credential // key → agent ID
	techs    []credential // token → user ID
	allowed  map[string]bool
	upgrader websocket.Upgrader
	handler  http.Handler
	// wsWritePool holds the write buffers of this server's WebSockets
	// between writes (the upgrader's WriteBufferPool).
	wsWritePool sync.Pool
	// draining is set by Drain (drain.go).
	draining atomic.Bool

	store     store.Store
	accounts  *accounts.Manager
	inventory *inventory.Manager          // the sites' devices across restarts (inventory.go)
	cop       *http.CrossOriginProtection // checks state-changing browser requests
	dummyHash string                      // verified for unknown users, so they cost as much as known ones
	now       func() time.Time

	auditSigner *auditlog.Signer // signs the checkpoints of audit logs
	recorder    *jobs.Recorder   // sessions as jobs, and their access logs

	sessions cluster.Sessions // this node's hub, or the cluster's router
	router   *cluster.Router  // nil on a single node

	metrics *metrics.Metrics // nil without Config.Metrics (metrics.go)

	hookMu      sync.Mutex
	hookStarted map[string]bool // sessions whose session.started was sent (webhooks.go)
}

// New checks cfg and builds a server. It does no I/O and starts no
// goroutines.
func New(cfg Config) (*Server, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("signaling config: %w", err)
	}
	ice, err := turncred.NewServers(cfg.ICEURLs, cfg.TURNSecret)
	if err == nil {
		ice, err = ice.WithRelays(cfg.TURNRelays)
	}
	if err != nil {
		return nil, fmt.Errorf("signaling config: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:     cfg,
		log:     log,
		agents:  credentials(cfg.AgentKeys, true),
		techs:   credentials(cfg.TechnicianTokens, false),
		allowed: make(map[string]bool, len(cfg.AllowedOrigins)),

		hookStarted: map[string]bool{},
	}
	for _, o := range cfg.AllowedOrigins {
		s.allowed[o] = true
	}
	if cfg.AppOrigin != "" {
		s.allowed[cfg.AppOrigin] = true
	}
	s.now = cfg.Now
	if s.now == nil {
		s.now = time.Now
	}
	auditKey := cfg.AuditKey
	if auditKey == nil {
		_, auditKey, _ = ed25519.GenerateKey(nil)
		log.Warn("no audit key configured: audit checkpoints are signed with a key that dies with this process")
	}
	s.auditSigner = auditlog.NewSigner(auditKey).WithAnchor(cfg.AuditAnchor)
	// Every audit append (admin log and access logs) is signed and
	// anchored before it is acknowledged.
	s.store = auditlog.Checkpointed(cfg.Store, s.auditSigner, s.now)
	s.accounts = &accounts.Manager{Store: s.store, Params: cfg.PasswordParams, Now: s.now}
	s.inventory = inventory.New(inventory.Options{Store: s.store, Logger: log.With("part", "inventory"), Now: s.now})
	s.cop = http.NewCrossOriginProtection()
	s.dummyHash = authn.DummyHash(cfg.PasswordParams)
	s.recorder, err = jobs.New(jobs.Config{Store: s.store, Signer: s.auditSigner, Logger: log, Node: cfg.Node, Now: s.now})
	if err != nil {
		return nil, fmt.Errorf("signaling config: %w", err)
	}
	if cfg.Metrics != nil {
		if s.metrics, err = metrics.New(cfg.Metrics, s.connectedAgents); err != nil {
			return nil, fmt.Errorf("signaling metrics: %w", err)
		}
	}
	s.hub = hub.New(hub.Options{
		Logger:       log,
		Now:          cfg.Now,
		Node:         cfg.Node,
		SessionTTL:   cfg.SessionTTL,
		ReadyTimeout: cfg.ReadyTimeout,
		ClientGrace:  cfg.ClientGrace,
		PingInterval: cfg.PingInterval,
		PongWait:     cfg.PongWait,
		WriteWait:    min(hub.DefaultWriteWait, cfg.PongWait),
		HelloTimeout: min(hub.DefaultHelloTimeout, cfg.PongWait),
		MaxQueue:     cfg.MaxQueue,
		Limits:       cfg.Limits,
		ICEServers:   iceServers(ice),
		RefreshICEServers: func(session string, expires time.Time, agent hub.AgentPlace, failed []string) []proto.ICEServer {
			return ice.ForPlaceExcept(session, expires, turncred.Place{Region: agent.Region, Probes: agent.Probes}, failed)
		},
		Relays:     ice.ProbeURLs(),
		Grant:      grantSigner(cfg.Enroll),
		AgentGrace: max(cfg.AgentGrace, 0),
		Events:     s.sessionEvent,
		AccessLog:  s.storeAccessLog,
		Recording:  s.recorder.Recording,
		Presence:   cluster.Presence(cfg.Bus),
		AgentSite:  s.agentSite,
		Inventory:  inventoryHooks{s},
		SiteName:   s.siteName,
		Prepare:    s.prepareSession,
		Adopt:      s.adopt,
	})
	s.sessions = cluster.OneNode(s.hub)
	if cfg.Bus != nil {
		s.router = cluster.New(cluster.Config{Hub: s.hub, Bus: cfg.Bus, Logger: log, ReadyTimeout: cfg.ReadyTimeout,
			PingInterval: cfg.PingInterval, PongWait: cfg.PongWait, Limits: cfg.Limits, Now: s.now})
		s.sessions = s.router
	}
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		// An idle connection holds only a small read buffer; a write
		// buffer is borrowed from the pool for each message. Signaling
		// messages are small, and a large one is read through.
		ReadBufferSize:  wsReadBuffer,
		WriteBufferSize: wsWriteBuffer,
		WriteBufferPool: &s.wsWritePool,
		Subprotocols:    []string{proto.SocketProtocol},           // never the token protocol
		CheckOrigin:     func(*http.Request) bool { return true }, // checked before Upgrade is called
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			writeError(w, status, proto.Errorf(proto.CodeBadMessage, "websocket: %v", reason))
		},
	}
	s.handler = s.metrics.Instrument(s.routes(), s.routeLabel)
	return s, nil
}

// WebSocket buffers: see the Upgrader in New.
const (
	wsReadBuffer  = 512
	wsWriteBuffer = 4096
)

// Handler returns the HTTP handler serving the API, the WebSockets, the web
// UI (Config.Web) and the session origins (Config.ShellWeb and
// Config.DeviceWeb, origins.go).
func (s *Server) Handler() http.Handler { return s.handler }

// Close ends every session (telling both sides), closes every WebSocket
// and returns once the server's goroutines have stopped. Pending
// POST /v1/sessions requests are answered 504 unavailable.
func (s *Server) Close() {
	s.hub.Close()
	if s.router != nil {
		s.router.Close()
	}
	s.recorder.Close() // after the hub: its last events are written
}

// RecoverJobs ends the jobs a previous run left open whose time is up, and
// reports how many. Call it once at startup.
func (s *Server) RecoverJobs(ctx context.Context) (int, error) { return s.recorder.SweepExpired(ctx) }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+proto.PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET "+proto.PathReady, s.serveReady)
	mux.HandleFunc("GET "+proto.PathAgentSocket, s.serveAgentSocket)
	mux.HandleFunc("GET "+proto.PathSessionSocket, s.serveSessionSocket)
	get := func(h func(http.ResponseWriter, *http.Request, *principal)) http.HandlerFunc {
		return s.authed(proto.ScopeRead, h)
	}
	manage := func(h func(http.ResponseWriter, *http.Request, *principal)) http.HandlerFunc {
		return s.authed(proto.ScopeManage, h)
	}
	type methods = map[string]http.HandlerFunc
	mux.Handle(proto.PathDevices, s.api(methods{"GET": get(s.listDevices)}))
	mux.Handle(proto.PathSessions, s.api(methods{"POST": s.authed(proto.ScopeSessions, s.createSession)}))
	mux.Handle(proto.PathSessions+"/{id}", s.api(methods{"DELETE": s.authed(proto.ScopeSessions, s.deleteSession)}))

	mux.Handle(proto.PathLogin, s.api(methods{"POST": s.login}))
	mux.Handle(proto.PathLoginMFA, s.api(methods{"POST": s.loginMFA}))
	mux.Handle(proto.PathLogout, s.api(methods{"POST": get(s.logout)}))
	mux.Handle(proto.PathMe, s.api(methods{"GET": get(s.getMe)}))
	mux.Handle(proto.PathPassword, s.api(methods{"POST": manage(s.changePassword)}))
	mux.Handle(proto.PathTOTP, s.api(methods{"POST": manage(s.startTOTP), "DELETE": manage(s.deleteTOTP)}))
	mux.Handle(proto.PathTOTPConf, s.api(methods{"POST": manage(s.verifyTOTP)}))
	mux.Handle(proto.PathTokens, s.api(methods{"GET": get(s.listTokens), "POST": manage(s.createToken)}))
	mux.Handle(proto.PathTokens+"/{id}", s.api(methods{"DELETE": get(s.deleteToken)}))
	mux.Handle(proto.PathOverview, s.api(methods{"GET": get(s.overview)}))
	mux.Handle(proto.PathDevice, s.api(methods{"PATCH": manage(s.patchDevice), "DELETE": manage(s.deleteDevice)}))
	mux.Handle(proto.PathAdopt, s.api(methods{"POST": manage(s.adoptDevice)}))
	mux.Handle(proto.PathDiscovered, s.api(methods{"GET": get(s.listDiscovered)}))
	mux.Handle(proto.PathDiscover, s.api(methods{"POST": manage(s.startDiscovery)}))

	mux.Handle(proto.PathUsers, s.api(methods{"GET": s.adminOnly(proto.ScopeRead, s.listUsers), "POST": s.adminOnly(proto.ScopeManage, s.createUser)}))
	mux.Handle(proto.PathUser, s.api(methods{"PATCH": s.adminOnly(proto.ScopeManage, s.updateUser), "DELETE": s.adminOnly(proto.ScopeManage, s.deleteUser)}))
	mux.Handle(proto.PathUserRole, s.api(methods{"PUT": s.adminOnly(proto.ScopeManage, s.setRoles)}))
	mux.Handle(proto.PathSites, s.api(methods{"GET": get(s.listSites), "POST": manage(s.createSite)}))
	mux.Handle(proto.PathSite, s.api(methods{"DELETE": s.adminOnly(proto.ScopeManage, s.deleteSite)}))
	mux.Handle(proto.PathAgents, s.api(methods{"GET": s.adminOnly(proto.ScopeRead, s.listAgents)}))
	mux.Handle(proto.PathAgent, s.api(methods{"PUT": s.adminOnly(proto.ScopeManage, s.putAgent)}))
	mux.Handle(proto.PathAudit, s.api(methods{"GET": get(s.listAudit)}))
	s.jobRoutes(mux)
	s.webhookRoutes(mux) // webhooks.go
	mux.Handle(proto.PathSitePolicy, s.api(methods{"GET": get(s.getSitePolicy), "PUT": manage(s.putSitePolicy)}))
	mux.Handle(proto.PathDevicePolicy, s.api(methods{"GET": get(s.getDevicePolicy), "PUT": manage(s.putDevicePolicy)}))
	mux.Handle(proto.PathRequests, s.api(methods{"GET": get(s.listRequests), "POST": s.authed(proto.ScopeSessions, s.createRequest)}))
	mux.Handle(proto.PathRequest, s.api(methods{"GET": get(s.getRequest), "DELETE": s.authed(proto.ScopeSessions, s.cancelRequest)}))
	mux.Handle(proto.PathDecision, s.api(methods{"POST": manage(s.decideRequest)}))

	s.enrollRoutes(mux)
	s.signinRoutes(mux) // signin.go
	mux.HandleFunc(proto.PathAuthorize, s.authorize)
	mux.HandleFunc(proto.PathToken, s.token)
	mux.HandleFunc(proto.PathRevoke, s.revoke)
	mux.HandleFunc("GET "+proto.PathOAuthMetadata, s.metadata)
	mux.HandleFunc("GET "+proto.PathCLICode, s.cliCode)
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such API path"))
	})
	if s.cfg.Web != nil {
		cop := http.NewCrossOriginProtection()
		for _, o := range s.cfg.AllowedOrigins {
			_ = cop.AddTrustedOrigin(o) // checked by New
		}
		mux.Handle("/", cop.Handler(s.cfg.Web))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if label, ok := s.sessionHost(r.Host); ok {
			s.serveSessionHost(w, r, label)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
