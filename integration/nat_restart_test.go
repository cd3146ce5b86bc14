package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/integration/stack"
)

var (
	cliRestored    = regexp.MustCompile(`connection restored in (\S+) after (\d+) ICE restart\(s\): (.*)`)
	agentRestarted = regexp.MustCompile(`msg="ICE restart offered by the technician"`)
)

// TestNATICERestart changes the agent's address in the middle of a
// session (topology 2: its namespace's uplink interface is re-addressed,
// as when a DHCP lease changes) while the technician's CLI is serving numbered
// requests and one long streaming response. The technician notices the
// broken path, restarts ICE over signaling — the agent, whose own
// signaling connection died with its address, reconnects and signaling
// moves the session to the new connection — and the session carries on
// with nobody doing anything: every request answered once, none lost,
// none duplicated (the device counts what it served), the stream intact.
func TestNATICERestart(t *testing.T) {
	netlab.Require(t)
	bin := stack.Build(t)
	const name = "2-eim-both, agent re-addressed"
	lab := netlab.New(t)
	inet := lab.Internet("203.0.113.0/24", "198.51.100.0/24")
	svc := startNATServices(t, lab, inet, bin)
	// Topology 2, with the device on a segment of its own behind the
	// agent (a gateway box with an uplink and a device port): only the
	// uplink changes address, so the agent's connections to the device
	// stay up and requests in flight can complete.
	home := lab.NAT("tech-nat", inet, "198.51.100.20", "10.1.0.0/24", netlab.EndpointIndependent)
	site := lab.NAT("site-nat", inet, "203.0.113.20", "192.168.1.0/24", netlab.EndpointIndependent)
	tech := lab.Host("tech", home.LAN(), "10.1.0.10")
	agentHost := lab.Host("agent", site.LAN(), "192.168.1.10")
	devices := lab.Switch("devices", "10.9.0.0/24")
	agentHost.Attach(devices, "10.9.0.1")
	deviceHost := lab.Host("device", devices, "10.9.0.2")
	agent, deviceURL := svc.startSite(t, agentHost, deviceHost)
	base, r := svc.connectCLI(t, tech, agent, name)
	cli := r.proc
	t.Logf("connected: %s (%s)", r.path, r.pair)

	tc := tech.HTTPClient(90 * time.Second)
	defer tc.CloseIdleConnections()
	dc := deviceHost.HTTPClient(10 * time.Second)
	defer dc.CloseIdleConnections()
	before := deviceRequests(t, dc, deviceURL)

	// A response streaming across the change: 40 chunks, 150 ms apart.
	const chunks = 40
	var wg sync.WaitGroup
	var streamErr error
	var streamLines int
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp, err := tc.Get(fmt.Sprintf("%s/slow?ms=150&chunks=%d", base, chunks))
		if err != nil {
			streamErr = err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		streamErr = err
		streamLines = strings.Count(string(b), "\n")
	}()

	// Numbered non-idempotent requests, one after another; the address
	// changes after the fifth.
	const total = 30
	changeAt := make(chan struct{})
	seqErrs := make([]error, total+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= total; i++ {
			seqErrs[i] = postSeq(tc, base, i)
			if i == 5 {
				close(changeAt)
			}
		}
	}()

	<-changeAt
	changed := time.Now()
	old := agentHost.Readdress("192.168.1.11")
	t.Logf("agent re-addressed from %s to %s", old, agentHost.Addr())

	ctx, cancel := context.WithTimeout(context.Background(), 70*time.Second)
	defer cancel()
	m, err := cli.WaitLine(ctx, cliRestored)
	if err != nil {
		t.Fatalf("the session did not recover: %v\nagent:\n%s", err, agent.Tail(30))
	}
	recovered := time.Since(changed)
	wg.Wait()
	t.Logf("restored %s after the change (CLI: %s after the break was noticed, %s restart(s)): %s",
		recovered.Round(time.Millisecond), m[1], m[2], m[3])
	if _, err := agent.WaitLine(ctx, agentRestarted); err != nil {
		t.Errorf("the agent did not see an ICE restart: %v", err)
	}
	if strings.Contains(m[3], " "+old.String()+":") {
		t.Errorf("the restored path still uses the agent's old address %s: %s", old, m[3])
	}
	for i := 1; i <= total; i++ {
		if seqErrs[i] != nil {
			t.Errorf("request %d: %v", i, seqErrs[i])
		}
	}
	if streamErr != nil || streamLines != chunks {
		t.Errorf("streaming response across the change: %d of %d chunks, %v", streamLines, chunks, streamErr)
	}
	// The device served each request exactly once: the numbered ones, the
	// stream, and the second stats request itself.
	after := deviceRequests(t, dc, deviceURL)
	if got, want := after-before, int64(total+1+1); got != want {
		t.Errorf("the device served %d requests during the test, want %d (lost or duplicated requests)", got, want)
	}
	restartResult = fmt.Sprintf("%s: recovered %s after the agent's address changed (%s restart(s)); %s",
		name, recovered.Round(time.Millisecond), m[2], m[3])
	t.Log(restartResult)
}

// restartResult is TestNATICERestart's one-line summary.
var restartResult string

// postSeq sends POST /echo?seq=i and checks the device echoed i.
func postSeq(c *http.Client, base string, i int) error {
	resp, err := c.Post(fmt.Sprintf("%s/echo?seq=%d", base, i), "text/plain", strings.NewReader("request "+strconv.Itoa(i)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var echo struct {
		Query      map[string][]string `json:"query"`
		BodyLength int64               `json:"bodyLength"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		return fmt.Errorf("status %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || len(echo.Query["seq"]) != 1 || echo.Query["seq"][0] != strconv.Itoa(i) {
		return fmt.Errorf("status %d, echo %+v", resp.StatusCode, echo)
	}
	return nil
}

// deviceRequests asks the device directly how many requests it served
// (this one included).
func deviceRequests(t *testing.T, c *http.Client, deviceURL string) int64 {
	t.Helper()
	b, _ := natGet(t, c, deviceURL+"/api/stats")
	var s struct {
		Requests int64 `json:"requests"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("device stats: %v", err)
	}
	return s.Requests
}
