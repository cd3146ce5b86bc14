// Package enroll is the agent's side of enrollment: it makes the agent's
// key on the device, has signaling's CA certify it with a one-time token,
// keeps the certificate, the CA and the session-grant key in the agent's
// state directory, offers the mutual-TLS configuration for the agent
// socket, and renews the certificate over that mutual TLS well before it
// expires.
//
// The state directory (0700) holds, each 0600:
//
//	agent.key        PKCS#8 PEM ECDSA P-256 key, never leaves the device
//	agent.crt        PEM client certificate (24 h by default)
//	ca.crt           PEM CA: trusts the agent listener, issued agent.crt
//	enrollment.json  agent ID, site, agent URL, grant public key
package enroll

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/agent/egress"
	"github.com/porthole-dev/porthole/proto"
)

// Files in the state directory.
const (
	KeyFile   = "agent.key"
	CertFile  = "agent.crt"
	CAFile    = "ca.crt"
	StateFile = "enrollment.json"
)

// ErrNotEnrolled is returned by Load for a directory without enrollment.
var ErrNotEnrolled = errors.New("agent not enrolled (run porthole-agent enroll)")

// Info is enrollment.json.
type Info struct {
	Agent    string `json:"agent"`
	Site     string `json:"site"`
	Server   string `json:"server"`   // the base URL enrollment used
	AgentURL string `json:"agentUrl"` // wss:// agent socket, mutual TLS
	GrantKey string `json:"grantKey"` // base64 Ed25519 public key
}

// Options tune Enroll.
type Options struct {
	// Client makes the enrollment request; nil means a client with the
	// system's roots (plus RootCAs if set) and a 30 s timeout.
	Client *http.Client
	// RootCAs, if set, are trusted for an https server besides the
	// system's (a private signaling certificate, or the CA of a proxy
	// that inspects TLS).
	RootCAs *x509.CertPool
	// Egress is the way out: direct, or through the site's HTTP proxy
	// (agent/egress). Nil means direct.
	Egress *egress.Egress
}

// certHint is the advice when the server's certificate does not verify.
const certHint = "give the CA that issued it with porthole-agent enroll --ca-file"

// Enroll makes a key in dir, enrolls it with token at server (the base URL
// of signaling's app listener) and stores the result. An existing
// enrollment in dir is replaced only after the new one succeeded.
func Enroll(ctx context.Context, server, token, dir string, opt Options) (*State, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("enroll: server %q must be an http(s) URL", server)
	}
	key, csr, err := newKeyAndCSR()
	if err != nil {
		return nil, err
	}
	eg := opt.Egress
	if eg == nil {
		eg = egress.Direct()
	}
	client := opt.Client
	if client == nil {
		var tc *tls.Config
		if opt.RootCAs != nil {
			tc = &tls.Config{RootCAs: opt.RootCAs, MinVersion: tls.VersionTLS12}
		}
		client = eg.HTTPClient(u.Scheme, tc, 30*time.Second)
		defer client.CloseIdleConnections()
	}
	var res proto.EnrollResult
	endpoint := strings.TrimSuffix(server, "/") + proto.PathEnroll
	if err := post(ctx, client, endpoint, &proto.EnrollRequest{Token: strings.TrimSpace(token), CSR: string(csr)}, &res); err != nil {
		route := eg.Route(server)
		return nil, fmt.Errorf("enroll at %s (%s): %w", server, route, egress.ExplainCertificate(err, route, certHint))
	}
	st, err := fromResult(dir, key, &res, strings.TrimSuffix(server, "/"))
	if err != nil {
		return nil, fmt.Errorf("enroll: signaling's answer: %w", err)
	}
	if err := st.save(); err != nil {
		return nil, fmt.Errorf("enroll: save state in %s: %w", dir, err)
	}
	return st, nil
}

