package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"github.com/porthole-dev/porthole/signaling/auditlog"
	"github.com/porthole-dev/porthole/signaling/hub"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/bus"
	"github.com/porthole-dev/porthole/signaling/enroll"
	"github.com/porthole-dev/porthole/signaling/sso"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/turncred"
	"github.com/porthole-dev/porthole/signaling/webhook"
)

// MaxSessionTTL is the longest a session may last.
const MaxSessionTTL = proto.MaxSessionTTL

// Config configures a Server. The zero value with a Store is a server that
// knows no agents and no technicians and hands out no ICE servers: safe,
// and useless.
type Config struct {
	// Logger receives state changes and refusals at Info. Nil discards.
	Logger *slog.Logger

	// AgentKeys maps an agent ID to its pre-shared key, presented as
	// "Authorization: Bearer <key>" on PathAgentSocket. Interim
	// authentication until mTLS enrollment lands. Keys must be unique.
	AgentKeys map[string]string

	// Enroll, if set, enrolls agents and authenticates them by client
	// certificate on the agent listener (AgentHandler, served with
	// Enroll.AgentTLSConfig); it also signs every session's grant.
	// AgentKeys keep working beside it on the app listener.
	Enroll *enroll.Service

	// Store keeps users, sites, agents, device settings, tokens, OAuth
	// codes and the administration audit log. Required.
	Store store.Store

	// AppOrigin is the app's own origin (https://app.example.com): where
	// the login cookie lives, the OAuth issuer for session origins and the
	// CLI. It is added to AllowedOrigins. Required with SessionsDomain.
	AppOrigin string

	// TechnicianTokens maps a development bearer token to the user ID it
	// authenticates on the HTTP API, as an admin-equivalent technician
	// that may open any device whether or not remote access is enabled
	// for it. Accepted only with InsecureDevTokens.
	TechnicianTokens map[string]string

	// InsecureDevTokens turns on development mode: TechnicianTokens work,
	// and session shells accept a session token in the URL fragment
	// instead of running the OAuth flow. For tests and the local demo
	// only; never in production.
	InsecureDevTokens bool

	// PasswordParams are the argon2id parameters for new password hashes.
	// Zero means authn.DefaultParams.
	PasswordParams authn.Params

	// LoginTTL is how long a browser login lasts. Zero means 12 h.
	LoginTTL time.Duration

	// CodeTTL is how long an OAuth authorization code is valid. Zero
	// means 60 s, the most allowed.
	CodeTTL time.Duration

	// CLITokenTTL is how long the API token that `porthole login` gets
	// lasts. Zero means 30 days.
	CLITokenTTL time.Duration

	// Sign-in throttling (throttle.go): MaxPairFailures failed steps of one
	// account from one source are free, each further one waits 1 s, 2 s, 4 s,
	// … up to LoginWindow; one source may fail MaxAddressFailures times per
	// LoginWindow across accounts; one account MaxAccountFailures times per
	// LoginWindow from sources it never signed in from, after which only its
	// known sources may try (429 with Retry-After). Zero means 3, 20, 10 and
	// 15 min.
	MaxPairFailures    int
	MaxAccountFailures int
	MaxAddressFailures int
	LoginWindow        time.Duration

	// TURNSecret is the secret shared with porthole-turn for TURN REST API
	// credentials. Required when ICEURLs contains turn: or turns: URLs.
	TURNSecret []byte

	// ICEURLs are the stun:, turn: and turns: URLs handed to both peers of
	// every session. TURN URLs get credentials minted per session that
	// expire with it.
	ICEURLs []string

	// TURNRelays are TURN relays in regions: each session is handed the
	// one or two nearest to its agent, by the agent's configured region
	// and the round trips it measured (turncred.Select). Needs TURNSecret.
	TURNRelays []turncred.Relay

	// SessionTTL is how long a session lasts. Zero means MaxSessionTTL
	// (30 min); more than MaxSessionTTL is refused by New.
	SessionTTL time.Duration

	// AgentGrace is how long a live session waits for its agent to
	// reconnect when the agent's connection drops (its data path does not
	// need it) before it ends with agent_lost. Zero means 30 s; negative
	// ends sessions at once.
	AgentGrace time.Duration

	// AuditKey signs the checkpoints of audit logs (package auditlog).
	// Nil means a key that dies with the process: `audit verify` cannot
	// check those checkpoints later.
	AuditKey ed25519.PrivateKey

	// AuditAnchor is the append-only file outside the store that every
	// signed audit head is appended to before an append is acknowledged,
	// and that verification checks the store against (auditlog.Anchor).
	// Nil means none (tests): verification then trusts the store's
	// checkpoints alone. AuditAnchorComplete says it holds every head ever
	// signed (a single node), so a checkpoint it lacks is a forgery; a
	// cluster node's anchor holds only its own.
	AuditAnchor         *auditlog.Anchor
	AuditAnchorComplete bool

	// ClientGrace is how long a session survives without a client
	// connection (a browser reloading) before it ends with client_lost.
	// Zero means 30 s.
	ClientGrace time.Duration

	// AllowedOrigins are the exact origins ("https://app.example.com")
	// whose browser pages may open WebSockets and call the API. Requests
	// without an Origin header come from non-browser clients and are
	// allowed. The app's own origin belongs here if it calls the API.
	AllowedOrigins []string

	// SessionsDomain is the domain under which each session gets its two
	// origins: the session window (the shell) on
	// shell-<session>.<SessionsDomain> and the device's pages on
	// <session>.<SessionsDomain> (origins.go). It must be a registrable
	// domain of its own, not a subdomain of the app's site, so that every
	// session host is same-site with the others and with nothing else:
	// "sessions.localhost:8080" in a demo (localhost alone is a TLD to
	// browsers: every a.localhost would be a site of its own), a
	// "porthole-sessions.example" in production. Empty means sessions have
	// no web origin.
	SessionsDomain string

	// SessionsScheme is the scheme of session origins: "https" (default)
	// or "http" for local demos.
	SessionsScheme string

	// ReadyTimeout is how long POST /v1/sessions waits for the agent to
	// accept. Zero means 10 s.
	ReadyTimeout time.Duration

	// PingInterval and PongWait drive keepalive: a ping every
	// PingInterval, and a connection that sends no pong within PongWait is
	// closed. Zero means 20 s and 30 s; PingInterval must be shorter.
	PingInterval time.Duration
	PongWait     time.Duration

	// MaxQueue is how many messages may wait for one connection before it
	// is disconnected as too slow. Zero means 64.
	MaxQueue int

	// Limits bound the signaling messages of one session and one
	// connection, and share an agent's queue fairly between its sessions
	// (hub.Limits; zero fields mean its defaults).
	Limits hub.Limits

	// Now returns the current time. Nil means time.Now. Timers always run
	// on real durations.
	Now func() time.Time

	// Node names this signaling node in welcome messages.
	Node string

	// Web, if set, serves the app host's non-API paths (the web UI). It is
	// wrapped in cross-origin protection for state-changing requests.
	Web http.Handler

	// ShellWeb, if set, serves the session window's origin
	// (shell-<session>.<SessionsDomain>) of a live session: the shell page
	// for any path, its modules, its bar. The server itself answers the
	// session socket, the OAuth configuration, the callback (with
	// ShellWeb's "/"), the token binding and the wipe there (origins.go).
	// Unknown or ended sessions get 404.
	ShellWeb http.Handler

	// DeviceWeb, if set, serves the device origin (<session>.<SessionsDomain>)
	// of a live session: the service worker, the relay frame, the page shim
	// and notices; and PathSessionEnded whether or not the session is live.
	// It holds nothing secret: the device's page runs there.
	DeviceWeb http.Handler

	// Bus, if set, joins this server to a cluster of signaling nodes
	// (package bus; Redis in production, bus.Network in tests): agents on
	// other nodes are reachable, and sessions they own are served here by
	// asking their node (package cluster). Node must be unique in the cluster.
	// The caller closes the bus after Close. Nil is a single node.
	Bus bus.Bus

	// SSO, if set, is single sign-on with an OpenID Connect provider
	// (signin.go): a button on the sign-in page named SSOName, users
	// created at their first sign-in with roles from their groups.
	SSO     *sso.Provider
	SSOName string

	// NoLocalLogin turns password sign-in off: users sign in with SSO
	// only, and password links are refused.
	NoLocalLogin bool

	// Metrics, if set, gets signaling's Prometheus metrics (package
	// metrics): agents, sessions by state and path, setup times, access-log
	// bytes and HTTP requests by route. Nil exports none.
	Metrics prometheus.Registerer

	// Notify, if set, receives every webhook event (issue 18): the
	// session events this server emits and the approval and policy
	// events. It must not block (webhook.Dispatcher.Notify queues).
	Notify func(ctx context.Context, ev proto.WebhookEvent)
	// Webhooks, if set, serves the webhooks API of sites (webhooks.go):
	// it checks endpoints and sends test events. Nil: no webhooks API.
	Webhooks *webhook.Dispatcher

	// RequestExpiry is how long a technician's approval request waits for
	// a site admin's answer before it expires. Zero means
	// proto.RequestAnswerWithin (10 minutes); at most an hour.
	RequestExpiry time.Duration
}

