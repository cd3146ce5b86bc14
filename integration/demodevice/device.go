// Package demodevice is a stand-in for a device's embedded web server (EWS): a printer admin
// site for the "Porthole LaserJet 4000" with status, supplies, settings, a login-protected
// admin area, a firmware download and upload, and a handful of endpoints that exercise what a
// tunnel must get right (streaming, cancellation, cookies, Basic auth, gzip, frame-blocking
// headers, redirects off the device).
//
// The device does not listen: New builds it, Handler mounts it on any server, and Serve runs it on
// a listener with connection accounting. With httptest, hook the accounting in by hand:
//
//	d := demodevice.New(demodevice.Config{})
//	srv := httptest.NewUnstartedServer(d.Handler())
//	srv.Config.ConnState = d.ConnState
//	srv.Start()
//
// Endpoints:
//
//	GET  /                      status page (#live-status is refreshed from /api/status by script)
//	GET  /supplies              supplies page
//	GET  /settings              settings form; ?saved=1 shows a "saved" banner
//	POST /settings              urlencoded or multipart; 303 to /settings?saved=1
//	GET  /login, POST /login    admin login; sets "sid" (HttpOnly) and "ui_lang" (script-visible), 302 to /admin
//	GET  /admin                 needs the sid cookie, else 302 to /login; shows "Welcome, <user>"
//	GET  /logout                drops the session, 302 to /login
//	GET  /logo.png              a PNG drawn at New (deterministic bytes)
//	GET  /api/status            JSON status (model, serial, mac, hostname, supplies, counters)
//	GET  /api/stats             JSON snapshot of Stats (counts include the asking request)
//	GET  /firmware.bin?size=N   N deterministic bytes (default 256 MiB, at most 1 GiB), Range supported
//	GET  /firmware.sha256?size=N hex SHA-256 of the same N bytes
//	POST /upload                any body (at most Config.MaxUploadBytes); JSON {"bytes":N,"sha256":"..."}
//	ANY  /echo                  JSON of method, path, query, host, headers and body length
//	GET  /slow?ms=N&chunks=K    K lines, N ms apart, each flushed
//	ANY  /basic/                HTTP Basic auth (Config.BasicUser/BasicPass)
//	GET  /gzip                  event log page, gzip-encoded when the client accepts it
//	GET  /xfo                   page sent with X-Frame-Options: DENY and frame-ancestors 'none'
//	GET  /redirect-external     302 to http://example.invalid/
//	GET  /evil                  a page that tries to escape its session (hostile.go)
//	GET  /websocket             a page that opens a WebSocket (hostile.go)
//	GET  /legacy                a page whose start-up uses synchronous XHR (legacy.go)
//	GET  /favicon.ico           the device's icon, counted (legacy.go)
//	GET  /ews, /ews/...         an EWS-like console with 40 subresources, no-store (ews.go)
//	     /quirks/, /cgi-bin/    what real EWS do: untyped CGI, absolute URLs, frames, WebSocket,
//	                            Digest, SSE, downloads (quirks.go)
package demodevice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults used for zero Config fields.
const (
	DefaultModel          = "Porthole LaserJet 4000"
	DefaultSerial         = "PHL4K-0001-DEMO"
	DefaultMAC            = "02:50:48:4c:34:4b"
	DefaultHostname       = "NPI4000-DEMO"
	DefaultMaxUploadBytes = 1 << 30
)

// Config configures a Device. Every zero value means the documented default.
type Config struct {
	// Model is the product name shown in the header. Default DefaultModel.
	Model string
	// Serial is the device's serial number, shown on the status page and in /api/status.
	// Default DefaultSerial.
	Serial string
	// MAC is the hardware address shown on the status page and in /api/status. Default DefaultMAC.
	MAC string
	// Hostname is the initial value of the "hostname" setting. Default DefaultHostname.
	Hostname string
	// AdminUser and AdminPass are the /login credentials. Default admin / admin.
	AdminUser, AdminPass string
	// BasicUser and BasicPass protect /basic/. Default service / service.
	BasicUser, BasicPass string
	// MaxUploadBytes bounds /upload and /echo bodies. Default 1 GiB.
	MaxUploadBytes int64
	// StrictOrigin makes POST /settings and POST /login answer 403 when the request carries an
	// Origin (or, lacking one, a Referer) whose host differs from the request's Host, as devices
	// with CSRF checks do. Off by default.
	StrictOrigin bool
	// Logger receives refusals at Info. Default: discard.
	Logger *slog.Logger
}

