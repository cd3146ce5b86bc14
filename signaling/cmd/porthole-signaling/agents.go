package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/porthole-dev/porthole/signaling/auditlog"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/ca"
	"github.com/porthole-dev/porthole/signaling/enroll"
	"github.com/porthole-dev/porthole/signaling/server"
)

// agentListener is enrollment and the agents' own listener: mutual TLS
// with certificates from the internal CA, which lives in <data-dir>/ca.
type agentListener struct {
	svc   *enroll.Service
	ln    net.Listener
	hosts []string
	url   string
}

// setupAgentListener opens the CA and listens on addr for agents.
// advertise is the wss:// URL agents are told to use; "" derives it from
// the listening address.
func setupAgentListener(addr, advertise, dataDir string, st fullStore, signer *auditlog.Signer, prod *prodFlags, log *slog.Logger) (*agentListener, error) {
	authority, err := ca.Open(filepath.Join(dataDir, "ca"), ca.Options{CertTTL: prod.agentCertLifetime})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--agent-listen: %w", err)
	}
	if advertise == "" {
		advertise = "wss://" + ln.Addr().String()
	}
	host, _, err := net.SplitHostPort(advertise[len("wss://"):])
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("--agent-url %q: want wss://host:port", advertise)
	}
	hosts := []string{host}
	if h, _, _ := net.SplitHostPort(ln.Addr().String()); h != host && h != "::" && h != "0.0.0.0" {
		hosts = append(hosts, h)
	}
	svc, err := enroll.New(enroll.Config{CA: authority, PKI: st, Store: auditlog.Checkpointed(st, signer, nil), AgentURL: advertise, Logger: log,
		RenewGrace: prod.agentRenewGrace})
	if err != nil {
		ln.Close()
		return nil, err
	}
	return &agentListener{svc: svc, ln: ln, hosts: hosts, url: advertise}, nil
}

// serve serves srv's agent handler until Shutdown; errors go to errc.
func (a *agentListener) serve(srv *server.Server, log *slog.Logger, errc chan<- error) *http.Server {
	hs := &http.Server{
		Handler:           srv.AgentHandler(),
		TLSConfig:         a.svc.AgentTLSConfig(a.hosts),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug), // failed handshakes are logged by enroll
	}
	fmt.Printf("porthole-signaling agent listener on %s (mutual TLS)\n", a.url)
	go func() {
		if err := hs.ServeTLS(a.ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	return hs
}

// adminEnrollToken creates an enrollment token offline and prints it.
func adminEnrollToken(ctx context.Context, st fullStore, actor, site, agent, name string, out io.Writer) error {
	res, err := enroll.CreateToken(ctx, st, st, time.Now(), actor, &proto.NewEnrollment{Site: site, Agent: agent, Name: name})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "enrollment token for agent %s on site %s (single use, expires %s):\n%s\n",
		res.Agent, res.Site, res.Expires.Format(time.RFC3339), res.Token)
	return nil
}

// service is the enrollment service, nil without an agent listener.
func (a *agentListener) service() *enroll.Service {
	if a == nil {
		return nil
	}
	return a.svc
}
