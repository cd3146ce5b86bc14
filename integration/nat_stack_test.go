package integration

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
)

// Fixed lab addresses shared by every topology: the services live on "the
// internet" (documentation prefixes only).
const (
	natSignalIP = "203.0.113.10" // porthole-signaling on TCP 443
	natRelayIP  = "203.0.113.30" // porthole-turn: UDP 3478, TCP 443
	natDeviceID = "printer-1"
)

// natServices is porthole-turn and porthole-signaling running on their
// internet hosts of a lab.
type natServices struct {
	bin       stack.Binaries
	dir       string
	signalURL string
	agentKey  string
	techToken string
	secret    []byte
	relay     *netlab.Host
}

// startNATServices starts the relay and signaling on inet.
func startNATServices(t *testing.T, lab *netlab.Lab, inet *netlab.Segment, bin stack.Binaries) *natServices {
	t.Helper()
	s := &natServices{bin: bin, dir: t.TempDir(), agentKey: randToken(), techToken: randToken()}
	secretFile := filepath.Join(s.dir, "turn.secret")
	s.secret = []byte(randToken() + randToken())
	if err := os.WriteFile(secretFile, s.secret, 0o600); err != nil {
		t.Fatal(err)
	}
	s.relay = lab.Host("relay", inet, natRelayIP)
	s.relay.StartAndWait("porthole-turn", bin["porthole-turn"], []string{
		"--udp", natRelayIP + ":3478", "--tcp", natRelayIP + ":443",
		"--public-ip", natRelayIP, "--secret-file", secretFile,
	}, `porthole-turn listening`, 15*time.Second)

	sig := lab.Host("signal", inet, natSignalIP)
	s.signalURL = "http://" + natSignalIP + ":443"
	sig.StartAndWait("porthole-signaling", bin["porthole-signaling"], []string{
		"--listen", natSignalIP + ":443",
		"--agent-key", "site-agent=" + s.agentKey,
		"--tech-token", s.techToken + "=tech",
		"--turn-secret-file", secretFile,
		"--ice-url", "stun:" + natRelayIP + ":3478",
		"--ice-url", "turn:" + natRelayIP + ":3478?transport=udp",
		"--ice-url", "turn:" + natRelayIP + ":443?transport=tcp",
		"--sessions-domain", natSessionsDomain, "--sessions-scheme", "http",
		"--allowed-origin", "http://app.example:443",
		// Development mode: dev technician tokens and #token= session links.
		"--app-origin", "http://app.example:443", "--insecure-dev-tokens",
		"--data-dir", filepath.Join(s.dir, "signaling"),
	}, `listening on`, 15*time.Second)
	return s
}

// startSite starts the demo device on deviceHost and porthole-agent on
// agentHost, and waits until the agent is connected to signaling.
func (s *natServices) startSite(t *testing.T, agentHost, deviceHost *netlab.Host) (agent *proc.Proc, deviceURL string) {
	t.Helper()
	devAddr := deviceHost.AddrPort(80).String()
	deviceHost.StartAndWait("porthole-demo-device", s.bin["porthole-demo-device"],
		[]string{"--listen", devAddr}, `listening on`, 15*time.Second)
	cfg, _ := json.Marshal(map[string]any{
		"server": s.signalURL, "key": s.agentKey,
		"devices": []map[string]any{{
			"id": natDeviceID, "name": "Demo printer", "scheme": "http",
			"address": deviceHost.Addr().String(), "httpPort": 80,
		}},
	})
	path := filepath.Join(s.dir, "agent-"+agentHost.Name()+".json")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	agent, _ = agentHost.StartAndWait("porthole-agent", s.bin["porthole-agent"],
		[]string{"--config", path, "--log-level", "info"}, `connected to signaling`, 20*time.Second)
	return agent, "http://" + devAddr
}

// natResult is what one topology showed.
type natResult struct {
	topology  string
	path      string // "direct path" or "relayed through TURN"
	pair      string // the agent's selected candidate pair: agent's end <-> technician's end
	cliPair   string // the CLI's selected pair: technician's end <-> agent's end
	agentCand string // candidate type of the agent's end: host, srflx, prflx or relay
	techCand  string // candidate type of the technician's end, as the agent knows it
	// Candidate types the agent gathered and those the technician sent.
	agentTypes, techTypes string
	connected             time.Duration // as the CLI measured it: session request to ICE connected
	wall                  time.Duration // CLI start to connected line
	rtt                   string
	proc                  *proc.Proc // the CLI
}