// Stats counts what the device has served. All fields are safe for concurrent use.
// OpenConns and TotalConns move only when Device.ConnState is installed on the server
// (Serve does it).
type Stats struct {
	// OpenConns is the number of TCP connections currently open to the device.
	OpenConns atomic.Int64
	// TotalConns is the number of TCP connections ever accepted.
	TotalConns atomic.Int64
	// Requests is the number of requests the handler has started.
	Requests atomic.Int64
	// InFlight is the number of requests whose handler is still running.
	InFlight atomic.Int64
	// Aborted counts streaming responses (/slow, /firmware.bin) cut short because the client
	// went away.
	Aborted atomic.Int64
	// Favicons counts requests for /favicon.ico (legacy.go).
	Favicons atomic.Int64
}

// StatsSnapshot is a plain copy of Stats, as served by /api/stats.
type StatsSnapshot struct {
	OpenConns  int64 `json:"openConns"`
	TotalConns int64 `json:"totalConns"`
	Requests   int64 `json:"requests"`
	InFlight   int64 `json:"inFlight"`
	Aborted    int64 `json:"aborted"`
	Favicons   int64 `json:"favicons"`
}

// Snapshot returns the current counts.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{
		OpenConns:  s.OpenConns.Load(),
		TotalConns: s.TotalConns.Load(),
		Requests:   s.Requests.Load(),
		InFlight:   s.InFlight.Load(),
		Aborted:    s.Aborted.Load(),
		Favicons:   s.Favicons.Load(),
	}
}

// Settings are the values the /settings form edits.
type Settings struct {
	Hostname     string `json:"hostname"`
	Location     string `json:"location"`
	Contact      string `json:"contact"`
	PaperSize    string `json:"paperSize"`
	SleepMinutes int    `json:"sleepMinutes"`
	Duplex       bool   `json:"duplex"`
}

// Device is one demo device. Create it with New.
type Device struct {
	cfg     Config
	log     *slog.Logger
	stats   Stats
	started time.Time
	logo    []byte
	ews     *ewsAssets // the EWS console (ews.go)
	pages   map[string]*template.Template
	handler http.Handler

	mu       sync.Mutex
	settings Settings
	sessions map[string]string // session id -> user
	shaCache map[int64]string  // firmware size -> hex sha256
}

// New builds a Device. It does no I/O beyond drawing the logo and the EWS
// console's images in memory.
func New(cfg Config) *Device {
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	if cfg.Serial == "" {
		cfg.Serial = DefaultSerial
	}
	if cfg.MAC == "" {
		cfg.MAC = DefaultMAC
	}
	if cfg.Hostname == "" {
		cfg.Hostname = DefaultHostname
	}
	if cfg.AdminUser == "" {
		cfg.AdminUser = "admin"
	}
	if cfg.AdminPass == "" {
		cfg.AdminPass = "admin"
	}
	if cfg.BasicUser == "" {
		cfg.BasicUser = "service"
	}
	if cfg.BasicPass == "" {
		cfg.BasicPass = "service"
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = DefaultMaxUploadBytes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Device{
		cfg:     cfg,
		log:     log,
		started: time.Now(),
		logo:    drawLogo(),
		ews:     buildEWS(),
		pages:   parsePages(),
		settings: Settings{
			Hostname:     cfg.Hostname,
			Location:     "2nd floor, copy room",
			Contact:      "helpdesk@example.com",
			PaperSize:    "A4",
			SleepMinutes: 15,
			Duplex:       true,
		},
		sessions: make(map[string]string),
		shaCache: make(map[int64]string),
	}
	d.handler = d.routes()
	return d
}

// Handler returns the device's HTTP handler.
func (d *Device) Handler() http.Handler { return d.handler }

// Stats returns the device's live counters.
func (d *Device) Stats() *Stats { return &d.stats }

// Config returns the configuration in force, defaults filled in.
func (d *Device) Config() Config { return d.cfg }

// Settings returns the current settings.
func (d *Device) Settings() Settings {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.settings
}

// ConnState is an http.Server ConnState hook that keeps Stats.OpenConns and Stats.TotalConns.
func (d *Device) ConnState(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		d.stats.OpenConns.Add(1)
		d.stats.TotalConns.Add(1)
	case http.StateClosed, http.StateHijacked:
		d.stats.OpenConns.Add(-1)
	}
}

