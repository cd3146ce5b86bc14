package integration

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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
	"github.com/porthole-dev/porthole/internal/testcert"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// Fixed lab addresses shared by every topology: the services live on "the
// internet" (documentation prefixes only).
const (
	natSignalIP = "203.0.113.10" // porthole-signaling on TCP 443
	natRelayIP  = "203.0.113.30" // porthole-turn: UDP 3478, TCP 443
	natRelayBIP = "203.0.113.31" // the second relay, when natOptions.twoRelays
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
	// relayProc is the relay's porthole-turn; relayB and relayBProc the
	// second relay's, with natOptions.twoRelays.
	relayProc, relayBProc *proc.Proc
	relayB                *netlab.Host
	// caFile holds the CA of the relay's TLS certificate (relayTLS), and
	// relaySPKI the base64 SHA-256 of its public key (for Chromium's
	// --ignore-certificate-errors-spki-list, which trusts that key only).
	caFile, relaySPKI string
	devices           map[*netlab.Host]bool // demo devices started, by host
}

// natOptions vary the services of a lab.
type natOptions struct {
	// relayTLS: the relay serves TURN over TLS on 443 (a certificate
	// from a lab CA for its address) and plain TCP on 3478, instead of
	// plain TCP on 443; signaling hands out turns: as the last rung.
	relayTLS bool
	// relayPorts confines relayed addresses ("MIN-MAX").
	relayPorts string
	// twoRelays: a second porthole-turn at natRelayBIP, and signaling
	// chooses per session between the two by region (--turn-relay
	// eu=the first, us=the second; an agent in "eu" gets the first),
	// TURN over UDP only, no STUN URL.
	twoRelays bool
	// appOrigin is the app's origin (default http://app.test:443); a
	// *.localhost one is a secure context, where Chromium keeps the
	// app's __Host- login cookie.
	appOrigin string
}

// startNATServices starts the relay and signaling on inet.
func startNATServices(t *testing.T, lab *netlab.Lab, inet *netlab.Segment, bin stack.Binaries, opts ...natOptions) *natServices {
	t.Helper()
	var opt natOptions
	if len(opts) > 0 {
		opt = opts[0]
	}
	s := &natServices{bin: bin, dir: t.TempDir(), agentKey: randToken(), techToken: randToken()}
	secretFile := filepath.Join(s.dir, "turn.secret")
	s.secret = []byte(randToken() + randToken())
	if err := os.WriteFile(secretFile, s.secret, 0o600); err != nil {
		t.Fatal(err)
	}
	s.relay = lab.Host("relay", inet, natRelayIP)
	relayArgs := []string{"--udp", natRelayIP + ":3478", "--tcp", natRelayIP + ":443", "--public-ip", natRelayIP, "--secret-file", secretFile}
	iceURLs := []string{"stun:" + natRelayIP + ":3478", "turn:" + natRelayIP + ":3478?transport=udp", "turn:" + natRelayIP + ":443?transport=tcp"}
	if opt.relayTLS {
		ca := testcert.NewCA(t, "Porthole lab relay CA")
		leaf := ca.Issue(t, natRelayIP)
		cert, key := leaf.WriteFiles(t, s.dir, "relay")
		spki := sha256.Sum256(leaf.TLS.Leaf.RawSubjectPublicKeyInfo)
		s.relaySPKI = base64.StdEncoding.EncodeToString(spki[:])
		s.caFile = filepath.Join(s.dir, "relay-ca.pem")
		if err := os.WriteFile(s.caFile, ca.PEM, 0o644); err != nil {
			t.Fatal(err)
		}
		relayArgs = []string{"--udp", natRelayIP + ":3478", "--tcp", natRelayIP + ":3478", "--tls", natRelayIP + ":443",
			"--cert", cert, "--key", key, "--public-ip", natRelayIP, "--secret-file", secretFile}
		iceURLs = []string{"stun:" + natRelayIP + ":3478", "turn:" + natRelayIP + ":3478?transport=udp",
			"turn:" + natRelayIP + ":3478?transport=tcp", "turns:" + natRelayIP + ":443?transport=tcp"}
	}
	if opt.relayPorts != "" {
		relayArgs = append(relayArgs, "--relay-ports", opt.relayPorts)
	}
	s.relayProc, _ = s.relay.StartAndWait("porthole-turn", bin["porthole-turn"], relayArgs, `porthole-turn listening`, 15*time.Second)
	var relayFlags []string
	if opt.twoRelays {
		s.relayB = lab.Host("relay-b", inet, natRelayBIP)
		s.relayBProc, _ = s.relayB.StartAndWait("porthole-turn", bin["porthole-turn"],
			[]string{"--udp", natRelayBIP + ":3478", "--tcp", natRelayBIP + ":443", "--public-ip", natRelayBIP, "--secret-file", secretFile},
			`porthole-turn listening`, 15*time.Second)
		iceURLs = nil
		relayFlags = []string{"--turn-relay", "eu=turn:" + natRelayIP + ":3478?transport=udp", "--turn-relay", "us=turn:" + natRelayBIP + ":3478?transport=udp"}
	}

	appOrigin := opt.appOrigin
	if appOrigin == "" {
		appOrigin = "http://app.test:443"
	}
	sig := lab.Host("signal", inet, natSignalIP)
	s.signalURL = "http://" + natSignalIP + ":443"
	sig.StartAndWait("porthole-signaling", bin["porthole-signaling"], append([]string{
		"--listen", natSignalIP + ":443",
		"--agent-key", "site-agent=" + s.agentKey,
		"--tech-token", s.techToken + "=tech",
		"--turn-secret-file", secretFile,
		"--sessions-domain", natSessionsDomain, "--sessions-scheme", "http",
		"--allowed-origin", appOrigin,
		// Development mode: dev technician tokens and #token= session links.
		"--app-origin", appOrigin, "--insecure-dev-tokens",
		"--data-dir", filepath.Join(s.dir, "signaling"),
	}, append(iceArgs(iceURLs), relayFlags...)...), `listening on`, 15*time.Second)
	return s
}

