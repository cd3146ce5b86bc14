// Package preflight checks a signaling server's configuration as a whole
// before it starts, and says what is half-configured: no TLS where the
// network can see the server, session origins that would share a site
// with the app or with each other, no TURN relay, development switches on
// a public server, a certificate that does not cover the names browsers
// will ask for.
//
// Check is pure: it reads the certificate file it is given and nothing
// else, so `porthole-signaling config check` and the server's own start
// give the same findings. A finding at Refuse stops the server; Warn is
// logged loudly and the server starts.
package preflight

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"
)

// Level is how serious a finding is.
type Level int

// Levels.
const (
	Info Level = iota
	Warn
	Refuse
)

func (l Level) String() string {
	switch l {
	case Refuse:
		return "REFUSE"
	case Warn:
		return "WARN"
	}
	return "ok"
}

// Finding is one thing Check found, naming the setting to change.
type Finding struct {
	Level   Level
	Setting string
	Message string
}

func (f Finding) String() string {
	if f.Setting == "" {
		return fmt.Sprintf("%-6s %s", f.Level, f.Message)
	}
	return fmt.Sprintf("%-6s %s: %s", f.Level, f.Setting, f.Message)
}

// Config is what Check looks at: the server's settings, by their flag
// names in the comments.
type Config struct {
	Listen         string   // listen
	TLSCertFile    string   // tls-cert: the server terminates TLS itself
	TLSKeyFile     string   // tls-key
	AppOrigin      string   // app-origin
	SessionsDomain string   // sessions-domain
	SessionsScheme string   // sessions-scheme ("" means https)
	ICEURLs        []string // ice-url
	TURNRelays     int      // turn-relay (how many)
	TURNSecret     bool     // turn-secret or turn-secret-file is set
	DevTokens      bool     // insecure-dev-tokens
	AgentListen    string   // agent-listen
	LocalLogin     bool     // local-login
	OIDCIssuer     string   // oidc-issuer
	OIDCClientID   string   // oidc-client-id
	// Now is the time certificates are checked at; zero means time.Now.
	Now time.Time
}

// Check returns every finding about cfg, most serious first within each
// topic.
func Check(cfg Config) []Finding {
	c := &checker{cfg: cfg, now: cfg.Now}
	if c.now.IsZero() {
		c.now = time.Now()
	}
	c.origin()
	c.sessions()
	c.certificate()
	c.turn()
	c.accounts()
	return c.out
}

