package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/proto"
)

// raiseFileLimit lifts RLIMIT_NOFILE to its hard limit; processes started
// afterwards inherit it.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	return l.Cur, nil
}

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(dir string) (certFile, keyFile string, pool *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "porthole-bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return "", "", nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool, nil
}

// SignalingFigures connects cfg.Agents idle agents to a porthole-signaling
// process over WSS and measures its memory per connection and the connect
// rate.
func SignalingFigures(t testing.TB, r *Report, cfg Config) {
	limit, err := raiseFileLimit()
	if err != nil || limit < uint64(cfg.Agents)+1000 {
		t.Fatalf("RLIMIT_NOFILE %d (%v) is too low for %d agents", limit, err, cfg.Agents)
	}
	bins := stack.Build(t)
	dir := t.TempDir()
	certFile, keyFile, pool, err := selfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	var keys strings.Builder
	for i := range cfg.Agents {
		fmt.Fprintf(&keys, "agent-%d=bench-agent-key-%08d\n", i, i)
	}
	keysFile := filepath.Join(dir, "agents")
	if err := os.WriteFile(keysFile, []byte(keys.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := proc.Start("porthole-signaling", bins["porthole-signaling"], []string{
		"--listen", "127.0.0.1:0", "--agent-keys-file", keysFile, "--tls-cert", certFile, "--tls-key", keyFile,
		"--log-level", "warn", "--data-dir", filepath.Join(dir, "data"),
	}, proc.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := p.WaitLine(ctx, regexp.MustCompile(`listening on (https://\S+)`))
	if err != nil {
		t.Fatalf("signaling did not start: %v\n%s", err, p.Tail(20))
	}
	url := strings.Replace(m[1], "https://", "wss://", 1) + proto.PathAgentSocket
	time.Sleep(300 * time.Millisecond)
	rss0, err := procRSS(p.Pid())
	if err != nil {
		t.Fatal(err)
	}

	tlsCfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, ClientSessionCache: nil}
	conns := make([]*sigclient.Conn, cfg.Agents)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	const workers = 64
	var next atomic.Int64
	var firstErr error
	var errMu sync.Mutex
	var wg sync.WaitGroup
	t0 := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.Agents || ctx.Err() != nil {
					return
				}
				if err := connectAgent(ctx, url, i, tlsCfg, conns); err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if firstErr != nil {
		t.Fatalf("connect agents: %v\n%s", firstErr, p.Tail(10))
	}
	time.Sleep(time.Second) // let the server settle
	rss1, err := procRSS(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	per := float64(rss1-rss0) / float64(cfg.Agents) / 1024
	rate := float64(cfg.Agents) / elapsed.Seconds()
	f := r.Add(fmt.Sprintf("signaling memory per idle agent (%d agents, WSS)", cfg.Agents), "KiB", []float64{per})
	f.Annotate("signaling RSS %.1f → %.1f MiB; TLS server auth + bearer key: signaling has no agent mTLS yet", float64(rss0)/(1<<20), float64(rss1)/(1<<20))
	f.Check("≤ 30 KiB per agent", per <= 30)
	g := r.Add(fmt.Sprintf("signaling agent connect time (%d agents, 64 at a time)", cfg.Agents), "s", []float64{elapsed.Seconds()})
	g.Annotate("%.0f agents/s, TLS 1.3 handshake + upgrade + hello/welcome each", rate)
	g.Check("10,000 agents in ≤ 20 s", float64(10000)/rate <= 20).Annotate("projected to 10,000: %.1f s", 10000/rate)
	logf(t, "%d agents connected in %v, signaling RSS %d → %d", cfg.Agents, elapsed, rss0, rss1)
}

// connectAgent dials as agent i, says hello and waits for the welcome.
func connectAgent(ctx context.Context, url string, i int, tlsCfg *tls.Config, conns []*sigclient.Conn) error {
	h := http.Header{}
	h.Set("Authorization", fmt.Sprintf("Bearer bench-agent-key-%08d", i))
	c, err := sigclient.Dial(ctx, url, sigclient.Options{Header: h, TLS: tlsCfg, QueueSize: 4})
	if err != nil {
		return err
	}
	conns[i] = c
	if err := c.Send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Software: "porthole-bench"}); err != nil {
		return err
	}
	select {
	case env, ok := <-c.Incoming():
		if !ok {
			return fmt.Errorf("agent %d: closed before welcome: %v", i, c.Err())
		}
		if env.Type != proto.TypeWelcome {
			return fmt.Errorf("agent %d: %s instead of welcome", i, env.Type)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
