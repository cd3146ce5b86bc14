// Package enroll is agent enrollment and agent authentication on the
// signaling side: enrollment tokens (single use, expiring, stored hashed),
// issuing certificates from the internal CA against a token or, for
// renewal, against the agent's current certificate, revocation, and the
// checks every agent handshake passes.
//
// Agents reach signaling on a listener of their own (AgentTLSConfig):
// TLS 1.3 with a client certificate required and verified against the
// internal CA, and the store consulted on every handshake, so a revoked
// agent or a replaced certificate is refused at once. The listener's own
// certificate is issued by the same CA, which agents trust from
// enrollment, so it needs no public PKI and can sit behind a TCP (not
// HTTP) load balancer. Browsers never see it: the app's listener keeps
// whatever TLS its operator gives it.
//
// The server package mounts the admin endpoints (with its role checks) and
// drops a revoked agent's live connection; this package keeps the state.
package enroll

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/accounts"
	"github.com/porthole-dev/porthole/signaling/ca"
	"github.com/porthole-dev/porthole/signaling/store"
)

// TokenPrefix starts every enrollment token, so a leaked one is
// recognisable in logs and by secret scanners.
const TokenPrefix = "phe_"

// Errors, wrapped with detail. They map to proto codes in the handlers.
var (
	ErrBadToken  = errors.New("enrollment token unknown, used or expired")
	ErrNoSite    = errors.New("no such site")
	ErrRevoked   = errors.New("agent revoked")
	ErrUnknown   = errors.New("agent not enrolled")
	ErrStale     = errors.New("certificate replaced by a newer one")
	ErrWrongSite = errors.New("certificate names another site than the agent's")
)

// Config configures a Service.
type Config struct {
	CA *ca.CA
	// PKI keeps tokens and certificate state; Store keeps sites, agent
	// records and the audit log. Usually one backend implements both.
	PKI   store.PKI
	Store store.Store
	// AgentURL is the wss:// URL of the agent listener, handed to agents
	// at enrollment.
	AgentURL string
	Logger   *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// RenewGrace is how long after its certificate expired an agent may
	// still renew it (grace.go); zero turns renewal after expiry off.
	RenewGrace time.Duration
}

// Service enrolls and authenticates agents.
type Service struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
}