var (
	cliConnected = regexp.MustCompile(`connected to \S+ in (\S+) \((direct path|relayed through TURN|unknown path)(?:, RTT (\S+))?\)`)
	cliPair      = regexp.MustCompile(`selected candidate pair: (.*) \(you\) <-> (.*) \(agent\)`)
	// The agent's Info line when the technician connects: the selected
	// pair's ends ("relay udp 203.0.113.30:40000 related 192.168.1.10:51000"
	// — a relay's related address is 0.0.0.0 for TURN over UDP, the agent's
	// own TCP socket for TURN over TCP) and the candidate types each side
	// offered.
	agentConnected = regexp.MustCompile(`msg="technician connected".* path=(\S+) local="([^"]*)" remote="([^"]*)" local_types=(\S*) remote_types=(\S*)`)
)

// connectCLI runs `porthole http` on techHost, waits until it is
// connected and serving, and returns the local base URL and the result.
func (s *natServices) connectCLI(t *testing.T, techHost *netlab.Host, agent *proc.Proc, topology string) (string, natResult) {
	t.Helper()
	start := time.Now()
	cli := techHost.Start("porthole", s.bin["porthole"],
		[]string{"http", natDeviceID, "--listen", "127.0.0.1:8080"},
		"PORTHOLE_SERVER="+s.signalURL, "PORTHOLE_TOKEN="+s.techToken)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	m, err := cli.WaitLine(ctx, cliConnected)
	if err != nil {
		t.Fatalf("CLI did not connect: %v\nagent:\n%s", err, agent.Tail(30))
	}
	r := natResult{topology: topology, path: m[2], wall: time.Since(start), rtt: m[3], proc: cli}
	r.connected, _ = time.ParseDuration(m[1])
	if _, err := cli.WaitLine(ctx, regexp.MustCompile(`serving \S+ web page at http://127.0.0.1:8080/`)); err != nil {
		t.Fatal(err)
	}
	if pm, err := cli.WaitLine(ctx, cliPair); err == nil {
		r.cliPair = pm[1] + " <-> " + pm[2]
	} else {
		t.Errorf("the CLI did not print its selected pair: %v", err)
	}
	if am, err := agent.WaitLine(ctx, agentConnected); err == nil {
		r.pair = am[2] + " <-> " + am[3]
		r.agentCand, r.techCand = firstField(am[2]), firstField(am[3])
		r.agentTypes, r.techTypes = am[4], am[5]
	} else {
		t.Logf("agent did not log its selected pair: %v", err)
	}
	return "http://127.0.0.1:8080", r
}

// checkFetch fetches device pages through the CLI on techHost and
// compares them byte for byte with the device's own answers.
func checkFetch(t *testing.T, techHost, deviceHost *netlab.Host, base, device string) {
	t.Helper()
	tc := techHost.HTTPClient(30 * time.Second)
	dc := deviceHost.HTTPClient(30 * time.Second)
	defer tc.CloseIdleConnections()
	defer dc.CloseIdleConnections()
	for _, path := range []string{"/", "/supplies", "/logo.png", "/firmware.bin?size=300000"} {
		got, gs := natGet(t, tc, base+path)
		want, ws := natGet(t, dc, device+path)
		if gs != ws || sha256.Sum256(got) != sha256.Sum256(want) {
			t.Errorf("%s: status %d and %d bytes through the tunnel, %d and %d bytes from the device", path, gs, len(got), ws, len(want))
		}
	}
	const size = 8 << 20
	sum, _ := natGet(t, dc, fmt.Sprintf("%s/firmware.sha256?size=%d", device, size))
	body, status := natGet(t, tc, fmt.Sprintf("%s/firmware.bin?size=%d", base, size))
	h := sha256.Sum256(body)
	if status != http.StatusOK || len(body) != size || hex.EncodeToString(h[:]) != strings.TrimSpace(string(sum)) {
		t.Errorf("8 MiB firmware: status %d, %d bytes, checksum mismatch or short", status, len(body))
	}
}

func natGet(t *testing.T, c *http.Client, u string) ([]byte, int) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		t.Fatalf("GET %s: body: %v", u, err)
	}
	return b, resp.StatusCode
}

func randToken() string { return rand.Text() }

func firstField(s string) string {
	f, _, _ := strings.Cut(s, " ")
	return f
}
