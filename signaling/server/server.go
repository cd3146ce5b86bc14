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
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/hub"
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
}

// New checks cfg and builds a server. It does no I/O and starts no
// goroutines.
func New(cfg Config) (*Server, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("signaling config: %w", err)
	}
	ice, err := turncred.NewServers(cfg.ICEURLs, cfg.TURNSecret)
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
	}
	for _, o := range cfg.AllowedOrigins {
		s.allowed[o] = true
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
		ICEServers:   ice.ForSession,
	})
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
		Subprotocols:     []string{proto.SocketProtocol},           // never the token protocol
		CheckOrigin:      func(*http.Request) bool { return true }, // checked before Upgrade is called
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			writeError(w, status, proto.Errorf(proto.CodeBadMessage, "websocket: %v", reason))
		},
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the HTTP handler serving the API, the WebSockets, the web
// UI (Config.Web) and the session origins (Config.SessionWeb).
func (s *Server) Handler() http.Handler { return s.handler }

// Close ends every session (telling both sides), closes every WebSocket
// and returns once the server's goroutines have stopped. Pending
// POST /v1/sessions requests are answered 504 unavailable.
func (s *Server) Close() { s.hub.Close() }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+proto.PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET "+proto.PathAgentSocket, s.serveAgentSocket)
	mux.HandleFunc("GET "+proto.PathSessionSocket, s.serveSessionSocket)
	mux.Handle(proto.PathDevices, s.api(http.MethodGet, s.listDevices))
	mux.Handle(proto.PathSessions, s.api(http.MethodPost, s.createSession))
	mux.Handle(proto.PathSessions+"/{id}", s.api(http.MethodDelete, s.deleteSession))
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

// sessionHost reports whether host is <label>.<SessionsDomain>.
func (s *Server) sessionHost(host string) (string, bool) {
	if s.cfg.SessionsDomain == "" {
		return "", false
	}
	label, ok := strings.CutSuffix(strings.ToLower(host), "."+s.cfg.SessionsDomain)
	return label, ok && label != ""
}

// sessionOrigin is the web origin of session id, or "" without a
// sessions domain.
func (s *Server) sessionOrigin(id string) string {
	if s.cfg.SessionsDomain == "" {
		return ""
	}
	return s.cfg.SessionsScheme + "://" + id + "." + s.cfg.SessionsDomain
}

// serveSessionHost serves a session origin: its WebSocket, and the
// session shell for live sessions.
func (s *Server) serveSessionHost(w http.ResponseWriter, r *http.Request, label string) {
	if !proto.ValidSessionID(label) || !s.hub.SessionLive(label) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintln(w, "No such session. It may have ended or expired.")
		return
	}
	if r.URL.Path == proto.PathSessionSocket {
		s.serveSessionSocket(w, r)
		return
	}
	if s.cfg.SessionWeb == nil {
		http.NotFound(w, r)
		return
	}
	s.cfg.SessionWeb.ServeHTTP(w, r)
}