func (cfg *Config) check() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if cfg.RequestExpiry < 0 || cfg.RequestExpiry > time.Hour {
		fail("request expiry %v is not between 0 and 1h", cfg.RequestExpiry)
	}

	seenKeys := make(map[string]string, len(cfg.AgentKeys))
	for id, key := range cfg.AgentKeys {
		if !proto.ValidID(id) {
			fail("agent ID %q is malformed", id)
		}
		if key == "" {
			fail("agent %q has an empty key", id)
		}
		if other, dup := seenKeys[key]; dup {
			fail("agents %q and %q share a key", other, id)
		}
		seenKeys[key] = id
	}
	if cfg.Store == nil {
		fail("a Store is required")
	}
	if len(cfg.TechnicianTokens) > 0 && !cfg.InsecureDevTokens {
		fail("technician dev tokens need InsecureDevTokens (development mode)")
	}
	if cfg.AppOrigin != "" {
		if err := checkOrigin(cfg.AppOrigin); err != nil {
			fail("app origin: %v", err)
		}
	}
	if cfg.PasswordParams == (authn.Params{}) {
		cfg.PasswordParams = authn.DefaultParams
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.LoginTTL, 12*time.Hour)
	def(&cfg.CodeTTL, 60*time.Second)
	def(&cfg.CLITokenTTL, 30*24*time.Hour)
	def(&cfg.LoginWindow, 15*time.Minute)
	def(&cfg.AgentGrace, 30*time.Second)
	if cfg.CodeTTL < 0 || cfg.CodeTTL > 60*time.Second {
		fail("OAuth code TTL %v outside (0, 60s]", cfg.CodeTTL)
	}
	if cfg.LoginTTL < 0 || cfg.CLITokenTTL < 0 || cfg.LoginWindow < 0 {
		fail("negative duration")
	}
	if cfg.MaxPairFailures == 0 {
		cfg.MaxPairFailures = 3
	}
	if cfg.MaxAccountFailures == 0 {
		cfg.MaxAccountFailures = 10
	}
	if cfg.MaxAddressFailures == 0 {
		cfg.MaxAddressFailures = 20
	}
	for tok, user := range cfg.TechnicianTokens {
		if tok == "" {
			fail("empty technician token for user %q", user)
		}
		if !proto.ValidID(user) {
			fail("user ID %q is malformed", user)
		}
	}
	switch {
	case cfg.SessionTTL < 0 || cfg.SessionTTL > MaxSessionTTL:
		fail("session TTL %v outside (0, %v]", cfg.SessionTTL, MaxSessionTTL)
	case cfg.SessionTTL == 0:
		cfg.SessionTTL = MaxSessionTTL
	}
	for _, d := range []*time.Duration{&cfg.ClientGrace, &cfg.ReadyTimeout, &cfg.PingInterval, &cfg.PongWait} {
		if *d < 0 {
			fail("negative duration %v", *d)
		}
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = 20 * time.Second
	}
	if cfg.PongWait == 0 {
		cfg.PongWait = 30 * time.Second
	}
	if cfg.PingInterval >= cfg.PongWait {
		fail("ping interval %v must be shorter than pong wait %v", cfg.PingInterval, cfg.PongWait)
	}
	if cfg.MaxQueue < 0 {
		fail("negative MaxQueue")
	}
	for _, o := range cfg.AllowedOrigins {
		if err := checkOrigin(o); err != nil {
			errs = append(errs, err)
		}
	}
	switch cfg.SessionsScheme {
	case "":
		cfg.SessionsScheme = "https"
	case "http", "https":
	default:
		fail("sessions scheme %q must be http or https", cfg.SessionsScheme)
	}
	cfg.SessionsDomain = strings.ToLower(cfg.SessionsDomain)
	if d := cfg.SessionsDomain; d != "" {
		if err := checkOrigin(cfg.SessionsScheme + "://x." + d); err != nil {
			fail("sessions domain %q is not a host[:port]", d)
		}
		if cfg.AppOrigin == "" {
			fail("an app origin is required with a sessions domain: it authorizes the session origins")
		}
	}
	if cfg.NoLocalLogin && cfg.SSO == nil {
		fail("local sign-in is off and there is no single sign-on: nobody could sign in")
	}
	if cfg.SSO != nil && cfg.SSOName == "" {
		cfg.SSOName = "single sign-on"
	}
	if len(cfg.Node) > proto.MaxText {
		fail("node name too long")
	}
	return errors.Join(errs...)
}

// checkOrigin accepts exactly scheme://host[:port] in lower case.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" ||
		u.Scheme+"://"+u.Host != o || strings.ToLower(o) != o {
		return fmt.Errorf("origin %q must be exactly scheme://host[:port] in lower case", o)
	}
	return nil
}
