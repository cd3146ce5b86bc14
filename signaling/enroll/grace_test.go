package enroll_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/accounts"
	"github.com/porthole-dev/porthole/signaling/ca"
	"github.com/porthole-dev/porthole/signaling/enroll"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type rig struct {
	t     *testing.T
	clk   *clock
	svc   *enroll.Service
	st    *boltstore.Store
	url   string
	roots *x509.CertPool
}

const lifetime = time.Hour

func newRig(t *testing.T, grace time.Duration) *rig {
	t.Helper()
	// The store checks its own expiry on the real clock; the service and
	// the CA run on the test's, which starts now.
	clk := &clock{t: time.Now()}
	authority, err := ca.Open(filepath.Join(t.TempDir(), "ca"), ca.Options{Now: clk.Now, CertTTL: lifetime})
	if err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "p.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := &accounts.Manager{Store: st}
	if _, err := m.CreateSite(context.Background(), "test", "site-a", "Site A"); err != nil {
		t.Fatal(err)
	}
	svc, err := enroll.New(enroll.Config{CA: authority, PKI: st, Store: st, AgentURL: "wss://127.0.0.1:1", Now: clk.Now, RenewGrace: grace})
	if err != nil {
		t.Fatal(err)
	}
	// Not httptest's StartTLS: it would add its own certificate, which
	// crypto/tls prefers to GetCertificate for clients that send no SNI.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", svc.AgentTLSConfig([]string{"127.0.0.1"}))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: svc.AgentHandler(func(w http.ResponseWriter, _ *http.Request, agent string) {
		w.Write([]byte("socket for " + agent))
	}), ErrorLog: log.New(io.Discard, "", 0)}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return &rig{t: t, clk: clk, svc: svc, st: st, url: "https://" + ln.Addr().String(), roots: authority.Pool()}
}

func csr(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// enrolled enrolls agent-1 and returns its key pair.
func (r *rig) enrolled() tls.Certificate {
	r.t.Helper()
	ctx := context.Background()
	tok, err := r.svc.CreateToken(ctx, "admin", &proto.NewEnrollment{Site: "site-a", Agent: "agent-1"})
	if err != nil {
		r.t.Fatal(err)
	}
	key, req := csr(r.t)
	res, err := r.svc.Enroll(ctx, &proto.EnrollRequest{Token: tok.Token, CSR: req})
	if err != nil {
		r.t.Fatal(err)
	}
	return pair(r.t, key, res.Certificate)
}

func pair(t *testing.T, key *ecdsa.PrivateKey, certPEM string) tls.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(certPEM))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key, Leaf: leaf}
}

// client speaks to the agent listener with cert, on the test's clock.
func (r *rig) client(cert tls.Certificate) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: r.roots, Certificates: []tls.Certificate{cert}, Time: r.clk.Now, MinVersion: tls.VersionTLS13,
	}}}
}

// renew asks for a new certificate with cert; the new pair on 200.
func (r *rig) renew(cert tls.Certificate) (int, tls.Certificate, error) {
	key, req := csr(r.t)
	b, _ := json.Marshal(&proto.RenewRequest{CSR: req})
	resp, err := r.client(cert).Post(r.url+proto.PathAgentRenew, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, tls.Certificate{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, tls.Certificate{}, nil
	}
	var res proto.EnrollResult
	if err := json.Unmarshal(body, &res); err != nil {
		r.t.Fatal(err)
	}
	return resp.StatusCode, pair(r.t, key, res.Certificate), nil
}

func (r *rig) socket(cert tls.Certificate) int {
	resp, err := r.client(cert).Get(r.url + proto.PathAgentSocket)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (r *rig) audit() map[string]int {
	es, err := r.st.Audit(context.Background(), accounts.AuditStream, 0, 1000)
	if err != nil {
		r.t.Fatal(err)
	}
	n := map[string]int{}
	for _, e := range es {
		n[e.Action]++
	}
	return n
}

func TestExpiredCertificateRenewsWithinGraceOnce(t *testing.T) {
	r := newRig(t, 24*time.Hour)
	old := r.enrolled()
	if got := r.socket(old); got != http.StatusOK {
		t.Fatalf("current certificate on the socket: %d", got)
	}
	// Offline for twice its lifetime.
	r.clk.Add(2 * lifetime)
	if got := r.socket(old); got != http.StatusForbidden {
		t.Fatalf("expired certificate on the socket: %d, want 403", got)
	}
	code, fresh, err := r.renew(old)
	if err != nil || code != http.StatusOK {
		t.Fatalf("renewal of an expired certificate within the grace: %d %v", code, err)
	}
	if got := r.socket(fresh); got != http.StatusOK {
		t.Fatalf("renewed certificate on the socket: %d", got)
	}
	if n := r.audit()["agent.renew.expired"]; n != 1 {
		t.Fatalf("audit: %v", r.audit())
	}
	// A second copy of the old state directory: refused, and audited once
	// however often it retries.
	for range 3 {
		if code, _, err := r.renew(old); err != nil || code != http.StatusForbidden {
			t.Fatalf("second renewal of the same expired certificate: %d %v", code, err)
		}
	}
	if n := r.audit()["agent.renew.refused"]; n != 1 {
		t.Fatalf("refusals audited %d times: %v", n, r.audit())
	}
	// The renewed certificate renews normally before its expiry.
	r.clk.Add(lifetime / 2)
	if code, _, err := r.renew(fresh); err != nil || code != http.StatusOK {
		t.Fatalf("ordinary renewal: %d %v", code, err)
	}
}

func TestExpiredCertificateRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		grace time.Duration
		late  time.Duration
		setup func(*rig)
	}{
		{"past the grace", 24 * time.Hour, lifetime + 25*time.Hour, nil},
		{"grace turned off", 0, lifetime + time.Minute, nil},
		{"agent revoked", 24 * time.Hour, lifetime + time.Hour, func(r *rig) {
			if err := r.svc.Revoke(context.Background(), "admin", "agent-1"); err != nil {
				r.t.Fatal(err)
			}
		}},
		{"agent enrolled again since", 24 * time.Hour, lifetime + time.Hour, func(r *rig) { r.enrolled() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.grace)
			old := r.enrolled()
			if tc.setup != nil {
				tc.setup(r)
			}
			r.clk.Add(tc.late)
			code, _, err := r.renew(old)
			if code == http.StatusOK {
				t.Fatal("renewed")
			}
			// Past the grace the handshake itself fails (err); the store's
			// refusals answer 403 and are audited.
			if err == nil && code != http.StatusForbidden {
				t.Fatalf("answer %d", code)
			}
			if tc.setup != nil && r.audit()["agent.renew.refused"] != 1 {
				t.Fatalf("refusal not audited: %v", r.audit())
			}
		})
	}
}

func TestCertificateFromAnotherCAIsRefusedExpiredOrNot(t *testing.T) {
	r := newRig(t, 24*time.Hour)
	r.enrolled()
	other := newRig(t, 24*time.Hour)
	foreign := other.enrolled()
	if got := r.socket(foreign); got != 0 {
		t.Fatalf("a certificate of another CA reached the handler: %d", got)
	}
	r.clk.Add(2 * lifetime)
	if code, _, err := r.renew(foreign); err == nil {
		t.Fatalf("an expired certificate of another CA completed a handshake: %d", code)
	}
}
