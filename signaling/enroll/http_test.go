package enroll

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/ca"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
)

func newService(t *testing.T) *Service {
	t.Helper()
	dir := t.TempDir()
	authority, err := ca.Open(filepath.Join(dir, "ca"), ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(dir, "porthole.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.CreateSite(context.Background(), &store.Site{ID: "site-1", Name: "Site 1", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{CA: authority, PKI: st, Store: st, AgentURL: "wss://signal.example/agent"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func csrPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// TestEnrollRefusesDuplicateKeysAndInvalidUTF8: the enrollment endpoint is
// reached by anyone with a token (no certificate yet), and its decoder is as
// strict as the others: a body that names the token twice — a junk one
// first, a genuine one last, which encoding/json alone would enroll with —
// or spells "token" again in another case, or carries invalid UTF-8, is
// refused with bad_message, and the token stays unused for the genuine
// request that follows.
func TestEnrollRefusesDuplicateKeysAndInvalidUTF8(t *testing.T) {
	s := newService(t)
	tok, err := s.CreateToken(context.Background(), "admin", &proto.NewEnrollment{Site: "site-1", Agent: "agent-1"})
	if err != nil {
		t.Fatal(err)
	}
	csr, err := json.Marshal(csrPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	genuine := `"` + tok.Token + `"`
	h := s.EnrollHandler()
	post := func(body string) (int, proto.Error) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, proto.PathEnroll, strings.NewReader(body)))
		var pe proto.Error
		_ = json.Unmarshal(rec.Body.Bytes(), &pe)
		return rec.Code, pe
	}
	for _, tc := range []struct{ name, body, says string }{
		{"token twice", `{"token":"junk","csr":` + string(csr) + `,"token":` + genuine + `}`, "repeats the key"},
		{"token again in another case", `{"token":"junk","csr":` + string(csr) + `,"Token":` + genuine + `}`, "repeats the key"},
		{"invalid UTF-8", "{\"csr\":" + string(csr) + ",\"token\":\"" + tok.Token + "\xff\"}", "UTF-8"},
		{"a second object", `{"token":` + genuine + `,"csr":` + string(csr) + `}{}`, "after the object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, pe := post(tc.body)
			if code != http.StatusBadRequest || pe.Code != proto.CodeBadMessage || !strings.Contains(pe.Message, tc.says) {
				t.Fatalf("POST = %d %+v, want 400 bad_message saying %q", code, pe, tc.says)
			}
		})
	}
	// Control: the genuine request enrolls, so the token was never used.
	if code, pe := post(`{"token":` + genuine + `,"csr":` + string(csr) + `}`); code != http.StatusOK {
		t.Fatalf("genuine enrollment = %d %+v, want 200", code, pe)
	}
}