func iceArgs(urls []string) []string {
	var out []string
	for _, u := range urls {
		out = append(out, "--ice-url", u)
	}
	return out
}

// siteOptions vary the agent of a site.
type siteOptions struct {
	// proxy is the agent's "proxy" configuration entry, if any.
	proxy map[string]any
	// env is added to the agent's environment (HTTPS_PROXY, …).
	env []string
	// noWait: return at once instead of waiting for the agent to
	// connect to signaling.
	noWait bool
	// region is the agent's configured region, if any.
	region string
}

// startSite starts the demo device on deviceHost and porthole-agent on
// agentHost, and waits until the agent is connected to signaling.
func (s *natServices) startSite(t *testing.T, agentHost, deviceHost *netlab.Host, opts ...siteOptions) (agent *proc.Proc, deviceURL string) {
	t.Helper()
	var opt siteOptions
	if len(opts) > 0 {
		opt = opts[0]
	}
	devAddr := deviceHost.AddrPort(80).String()
	if !s.devices[deviceHost] { // a second agent for the same device finds it running
		deviceHost.StartAndWait("porthole-demo-device", s.bin["porthole-demo-device"],
			[]string{"--listen", devAddr}, `listening on`, 15*time.Second)
		if s.devices == nil {
			s.devices = map[*netlab.Host]bool{}
		}
		s.devices[deviceHost] = true
	}
	conf := map[string]any{
		"server": s.signalURL, "key": s.agentKey,
		"devices": []map[string]any{{
			"id": natDeviceID, "name": "Demo printer", "scheme": "http",
			"address": deviceHost.Addr().String(), "httpPort": 80,
		}},
	}
	if s.caFile != "" {
		conf["caFile"] = s.caFile
	}
	if opt.proxy != nil {
		conf["proxy"] = opt.proxy
	}
	if opt.region != "" {
		conf["region"] = opt.region
	}
	cfg, _ := json.Marshal(conf)
	path := filepath.Join(s.dir, "agent-"+agentHost.Name()+".json")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", path, "--log-level", "info"}
	if opt.noWait {
		return agentHost.Start("porthole-agent", s.bin["porthole-agent"], args, opt.env...), "http://" + devAddr
	}
	agent, _ = agentHost.StartAndWait("porthole-agent", s.bin["porthole-agent"], args, `connected to signaling`, 20*time.Second, opt.env...)
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
	agentLine             string     // the agent's "technician connected" line
	site                  string     // the agent's relay transport, proxy and reason, as it logged them
	download              string     // size and rate of the byte-exact firmware download
}

