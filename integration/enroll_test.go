package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-dev/porthole/agent/enroll"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/ca"
	sigenroll "github.com/porthole-dev/porthole/signaling/enroll"
	"github.com/porthole-dev/porthole/signaling/server"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
)

// pkiLab is signaling with enrollment on loopback, in process: the app
// listener (plain HTTP) and the agent listener (mutual TLS).
type pkiLab struct {
	t        *testing.T
	app      *httptest.Server
	agentURL string
	agentLn  string // the agent listener's loopback address
	svc      *sigenroll.Service
	authorty *ca.CA
	st       *boltstore.Store
	clock    *atomic.Int64 // offset added to the real time
}

const labAdminToken = "admin-dev-token"

func newPKILab(t *testing.T) *pkiLab { return newPKILabAt(t, "127.0.0.1") }

// newPKILabAt is newPKILab with agentHost as the agent URL's host (and
// its listener certificate's name); it still listens on loopback.
func newPKILabAt(t *testing.T, agentHost string) *pkiLab {
	t.Helper()
	l := &pkiLab{t: t, clock: new(atomic.Int64)}
	now := func() time.Time { return time.Now().Add(time.Duration(l.clock.Load())) }
	dir := t.TempDir()
	st, err := boltstore.Open(filepath.Join(dir, "porthole.db"), boltstore.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l.st = st
	for _, site := range []string{"site-a", "site-b"} {
		if err := st.CreateSite(context.Background(), &store.Site{ID: site, Name: site}); err != nil {
			t.Fatal(err)
		}
	}
	if l.authorty, err = ca.Open(filepath.Join(dir, "ca"), ca.Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.agentLn = ln.Addr().String()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	l.agentURL = "wss://" + net.JoinHostPort(agentHost, port)
	l.svc, err = sigenroll.New(sigenroll.Config{CA: l.authorty, PKI: st, Store: st, AgentURL: l.agentURL, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, Enroll: l.svc, InsecureDevTokens: true,
		TechnicianTokens: map[string]string{labAdminToken: "admin"}})
	if err != nil {
		t.Fatal(err)
	}
	l.app = httptest.NewServer(srv.Handler())
	hs := &http.Server{Handler: srv.AgentHandler(), TLSConfig: l.svc.AgentTLSConfig([]string{agentHost}),
		ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
		<-done
		l.app.Close()
	})
	return l
}

// token creates an enrollment token through the admin API.
func (l *pkiLab) token(site, agent string, expiresIn int64) string {
	l.t.Helper()
	var out proto.CreatedEnrollment
	status := l.api(http.MethodPost, proto.PathEnrollments, &proto.NewEnrollment{Site: site, Agent: agent, ExpiresIn: expiresIn}, &out)
	if status != http.StatusCreated {
		l.t.Fatalf("create token: HTTP %d", status)
	}
	return out.Token
}

func (l *pkiLab) api(method, path string, body, out any) int {
	l.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, l.app.URL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+labAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			l.t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func (l *pkiLab) enroll(token string) (*enroll.State, error) {
	return enroll.Enroll(context.Background(), l.app.URL, token, filepath.Join(l.t.TempDir(), "state"), enroll.Options{})
}

// dial opens the agent socket with cfg and says hello.
func (l *pkiLab) dial(cfg *tls.Config) (*websocket.Conn, error) {
	d := websocket.Dialer{TLSClientConfig: cfg, HandshakeTimeout: 5 * time.Second, Subprotocols: []string{proto.SocketProtocol}}
	ws, resp, err := d.Dial(l.agentURL+proto.PathAgentSocket, nil)
	if resp != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	hello, _ := proto.Encode(proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent})
	if err := ws.WriteMessage(websocket.TextMessage, hello); err != nil {
		ws.Close()
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil {
		ws.Close()
		return nil, err
	} else if env, err := proto.Decode(msg); err != nil || env.Type != proto.TypeWelcome {
		ws.Close()
		return nil, errors.New("no welcome")
	}
	_ = ws.SetReadDeadline(time.Time{})
	return ws, nil
}

func TestEnrollThenConnectWithMutualTLS(t *testing.T) {
	l := newPKILab(t)
	st, err := l.enroll(l.token("site-a", "agent-1", 0))
	if err != nil {
		t.Fatal(err)
	}
	if st.Info().Agent != "agent-1" || st.Info().Site != "site-a" || st.Info().AgentURL != l.agentURL {
		t.Fatalf("enrolled as %+v", st.Info())
	}
	ws, err := l.dial(st.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	ws.Close()
	// The enrollment survives a restart of the agent.
	again, err := enroll.Load(st.Dir())
	if err != nil {
		t.Fatal(err)
	}
	ws, err = l.dial(again.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	ws.Close()
	// Enrollment put the agent in its site for the access rules.
	if a, err := l.st.Agent(context.Background(), "agent-1"); err != nil || a.Site != "site-a" {
		t.Fatalf("agent record %+v, %v", a, err)
	}
}

func TestEnrollmentTokenIsSingleUse(t *testing.T) {
	l := newPKILab(t)
	tok := l.token("site-a", "agent-1", 0)
	if _, err := l.enroll(tok); err != nil {
		t.Fatal(err)
	}
	_, err := l.enroll(tok)
	if proto.CodeOf(err) != proto.CodeUnauthorized {
		t.Fatalf("reused token: err = %v", err)
	}
	if _, err := l.enroll("phe_made-up"); proto.CodeOf(err) != proto.CodeUnauthorized {
		t.Fatalf("unknown token: err = %v", err)
	}
}

func TestExpiredEnrollmentTokenIsRefused(t *testing.T) {
	l := newPKILab(t)
	tok := l.token("site-a", "agent-1", 60)
	l.clock.Add(int64(61 * time.Second))
	if _, err := l.enroll(tok); proto.CodeOf(err) != proto.CodeUnauthorized {
		t.Fatalf("expired token: err = %v", err)
	}
}

func TestEnrollmentForAWrongSiteIsRefused(t *testing.T) {
	l := newPKILab(t)
	// A token for a site that does not exist is not made.
	if status := l.api(http.MethodPost, proto.PathEnrollments, &proto.NewEnrollment{Site: "no-such-site"}, nil); status != http.StatusNotFound {
		t.Fatalf("token for an unknown site: HTTP %d", status)
	}
	// A certificate naming another site than the agent's is refused at
	// the handshake, even though this CA issued it.
	st, err := l.enroll(l.token("site-a", "agent-1", 0))
	if err != nil {
		t.Fatal(err)
	}
	forged := l.clientCert(l.authorty, "agent-1", "site-b")
	if _, err := l.dial(&tls.Config{RootCAs: l.authorty.Pool(), Certificates: []tls.Certificate{forged}}); err == nil {
		t.Fatal("a certificate for site-b connected as agent-1 of site-a")
	}
	if _, err := l.dial(st.TLSConfig()); err != nil {
		t.Fatalf("the agent's own certificate: %v", err)
	}
}

// clientCert issues a certificate from authority with a fresh key.
func (l *pkiLab) clientCert(authority *ca.CA, agent, site string) tls.Certificate {
	l.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: agent}}, key)
	cert, err := authority.IssueAgent(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), agent, site)
	if err != nil {
		l.t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

func TestCertificateFromAnotherCAIsRefused(t *testing.T) {
	l := newPKILab(t)
	if _, err := l.enroll(l.token("site-a", "agent-1", 0)); err != nil {
		t.Fatal(err)
	}
	other, err := ca.Open(t.TempDir(), ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	foreign := l.clientCert(other, "agent-1", "site-a")
	if _, err := l.dial(&tls.Config{RootCAs: l.authorty.Pool(), Certificates: []tls.Certificate{foreign}}); err == nil {
		t.Fatal("a certificate from another CA connected")
	}
	if _, err := l.dial(&tls.Config{RootCAs: l.authorty.Pool()}); err == nil {
		t.Fatal("connected without a client certificate")
	}
}

func TestRevokedAgentIsDroppedAndRefused(t *testing.T) {
	l := newPKILab(t)
	st, err := l.enroll(l.token("site-a", "agent-1", 0))
	if err != nil {
		t.Fatal(err)
	}
	ws, err := l.dial(st.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var res proto.AgentRevoked
	if status := l.api(http.MethodPost, "/v1/agents/agent-1/revoke", nil, &res); status != http.StatusOK || !res.Disconnected {
		t.Fatalf("revoke: HTTP %d, %+v", status, res)
	}
	// The live connection is gone at once: the next read fails (no ping
	// is due for 20 s, so only the drop can end it within the deadline).
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the revoked agent's connection stayed open")
			}
			break
		}
	}
	if _, err := l.dial(st.TLSConfig()); err == nil {
		t.Fatal("a revoked agent connected again")
	}
	if err := st.Renew(context.Background()); err == nil {
		t.Fatal("a revoked agent renewed its certificate")
	}
	if status := l.api(http.MethodPost, "/v1/agents/nobody/revoke", nil, nil); status != http.StatusNotFound {
		t.Fatalf("revoke unknown agent: HTTP %d", status)
	}
}

func TestRenewalBeforeExpiry(t *testing.T) {
	l := newPKILab(t)
	st, err := l.enroll(l.token("site-a", "agent-1", 0))
	if err != nil {
		t.Fatal(err)
	}
	first := st.Certificate()
	life := first.NotAfter.Sub(first.NotBefore)
	if at := st.RenewAt(); !at.Before(first.NotAfter.Add(-life/4)) || !at.After(first.NotBefore) {
		t.Fatalf("renewal at %v is not well before expiry %v", at, first.NotAfter)
	}
	if err := st.Renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := st.Certificate()
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("renewal kept the certificate")
	}
	if ws, err := l.dial(st.TLSConfig()); err != nil {
		t.Fatalf("renewed certificate: %v", err)
	} else {
		ws.Close()
	}
	// The renewed state is what a restarted agent loads.
	loaded, err := enroll.Load(st.Dir())
	if err != nil || loaded.Certificate().SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("loaded %v, %v", loaded, err)
	}
	// Past the old certificate's expiry, only renewal kept the agent in.
	l.clock.Add(int64(life - time.Hour))
	if err := st.Renew(context.Background()); err != nil {
		t.Fatalf("second renewal: %v", err)
	}
	if ws, err := l.dial(st.TLSConfig()); err != nil {
		t.Fatalf("after second renewal: %v", err)
	} else {
		ws.Close()
	}
}
