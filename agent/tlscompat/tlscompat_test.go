//go:debug tlssha1=1

package tlscompat_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/tlscompat"
	"github.com/porthole-dev/porthole/internal/tlstest"
)

func dialer(addr string) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

func pinned(fp string) *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: "device.test", //nolint:gosec // pinned below
		VerifyConnection: func(cs tls.ConnectionState) error {
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if hex.EncodeToString(sum[:]) != fp {
				return errors.New("certificate changed")
			}
			return nil
		}}
}

// TestLadderAgainstOpenSSL connects to real OpenSSL servers configured as
// old devices are, and checks the agent steps down exactly as far as each
// needs and describes what it needed.
func TestLadderAgainstOpenSSL(t *testing.T) {
	modern := tlstest.NewCert(t, tlstest.CertOptions{})
	old := tlstest.NewCert(t, tlstest.CertOptions{Bits: 1024, SHA1: true, Expired: true})
	tests := []struct {
		name    string
		cert    *tlstest.Cert
		args    []string
		level   tlscompat.Level
		version string
		needs   []string // nil: modern, no report
	}{
		{"modern OpenSSL", modern, nil, tlscompat.Modern, "TLS 1.3", nil},
		{"TLS 1.2 only, ECDHE-GCM", modern, []string{"-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"}, tlscompat.Modern, "TLS 1.2", nil},
		{"TLS 1.2 RSA key exchange", modern, []string{"-tls1_2", "-cipher", "AES128-SHA"}, tlscompat.LegacySuites, "TLS 1.2", []string{"RSA key exchange"}},
		{"TLS 1.2 CBC-SHA256", modern, []string{"-tls1_2", "-cipher", "AES128-SHA256"}, tlscompat.LegacySuites, "TLS 1.2", []string{"RSA key exchange", "CBC with SHA-256"}},
		{"TLS 1.2 with SHA-1 signatures only", modern, []string{"-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256@SECLEVEL=0", "-sigalgs", "RSA+SHA1"}, tlscompat.Modern, "TLS 1.2", nil},
		{"TLS 1.1 ECDHE", modern, []string{"-tls1_1", "-cipher", "ECDHE-RSA-AES128-SHA@SECLEVEL=0"}, tlscompat.OldVersions, "TLS 1.1", []string{"TLS 1.1"}},
		{"TLS 1.0 RSA, 1024-bit SHA-1 expired cert", old, []string{"-tls1", "-cipher", "AES128-SHA@SECLEVEL=0"}, tlscompat.OldVersions, "TLS 1.0", []string{"TLS 1.0", "RSA key exchange"}},
		{"TLS 1.0 AES256-SHA", old, []string{"-tls1", "-cipher", "AES256-SHA@SECLEVEL=0"}, tlscompat.OldVersions, "TLS 1.0", []string{"TLS 1.0", "RSA key exchange"}},
		{"SECLEVEL=0, any version", old, []string{"-cipher", "ALL@SECLEVEL=0"}, tlscompat.Modern, "TLS 1.3", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, ok := tlstest.OpenSSLServer(t, tc.cert, tc.args...)
			if !ok {
				t.Fatalf("this OpenSSL refuses %v", tc.args)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, level, err := tlscompat.Handshake(ctx, dialer(addr), pinned(tc.cert.SHA256), tlscompat.Modern)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if level != tc.level {
				t.Errorf("level %s, want %s", level, tc.level)
			}
			cs := conn.ConnectionState()
			if got := tls.VersionName(cs.Version); got != tc.version {
				t.Errorf("version %s, want %s", got, tc.version)
			}
			d := tlscompat.Describe(cs)
			switch {
			case tc.needs == nil && d != nil:
				t.Errorf("modern connection reported as legacy: %+v", d)
			case tc.needs != nil && (d == nil || !slices.Equal(d.Needs, tc.needs)):
				t.Errorf("report %+v, want needs %v", d, tc.needs)
			case d != nil && !strings.Contains(d.Note, d.Cipher):
				t.Errorf("note %q does not name the cipher suite", d.Note)
			}
			// The device page is really served over it.
			if _, err := conn.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _ := conn.Read(buf)
			if !strings.HasPrefix(string(buf[:n]), "HTTP/1.0 200") {
				t.Errorf("answer %q", buf[:n])
			}
			conn.Close() // s_server serves one connection at a time
			// Starting from the remembered rung takes one handshake.
			conn2, level2, err := tlscompat.Handshake(ctx, dialer(addr), pinned(tc.cert.SHA256), level)
			if err != nil || level2 != level {
				t.Fatalf("from the remembered rung: %s, %v", level2, err)
			}
			conn2.Close()
		})
	}
}