// New checks cfg. It does no I/O.
func New(cfg Config) (*Service, error) {
	if cfg.CA == nil || cfg.PKI == nil || cfg.Store == nil {
		return nil, errors.New("enroll: CA, PKI and Store are required")
	}
	if !strings.HasPrefix(cfg.AgentURL, "wss://") {
		return nil, fmt.Errorf("enroll: agent URL %q must be wss://", cfg.AgentURL)
	}
	if cfg.RenewGrace < 0 {
		return nil, errors.New("enroll: negative renewal grace")
	}
	s := &Service{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// CA returns the service's certificate authority.
func (s *Service) CA() *ca.CA { return s.cfg.CA }

func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// CreateToken makes a single-use enrollment token for a site and returns
// it; only its hash is stored.
func (s *Service) CreateToken(ctx context.Context, actor string, req *proto.NewEnrollment) (*proto.CreatedEnrollment, error) {
	res, err := CreateToken(ctx, s.cfg.PKI, s.cfg.Store, s.now(), actor, req)
	if err != nil {
		return nil, err
	}
	s.log.Info("enrollment token created", "agent", res.Agent, "site", res.Site, "by", actor, "expires", res.Expires)
	return res, nil
}

// CreateToken is Service.CreateToken without a running service, for the
// offline admin command: it needs only the store.
func CreateToken(ctx context.Context, pki store.PKI, st store.Store, now time.Time, actor string, req *proto.NewEnrollment) (*proto.CreatedEnrollment, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if _, err := st.Site(ctx, req.Site); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("site %q: %w", req.Site, ErrNoSite)
		}
		return nil, err
	}
	agent := req.Agent
	if agent == "" {
		agent = "agent-" + strings.ToLower(rand.Text()[:10])
	}
	ttl := time.Duration(req.ExpiresIn) * time.Second
	if ttl == 0 {
		ttl = proto.DefaultEnrollmentTTL
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	tok := TokenPrefix + base64.RawURLEncoding.EncodeToString(secret)
	t := &store.EnrollToken{Hash: hashToken(tok), Site: req.Site, Agent: agent, Name: req.Name,
		CreatedBy: actor, Created: now, Expires: now.Add(ttl)}
	if err := pki.PutEnrollToken(ctx, t); err != nil {
		return nil, err
	}
	_, err := st.AppendAudit(ctx, accounts.AuditStream, &store.AuditEntry{Time: now, Actor: actor,
		Action: "agent.enrollment.create", Target: agent, Site: req.Site,
		Detail: map[string]string{"expires": t.Expires.UTC().Format(time.RFC3339)}})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return &proto.CreatedEnrollment{Token: tok, Site: req.Site, Agent: agent, Expires: t.Expires}, nil
}

// Enroll consumes a token and issues the agent's first certificate. The
// token is gone afterwards whatever happens next.
func (s *Service) Enroll(ctx context.Context, req *proto.EnrollRequest) (*proto.EnrollResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	t, err := s.cfg.PKI.ConsumeEnrollToken(ctx, hashToken(req.Token))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrBadToken
		}
		return nil, err
	}
	if _, err := s.cfg.Store.Site(ctx, t.Site); err != nil {
		return nil, fmt.Errorf("site %q: %w", t.Site, ErrNoSite) // deleted since the token was made
	}
	cert, err := s.cfg.CA.IssueAgent([]byte(req.CSR), t.Agent, t.Site)
	if err != nil {
		return nil, err
	}
	serial := cert.SerialNumber.Text(16)
	now := s.now()
	if _, err := s.cfg.PKI.UpdateAgentCert(ctx, t.Agent, func(c *store.AgentCert) error {
		// A fresh enrollment replaces every earlier certificate and lifts
		// an earlier revocation: the admin issued a new token for it.
		*c = store.AgentCert{Agent: t.Agent, Site: t.Site, Serial: serial, Expires: cert.NotAfter, Enrolled: now}
		return nil
	}); err != nil {
		return nil, err
	}
	rec := &store.Agent{ID: t.Agent, Name: t.Name, Site: t.Site, Updated: now}
	if old, err := s.cfg.Store.Agent(ctx, t.Agent); err == nil && rec.Name == "" {
		rec.Name = old.Name
	}
	if err := s.cfg.Store.PutAgent(ctx, rec); err != nil {
		return nil, err
	}
	s.audit(ctx, "system", "agent.enroll", t.Agent, t.Site, map[string]string{"serial": serial, "token_by": t.CreatedBy})
	s.log.Info("agent enrolled", "agent", t.Agent, "site", t.Site, "serial", serial, "expires", cert.NotAfter)
	return s.result(t.Agent, t.Site, cert), nil
}

func (s *Service) result(agent, site string, cert *x509.Certificate) *proto.EnrollResult {
	return &proto.EnrollResult{
		Agent:       agent,
		Site:        site,
		Certificate: string(ca.PEM(cert)),
		CA:          string(s.cfg.CA.CertPEM()),
		GrantKey:    base64.StdEncoding.EncodeToString(s.cfg.CA.GrantPublicKey()),
		AgentURL:    s.cfg.AgentURL,
		Expires:     cert.NotAfter,
	}
}

// Authenticate checks an agent's verified client certificate against the
// store: the agent is enrolled, not revoked, the certificate is its
// current (or just renewed) one, and it names the agent's site.
func (s *Service) Authenticate(ctx context.Context, cert *x509.Certificate) (ca.Identity, error) {
	id, err := s.cfg.CA.Verify(cert)
	if err != nil {
		return ca.Identity{}, err
	}
	rec, err := s.cfg.PKI.AgentCert(ctx, id.Agent)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return id, fmt.Errorf("agent %s: %w", id.Agent, ErrUnknown)
	case err != nil:
		return id, err
	case rec.Revoked:
		return id, fmt.Errorf("agent %s: %w", id.Agent, ErrRevoked)
	case rec.Site != id.Site:
		return id, fmt.Errorf("agent %s on %s: %w", id.Agent, id.Site, ErrWrongSite)
	case !rec.Good(id.Serial):
		return id, fmt.Errorf("agent %s serial %s: %w", id.Agent, id.Serial, ErrStale)
	}
	return id, nil
}

