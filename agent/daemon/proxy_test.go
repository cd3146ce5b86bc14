package daemon

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/net/http/httpproxy"

	"github.com/porthole-dev/porthole/agent/egress"
	"github.com/porthole-dev/porthole/agent/enroll"
	"github.com/porthole-dev/porthole/internal/connectproxy"
	"github.com/porthole-dev/porthole/proto"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const (
	proxyUser = "porthole-site"
	proxyPass = "Pr0xy-S3cret!" // must never be logged
)

// proxiedAgent is an enrolled agent whose only way to its (fake)
// signaling, signal.test, is the test proxy.
type proxiedAgent struct {
	proxy *connectproxy.Proxy
	conns chan *websocket.Conn
	logs  *syncBuffer
	agent *Agent
	stop  func()
}

func startProxiedAgent(t *testing.T, proxyOpt connectproxy.Options, eg func(proxyURL string) egress.Config) *proxiedAgent {
	t.Helper()
	p := newTestPKI(t)
	_, _, serverCert := p.issue(t, &x509.Certificate{DNSNames: []string{"signal.test"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
	pa := &proxiedAgent{conns: make(chan *websocket.Conn, 4), logs: &syncBuffer{}}
	up := websocket.Upgrader{Subprotocols: []string{proto.SocketProtocol}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ws, err := up.Upgrade(w, r, nil); err == nil {
			pa.conns <- ws
		}
	}))
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	target := "signal.test:" + port
	proxyOpt.Hosts = map[string]string{target: srv.Listener.Addr().String()}
	pa.proxy = connectproxy.Start(t, proxyOpt)

	certPEM, keyPEM, _ := p.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: testAgentID},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.caCert.Raw})
	st, err := enroll.New(t.TempDir(), enroll.Info{Agent: testAgentID, Site: "site-a", AgentURL: "wss://" + target,
		GrantKey: base64.StdEncoding.EncodeToString(p.grantKey.Public().(ed25519.PublicKey))}, caPEM, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	e, err := egress.New(eg(pa.proxy.URL()))
	if err != nil {
		t.Fatal(err)
	}
	dev := startDevice(t, "127.0.0.1:0", "SER-1")
	a, err := New(Config{Enrollment: st, LoopbackOnly: true, Egress: e,
		Devices:    []DeviceConfig{{ID: "printer-1", Address: "127.0.0.1", HTTPPort: dev.port}},
		Logger:     slog.New(slog.NewTextHandler(pa.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MinBackoff: 40 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pa.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	pa.stop = func() { cancel(); <-done }
	t.Cleanup(pa.stop)
	return pa
}

// TestAgentConnectsThroughTheSiteProxy: with the proxy and its Basic
// credentials configured, the agent reaches signaling through CONNECT,
// and both its log and its devices' health say so.
func TestAgentConnectsThroughTheSiteProxy(t *testing.T) {
	pa := startProxiedAgent(t, connectproxy.Options{User: proxyUser, Password: proxyPass}, func(u string) egress.Config {
		return egress.Config{Proxy: httpproxy.Config{HTTPSProxy: u}, Username: proxyUser, Password: proxyPass}
	})
	var ws *websocket.Conn
	select {
	case ws = <-pa.conns:
	case <-time.After(10 * time.Second):
		t.Fatalf("the agent did not connect through the proxy:\n%s", pa.logs)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	env, _ := proto.Decode(b)
	var hello proto.Hello
	if err := proto.DecodeData(env, &hello); err != nil {
		t.Fatal(err)
	}
	want := "via proxy " + pa.proxy.Addr
	if len(hello.Devices) != 1 || hello.Devices[0].Health == nil || hello.Devices[0].Health.Signaling != want {
		t.Fatalf("hello devices %+v, want health saying %q", hello.Devices, want)
	}
	out, _ := proto.Encode(proto.TypeWelcome, "", &proto.Welcome{ID: testAgentID})
	_ = ws.WriteMessage(websocket.TextMessage, out)
	waitLog(t, pa.logs, regexp.MustCompile(`msg="connected to signaling".*signaling="`+regexp.QuoteMeta(want)+`"`))
	if pa.proxy.Tunnels.Load() == 0 {
		t.Fatal("the proxy tunnelled nothing")
	}
	pa.stop()
	checkNoSecret(t, pa.logs.String())
}

// TestAgentWithoutProxyCredentials: the proxy asks for credentials the
// agent does not have (or refuses the ones it has). The agent logs an
// error naming the proxy and its answer, and keeps retrying with backoff;
// the password never reaches a log line.
func TestAgentWithoutProxyCredentials(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(u string) egress.Config
		says string
	}{
		{"none given", func(u string) egress.Config {
			return egress.Config{Proxy: httpproxy.Config{HTTPSProxy: u}, AuthHint: proxyAuthHint}
		}, "none are configured: give them in the agent's configuration"},
		{"wrong ones", func(u string) egress.Config {
			return egress.Config{Proxy: httpproxy.Config{HTTPSProxy: strings.Replace(u, "http://", "http://"+proxyUser+":"+proxyPass+"@", 1)}}
		}, "the proxy refused the credentials given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pa := startProxiedAgent(t, connectproxy.Options{User: proxyUser, Password: "the-right-one"}, tc.cfg)
			lost := regexp.MustCompile(`msg="signaling connection lost; reconnecting" err=".*proxy ` + regexp.QuoteMeta(pa.proxy.Addr) +
				`, CONNECT signal\.test:\d+: the proxy asks for credentials: it answered \\"407 Proxy Authentication Required.*` + regexp.QuoteMeta(tc.says))
			deadline := time.Now().Add(10 * time.Second)
			for len(lost.FindAllString(pa.logs.String(), -1)) < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("fewer than 3 failed attempts logged as wanted:\n%s", pa.logs)
				}
				time.Sleep(20 * time.Millisecond)
			}
			select {
			case <-pa.conns:
				t.Fatal("connected without the proxy's credentials")
			default:
			}
			if n := pa.proxy.Refused.Load(); n < 3 {
				t.Errorf("the proxy refused %d times, want ≥ 3 retries", n)
			}
			pa.stop()
			logs := pa.logs.String()
			checkNoSecret(t, logs)
			t.Log(lost.FindString(logs))
		})
	}
}

func checkNoSecret(t *testing.T, logs string) {
	t.Helper()
	for _, s := range []string{proxyPass, base64.StdEncoding.EncodeToString([]byte(proxyUser + ":" + proxyPass))} {
		if strings.Contains(logs, s) {
			t.Fatalf("a credential is in the agent's log:\n%s", logs)
		}
	}
}

func waitLog(t *testing.T, logs *syncBuffer, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !re.MatchString(logs.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line matching %s:\n%s", re, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