// TestLadderNeverStepsDownForAChangedCertificate: a certificate the pin
// refuses is an attack or a replaced device, not old TLS.
func TestLadderNeverStepsDownForAChangedCertificate(t *testing.T) {
	cert := tlstest.NewCert(t, tlstest.CertOptions{Bits: 1024})
	addr, _ := tlstest.OpenSSLServer(t, cert, "-tls1", "-cipher", "AES128-SHA@SECLEVEL=0")
	dials := 0
	dial := func(ctx context.Context) (net.Conn, error) {
		dials++
		return dialer(addr)(ctx)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Find the rung, then present a wrong pin from it.
	c, level, err := tlscompat.Handshake(ctx, dial, pinned(cert.SHA256), tlscompat.Modern)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	dials = 0
	_, _, err = tlscompat.Handshake(ctx, dial, pinned(strings.Repeat("00", 32)), level)
	var ve *tlscompat.VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v, want a VerifyError", err)
	}
	if dials != 1 {
		t.Errorf("%d connections for a refused certificate, want 1", dials)
	}
}

// TestLadderDoesNotStepDownOnTimeout: a device that does not answer is
// unreachable, whatever the TLS.
func TestLadderDoesNotStepDownOnTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent: never answers the ClientHello
		}
	}()
	dials := 0
	dial := func(ctx context.Context) (net.Conn, error) {
		dials++
		return dialer(ln.Addr().String())(ctx)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, _, err := tlscompat.Handshake(ctx, dial, &tls.Config{InsecureSkipVerify: true}, tlscompat.Modern); err == nil { //nolint:gosec // test
		t.Fatal("handshake with a silent server succeeded")
	}
	if dials != 1 {
		t.Errorf("%d connections, want 1", dials)
	}
}

// TestWhatGoCannotReach documents, against real servers, what no rung
// reaches: DHE key exchange without EC.
func TestWhatGoCannotReach(t *testing.T) {
	cert := tlstest.NewCert(t, tlstest.CertOptions{})
	addr, ok := tlstest.OpenSSLServer(t, cert, "-tls1_2", "-cipher", "DHE-RSA-AES128-SHA")
	if !ok {
		t.Fatal("openssl refused DHE")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, level, err := tlscompat.Handshake(ctx, dialer(addr), &tls.Config{InsecureSkipVerify: true}, tlscompat.Modern) //nolint:gosec // test
	if err == nil {
		t.Fatal("DHE-only server reached: update the README's compatibility section")
	}
	if level != tlscompat.Lowest {
		t.Errorf("gave up at %s, want after the last rung", level)
	}
	t.Logf("DHE-only: %v", err)
}

// TestLadderAgainstGoServers covers what Debian's OpenSSL 3 no longer
// builds (3DES, RC4) with Go's own server, which still implements both.
func TestLadderAgainstGoServers(t *testing.T) {
	cert := tlstest.NewCert(t, tlstest.CertOptions{Bits: 1024, SHA1: true})
	tests := []struct {
		name  string
		cfg   *tls.Config
		level tlscompat.Level
		needs []string
	}{
		{"3DES TLS 1.2", &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}}, tlscompat.LegacySuites, []string{"RSA key exchange", "3DES"}},
		{"3DES TLS 1.0", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10, CipherSuites: []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}}, tlscompat.OldVersions, []string{"TLS 1.0", "RSA key exchange", "3DES"}},
		{"RC4 TLS 1.0", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10, CipherSuites: []uint16{tls.TLS_RSA_WITH_RC4_128_SHA}}, tlscompat.RC4, []string{"TLS 1.0", "RSA key exchange", "RC4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Certificates = []tls.Certificate{cert.TLS}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, level, err := tlscompat.Handshake(ctx, dialer(ln.Addr().String()), pinned(cert.SHA256), tlscompat.Modern)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if level != tc.level {
				t.Errorf("level %s, want %s", level, tc.level)
			}
			if d := tlscompat.Describe(conn.ConnectionState()); d == nil || !slices.Equal(d.Needs, tc.needs) {
				t.Errorf("report %+v, want %v", d, tc.needs)
			}
		})
	}
}

func TestStoreRemembersAndReprobes(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &tlscompat.Store{Dir: t.TempDir(), Now: func() time.Time { return now }}
	if l := s.Start("printer-1"); l != tlscompat.Modern {
		t.Fatalf("unknown device starts at %s", l)
	}
	if err := s.Remember("printer-1", tlscompat.OldVersions); err != nil {
		t.Fatal(err)
	}
	if err := s.Remember("printer-1:8443", tlscompat.LegacySuites); err != nil {
		t.Fatal(err)
	}
	// A new Store on the same directory (the agent restarted) remembers.
	s2 := &tlscompat.Store{Dir: s.Dir, Now: s.Now}
	if l := s2.Start("printer-1"); l != tlscompat.OldVersions {
		t.Errorf("after restart: %s", l)
	}
	if l := s2.Start("printer-1:8443"); l != tlscompat.LegacySuites {
		t.Errorf("port key: %s", l)
	}
	now = now.Add(tlscompat.ReprobeAfter + time.Minute)
	if l := s2.Start("printer-1"); l != tlscompat.Modern {
		t.Errorf("stale memory not reprobed: %s", l)
	}
	if err := s2.Remember("../etc/passwd", tlscompat.RC4); err == nil {
		t.Error("path traversal key accepted")
	}
}
