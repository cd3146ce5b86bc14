package server

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
)

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero value but a store", Config{}, true},
		{"max TTL", Config{SessionTTL: 30 * time.Minute}, true},
		{"TTL over 30 min", Config{SessionTTL: 31 * time.Minute}, false},
		{"negative TTL", Config{SessionTTL: -time.Second}, false},
		{"turn without secret", Config{ICEURLs: []string{"turn:h:3478?transport=udp"}}, false},
		{"turn with secret", Config{ICEURLs: []string{"turn:h:3478?transport=udp"}, TURNSecret: []byte("s")}, true},
		{"bad ICE URL", Config{ICEURLs: []string{"http://h"}}, false},
		{"origin with path", Config{AllowedOrigins: []string{"https://app.example.com/"}}, false},
		{"origin upper case", Config{AllowedOrigins: []string{"https://App.example.com"}}, false},
		{"good origin", Config{AllowedOrigins: []string{"https://app.example.com:8443"}}, true},
		{"bad scheme", Config{SessionsScheme: "ftp"}, false},
		{"bad domain", Config{SessionsDomain: "a/b"}, false},
		{"ping not below pong", Config{PingInterval: 30 * time.Second}, false},
		{"bad agent id", Config{AgentKeys: map[string]string{"a b": "k"}}, false},
		{"empty agent key", Config{AgentKeys: map[string]string{"a": ""}}, false},
		{"shared agent key", Config{AgentKeys: map[string]string{"a": "k", "b": "k"}}, false},
		{"bad user id", Config{InsecureDevTokens: true, TechnicianTokens: map[string]string{"t": "bad user"}}, false},
		{"dev tokens in dev mode", Config{InsecureDevTokens: true, TechnicianTokens: map[string]string{"t": "alice"}}, true},
		{"dev tokens without dev mode", Config{TechnicianTokens: map[string]string{"t": "alice"}}, false},
		{"sessions domain without app origin", Config{SessionsDomain: "s.example.net"}, false},
		{"sessions domain with app origin", Config{SessionsDomain: "s.example.net", AppOrigin: "https://app.example.com"}, true},
		{"bad app origin", Config{AppOrigin: "https://app.example.com/x"}, false},
		{"code TTL over 60 s", Config{CodeTTL: 61 * time.Second}, false},
		{"no store", Config{Store: nil}, false},
	}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name != "no store" {
				tt.cfg.Store = st
			}
			tt.cfg.PasswordParams = authn.FastParams
			s, err := New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New err = %v, want ok=%v", err, tt.ok)
			}
			if s != nil {
				s.Close()
			}
		})
	}
}