var (
	cliConnected = regexp.MustCompile(`connected to \S+ in (\S+) \((direct path|relayed through TURN|unknown path)(?:, RTT (\S+))?\)`)
	cliPair      = regexp.MustCompile(`selected candidate pair: (.*) \(you\) <-> (.*) \(agent\)`)
	// The agent's Info line when the technician connects: the selected
	// pair's ends ("relay udp 203.0.113.30:40000 related 192.168.1.10:51000"
	// — a relay's related address is 0.0.0.0 for TURN over UDP, the agent's
	// own TCP socket for TURN over TCP) and the candidate types each side
	// offered.
	agentConnected = regexp.MustCompile(`msg="technician connected".* path=(\S+) local="([^"]*)" remote="([^"]*)" local_types=(\S*) remote_types=(\S*).*`)
)

// connectCLI runs `porthole http` on techHost, waits until it is
// connected and serving, and returns the local base URL and the result.
func (s *natServices) connectCLI(t *testing.T, techHost *netlab.Host, agent *proc.Proc, topology string, extraEnv ...string) (string, natResult) {
	t.Helper()
	start := time.Now()
	env := append([]string{"PORTHOLE_SERVER=" + s.signalURL, "PORTHOLE_TOKEN=" + s.techToken}, extraEnv...)
	if s.caFile != "" {
		env = append(env, "SSL_CERT_FILE="+s.caFile) // the relay's TLS certificate is from the lab's CA
	}
	cli := techHost.Start("porthole", s.bin["porthole"],
		[]string{"http", natDeviceID, "--listen", "127.0.0.1:8080"}, env...)
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
		r.agentLine = am[0]
		r.pair = am[2] + " <-> " + am[3]
		r.agentCand, r.techCand = firstField(am[2]), firstField(am[3])
		r.agentTypes, r.techTypes = am[4], am[5]
	} else {
		t.Logf("agent did not log its selected pair: %v", err)
	}
	return "http://127.0.0.1:8080", r
}

// checkFetch fetches device pages through the CLI on techHost and
// compares them byte for byte with the device's own answers, then a
// firmware image of size bytes (8 MiB if 0); it returns the size and rate
// of that download.
func checkFetch(t *testing.T, techHost, deviceHost *netlab.Host, base, device string, size int) string {
	t.Helper()
	if size == 0 {
		size = 8 << 20
	}
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
	sum, _ := natGet(t, dc, fmt.Sprintf("%s/firmware.sha256?size=%d", device, size))
	start := time.Now()
	body, status := natGet(t, tc, fmt.Sprintf("%s/firmware.bin?size=%d", base, size))
	took := time.Since(start)
	h := sha256.Sum256(body)
	if status != http.StatusOK || len(body) != size || hex.EncodeToString(h[:]) != strings.TrimSpace(string(sum)) {
		t.Errorf("%d MiB firmware: status %d, %d bytes, checksum mismatch or short", size>>20, status, len(body))
	}
	return fmt.Sprintf("%dMiB@%.0fMbps", size>>20, float64(size)*8/took.Seconds()/1e6)
}

func natGet(t *testing.T, c *http.Client, u string) ([]byte, int) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 128<<20))
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