// Serve serves d on ln until ctx ends, then shuts down gracefully (at most 5 seconds for
// running requests before connections are closed). It installs d.ConnState. It returns nil after
// a shutdown caused by ctx, and the server's error otherwise.
func Serve(ctx context.Context, ln net.Listener, d *Device) error {
	srv := &http.Server{
		Handler:           d.Handler(),
		ConnState:         d.ConnState,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("demo device: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("demo device: serve: %w", err)
	}
	return nil
}

func (d *Device) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.handleStatus)
	mux.HandleFunc("GET /supplies", d.handleSupplies)
	mux.HandleFunc("GET /settings", d.handleSettingsForm)
	mux.HandleFunc("POST /settings", d.handleSettingsSave)
	mux.HandleFunc("GET /login", d.handleLoginForm)
	mux.HandleFunc("POST /login", d.handleLogin)
	mux.HandleFunc("GET /admin", d.handleAdmin)
	mux.HandleFunc("/logout", d.handleLogout)
	mux.HandleFunc("GET /logo.png", d.handleLogo)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(staticFS)))
	mux.HandleFunc("GET /api/status", d.handleAPIStatus)
	mux.HandleFunc("GET /api/stats", d.handleAPIStats)
	mux.HandleFunc("GET /firmware.bin", d.handleFirmware)
	mux.HandleFunc("GET /firmware.sha256", d.handleFirmwareSHA)
	mux.HandleFunc("POST /upload", d.handleUpload)
	mux.HandleFunc("/echo", d.handleEcho)
	mux.HandleFunc("GET /slow", d.handleSlow)
	mux.HandleFunc("/basic/", d.handleBasic)
	mux.HandleFunc("GET /gzip", d.handleGzip)
	mux.HandleFunc("GET /xfo", d.handleXFO)
	mux.HandleFunc("GET /bust/{variant}", d.handleBust)
	mux.HandleFunc("POST /bust/{variant}/save", d.handleBustSave)
	mux.HandleFunc("GET /evil", d.handleEvil)
	mux.HandleFunc("GET /websocket", d.handleWebSocketPage)
	mux.HandleFunc("GET /legacy", d.handleLegacy) // legacy.go
	mux.HandleFunc("GET /api/legacy/info", d.handleLegacyInfo)
	mux.HandleFunc("POST /api/legacy/echo", d.handleLegacyEcho)
	mux.HandleFunc("/api/legacy/blob", d.handleLegacyBlob)
	mux.HandleFunc("GET /favicon.ico", d.handleFavicon)
	d.quirkRoutes(mux) // quirks.go
	d.ewsRoutes(mux)   // ews.go
	mux.HandleFunc("GET /redirect-external", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://example.invalid/", http.StatusFound)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.stats.Requests.Add(1)
		d.stats.InFlight.Add(1)
		defer d.stats.InFlight.Add(-1)
		w.Header().Set("Server", "Porthole-EWS/4.0")
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// drainLimited reads r to the end, at most max bytes; it reports the count and whether the
// limit was exceeded.
func drainLimited(w io.Writer, r io.Reader, max int64) (int64, bool, error) {
	n, err := io.Copy(w, io.LimitReader(r, max+1))
	if err != nil {
		return n, false, err
	}
	return n, n > max, nil
}
