// Package ca is signaling's internal certificate authority for agents. It
// is created on first start in signaling's data directory and holds two
// keys: an ECDSA P-256 CA key that issues short-lived agent client
// certificates (and the agent listener's server certificate), and an
// Ed25519 key that signs session grants, whose public half agents receive
// at enrollment.
//
// An agent certificate names its agent and site twice, as the subject
// (CN = agent ID, OU = site) and as URI SANs (urn:porthole:agent:<id>,
// urn:porthole:site:<site>); Identity reads and cross-checks both. There
// is no CRL: revocation lives in the store and is checked on every
// handshake (package enroll).
//
// All cryptography is crypto/x509, crypto/ecdsa and crypto/ed25519.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// Files in the data directory.
const (
	CertFile     = "agent-ca.crt"
	KeyFile      = "agent-ca.key"
	GrantKeyFile = "grant.key"
)

// DefaultCertTTL is how long an agent certificate lives.
const DefaultCertTTL = 24 * time.Hour

// Errors, wrapped with detail.
var (
	ErrBadCSR      = errors.New("bad certificate signing request")
	ErrNotAgent    = errors.New("not an agent certificate of this CA")
	ErrPartialDir  = errors.New("CA directory holds only some of its files")
	ErrBadKeyFile  = errors.New("malformed key file")
	ErrBadIdentity = errors.New("malformed agent identity")
)

// Options tune Open. Zero values are the defaults.
type Options struct {
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// CertTTL is the lifetime of agent certificates; 0 means 24 h.
	CertTTL time.Duration
	// Name is the CA's common name; "" means "Porthole agent CA".
	Name string
}

// CA issues agent certificates and signs session grants. It is safe for
// concurrent use.
type CA struct {
	cert     *x509.Certificate
	certPEM  []byte
	key      crypto.Signer
	grantKey ed25519.PrivateKey
	pool     *x509.CertPool
	now      func() time.Time
	ttl      time.Duration

	mu      sync.Mutex
	servers map[string]*tls.Certificate // hosts → listener certificate
}

// Open loads the CA from dir, creating its keys and certificate there
// (files 0600, directory 0700) if none exist yet. A directory that holds
// some of the files but not all is refused rather than overwritten.
func Open(dir string, opt Options) (*CA, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.CertTTL <= 0 {
		opt.CertTTL = DefaultCertTTL
	}
	if opt.Name == "" {
		opt.Name = "Porthole agent CA"
	}
	paths := []string{filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile), filepath.Join(dir, GrantKeyFile)}
	present := 0
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			present++
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open CA: %w", err)
		}
	}
	switch present {
	case 0:
		if err := create(dir, opt); err != nil {
			return nil, fmt.Errorf("create CA in %s: %w", dir, err)
		}
	case len(paths):
	default:
		return nil, fmt.Errorf("open CA in %s: %w", dir, ErrPartialDir)
	}
	return load(paths, opt)
}

func create(dir string, opt Options) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	_, grant, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	now := opt.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: opt.Name, Organization: []string{"Porthole"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	grantDER, err := x509.MarshalPKCS8PrivateKey(grant)
	if err != nil {
		return err
	}
	// Keys first, certificate last: a crash leaves a partial directory,
	// which Open refuses instead of silently making a second CA.
	if err := writeFile(filepath.Join(dir, GrantKeyFile), pemBlock("PRIVATE KEY", grantDER)); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, KeyFile), pemBlock("PRIVATE KEY", keyDER)); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, CertFile), pemBlock("CERTIFICATE", der))
}

// writeFile writes b to path atomically with mode 0600.
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

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func load(paths []string, opt Options) (*CA, error) {
	certPEM, err := os.ReadFile(paths[0])
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: %w", paths[0], ErrBadKeyFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", paths[0], err)
	}
	key, err := readKey(paths[1])
	if err != nil {
		return nil, err
	}
	signer, ok := key.(*ecdsa.PrivateKey)
	if !ok || !signer.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s: %w: not the CA certificate's key", paths[1], ErrBadKeyFile)
	}
	gk, err := readKey(paths[2])
	if err != nil {
		return nil, err
	}
	grant, ok := gk.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: %w: not an Ed25519 key", paths[2], ErrBadKeyFile)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, certPEM: pemBlock("CERTIFICATE", cert.Raw), key: signer, grantKey: grant,
		pool: pool, now: opt.Now, ttl: opt.CertTTL, servers: map[string]*tls.Certificate{}}, nil
}

func readKey(path string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: %w", path, ErrBadKeyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrBadKeyFile, err)
	}
	return k, nil
}

func randomSerial() *big.Int {
	// 128 random bits, positive.
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	return n.Add(n, big.NewInt(1))
}

// Certificate returns the CA certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// CertPEM returns the CA certificate in PEM.
func (c *CA) CertPEM() []byte { return c.certPEM }

// Pool returns a pool holding only the CA certificate.
func (c *CA) Pool() *x509.CertPool { return c.pool }

// CertTTL is the lifetime of the agent certificates c issues.
func (c *CA) CertTTL() time.Duration { return c.ttl }