// proxySite starts the site's proxy of kind (nothing for "") on the LAN
// of agentHost and says how the agent is configured for it: squid
// without a login through HTTPS_PROXY and HTTP_PROXY (the environment
// convention), the ones with Basic credentials through the agent's
// "proxy" entry with a password file.
func (s *natServices) proxySite(t *testing.T, lab *netlab.Lab, agentHost *netlab.Host, kind proxyKind) siteOptions {
	t.Helper()
	if kind == "" {
		return siteOptions{}
	}
	url := startProxy(t, lab.Host("proxy", agentHost.Segment(), natProxyIP), kind)
	if !kind.auth() {
		// Signaling is plain http:// in the lab (ws://), TURN counts as https.
		return siteOptions{env: []string{"HTTPS_PROXY=" + url, "HTTP_PROXY=" + url}}
	}
	pw := filepath.Join(s.dir, "proxy.pass")
	if err := os.WriteFile(pw, []byte(labProxyPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return siteOptions{proxy: map[string]any{"url": url, "username": labProxyUser, "passwordFile": pw}}
}

// agentSite is what the agent's "technician connected" line says about
// its end of the path.
var agentSite = regexp.MustCompile(` relay=("[^"]*"|\S*) proxy=("[^"]*"|\S*) reason=("[^"]*"|\S*)`)

// checkSitePath checks what the agent said about its end of the path, and
// that the CLI was told the same, against what the topology wants.
func (s *natServices) checkSitePath(t *testing.T, tp natTopology, r natResult) (site string) {
	t.Helper()
	m := agentSite.FindStringSubmatch(r.agentLine)
	if m == nil {
		t.Errorf("the agent's line says nothing of its relay: %s", r.agentLine)
		return ""
	}
	relay, proxyAddr, reason := strings.Trim(m[1], `"`), strings.Trim(m[2], `"`), strings.Trim(m[3], `"`)
	site = strings.TrimSpace(strings.Join(strings.Fields(relay+" "+proxyAddr+" "+reason), " "))
	if tp.agentRelay != "" && relay != tp.agentRelay {
		t.Errorf("the agent reached the relay over %q, want %s: %s", relay, tp.agentRelay, r.agentLine)
	}
	wantProxy := ""
	if tp.proxy != "" {
		wantProxy = fmt.Sprintf("%s:%d", natProxyIP, natProxyPort)
	}
	if proxyAddr != wantProxy {
		t.Errorf("the agent's relay connection went through proxy %q, want %q", proxyAddr, wantProxy)
	}
	if tp.siteReason != "" && !strings.HasPrefix(reason, tp.siteReason) {
		t.Errorf("the agent says %q, want %q", reason, tp.siteReason)
	}
	if tp.siteReason == "" {
		return site
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.proc.WaitLine(ctx, regexp.MustCompile(`the agent's side: relay \(TURN/`+strings.ToUpper(tp.agentRelay)+`.*\): `+regexp.QuoteMeta(tp.siteReason))); err != nil {
		t.Errorf("the CLI was not told the agent's side: %v", err)
	}
	return site
}

// apiGet GETs path of signaling's API as the technician, from host, and
// decodes the answer into v.
func (s *natServices) apiGet(t *testing.T, host *netlab.Host, path string, v any) {
	t.Helper()
	c := host.HTTPClient(10 * time.Second)
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, s.signalURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.techToken)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("GET %s: %s %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// checkJobAndHealth checks, through signaling's API as the technician
// (from the internet: the technician's own network may allow only a
// proxy), that the session's job records the agent's account of the path
// (its connected step names the relay transport and the reason) and that
// the device's health says how its agent reaches signaling.
func (s *natServices) checkJobAndHealth(t *testing.T, tp natTopology) {
	t.Helper()
	get := func(path string, v any) { t.Helper(); s.apiGet(t, s.relay, path, v) }
	// Every rung is in the job: direct, or relay with the agent's relay
	// transport (TURN/UDP, TCP, TLS, through the proxy) and the reason the
	// site needs it when the agent can tell.
	want := ""
	switch {
	case tp.mayRelay:
	case !tp.wantRelay:
		want = proto.PathDirect
	default:
		want = proto.PathRelay
		if tp.agentRelay != "" {
			want += " (TURN/" + strings.ToUpper(tp.agentRelay)
			if tp.proxy != "" {
				want += fmt.Sprintf(" through proxy %s:%d", natProxyIP, natProxyPort)
			}
			want += ")"
		}
		if tp.siteReason != "" {
			want += ": " + tp.siteReason
		}
	}
	if want != "" {
		// Jobs are recorded in the background: wait for the step.
		found := ""
		testenv.Eventually(t, 5*time.Second, "the job's connected step to say "+want, func() bool {
			var jobs proto.JobList
			get(proto.PathJobs+"?device="+natDeviceID+"&limit=1", &jobs)
			for _, j := range jobs.Jobs {
				for _, st := range j.States {
					if st.State == "connected" {
						found = st.Detail
					}
				}
			}
			return strings.HasPrefix(found, want)
		})
	}
	wantRoute := "direct"
	if tp.proxy != "" {
		wantRoute = fmt.Sprintf("via proxy %s:%d", natProxyIP, natProxyPort)
	}
	var devs proto.DeviceList
	get(proto.PathDevices, &devs)
	for _, d := range devs.Devices {
		if d.Health == nil || d.Health.Signaling != wantRoute {
			t.Errorf("device %s health %+v, want signaling %q", d.ID, d.Health, wantRoute)
		}
	}
}