func newKeyAndCSR() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: host}}, key)
	if err != nil {
		return nil, nil, err
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// post sends v as JSON and decodes a 200 answer into out, or returns the
// proto error signaling sent.
func post(ctx context.Context, client *http.Client, endpoint string, v, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var pe proto.Error
		if json.Unmarshal(b, &pe) == nil && pe.Code.Known() {
			return &pe
		}
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	// Strict like every wire decoder: a repeated key or invalid UTF-8 in
	// the answer that carries the agent's certificate and grant key is
	// refused, not resolved by encoding/json's last-wins.
	if err := proto.CheckJSON(b); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	return json.Unmarshal(b, out)
}

// State is a loaded enrollment. Its certificate changes on renewal; it is
// safe for concurrent use.
type State struct {
	dir      string
	info     Info
	caPEM    []byte
	roots    *x509.CertPool
	grantKey ed25519.PublicKey

	mu      sync.Mutex
	cert    *tls.Certificate
	egress  *egress.Egress // renewals' way out; nil means direct
	renewed chan struct{}  // closed at the next renewal (Renewed)
}

// Renewed returns a channel closed once the certificate has been renewed
// after this call: an agent whose socket was refused for an expired
// certificate reconnects at once instead of at the end of its backoff.
func (s *State) Renewed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.renewed == nil {
		s.renewed = make(chan struct{})
	}
	return s.renewed
}

// SetEgress makes renewals leave through e (direct or the site's proxy),
// as the agent's signaling connection does.
func (s *State) SetEgress(e *egress.Egress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.egress = e
}

// MutualTLSHint is the advice when the agent listener's certificate does
// not verify: the agent's own CA signed it, so a proxy that re-signs TLS
// is in the way, and client certificates cannot pass through one.
const MutualTLSHint = "the agent's mutual TLS cannot pass through TLS inspection: exempt the agent URL's host from inspection on the proxy"

func fromResult(dir string, key *ecdsa.PrivateKey, res *proto.EnrollResult, server string) (*State, error) {
	info := Info{Agent: res.Agent, Site: res.Site, Server: server, AgentURL: res.AgentURL, GrantKey: res.GrantKey}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return build(dir, info, []byte(res.CA), []byte(res.Certificate), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// New builds a State from its parts, as Load does from files, without
// touching the disk until a renewal saves into dir: for provisioning tools
// and tests.
func New(dir string, info Info, caPEM, certPEM, keyPEM []byte) (*State, error) {
	return build(dir, info, caPEM, certPEM, keyPEM)
}

// build checks that the pieces fit together: the certificate is for the
// key, issued by the CA, and names the agent; the URL and grant key parse.
func build(dir string, info Info, caPEM, certPEM, keyPEM []byte) (*State, error) {
	if !proto.ValidID(info.Agent) {
		return nil, fmt.Errorf("malformed agent ID %q", info.Agent)
	}
	if u, err := url.Parse(info.AgentURL); err != nil || u.Scheme != "wss" || u.Host == "" {
		return nil, fmt.Errorf("agent URL %q is not wss://", info.AgentURL)
	}
	gk, err := base64.StdEncoding.DecodeString(info.GrantKey)
	if err != nil || len(gk) != ed25519.PublicKeySize {
		return nil, errors.New("malformed grant key")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("malformed CA certificate")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate and key: %w", err)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		CurrentTime: cert.Leaf.NotBefore.Add(time.Second)}); err != nil {
		return nil, fmt.Errorf("certificate not issued by the CA: %w", err)
	}
	if cert.Leaf.Subject.CommonName != info.Agent {
		return nil, fmt.Errorf("certificate names %q, not agent %q", cert.Leaf.Subject.CommonName, info.Agent)
	}
	st := &State{dir: dir, info: info, caPEM: caPEM, roots: roots, grantKey: gk, cert: &cert}
	st.cert.Certificate = [][]byte{cert.Certificate[0]}
	return st, nil
}

// Load reads an enrollment from dir; ErrNotEnrolled if there is none.
func Load(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, err
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("%s: %w", StateFile, err)
	}
	read := func(name string) []byte {
		if err != nil {
			return nil
		}
		var b []byte
		b, err = os.ReadFile(filepath.Join(dir, name))
		return b
	}
	caPEM, certPEM, keyPEM := read(CAFile), read(CertFile), read(KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load enrollment: %w", err)
	}
	st, err := build(dir, info, caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load enrollment from %s: %w", dir, err)
	}
	return st, nil
}

// save writes every file atomically, the certificate and key last but
// one and enrollment.json last, so a crash leaves either the old
// enrollment or the new one readable... or a certificate that does not
// match its key, which Load refuses.
func (s *State) save() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return err
	}
	s.mu.Lock()
	cert := s.cert
	s.mu.Unlock()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return err
	}
	info, _ := json.MarshalIndent(s.info, "", "  ")
	for _, f := range []struct {
		name string
		b    []byte
	}{
		{CAFile, s.caPEM},
		{KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})},
		{CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})},
		{StateFile, append(info, '\n')},
	} {
		if err := writeFile(filepath.Join(s.dir, f.name), f.b); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Info returns what enrollment.json holds.
func (s *State) Info() Info { return s.info }

// Dir is the state directory.
func (s *State) Dir() string { return s.dir }

// GrantKey verifies session grants.
func (s *State) GrantKey() ed25519.PublicKey { return s.grantKey }

// Certificate returns the current client certificate's leaf.
func (s *State) Certificate() *x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cert.Leaf
}