// Err joins the Refuse findings into one error, nil if there are none.
func Err(fs []Finding) error {
	var errs []error
	for _, f := range fs {
		if f.Level == Refuse {
			errs = append(errs, errors.New(f.String()))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("the configuration is refused (run `porthole-signaling config check` to see every finding):\n%w", errors.Join(errs...))
}

type checker struct {
	cfg     Config
	now     time.Time
	out     []Finding
	appHost string // the app origin's host without port
	public  bool   // the app is meant for the network, not this machine
}

func (c *checker) add(l Level, setting, format string, args ...any) {
	c.out = append(c.out, Finding{Level: l, Setting: setting, Message: fmt.Sprintf(format, args...)})
}

// local reports whether host can never be a public server's name: a
// loopback address, localhost or a name under .localhost, or a name under
// .test, which RFC 6761 (6.2) reserves for testing and no public resolver
// answers (the NAT lab's servers use it).
func local(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || host == "test" || strings.HasSuffix(host, ".test") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

func (c *checker) listensOnNetwork() bool {
	h := hostOnly(c.cfg.Listen)
	return h == "" || !local(h)
}

func (c *checker) origin() {
	cfg := c.cfg
	tlsHere := cfg.TLSCertFile != ""
	if cfg.AppOrigin == "" {
		if c.listensOnNetwork() {
			c.add(Refuse, "app-origin", "not set, and the server listens on %s: set the address browsers use, e.g. https://porthole.example.com", cfg.Listen)
		} else {
			c.add(Warn, "app-origin", "not set: no web app, no browser sign-in, no session origins (API and CLI only)")
		}
		return
	}
	u, err := url.Parse(cfg.AppOrigin)
	if err != nil || u.Host == "" {
		c.add(Refuse, "app-origin", "%q is not an origin like https://porthole.example.com", cfg.AppOrigin)
		return
	}
	c.appHost = u.Hostname()
	c.public = !local(c.appHost)
	switch {
	case u.Scheme == "http" && c.public:
		c.add(Refuse, "app-origin", "%s is plain HTTP on a public name: passwords and session tokens would cross the network unencrypted; use https:// with a certificate (tls-cert and tls-key) or a TLS proxy in front", cfg.AppOrigin)
	case u.Scheme == "http" && c.listensOnNetwork():
		c.add(Warn, "listen", "%s is reachable from the network without TLS while the app origin is %s; listen on 127.0.0.1 for a local demo", cfg.Listen, cfg.AppOrigin)
	case u.Scheme == "https" && !tlsHere:
		c.add(Info, "tls-cert", "not set: TLS for %s must be terminated in front of this server (Caddy, a load balancer); it listens for plain HTTP on %s", cfg.AppOrigin, cfg.Listen)
	case u.Scheme == "https" && tlsHere:
		c.add(Info, "tls-cert", "this server terminates TLS for %s itself", cfg.AppOrigin)
	}
	if cfg.DevTokens && c.public {
		c.add(Refuse, "insecure-dev-tokens", "development tokens are on for a public server (%s): anyone with a token in a URL is an admin; turn it off", cfg.AppOrigin)
	} else if cfg.DevTokens {
		c.add(Warn, "insecure-dev-tokens", "development mode: dev technician tokens and #token= session links are accepted (local demo only)")
	}
}

func (c *checker) sessions() {
	cfg := c.cfg
	d := strings.ToLower(hostOnly(cfg.SessionsDomain))
	if d == "" {
		c.add(Warn, "sessions-domain", "not set: browsers cannot open devices (the CLI still can); set a domain of its own, e.g. porthole-sessions.example, with a wildcard DNS record and certificate *.porthole-sessions.example")
		return
	}
	level := Refuse
	if local(d) {
		level = Warn // a demo on this machine: say it, start anyway
	}
	if net.ParseIP(strings.Trim(d, "[]")) != nil {
		c.add(Refuse, "sessions-domain", "%q is an address; session origins are names under it (<id>.%s), so it must be a domain", d, d)
		return
	}
	scheme := cfg.SessionsScheme
	if scheme == "" {
		scheme = "https"
	}
	if scheme == "http" && !local(d) {
		c.add(Refuse, "sessions-scheme", "http for the public sessions domain %s: device pages and session tokens would cross the network unencrypted", d)
	}
	// Each session has two origins, shell-<id>.D and <id>.D, which must be
	// the same site as each other (the relay between them needs one
	// storage partition) and another site than the app (cookies and
	// SameSite work per site, so a device page on a sibling of the app's
	// host could send the app's Lax cookies).
	suffix, _ := publicsuffix.PublicSuffix(d)
	if suffix == d {
		c.add(level, "sessions-domain", "%s is a public suffix: every host under it (shell-<id>.%s, <id>.%s) is a site of its own, and a session's two origins could not share a storage partition; use a registrable domain such as porthole-sessions.example", d, d, d)
		return
	}
	site, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		c.add(level, "sessions-domain", "%s: %v", d, err)
		return
	}
	if c.appHost != "" {
		appSite, err := publicsuffix.EffectiveTLDPlusOne(c.appHost)
		if err == nil && appSite == site {
			c.add(level, "sessions-domain", "%s is under %s, the same registrable domain as the app (%s): device pages would be same-site with the app and could send its cookies; use a registrable domain of its own, e.g. %s", d, site, c.appHost, suggest(site))
			return
		}
		if c.appHost == d || strings.HasSuffix(c.appHost, "."+d) {
			c.add(level, "sessions-domain", "the app's host %s is under the sessions domain %s; use separate domains", c.appHost, d)
			return
		}
	}
	if site != d {
		c.add(Warn, "sessions-domain", "%s is a subdomain of %s: every other host under %s is same-site with every device page; a registrable domain of its own (%s) is safer", d, site, site, site)
	}
	c.add(Info, "sessions-domain", "session origins are shell-<id>.%s and <id>.%s: they need a wildcard DNS record and a wildcard certificate for *.%s", d, d, d)
}

func suggest(site string) string {
	label, rest, _ := strings.Cut(site, ".")
	return label + "-sessions." + rest
}

func (c *checker) certificate() {
	cfg := c.cfg
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		c.add(Refuse, "tls-cert", "tls-cert and tls-key go together")
		return
	}
	if cfg.TLSCertFile == "" {
		return
	}
	pair, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		c.add(Refuse, "tls-cert", "%v", err)
		return
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			c.add(Refuse, "tls-cert", "%s: %v", cfg.TLSCertFile, err)
			return
		}
	}
	names := []string{}
	if c.appHost != "" {
		names = append(names, c.appHost)
	}
	if d := hostOnly(cfg.SessionsDomain); d != "" {
		// A session's origins are single labels under D.
		names = append(names, "shell-abc123."+d, "abc123."+d)
	}
	for _, n := range names {
		if err := leaf.VerifyHostname(n); err != nil {
			want := n
			if strings.HasPrefix(n, "abc123.") || strings.HasPrefix(n, "shell-abc123.") {
				want = "*." + hostOnly(cfg.SessionsDomain)
			}
			c.add(Refuse, "tls-cert", "%s does not cover %s (it names %s): browsers would refuse the connection; get a certificate for %s", cfg.TLSCertFile, want, strings.Join(leaf.DNSNames, ", "), want)
		}
	}
	switch left := leaf.NotAfter.Sub(c.now); {
	case left <= 0:
		c.add(Refuse, "tls-cert", "%s expired on %s", cfg.TLSCertFile, leaf.NotAfter.Format(time.DateOnly))
	case left < 14*24*time.Hour:
		c.add(Warn, "tls-cert", "%s expires in %d days (%s); the server reloads the files when they change, so renew them in place", cfg.TLSCertFile, int(left.Hours()/24), leaf.NotAfter.Format(time.DateOnly))
	}
}

