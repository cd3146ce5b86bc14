package proto

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

var goldenLegacyTLS = &LegacyTLS{Version: "TLS 1.0", Cipher: "TLS_RSA_WITH_AES_128_CBC_SHA",
	Needs: []string{"TLS 1.0", "RSA key exchange"},
	Note:  "This device only speaks TLS 1.0 (TLS_RSA_WITH_AES_128_CBC_SHA); Porthole reaches it, but its encryption is weak."}

// TestGoldenLegacyTLSHealth freezes a device's legacy TLS in hello.
func TestGoldenLegacyTLSHealth(t *testing.T) {
	hello := &Hello{Role: RoleAgent, Software: "porthole-agent/dev", Devices: []Device{{ID: "old-printer", Scheme: "https", HTTPPort: 443,
		Health: &DeviceHealth{Reachable: true, TLS: goldenLegacyTLS}}}}
	checkGolden(t, filepath.Join("testdata", "golden", "agent", "hello-agent-legacy-tls.json"), TypeHello, "", hello, &Hello{})
}

// goldenTunnelHeads freezes the JSON payloads of tunnel frames that the
// browser's half (web/session) encodes and decodes too.
var goldenTunnelHeads = []struct {
	name    string
	payload any
	decode  func([]byte) error
}{
	{"request-origin", &RequestHead{Method: "POST", Target: "/settings", ContentLength: 12, ClientOrigin: "https://s1.sessions.example",
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}},
		func(b []byte) error { _, err := DecodeRequestHead(b); return err }},
	{"response-compat", &ResponseHead{Status: 302, Header: http.Header{"Location": {"/login"}}, Cookies: []string{"ui_lang=en"},
		DeletedCookies: []string{"sid_view"}, TLS: goldenLegacyTLS},
		func(b []byte) error { _, err := DecodeResponseHead(b); return err }},
	{"ws-open", &WSOpen{Target: "/ws/status?v=2", Protocols: []string{"status.v2", "status.v1"}, ClientOrigin: "https://s1.sessions.example",
		Header: http.Header{"Cookie": {"ui_lang=en"}}},
		func(b []byte) error { _, err := DecodeWSOpen(b); return err }},
	{"ws-opened", &WSOpened{Protocol: "status.v2", Cookies: []string{"ws_seen=1"}},
		func(b []byte) error { _, err := DecodeWSOpened(b); return err }},
	{"ws-close", &WSClose{Code: 4001, Reason: "device says bye"},
		func(b []byte) error { _, err := DecodeWSClose(b); return err }},
	{"ssh-open", &SSHOpen{Port: 22, User: "tech", Password: "s3cret pass", Cols: 120, Rows: 40},
		func(b []byte) error { _, err := DecodeSSHOpen(b); return err }},
	{"ssh-opened", &SSHOpened{HostKey: "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s", FirstUse: true},
		func(b []byte) error { _, err := DecodeSSHOpened(b); return err }},
	{"ssh-resize", &SSHResize{Cols: 132, Rows: 50},
		func(b []byte) error { _, err := DecodeSSHResize(b); return err }},
}

func TestGoldenTunnelHeads(t *testing.T) {
	for _, tc := range goldenTunnelHeads {
		t.Run(tc.name, func(t *testing.T) {
			b, err := EncodeHead(tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", "tunnel", tc.name+".json")
			if *update {
				if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(append(b, '\n'), want) {
				t.Fatalf("wire shape changed:\n got %s\nwant %s", b, want)
			}
			if err := tc.decode(bytes.TrimSpace(want)); err != nil {
				t.Fatalf("golden does not decode: %v", err)
			}
			var anyJSON map[string]any
			if err := json.Unmarshal(want, &anyJSON); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A message chunk's layout: flags byte (binary|final), then data.
	if got := AppendWSMessage(nil, true, true, []byte("hi")); !bytes.Equal(got, []byte{0x03, 'h', 'i'}) {
		t.Fatalf("chunk layout %x", got)
	}
}
