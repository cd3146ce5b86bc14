package integration

import (
	"context"
	"net"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/porthole-dev/porthole/agent/egress"
	"github.com/porthole-dev/porthole/agent/enroll"
	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/internal/connectproxy"
	"github.com/porthole-dev/porthole/proto"
)

// TestEnrollRenewAndConnectThroughAProxy: enrollment, the agent's
// mutual-TLS WebSocket and certificate renewal each go through the site's
// proxy with CONNECT and its Basic credentials, against real signaling
// (enrollment and the agent listener in process).
func TestEnrollRenewAndConnectThroughAProxy(t *testing.T) {
	l := newPKILabAt(t, "agents.test")
	app, _ := url.Parse(l.app.URL)
	_, appPort, _ := net.SplitHostPort(app.Host)
	_, agentPort, _ := net.SplitHostPort(l.agentLn)
	px := connectproxy.Start(t, connectproxy.Options{User: "site", Password: "proxy-pass", Hosts: map[string]string{
		"signal.test:" + appPort:   app.Host,
		"agents.test:" + agentPort: l.agentLn,
	}})
	eg, err := egress.New(egress.Config{Proxy: httpproxy.Config{HTTPSProxy: px.URL(), HTTPProxy: px.URL()}, Username: "site", Password: "proxy-pass"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	st, err := enroll.Enroll(ctx, "http://signal.test:"+appPort, l.token("site-a", "agent-1", 0), filepath.Join(t.TempDir(), "state"), enroll.Options{Egress: eg})
	if err != nil {
		t.Fatalf("enroll through the proxy: %v", err)
	}
	if n := px.Tunnels.Load(); n != 1 {
		t.Fatalf("%d tunnels after enrollment, want 1", n)
	}

	conn, err := sigclient.Dial(ctx, st.Info().AgentURL+proto.PathAgentSocket, sigclient.Options{TLS: st.TLSConfig(), Egress: eg})
	if err != nil {
		t.Fatalf("agent socket through the proxy: %v", err)
	}
	if err := conn.Send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent}); err != nil {
		t.Fatal(err)
	}
	select {
	case env := <-conn.Incoming():
		if env == nil || env.Type != proto.TypeWelcome {
			t.Fatalf("first message %+v, want welcome", env)
		}
	case <-ctx.Done():
		t.Fatal("no welcome")
	}
	conn.Close()

	first := st.Certificate()
	st.SetEgress(eg)
	if err := st.Renew(ctx); err != nil {
		t.Fatalf("renew through the proxy: %v", err)
	}
	if st.Certificate().SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("renewal kept the certificate")
	}
	if n := px.Tunnels.Load(); n != 3 {
		t.Errorf("%d tunnels, want 3 (enrollment, socket, renewal)", n)
	}
	if n := px.Refused.Load(); n != 0 {
		t.Errorf("the proxy refused %d requests", n)
	}
}