// Renew issues a new certificate to an authenticated agent. The one it
// replaces stays good until it expires (the agent's live connection uses
// it); the one before that is dropped.
func (s *Service) Renew(ctx context.Context, id ca.Identity, req *proto.RenewRequest) (*proto.EnrollResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	cert, err := s.cfg.CA.IssueAgent([]byte(req.CSR), id.Agent, id.Site)
	if err != nil {
		return nil, err
	}
	serial := cert.SerialNumber.Text(16)
	_, err = s.cfg.PKI.UpdateAgentCert(ctx, id.Agent, func(c *store.AgentCert) error {
		// Re-check under the store's lock: a revocation or re-enrollment
		// may have happened since the handshake.
		if c.Revoked {
			return ErrRevoked
		}
		if !c.Good(id.Serial) || c.Site != id.Site {
			return ErrStale
		}
		// An expired certificate renews only if it is still the newest
		// (grace.go): the second of two copies is refused.
		if s.now().After(id.NotAfter) && c.Serial != id.Serial {
			return ErrReplaced
		}
		c.PrevSerial, c.Serial, c.Expires, c.Renewed = id.Serial, serial, cert.NotAfter, s.now()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("renew agent %s: %w", id.Agent, err)
	}
	s.log.Info("agent certificate renewed", "agent", id.Agent, "site", id.Site, "serial", serial, "expires", cert.NotAfter)
	return s.result(id.Agent, id.Site, cert), nil
}

// Revoke marks an agent revoked: every certificate of it is refused from
// now on. The caller drops its live connection.
func (s *Service) Revoke(ctx context.Context, actor, agent string) error {
	if !proto.ValidID(agent) {
		return fmt.Errorf("agent %q: %w", agent, ErrUnknown)
	}
	if _, err := s.cfg.PKI.AgentCert(ctx, agent); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("agent %s: %w", agent, ErrUnknown)
		}
		return err
	}
	rec, err := s.cfg.PKI.UpdateAgentCert(ctx, agent, func(c *store.AgentCert) error {
		if !c.Revoked {
			c.Revoked, c.RevokedAt, c.RevokedBy = true, s.now(), actor
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.audit(ctx, actor, "agent.revoke", agent, rec.Site, nil)
	s.log.Info("agent revoked", "agent", agent, "site", rec.Site, "by", actor)
	return nil
}

func (s *Service) audit(ctx context.Context, actor, action, target, site string, detail map[string]string) {
	_, err := s.cfg.Store.AppendAudit(ctx, accounts.AuditStream, &store.AuditEntry{
		Time: s.now(), Actor: actor, Action: action, Target: target, Site: site, Detail: detail})
	if err != nil {
		s.log.Error("audit failed", "action", action, "agent", target, "err", err)
	}
}

// GrantSigner returns a function that signs a session's grant, for the
// hub: it sets the issue time and signs what it is given.
func (s *Service) GrantSigner() func(g *proto.Grant) (string, error) {
	return func(g *proto.Grant) (string, error) {
		g.IssuedAt = s.now().Unix()
		return s.cfg.CA.SignGrant(g)
	}
}

// AgentTLSConfig is the TLS configuration of the agent listener: TLS 1.3,
// a client certificate from the internal CA required, and Authenticate
// run on every handshake. hosts are the listener's names or addresses for
// its own certificate.
func (s *Service) AgentTLSConfig(hosts []string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		Time:       s.now,
		// A certificate is required, and verified below rather than by
		// crypto/tls, so that an expired one within the renewal grace can
		// reach the renewal endpoint (grace.go). crypto/tls still checks
		// the CertificateVerify signature: the client holds the key.
		ClientAuth:     tls.RequireAnyClientCert,
		ClientCAs:      s.cfg.CA.Pool(), // named in the certificate request
		GetCertificate: s.cfg.CA.ServerCertificate(hosts),
		NextProtos:     []string{"http/1.1"}, // WebSockets need HTTP/1.1
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("client certificate required")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			id, _, err := s.handshakeIdentity(ctx, cs.PeerCertificates[0])
			if err != nil {
				s.log.Info("agent handshake refused", "agent", id.Agent, "site", id.Site, "err", err)
			}
			return err
		},
	}
}