// TLSConfig is the client side of the agent socket's mutual TLS: the
// current certificate (renewals are picked up by the next handshake),
// only the enrollment CA trusted for the server, TLS 1.3.
func (s *State) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    s.roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.cert, nil
		},
	}
}

// RenewAt is when the current certificate should be renewed: once two
// thirds of its life have passed (16 h into a 24 h certificate).
func (s *State) RenewAt() time.Time {
	leaf := s.Certificate()
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(life * 2 / 3)
}

// Renew makes a new key, has it certified over mutual TLS with the current
// certificate, stores it and uses it for the next handshakes.
func (s *State) Renew(ctx context.Context) error {
	key, csr, err := newKeyAndCSR()
	if err != nil {
		return err
	}
	u, _ := url.Parse(s.info.AgentURL)
	u.Scheme, u.Path = "https", proto.PathAgentRenew
	s.mu.Lock()
	eg := s.egress
	s.mu.Unlock()
	if eg == nil {
		eg = egress.Direct()
	}
	client := eg.HTTPClient("https", s.TLSConfig(), 30*time.Second)
	defer client.CloseIdleConnections()
	var res proto.EnrollResult
	if err := post(ctx, client, u.String(), &proto.RenewRequest{CSR: string(csr)}, &res); err != nil {
		route := eg.Route(u.String())
		return fmt.Errorf("renew certificate (%s): %w", route, egress.ExplainCertificate(err, route, MutualTLSHint))
	}
	if res.Agent != s.info.Agent || res.Site != s.info.Site {
		return fmt.Errorf("renew certificate: signaling answered for %s on %s", res.Agent, res.Site)
	}
	next, err := fromResult(s.dir, key, &res, s.info.Server)
	if err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	if err := next.save(); err != nil {
		return fmt.Errorf("renew certificate: save: %w", err)
	}
	s.mu.Lock()
	s.cert = next.cert
	s.caPEM, s.roots = next.caPEM, next.roots
	if s.renewed != nil {
		close(s.renewed)
		s.renewed = nil
	}
	s.mu.Unlock()
	return nil
}

// RenewLoop renews the certificate at RenewAt, retrying failures every
// retry (a minute if 0) until it succeeds, until ctx ends.
func (s *State) RenewLoop(ctx context.Context, log *slog.Logger, retry time.Duration) {
	if retry <= 0 {
		retry = time.Minute
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for {
		wait := time.Until(s.RenewAt())
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := s.Renew(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("certificate renewal failed; retrying", "agent", s.info.Agent, "err", err, "in", retry,
				"expires", s.Certificate().NotAfter)
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
			continue
		}
		log.Info("certificate renewed", "agent", s.info.Agent, "expires", s.Certificate().NotAfter)
	}
}
