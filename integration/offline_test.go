package integration

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

func agentCert(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "agent.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAgentOfflinePastExpiryComesBack switches an enrolled agent off for
// longer than its certificate lives (8 s here, 24 h by default) and on
// again: it renews the expired certificate within the grace, without a
// new enrollment token, reconnects and serves its device; the renewal is
// in the admin audit log with how long the certificate had expired.
func TestAgentOfflinePastExpiryComesBack(t *testing.T) {
	const pw = "offline-admin-password"
	s := stack.Start(t, stack.Options{
		Users:         []stack.User{{Name: "root", Password: pw, Admin: true}},
		SignalingArgs: []string{"--agent-cert-lifetime", "8s", "--agent-renew-grace", "1h"},
	})
	s.StopAgent(t)
	before := agentCert(t, s.AgentStateDir)
	testenv.Eventually(t, 30*time.Second, "the agent's certificate to expire while it is off", func() bool {
		return time.Now().After(before.NotAfter.Add(time.Second))
	})
	offFor := time.Since(before.NotAfter)
	s.StartAgent(t)
	s.WaitOnline(t, stack.DeviceID)
	after := agentCert(t, s.AgentStateDir)
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 || !after.NotAfter.After(time.Now()) {
		t.Fatalf("certificate on disk: serial %s until %v (was %s until %v)", after.SerialNumber, after.NotAfter, before.SerialNumber, before.NotAfter)
	}
	c := apiLogin(t, s, "root", pw)
	var audit proto.AuditList
	apiCall(t, s, c, http.MethodGet, proto.PathAudit, nil, &audit)
	found := false
	for _, e := range audit.Entries {
		if e.Action == "agent.renew.expired" && e.Target == stack.AgentID {
			found = true
			d, err := time.ParseDuration(e.Detail["expiredFor"])
			if err != nil || d < offFor-2*time.Second {
				t.Fatalf("audit says expired for %q, the agent was off %v past expiry", e.Detail["expiredFor"], offFor)
			}
		}
	}
	if !found {
		t.Fatalf("no agent.renew.expired in the audit log: %+v", audit.Entries)
	}
}
