package ca_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/ca"
)

func csrFor(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "i-claim-to-be-admin"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func p256(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestOpenCreatesOnceAndReloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := ca.Open(dir, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ca.KeyFile, ca.GrantKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v", f, fi.Mode().Perm())
		}
	}
	b, err := ca.Open(dir, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Certificate().Equal(b.Certificate()) || !a.GrantPublicKey().Equal(b.GrantPublicKey()) {
		t.Fatal("reopening made a different CA")
	}
	// A certificate from the first handle verifies with the second.
	cert, err := a.IssueAgent(csrFor(t, p256(t)), "agent-1", "site-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(cert); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesPartialDirectory(t *testing.T) {
	dir := t.TempDir()
	if _, err := ca.Open(dir, ca.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, ca.GrantKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Open(dir, ca.Options{}); !errors.Is(err, ca.ErrPartialDir) {
		t.Fatalf("err = %v, want ErrPartialDir", err)
	}
}

func TestIssueAgentNamesAgentAndSite(t *testing.T) {
	c, err := ca.Open(t.TempDir(), ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for name, key := range map[string]any{"p256": p256(t), "ed25519": edKey} {
		t.Run(name, func(t *testing.T) {
			cert, err := c.IssueAgent(csrFor(t, key), "agent-1", "site-a")
			if err != nil {
				t.Fatal(err)
			}
			id, err := c.Verify(cert)
			if err != nil {
				t.Fatal(err)
			}
			if id.Agent != "agent-1" || id.Site != "site-a" || id.Serial == "" {
				t.Fatalf("identity %+v", id)
			}
			if life := cert.NotAfter.Sub(cert.NotBefore); life > ca.DefaultCertTTL+10*time.Minute {
				t.Fatalf("certificate lives %v", life)
			}
			if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || cert.IsCA {
				t.Fatal("agent certificate is not a plain client certificate")
			}
		})
	}
}

func TestIssueAgentRefusesBadRequests(t *testing.T) {
	c, err := ca.Open(t.TempDir(), ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tampered := csrFor(t, p256(t))
	block, _ := pem.Decode(tampered)
	block.Bytes[len(block.Bytes)-3] ^= 0xff // break the signature
	tampered = pem.EncodeToMemory(block)
	for name, csr := range map[string][]byte{
		"rsa":        csrFor(t, rsaKey),
		"p384":       csrFor(t, p384),
		"bad sig":    tampered,
		"not pem":    []byte("hello"),
		"other type": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := c.IssueAgent(csr, "agent-1", "site-a"); !errors.Is(err, ca.ErrBadCSR) {
				t.Fatalf("err = %v, want ErrBadCSR", err)
			}
		})
	}
	if _, err := c.IssueAgent(csrFor(t, p256(t)), "bad id!", "site-a"); !errors.Is(err, ca.ErrBadIdentity) {
		t.Fatalf("bad agent ID: err = %v", err)
	}
}

func TestVerifyRefusesForeignAndExpired(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	c, err := ca.Open(t.TempDir(), ca.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	other, err := ca.Open(t.TempDir(), ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.IssueAgent(csrFor(t, p256(t)), "agent-1", "site-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(foreign); !errors.Is(err, ca.ErrNotAgent) {
		t.Fatalf("foreign CA: err = %v", err)
	}
	mine, err := c.IssueAgent(csrFor(t, p256(t)), "agent-1", "site-a")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(ca.DefaultCertTTL + time.Minute)
	if _, err := c.Verify(mine); !errors.Is(err, ca.ErrNotAgent) {
		t.Fatalf("expired: err = %v", err)
	}
}

func TestGrantsVerifyWithThePublishedKey(t *testing.T) {
	c, err := ca.Open(t.TempDir(), ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	s, err := c.SignGrant(&proto.Grant{Session: "abcdefgh12345678", Agent: "a", Device: "d", IssuedAt: now, Expires: now + 60})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proto.VerifyGrant(s, c.GrantPublicKey()); err != nil {
		t.Fatal(err)
	}
}

func TestServerCertificateIsTrustedThroughTheCA(t *testing.T) {
	c, err := ca.Open(t.TempDir(), ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	get := c.ServerCertificate([]string{"127.0.0.1", "signaling.example"})
	cert, err := get(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "signaling.example"} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: c.Pool(), DNSName: host}); err != nil {
			t.Fatalf("%s: %v", host, err)
		}
	}
	again, _ := get(nil)
	if again != cert {
		t.Fatal("listener certificate reissued on every handshake")
	}
	if _, err := c.Verify(cert.Leaf); err == nil {
		t.Fatal("a server certificate passed as an agent certificate")
	}
}

// TestShortLivedCertificateRenewsAfterIssuance: the NotBefore backdating
// for clock skew stays small against the lifetime, so the agent's renewal
// point (two thirds into NotBefore..NotAfter) is after the issuance; with
// a fixed 5 minutes an 8 s certificate would be renewed in a loop.
func TestShortLivedCertificateRenewsAfterIssuance(t *testing.T) {
	for _, ttl := range []time.Duration{8 * time.Second, time.Minute, ca.DefaultCertTTL} {
		now := time.Now().Truncate(time.Second)
		c, err := ca.Open(t.TempDir(), ca.Options{CertTTL: ttl, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		cert, err := c.IssueAgent(csrFor(t, p256(t)), "agent-1", "site-a")
		if err != nil {
			t.Fatal(err)
		}
		renewAt := cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) * 2 / 3)
		if !renewAt.After(now.Add(ttl / 2)) {
			t.Errorf("lifetime %v: renewal due %v after issuance", ttl, renewAt.Sub(now))
		}
		if skew := now.Sub(cert.NotBefore); skew > 5*time.Minute || skew <= 0 {
			t.Errorf("lifetime %v: NotBefore backdated %v", ttl, skew)
		}
	}
}
