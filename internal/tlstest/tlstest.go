// Package tlstest makes the certificates old devices present (1024-bit
// RSA keys, SHA-1 signatures, expired, self-signed) and runs real OpenSSL
// servers with them, for tests of the agent's legacy TLS support.
package tlstest

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/internal/testenv"
)

// CertOptions describes a self-signed certificate.
type CertOptions struct {
	Bits    int      // RSA key size; 0 means 2048
	SHA1    bool     // sign with SHA-1 (SHA-256 otherwise)
	Expired bool     // valid until yesterday
	Names   []string // DNS names; default "device.test"
	IPs     []net.IP // IP addresses; default 127.0.0.1
}

// Cert is a generated certificate and its key.
type Cert struct {
	CertFile, KeyFile string // PEM files in a test directory
	TLS               tls.Certificate
	SHA256            string // hex SHA-256 of the DER certificate (the pin)
}

// NewCert makes a self-signed certificate as an old device would carry.
func NewCert(t testing.TB, o CertOptions) *Cert {
	t.Helper()
	bits := o.Bits
	if bits == 0 {
		bits = 2048
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatalf("rsa key: %v", err)
	}
	names, ips := o.Names, o.IPs
	if names == nil {
		names = []string{"device.test"}
	}
	if ips == nil {
		ips = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	notAfter := time.Now().Add(24 * time.Hour)
	if o.Expired {
		notAfter = time.Now().Add(-24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"Old Printer Co"}},
		NotBefore:             time.Now().Add(-48 * time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              names,
		IPAddresses:           ips,
	}
	if o.SHA1 {
		tmpl.SignatureAlgorithm = x509.SHA1WithRSA
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	dir := t.TempDir()
	c := &Cert{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(c.CertFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.KeyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if c.TLS, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	c.SHA256 = hex.EncodeToString(sum[:])
	return c
}

// OpenSSLServer runs `openssl s_server -www` on a free loopback port with
// cert and the given arguments (a protocol flag such as -tls1, a
// -cipher list, -sigalgs …) and returns its address; it is stopped by
// t.Cleanup. It skips (fails under PORTHOLE_REQUIRE_ALL=1) without
// openssl, and returns "" with ok false when this OpenSSL refuses the
// arguments (a cipher its build does not have).
func OpenSSLServer(t testing.TB, cert *Cert, args ...string) (addr string, ok bool) {
	t.Helper()
	bin := testenv.NeedBinary(t, "openssl")
	full := append([]string{"s_server", "-accept", "127.0.0.1:0", "-cert", cert.CertFile, "-key", cert.KeyFile, "-www", "-naccept", "1000"}, args...)
	cmd := exec.Command(bin, full...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start openssl: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	var seen []string
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, more := <-lines:
			if !more {
				t.Logf("openssl s_server %s refused: %s", strings.Join(args, " "), strings.Join(seen, " | "))
				return "", false
			}
			seen = append(seen, l)
			if a, found := strings.CutPrefix(l, "ACCEPT "); found {
				return a, true
			}
		case <-deadline:
			t.Fatalf("openssl s_server did not start: %s", strings.Join(seen, " | "))
		}
	}
}
