package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/agent/sshterm"
)

// TestSSHHostKeysCommand: list shows every pinned SSH host key with its
// device, port and OpenSSH fingerprint; forget removes one port's pin or
// every port's of a device, and says so; a device without pins is an
// error.
func TestSSHHostKeysCommand(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(cfg, []byte(`{"server":"https://s","stateDir":"`+state+`","devices":[{"id":"gw-1","address":"192.0.2.1"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	pins := &deviceid.PinStore{Dir: sshPinDir(state)}
	a, b := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	for key, fp := range map[string]string{sshterm.PinKey("gw-1", 22): a, sshterm.PinKey("gw-1", 2222): b, sshterm.PinKey("box-1", 22): b} {
		if err := pins.Set(key, fp); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	if err := sshKeysCmd([]string{"--config", cfg, "list"}, &out); err != nil {
		t.Fatal(err)
	}
	want := "box-1\tport 22\t" + sshterm.Fingerprint(b) + "\ngw-1\tport 22\t" + sshterm.Fingerprint(a) + "\ngw-1\tport 2222\t" + sshterm.Fingerprint(b) + "\n"
	if out.String() != want {
		t.Fatalf("list:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := sshKeysCmd([]string{"--config", cfg, "forget", "gw-1", "22"}, &out); err != nil {
		t.Fatal(err)
	}
	if got, _ := pins.Get(sshterm.PinKey("gw-1", 22)); got != "" || !strings.Contains(out.String(), sshterm.Fingerprint(a)+" forgotten") {
		t.Fatalf("after forget gw-1 22: pin %q; said %q", got, out.String())
	}
	if got, _ := pins.Get(sshterm.PinKey("gw-1", 2222)); got != b {
		t.Fatal("forget gw-1 22 removed port 2222's pin too")
	}
	if err := sshKeysCmd([]string{"--config", cfg, "forget", "box-1"}, &out); err != nil {
		t.Fatal(err)
	}
	if got, _ := pins.Get(sshterm.PinKey("box-1", 22)); got != "" {
		t.Fatal("forget box-1 kept its pin")
	}
	for name, args := range map[string][]string{
		"nothing pinned": {"--config", cfg, "forget", "box-1"},
		"bad port":       {"--config", cfg, "forget", "gw-1", "99999"},
		"no verb":        {"--config", cfg},
		"unknown verb":   {"--config", cfg, "delete", "gw-1"},
	} {
		if err := sshKeysCmd(args, &out); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