func (c *checker) turn() {
	cfg := c.cfg
	turn := cfg.TURNRelays > 0
	for _, u := range cfg.ICEURLs {
		if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
			turn = true
		}
	}
	switch {
	case turn && !cfg.TURNSecret:
		c.add(Refuse, "turn-secret", "TURN URLs are configured but no secret shared with porthole-turn: set turn-secret-file (or PORTHOLE_TURN_SECRET)")
	case !turn && c.public:
		c.add(Warn, "ice-url", "no TURN relay (turn: or turns: URL, or turn-relay): technicians behind symmetric NATs, or sites that block UDP, cannot connect at all; run porthole-turn and add turn:HOST:3478 and turn:HOST:443?transport=tcp")
	case !turn:
		c.add(Warn, "ice-url", "no TURN relay: only direct connections work (fine for a demo on one machine)")
	}
}

func (c *checker) accounts() {
	cfg := c.cfg
	if !cfg.LocalLogin && cfg.OIDCIssuer == "" {
		c.add(Refuse, "local-login", "local accounts are off and no single sign-on is configured (oidc-issuer): nobody could sign in")
	}
	if cfg.OIDCIssuer != "" {
		u, err := url.Parse(cfg.OIDCIssuer)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			c.add(Refuse, "oidc-issuer", "%q is not an issuer URL like https://login.example.com/realms/acme", cfg.OIDCIssuer)
		case u.Scheme == "http" && !local(u.Hostname()):
			c.add(Refuse, "oidc-issuer", "%s is plain HTTP: ID tokens and codes would cross the network unencrypted", cfg.OIDCIssuer)
		}
		if cfg.OIDCClientID == "" {
			c.add(Refuse, "oidc-client-id", "single sign-on needs the client ID registered at %s", cfg.OIDCIssuer)
		}
		if c.cfg.AppOrigin != "" {
			c.add(Info, "oidc-issuer", "register the redirect URI %s/v1/sso/callback at the identity provider", strings.TrimSuffix(c.cfg.AppOrigin, "/"))
		}
	}
	if cfg.AgentListen == "" && c.public {
		c.add(Warn, "agent-listen", "not set: agents cannot enroll or connect with certificates, only with pre-shared keys (agent-key, a demo mechanism)")
	}
}