// GrantPublicKey is the key agents verify session grants with.
func (c *CA) GrantPublicKey() ed25519.PublicKey { return c.grantKey.Public().(ed25519.PublicKey) }

// SignGrant signs a session grant.
func (c *CA) SignGrant(g *proto.Grant) (string, error) { return proto.SignGrant(g, c.grantKey) }

// URIs naming an agent and its site in certificates.
const (
	agentURNPrefix = "urn:porthole:agent:"
	siteURNPrefix  = "urn:porthole:site:"
)

// IssueAgent checks a PEM certificate signing request (its signature, and a
// P-256 ECDSA or Ed25519 key) and issues a client certificate for agent on
// site, valid for CertTTL. The request's own names are ignored: identity
// comes from the caller, who checked the token or the renewing
// certificate.
func (c *CA) IssueAgent(csrPEM []byte, agent, site string) (*x509.Certificate, error) {
	if !proto.ValidID(agent) || !proto.ValidID(site) {
		return nil, fmt.Errorf("issue for %q on %q: %w", agent, site, ErrBadIdentity)
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: not a PEM CERTIFICATE REQUEST", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ECDSA keys must be P-256", ErrBadCSR)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w: key must be ECDSA P-256 or Ed25519", ErrBadCSR)
	}
	now := c.now()
	agentURI, _ := url.Parse(agentURNPrefix + agent)
	siteURI, _ := url.Parse(siteURNPrefix + site)
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: agent, OrganizationalUnit: []string{site}, Organization: []string{"Porthole agents"}},
		URIs:         []*url.URL{agentURI, siteURI},
		NotBefore:    now.Add(-skew(c.ttl)), // clock skew
		NotAfter:     now.Add(c.ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, csr.PublicKey, c.key)
	if err != nil {
		return nil, fmt.Errorf("issue agent certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// skew is how far an agent certificate's NotBefore is backdated for
// clocks that run late: 5 minutes, or a tenth of a short lifetime, so
// that the agent's renewal two thirds into NotBefore..NotAfter stays
// ahead of the issuance (a 8 s certificate backdated 5 minutes would be
// renewed again at once, forever).
func skew(ttl time.Duration) time.Duration { return min(5*time.Minute, ttl/10) }

// Identity is who an agent certificate names.
type Identity struct {
	Agent    string
	Site     string
	Serial   string // hex
	NotAfter time.Time
}

// Verify checks that cert was issued by this CA for client authentication
// and is valid now, and returns the identity it names. Revocation is not
// checked here.
func (c *CA) Verify(cert *x509.Certificate) (Identity, error) { return c.VerifyAt(cert, c.now()) }

// VerifyAt is Verify as of time at: for an expired certificate, whether
// it was the CA's agent certificate when it expired (package enroll's
// renewal grace).
func (c *CA) VerifyAt(cert *x509.Certificate, at time.Time) (Identity, error) {
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:       c.pool,
		CurrentTime: at,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrNotAgent, err)
	}
	return IdentityOf(cert)
}

// IdentityOf reads the agent and site a certificate names, requiring the
// subject and the URI SANs to agree. It does not verify the certificate.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var agent, site string
	for _, u := range cert.URIs {
		s := u.String()
		switch {
		case strings.HasPrefix(s, agentURNPrefix) && agent == "":
			agent = strings.TrimPrefix(s, agentURNPrefix)
		case strings.HasPrefix(s, siteURNPrefix) && site == "":
			site = strings.TrimPrefix(s, siteURNPrefix)
		default:
			return Identity{}, fmt.Errorf("%w: unexpected URI %q", ErrBadIdentity, s)
		}
	}
	if !proto.ValidID(agent) || !proto.ValidID(site) || cert.Subject.CommonName != agent ||
		len(cert.Subject.OrganizationalUnit) != 1 || cert.Subject.OrganizationalUnit[0] != site {
		return Identity{}, ErrBadIdentity
	}
	return Identity{Agent: agent, Site: site, Serial: cert.SerialNumber.Text(16), NotAfter: cert.NotAfter}, nil
}

// ServerCertificate returns a GetCertificate function for the agent
// listener: a certificate for hosts (names or IP addresses) issued by this
// CA, which agents trust from enrollment. It is issued on first use and
// again when less than a third of its 90-day life is left.
func (c *CA) ServerCertificate(hosts []string) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	key := strings.Join(hosts, ",")
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		now := c.now()
		if cur := c.servers[key]; cur != nil && now.Before(cur.Leaf.NotAfter.Add(-30*24*time.Hour)) {
			return cur, nil
		}
		cert, err := c.issueServer(hosts, now)
		if err != nil {
			return nil, err
		}
		c.servers[key] = cert
		return cert, nil
	}
}

func (c *CA) issueServer(hosts []string, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "porthole signaling (agents)"},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return nil, fmt.Errorf("issue listener certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// PEM encodes a certificate.
func PEM(cert *x509.Certificate) []byte { return pemBlock("CERTIFICATE", cert.Raw) }
