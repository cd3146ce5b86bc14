package integration

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/promserve"
	"github.com/porthole-dev/porthole/internal/testenv"
)

// TestRelayedSessionTakesTheNearestRelay runs two porthole-turn relays in
// two regions, "eu" and "us", behind one signaling node, and an agent whose
// configuration says it is in "us". A session forced through TURN must be
// relayed by the us relay: it gets allocations, the eu relay gets none. The
// metrics of all three servers are scraped along the way and must move.
func TestRelayedSessionTakesTheNearestRelay(t *testing.T) {
	bin := stack.Build(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := func(name string, args []string, ready string) (*proc.Proc, []string) {
		t.Helper()
		p, err := proc.Start(name, bin[strings.Fields(name)[0]], args, proc.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := p.Stop(10 * time.Second); err != nil && p.ExitErr() == nil {
				t.Logf("%s: %v\n%s", name, err, p.Tail(30))
			}
		})
		m, err := p.WaitLine(ctx, regexp.MustCompile(ready))
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, p.Tail(30))
		}
		return p, m
	}
	scrape := func(url string) promserve.Samples {
		t.Helper()
		s, err := promserve.Scrape(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	_, m := start("porthole-demo-device", []string{"--listen", "127.0.0.1:0"}, `listening on http://(\S+)`)
	deviceAddr := m[1]
	secret := rand.Text()
	secretFile := filepath.Join(dir, "turn.secret")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}

	// Two relays, each with its metrics.
	relayAddr, relayMetrics := map[string]string{}, map[string]string{}
	for _, region := range []string{"eu", "us"} {
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		p, _ := start("porthole-turn "+region, []string{
			"--udp", addr, "--tcp", "", "--public-ip", "127.0.0.1", "--secret-file", secretFile,
			"--allow-peer", "127.0.0.0/8", "--allow-own-host", "--metrics-listen", "127.0.0.1:0",
		}, `listening`)
		m, err := p.WaitLine(ctx, regexp.MustCompile(`metrics on (http://\S+)`))
		if err != nil {
			t.Fatal(err)
		}
		relayAddr[region], relayMetrics[region] = addr, m[1]
		if got := scrape(m[1])["porthole_turn_allocations_total"]; got != 0 {
			t.Fatalf("%s relay: %v allocations before any session", region, got)
		}
	}

	agentKey, techToken := rand.Text(), rand.Text()
	sig, m := start("porthole-signaling", []string{
		"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "signaling"),
		"--insecure-dev-tokens", "--agent-key", "agent-us=" + agentKey, "--tech-token", techToken + "=tech",
		"--turn-secret-file", secretFile,
		"--turn-relay", "eu=turn:" + relayAddr["eu"] + "?transport=udp",
		"--turn-relay", "us=turn:" + relayAddr["us"] + "?transport=udp",
		"--metrics-listen", "127.0.0.1:0",
	}, `listening on (http://\S+)`)
	sigURL := m[1]
	m, err := sig.WaitLine(ctx, regexp.MustCompile(`metrics on (http://\S+)`))
	if err != nil {
		t.Fatal(err)
	}
	sigMetrics := m[1]
	if got := scrape(sigMetrics)["porthole_signaling_agents_connected"]; got != 0 {
		t.Fatalf("%v agents connected before the agent started", got)
	}

	host, port, _ := strings.Cut(deviceAddr, ":")
	cfg, _ := json.Marshal(map[string]any{
		"server": sigURL, "key": agentKey, "region": "us",
		"devices": []map[string]any{{"id": stack.DeviceID, "scheme": "http", "address": host, "httpPort": json.Number(port)}},
	})
	cfgPath := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	agent, _ := start("porthole-agent", []string{"--config", cfgPath, "--state-dir", filepath.Join(dir, "agent-state"), "--loopback-only"}, `connected to signaling`)
	// The agent measured both relays (they are equally near on loopback:
	// its region decides).
	if _, err := agent.WaitLine(ctx, regexp.MustCompile(`relay round trips measured.*relays=2`)); err != nil {
		t.Fatal(err)
	}
	if got := scrape(sigMetrics)["porthole_signaling_agents_connected"]; got != 1 {
		t.Fatalf("%v agents connected, want 1", got)
	}

	cli, err := proc.Start("porthole", bin["porthole"], []string{"--loopback-only", "--relay", "http", stack.DeviceID, "--listen", "127.0.0.1:0"}, proc.Options{
		Env: []string{"PORTHOLE_SERVER=" + sigURL, "PORTHOLE_TOKEN=" + techToken},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Stop(10 * time.Second) })
	m, err = cli.WaitLine(ctx, regexp.MustCompile(`serving \S+ web page at (http://\S+/)`))
	if err != nil {
		t.Fatalf("CLI: %v\n%s", err, cli.Tail(30))
	}
	if _, err := cli.WaitLine(ctx, regexp.MustCompile(`relayed through TURN`)); err != nil {
		t.Fatalf("CLI did not relay: %v\n%s", err, cli.Tail(30))
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("device page through the tunnel: %s", resp.Status)
	}

	us, eu := scrape(relayMetrics["us"]), scrape(relayMetrics["eu"])
	if us["porthole_turn_allocations_total"] < 1 || us["porthole_turn_allocations_active"] < 1 {
		t.Errorf("us relay (the agent's region): %v allocations, %v active; want the session's", us["porthole_turn_allocations_total"], us["porthole_turn_allocations_active"])
	}
	if us[`porthole_turn_relayed_bytes_total{direction="to_peer"}`] == 0 {
		t.Errorf("us relay relayed no bytes")
	}
	if eu["porthole_turn_allocations_total"] != 0 {
		t.Errorf("eu relay: %v allocations, want none", eu["porthole_turn_allocations_total"])
	}
	// The agent reports the path once the technician's peer connected.
	var s promserve.Samples
	testenv.Eventually(t, 10*time.Second, "signaling to count a relayed session", func() bool {
		s = scrape(sigMetrics)
		return s[`porthole_signaling_connected_sessions{path="relay"}`] == 1
	})
	if s[`porthole_signaling_session_setup_seconds_count{stage="connected"}`] != 1 || s[`porthole_signaling_sessions{state="connected"}`] != 1 {
		t.Errorf("signaling metrics after connecting: %v", s)
	}
}
