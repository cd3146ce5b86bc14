package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/porthole-dev/porthole/agent/deviceid"
)

func TestTrustCommand(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(cfg, []byte(`{"server":"https://s","stateDir":"`+state+`","devices":[{"id":"tls-1","address":"192.0.2.1","scheme":"https"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	pins := &deviceid.PinStore{Dir: tlsPinDir(state)}
	old, fresh := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	if err := pins.Set("tls-1", old); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := trustCmd([]string{"--config", cfg, "--sha256", fresh, "tls-1"}, &out); err != nil {
		t.Fatal(err)
	}
	if got, _ := pins.Get("tls-1"); got != fresh || !strings.Contains(out.String(), "was "+old) {
		t.Fatalf("pin %s after trust --sha256; said %q", got, out.String())
	}
	if err := trustCmd([]string{"--config", cfg, "tls-1"}, &out); err != nil {
		t.Fatal(err)
	}
	if got, _ := pins.Get("tls-1"); got != "" {
		t.Fatalf("pin %s after trust", got)
	}
	for name, args := range map[string][]string{
		"undeclared device": {"--config", cfg, "printer-9"},
		"bad fingerprint":   {"--config", cfg, "--sha256", "abcd", "tls-1"},
		"no device":         {"--config", cfg},
	} {
		if err := trustCmd(args, &out); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
