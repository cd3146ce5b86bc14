package enroll

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/porthole-dev/porthole/signaling/ca"
	"github.com/porthole-dev/porthole/signaling/store"
)

// Renewal after expiry.
//
// An agent that was offline for longer than its certificate's life (a
// site shut for the holidays, a machine in a cupboard) comes back with an
// expired certificate. Within Config.RenewGrace it may still renew it,
// without a new enrollment token, and only renew it: the agent listener's
// handshake accepts an expired certificate of the CA (its chain checked as
// of its own NotAfter), which proves the agent holds the certificate's key
// (TLS 1.3 CertificateVerify signs the fresh handshake), and then
//
//   - the agent socket refuses it (ErrExpired): no sessions on it;
//   - a renewal needs the store to say the agent is enrolled, not revoked,
//     of the same site, and that this is its newest certificate, not the
//     one an earlier renewal replaced (ErrReplaced); so a copy of the
//     agent's state directory can come back at most once, and if the copy
//     renews first, the real agent's next renewal is refused and says so;
//   - it must be no more than RenewGrace past its expiry (ErrTooOld);
//   - every such renewal, and every refusal of one, is an audit line
//     (agent.renew.expired, agent.renew.refused) with how long the
//     certificate had been expired and from where it came.
//
// What a stolen disk gives a thief is what it gave them before the
// certificate expired, no more: the key and certificate of an agent an
// admin can revoke (Admin → Agents), which ends both; after RenewGrace
// without a renewal the disk is worthless.
//
// Known limit: an agent cut off between signaling's answer to a renewal
// and saving the new certificate keeps the one that renewal replaced; if
// it then stays off past that certificate's expiry, the store cannot tell
// it from a copy and it must be enrolled again (ErrReplaced says so).

// Errors of renewal after expiry.
var (
	ErrExpired  = errors.New("certificate expired: renew it first (POST /v1/agent/renew)")
	ErrTooOld   = errors.New("certificate expired longer ago than the renewal grace: enroll the agent again")
	ErrReplaced = errors.New("certificate expired and already replaced by a renewal (another copy of this agent renewed it): enroll the agent again")
)

// DefaultRenewGrace is how long after expiry a certificate may renew.
const DefaultRenewGrace = 30 * 24 * time.Hour

// verifyExpired checks an expired certificate as of its own expiry: the
// CA issued it, for client authentication, and it expired no longer than
// grace ago. It returns the agent's identity and how long ago it expired.
func (s *Service) verifyExpired(cert *x509.Certificate) (ca.Identity, time.Duration, error) {
	late := s.now().Sub(cert.NotAfter)
	if late <= 0 {
		return ca.Identity{}, 0, errors.New("not expired")
	}
	id, err := s.cfg.CA.VerifyAt(cert, cert.NotAfter)
	if err != nil {
		return id, late, err
	}
	if s.cfg.RenewGrace <= 0 || late > s.cfg.RenewGrace {
		return id, late, fmt.Errorf("agent %s, expired %s ago: %w", id.Agent, late.Round(time.Second), ErrTooOld)
	}
	return id, late, nil
}

// authenticateExpired is Authenticate for an expired certificate: the
// store's checks, and it must be the newest certificate of the agent.
func (s *Service) authenticateExpired(ctx context.Context, cert *x509.Certificate) (ca.Identity, time.Duration, error) {
	id, late, err := s.verifyExpired(cert)
	if err != nil {
		return id, late, err
	}
	rec, err := s.cfg.PKI.AgentCert(ctx, id.Agent)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return id, late, fmt.Errorf("agent %s: %w", id.Agent, ErrUnknown)
	case err != nil:
		return id, late, err
	case rec.Revoked:
		return id, late, fmt.Errorf("agent %s: %w", id.Agent, ErrRevoked)
	case rec.Site != id.Site:
		return id, late, fmt.Errorf("agent %s on %s: %w", id.Agent, id.Site, ErrWrongSite)
	case rec.Serial != id.Serial:
		return id, late, fmt.Errorf("agent %s serial %s: %w", id.Agent, id.Serial, ErrReplaced)
	}
	return id, late, nil
}

// handshakeIdentity is what the agent listener's handshake accepts: a
// current certificate (Authenticate), or an expired one of the CA within
// the grace, which only the renewal endpoint serves; the store's checks
// of it are made there, so that a refusal is an audit line.
func (s *Service) handshakeIdentity(ctx context.Context, cert *x509.Certificate) (ca.Identity, bool, error) {
	if !s.now().After(cert.NotAfter) {
		id, err := s.Authenticate(ctx, cert)
		return id, false, err
	}
	id, _, err := s.verifyExpired(cert)
	return id, true, err
}

// renewExpired serves POST PathAgentRenew for an expired certificate.
func (s *Service) renewExpired(w http.ResponseWriter, r *http.Request, cert *x509.Certificate) (ca.Identity, bool) {
	id, late, err := s.authenticateExpired(r.Context(), cert)
	detail := map[string]string{"serial": id.Serial, "expiredFor": late.Round(time.Second).String(), "remote": r.RemoteAddr}
	if err != nil {
		// One audit line per certificate and hour: a refused copy that
		// retries every minute must not flood the log.
		if n, aerr := s.cfg.Store.Attempt(r.Context(), "renew-refused:"+id.Agent+":"+id.Serial, time.Hour); aerr != nil || n == 1 {
			detail["reason"] = err.Error()
			s.audit(r.Context(), "system", "agent.renew.refused", id.Agent, id.Site, detail)
		}
		s.log.Warn("renewal of an expired agent certificate refused", "agent", id.Agent, "site", id.Site,
			"expired_for", late.Round(time.Second), "remote", r.RemoteAddr, "err", err)
		s.fail(w, r, err)
		return id, false
	}
	s.audit(r.Context(), "system", "agent.renew.expired", id.Agent, id.Site, detail)
	s.log.Info("agent renews an expired certificate within the grace", "agent", id.Agent, "site", id.Site,
		"expired_for", late.Round(time.Second), "grace", s.cfg.RenewGrace, "remote", r.RemoteAddr)
	return id, true
}
