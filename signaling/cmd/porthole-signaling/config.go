package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/internal/settings"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/ca"
	"github.com/porthole-dev/porthole/signaling/enroll"
	"github.com/porthole-dev/porthole/signaling/preflight"
	"github.com/porthole-dev/porthole/signaling/sso"
	"github.com/porthole-dev/porthole/signaling/webhook"
)

// EnvPrefix starts the environment variable of every setting:
// --data-dir is PORTHOLE_DATA_DIR.
const EnvPrefix = "PORTHOLE"

const configUsage = `usage: porthole-signaling config check [--config FILE] [flags]

Reads the settings exactly as the server would (flags, then PORTHOLE_*
environment variables, then the file), prints each with where it came
from (secrets redacted), and the preflight findings. Exits 1 if the server
would refuse to start.
`

// prodFlags are the settings of a production install that main.go's
// list does not hold: single sign-on, local accounts, agent renewal.
type prodFlags struct {
	localLogin        bool
	oidcIssuer        string
	oidcClientID      string
	oidcSecret        string
	oidcSecretFile    string
	oidcName          string
	oidcGroupsClaim   string
	oidcUserClaim     string
	oidcGroupRoles    list
	oidcScopes        string
	agentRenewGrace   time.Duration
	agentCertLifetime time.Duration
	webhookPrivate    bool
	webhookRetry      time.Duration
}

// productionFlags defines the production settings on fs.
func productionFlags(fs *flag.FlagSet) *prodFlags {
	p := &prodFlags{}
	fs.BoolVar(&p.localLogin, "local-login", true, "accept user name and password sign-in (false: single sign-on only)")
	fs.StringVar(&p.oidcIssuer, "oidc-issuer", "", "OpenID Connect issuer URL of the identity provider (turns on single sign-on)")
	fs.StringVar(&p.oidcClientID, "oidc-client-id", "", "client ID registered at the identity provider")
	fs.StringVar(&p.oidcSecret, "oidc-client-secret", "", "client secret (prefer oidc-client-secret-file or the environment)")
	fs.StringVar(&p.oidcSecretFile, "oidc-client-secret-file", "", "file holding the client secret")
	fs.StringVar(&p.oidcName, "oidc-name", "single sign-on", "what the sign-in button calls the identity provider (\"Sign in with …\")")
	fs.StringVar(&p.oidcGroupsClaim, "oidc-groups-claim", "groups", "ID token claim listing the user's groups")
	fs.StringVar(&p.oidcUserClaim, "oidc-username-claim", "preferred_username", "ID token claim that becomes the user name (else email)")
	fs.StringVar(&p.oidcScopes, "oidc-scopes", "", "scopes to ask for besides openid, profile and email, e.g. groups")
	fs.Var(&p.oidcGroupRoles, "oidc-group-role", "GROUP=admin or GROUP=SITE:ROLE[+ROLE]: members of the IdP group get that role (repeatable)")
	fs.DurationVar(&p.agentCertLifetime, "agent-cert-lifetime", ca.DefaultCertTTL, "lifetime of the agents' certificates; they renew two thirds into it")
	fs.DurationVar(&p.agentRenewGrace, "agent-renew-grace", enroll.DefaultRenewGrace, "how long after its certificate expired an agent may still renew it (proving its key) instead of re-enrolling; 0 turns it off")
	fs.BoolVar(&p.webhookPrivate, "webhook-allow-private", false, "let webhook endpoints be loopback, private or link-local addresses, and plain http to loopback (tests and development only: otherwise a site admin could make signaling call its internal network)")
	fs.DurationVar(&p.webhookRetry, "webhook-retry-delay", webhook.DefaultBaseDelay, "wait before a failed webhook delivery's first retry; it doubles with each attempt (with jitter), up to 10 minutes, for 6 attempts")
	return p
}

// ssoProvider is single sign-on as configured, nil without oidc-issuer.
func (p *prodFlags) ssoProvider(appOrigin string, log *slog.Logger) (*sso.Provider, error) {
	if p.oidcIssuer == "" {
		return nil, nil
	}
	secret := p.oidcSecret
	if p.oidcSecretFile != "" {
		b, err := os.ReadFile(p.oidcSecretFile)
		if err != nil {
			return nil, fmt.Errorf("--oidc-client-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	var groups []sso.GroupRole
	for _, v := range p.oidcGroupRoles {
		g, err := sso.ParseGroupRole(v)
		if err != nil {
			return nil, fmt.Errorf("--oidc-group-role: %w", err)
		}
		groups = append(groups, g)
	}
	var scopes []string
	if p.oidcScopes != "" {
		scopes = strings.Fields(strings.ReplaceAll(p.oidcScopes, ",", " "))
	}
	return sso.New(sso.Config{
		Issuer: p.oidcIssuer, ClientID: p.oidcClientID, ClientSecret: secret,
		RedirectURL: appOrigin + proto.PathSSOCallback, Scopes: scopes,
		GroupsClaim: p.oidcGroupsClaim, UsernameClaim: p.oidcUserClaim, Groups: groups, Logger: log,
	})
}

// secretSetting says which settings Report must not print.
func secretSetting(name string) bool {
	switch name {
	case "turn-secret", "oidc-client-secret", "agent-key", "tech-token":
		return true
	}
	return false
}

func parseSettings(fs *flag.FlagSet, args []string, checkOnly bool) (*settings.Parsed, error) {
	if checkOnly {
		fs.Usage = func() { fmt.Fprint(os.Stderr, configUsage); fs.PrintDefaults() }
	}
	return settings.Parse(fs, args, settings.Options{EnvPrefix: EnvPrefix, Secret: secretSetting})
}

// printCheck is `config check`: the settings, then the findings.
func printCheck(w io.Writer, p *settings.Parsed, findings []preflight.Finding) error {
	if p.File != "" {
		fmt.Fprintf(w, "# settings (configuration file %s)\n", p.File)
	} else {
		fmt.Fprintln(w, "# settings (no configuration file)")
	}
	p.Report(w)
	fmt.Fprintln(w, "\n# preflight")
	for _, f := range findings {
		fmt.Fprintln(w, "#", f)
	}
	if err := preflight.Err(findings); err != nil {
		return errors.New("the server would refuse to start with this configuration")
	}
	fmt.Fprintln(w, "# the server would start with this configuration")
	return nil
}

// logFindings logs every finding, a refusal as an error, and returns the
// refusals.
func logFindings(log *slog.Logger, findings []preflight.Finding) error {
	for _, f := range findings {
		switch f.Level {
		case preflight.Refuse:
			log.Error("configuration refused", "setting", f.Setting, "problem", f.Message)
		case preflight.Warn:
			log.Warn(strings.ToUpper("configuration incomplete"), "setting", f.Setting, "problem", f.Message)
		default:
			log.Info("configuration", "setting", f.Setting, "note", f.Message)
		}
	}
	return preflight.Err(findings)
}
