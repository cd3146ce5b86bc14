package enroll

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// fakeSignaling answers an enrollment as signaling does — a certificate
// for the request's key issued by its CA, the CA, a grant key and the agent
// URL — and lets mangle rewrite the JSON text of the answer.
func fakeSignaling(t *testing.T, mangle func(string) string) *httptest.Server {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	grant, _, _ := ed25519.GenerateKey(rand.Reader)
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req proto.EnrollRequest
		if r.URL.Path != proto.PathEnroll || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		block, _ := pem.Decode([]byte(req.CSR))
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
			Subject: pkix.Name{CommonName: "agent-1"}, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature},
			ca, csr.PublicKey, caKey)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		b, _ := json.Marshal(&proto.EnrollResult{Agent: "agent-1", Site: "site-a",
			Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			CA:          string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
			GrantKey:    base64.StdEncoding.EncodeToString(grant),
			AgentURL:    "wss://signaling.example/agent", Expires: now.Add(time.Hour)})
		_, _ = w.Write([]byte(mangle(string(b))))
	}))
}

// TestEnrollRefusesAnAmbiguousAnswer: signaling's enrollment answer carries
// the key that verifies every session grant the agent will act on. One
// that names a second grant key after the genuine one (also spelled in
// another case), or holds invalid UTF-8, is refused with bad_message and
// nothing is stored; encoding/json alone would take the last key.
func TestEnrollRefusesAnAmbiguousAnswer(t *testing.T) {
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	otherKey := base64.StdEncoding.EncodeToString(other)
	for name, mangle := range map[string]func(string) string{
		"control":                    func(s string) string { return s },
		"a second grant key":         func(s string) string { return strings.TrimSuffix(s, "}") + `,"grantKey":"` + otherKey + `"}` },
		"a second grant key by case": func(s string) string { return strings.TrimSuffix(s, "}") + `,"GrantKey":"` + otherKey + `"}` },
		"invalid UTF-8":              func(s string) string { return strings.Replace(s, `"site-a"`, "\"site-\xff\"", 1) },
	} {
		t.Run(name, func(t *testing.T) {
			srv := fakeSignaling(t, mangle)
			defer srv.Close()
			dir := t.TempDir()
			st, err := Enroll(context.Background(), srv.URL, "token", dir, Options{Client: srv.Client()})
			if name == "control" {
				if err != nil {
					t.Fatalf("a plain answer: %v", err)
				}
				return
			}
			if proto.CodeOf(err) != proto.CodeBadMessage {
				if st != nil {
					t.Fatalf("Enroll accepted it: site %q, grant key %s; want bad_message", st.Info().Site, st.Info().GrantKey)
				}
				t.Fatalf("Enroll: %v; want bad_message", err)
			}
			if _, err := os.Stat(filepath.Join(dir, StateFile)); !os.IsNotExist(err) {
				t.Fatalf("state stored after a refused answer: %v", err)
			}
		})
	}
}
