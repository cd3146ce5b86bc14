package preflight

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
	"strings"
	"testing"
	"time"
)

// good is a complete production configuration behind a TLS proxy.
func good() Config {
	return Config{
		Listen:         "0.0.0.0:8080",
		AppOrigin:      "https://porthole.example.com",
		SessionsDomain: "porthole-sessions.example",
		ICEURLs:        []string{"stun:turn.example.com:3478", "turn:turn.example.com:3478"},
		TURNSecret:     true,
		AgentListen:    "0.0.0.0:8443",
		LocalLogin:     true,
	}
}

func worst(fs []Finding, setting string) (Level, string) {
	l, msg := Info, ""
	for _, f := range fs {
		if f.Setting == setting && f.Level >= l {
			l, msg = f.Level, f.Message
		}
	}
	return l, msg
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		setting string
		want    Level
		says    string
	}{
		{"complete configuration", func(*Config) {}, "sessions-domain", Info, "wildcard certificate for *.porthole-sessions.example"},
		{"plain HTTP on a public name", func(c *Config) { c.AppOrigin = "http://porthole.example.com" }, "app-origin", Refuse, "unencrypted"},
		{"no app origin on a public listener", func(c *Config) { c.AppOrigin = "" }, "app-origin", Refuse, "not set"},
		{"no app origin on loopback", func(c *Config) { c.AppOrigin = ""; c.Listen = "127.0.0.1:8080" }, "app-origin", Warn, "API and CLI only"},
		{"demo on loopback over http", func(c *Config) {
			c.AppOrigin, c.Listen, c.SessionsDomain = "http://localhost:8080", "127.0.0.1:8080", "sessions.localhost:8080"
		}, "app-origin", Info, ""},
		{"demo over http reachable from the network", func(c *Config) { c.AppOrigin = "http://localhost:8080" }, "listen", Warn, "without TLS"},
		{"a lab under .test over http", func(c *Config) {
			c.AppOrigin, c.SessionsDomain, c.SessionsScheme, c.DevTokens = "http://app.test:443", "sessions.localhost:443", "http", true
		}, "app-origin", Info, ""},
		{"a name merely containing test is public", func(c *Config) { c.AppOrigin = "http://porthole.latest" }, "app-origin", Refuse, "unencrypted"},
		{"sessions under the app's registrable domain", func(c *Config) { c.SessionsDomain = "s.example.com" }, "sessions-domain", Refuse, "same registrable domain"},
		{"sessions domain a public suffix", func(c *Config) { c.SessionsDomain = "github.io" }, "sessions-domain", Refuse, "public suffix"},
		{"sessions domain a public suffix with a wildcard rule", func(c *Config) { c.SessionsDomain = "foo.ck" }, "sessions-domain", Refuse, "public suffix"},
		{"sessions domain a bare TLD", func(c *Config) { c.SessionsDomain = "com" }, "sessions-domain", Refuse, "public suffix"},
		{"sessions domain localhost itself", func(c *Config) {
			c.AppOrigin, c.Listen, c.SessionsDomain = "http://localhost:8080", "127.0.0.1:8080", "localhost:8080"
		}, "sessions-domain", Warn, "public suffix"},
		{"sessions domain a subdomain of another site", func(c *Config) { c.SessionsDomain = "s.example.net" }, "sessions-domain", Warn, "subdomain of example.net"},
		{"sessions domain an address", func(c *Config) { c.SessionsDomain = "192.0.2.1" }, "sessions-domain", Refuse, "address"},
		{"app under the sessions domain", func(c *Config) {
			c.AppOrigin = "https://app.porthole-sessions.example"
		}, "sessions-domain", Refuse, "same registrable domain"},
		{"no sessions domain", func(c *Config) { c.SessionsDomain = "" }, "sessions-domain", Warn, "cannot open devices"},
		{"http session origins on a public domain", func(c *Config) { c.SessionsScheme = "http" }, "sessions-scheme", Refuse, "unencrypted"},
		{"no TURN on a public server", func(c *Config) { c.ICEURLs = []string{"stun:x:3478"} }, "ice-url", Warn, "symmetric NATs"},
		{"TURN relays count as TURN", func(c *Config) { c.ICEURLs, c.TURNRelays = nil, 2 }, "ice-url", Info, ""},
		{"TURN without its secret", func(c *Config) { c.TURNSecret = false }, "turn-secret", Refuse, "no secret"},
		{"dev tokens on a public server", func(c *Config) { c.DevTokens = true }, "insecure-dev-tokens", Refuse, "public server"},
		{"dev tokens on a demo", func(c *Config) {
			c.AppOrigin, c.Listen, c.DevTokens = "http://localhost:8080", "127.0.0.1:8080", true
		}, "insecure-dev-tokens", Warn, "development mode"},
		{"nobody could sign in", func(c *Config) { c.LocalLogin = false }, "local-login", Refuse, "nobody could sign in"},
		{"single sign-on only", func(c *Config) {
			c.LocalLogin, c.OIDCIssuer, c.OIDCClientID = false, "https://login.example.com/", "porthole"
		}, "local-login", Info, ""},
		{"issuer over plain HTTP", func(c *Config) { c.OIDCIssuer, c.OIDCClientID = "http://login.example.com/", "porthole" }, "oidc-issuer", Refuse, "plain HTTP"},
		{"issuer without client", func(c *Config) { c.OIDCIssuer = "https://login.example.com/" }, "oidc-client-id", Refuse, "client ID"},
		{"no agent listener", func(c *Config) { c.AgentListen = "" }, "agent-listen", Warn, "pre-shared keys"},
		{"key without certificate", func(c *Config) { c.TLSKeyFile = "k.pem" }, "tls-cert", Refuse, "go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.change(&cfg)
			fs := Check(cfg)
			got, msg := worst(fs, tc.setting)
			if got != tc.want || !strings.Contains(msg, tc.says) {
				t.Errorf("%s: got %s %q, want %s containing %q\nall: %v", tc.setting, got, msg, tc.want, tc.says, fs)
			}
			if (Err(fs) != nil) != (tc.want == Refuse) {
				t.Errorf("Err = %v with worst finding %s", Err(fs), got)
			}
		})
	}
}

