package certfile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writePair(t *testing.T, dir, cn string, mtime time.Time) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	for name, b := range map[string][]byte{
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(p, mtime, mtime)
	}
}

func TestReloadsReplacedFilesAndKeepsServingOnBadOnes(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Now().Add(-time.Hour)
	writePair(t, dir, "old.example", t0)
	r, err := New(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	r.now = func() time.Time { return clock }
	cn := func() string {
		c, err := r.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.Subject.CommonName
	}
	if got := cn(); got != "old.example" {
		t.Fatalf("serves %s", got)
	}
	writePair(t, dir, "new.example", t0.Add(time.Minute))
	if got := cn(); got != "old.example" {
		t.Fatalf("looked at the files again within the interval: %s", got)
	}
	clock = clock.Add(2 * time.Minute)
	if got := cn(); got != "new.example" {
		t.Fatalf("after the interval: serves %s, want the renewed certificate", got)
	}
	// A half-written renewal: the previous certificate stays.
	_ = os.WriteFile(filepath.Join(dir, "cert.pem"), []byte("-----BEGIN CERTIFICATE-----\ngarbage"), 0o600)
	clock = clock.Add(2 * time.Minute)
	if got := cn(); got != "new.example" {
		t.Fatalf("after a broken renewal: serves %s", got)
	}
	if _, err := New(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), 0, nil); err == nil {
		t.Fatal("New accepted a broken pair")
	}
}
