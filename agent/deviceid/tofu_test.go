package deviceid

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/porthole-dev/porthole/proto"
)

func TestPinStoreTrustsOnFirstUse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls-pins")
	s := &PinStore{Dir: dir}
	a, b := strings.Repeat("ab", 32), strings.Repeat("cd", 32)

	res := &Result{CertSHA256: a}
	first, err := s.Apply("printer-1", res)
	if err != nil || !first || res.TLSPin != a {
		t.Fatalf("first use: first=%v pin=%q err=%v", first, res.TLSPin, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "printer-1.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("pin file mode %v", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("pin directory holds %d files, want 1 (no temporary file left)", len(ents))
	}

	// Another store on the same directory (an agent restart) holds it.
	s2 := &PinStore{Dir: dir}
	res = &Result{CertSHA256: a}
	if first, err := s2.Apply("printer-1", res); err != nil || first || res.TLSPin != a {
		t.Fatalf("same certificate: first=%v pin=%q err=%v", first, res.TLSPin, err)
	}

	res = &Result{CertSHA256: b, CertVerified: true} // even a CA-valid one: the pin wins
	_, err = s2.Apply("printer-1", res)
	var cc *CertChanged
	if !errors.As(err, &cc) || proto.CodeOf(err) != proto.CodeDeviceFailed || res.TLSPin != "" {
		t.Fatalf("changed certificate: %v", err)
	}
	for _, want := range []string{"pinned " + a, "SHA-256 " + b, "porthole-agent trust --sha256 " + b + " printer-1"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q does not say %q", err, want)
		}
	}
	if len(err.Error()) > proto.MaxText {
		t.Fatalf("reason is %d bytes", len(err.Error()))
	}

	// Accepting the new certificate, with colons as browsers show it.
	colons := strings.ToUpper(b[:2]) + ":" + b[2:]
	if err := s2.Set("printer-1", colons); err != nil {
		t.Fatal(err)
	}
	if first, err := s.Apply("printer-1", &Result{CertSHA256: b}); err != nil || first {
		t.Fatalf("accepted certificate: %v", err)
	}
	// Removing the pin: the next check pins again.
	if err := s.Remove("printer-1"); err != nil {
		t.Fatal(err)
	}
	if first, err := s.Apply("printer-1", &Result{CertSHA256: a}); err != nil || !first {
		t.Fatalf("after removal: first=%v err=%v", first, err)
	}

	// A chain the CAs verify is not pinned; plain http is not either.
	res = &Result{CertSHA256: a, CertVerified: true}
	if first, err := s.Apply("router-1", res); err != nil || first || res.TLSPin != "" {
		t.Fatalf("CA-verified: first=%v pin=%q err=%v", first, res.TLSPin, err)
	}
	if p, _ := s.Get("router-1"); p != "" {
		t.Fatalf("CA-verified device pinned %s", p)
	}
	if first, err := s.Apply("http-1", &Result{}); err != nil || first {
		t.Fatalf("http: %v", err)
	}
	if err := s.Set("../x", a); err == nil {
		t.Fatal("a path as device id was accepted")
	}
}

func TestCheckNotesWhetherTheChainVerifies(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	target := Target{Device: "printer-1", Host: "127.0.0.1", Scheme: "https", Port: p}
	sum := sha256.Sum256(srv.Certificate().Raw)

	res, err := (&Checker{}).Check(context.Background(), target, Expect{})
	if err != nil {
		t.Fatal(err)
	}
	if res.CertVerified || res.CertSHA256 != hex.EncodeToString(sum[:]) || res.TLSPin != "" {
		t.Fatalf("self-signed: %+v", res)
	}
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	res, err = (&Checker{Roots: roots}).Check(context.Background(), target, Expect{})
	if err != nil || !res.CertVerified {
		t.Fatalf("with its CA: %+v %v", res, err)
	}
}