// writePair writes a self-signed certificate for names, valid until
// notAfter, and its key.
func writePair(t *testing.T, notAfter time.Time, names ...string) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: notAfter.Add(-90 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	cert, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	return cert, keyFile
}

func TestCertificateMustCoverTheAppAndTheWildcard(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	later := now.Add(60 * 24 * time.Hour)
	for _, tc := range []struct {
		name     string
		names    []string
		notAfter time.Time
		want     Level
		says     string
	}{
		{"app and wildcard", []string{"porthole.example.com", "*.porthole-sessions.example"}, later, Info, ""},
		{"no wildcard", []string{"porthole.example.com", "porthole-sessions.example"}, later, Refuse, "does not cover *.porthole-sessions.example"},
		{"no app name", []string{"*.porthole-sessions.example"}, later, Refuse, "does not cover porthole.example.com"},
		{"expires soon", []string{"porthole.example.com", "*.porthole-sessions.example"}, now.Add(5 * 24 * time.Hour), Warn, "expires in 5 days"},
		{"expired", []string{"porthole.example.com", "*.porthole-sessions.example"}, now.Add(-time.Hour), Refuse, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			cfg.Now = now
			cfg.TLSCertFile, cfg.TLSKeyFile = writePair(t, tc.notAfter, tc.names...)
			got, msg := worst(Check(cfg), "tls-cert")
			if got != tc.want || !strings.Contains(msg, tc.says) {
				t.Errorf("got %s %q, want %s containing %q", got, msg, tc.want, tc.says)
			}
		})
	}
}
