package integration

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// composeCommands reads the command of each service in compose.yaml.
func composeCommands(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Services map[string]struct {
			Command []string `yaml:"command"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	cmds := map[string][]string{}
	for name, svc := range file.Services {
		cmds[name] = svc.Command
	}
	return cmds
}

// TestComposeTopologyAsProcesses runs compose.yaml's cluster as processes,
// since this machine runs no container engine (docker here is a client
// with no daemon, and no registry is reachable for redis:7 and caddy:2):
// the services' own commands from compose.yaml, with the compose network's
// names mapped to loopback ports — Redis, two signaling nodes sharing it
// and a data directory (the signaling-ca volume), Caddy with
// deploy/Caddyfile (TLS from its internal CA, round robin with health
// checks), two TURN relays, the demo device and the agent with
// deploy/agent.json. Then the first-admin service's command prints its
// one-time link; through Caddy over TLS the link sets the admin's
// password and signs in, the admin's login holds on either node, and the
// agent's device is online for a technician.
func TestComposeTopologyAsProcesses(t *testing.T) {
	caddy := testenv.NeedBinary(t, "caddy")
	redis := testenv.StartRedis(t)
	bin := stack.Build(t)
	cmds := composeCommands(t)
	for _, s := range []string{"signaling-1", "signaling-2", "first-admin", "turn-eu", "turn-us", "demo-device", "agent"} {
		if len(cmds[s]) == 0 {
			t.Fatalf("compose.yaml: no command for %s (%v)", s, cmds)
		}
	}
	root := testenv.RepoRoot(t)
	port := func() string { return strconv.Itoa(testenv.FreePort(t)) }
	sig1, sig2, lbAgents, lbHTTPS, lbHTTP := port(), port(), port(), port(), port()
	turnEU, turnUS, device := port(), port(), port()
	dataDir := t.TempDir()
	const secret = "compose-topology-test-secret"

	mapArgs := func(args []string, extra ...string) []string {
		r := strings.NewReplacer(append([]string{
			"redis://porthole:change-me-demo-redis-password@redis:6379", "redis://" + redis, // the test's Redis has no ACL file: its default user
			"redis://redis:6379", "redis://" + redis,
			"turn-eu:3478", "127.0.0.1:" + turnEU,
			"turn-us:3478", "127.0.0.1:" + turnUS,
			"--data-dir=/data", "--data-dir=" + dataDir,
			"--metrics-listen=0.0.0.0:9640", "--metrics-listen=127.0.0.1:0",
			"--metrics-listen=0.0.0.0:9641", "--metrics-listen=127.0.0.1:0",
		}, extra...)...)
		out := make([]string, len(args))
		for i, a := range args {
			out[i] = r.Replace(a)
		}
		return out
	}
	start := func(name, binary string, args []string, ready string, env ...string) *proc.Proc {
		t.Helper()
		p, err := proc.Start(name, binary, args, proc.Options{Env: env})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := p.WaitLine(ctx, regexp.MustCompile(ready)); err != nil {
			t.Fatalf("%s did not start: %v\n%s", name, err, p.Tail(30))
		}
		return p
	}
	turnEnv := "PORTHOLE_TURN_SECRET=" + secret
	start("turn-eu", bin["porthole-turn"], mapArgs(cmds["turn-eu"], "0.0.0.0:3478", "127.0.0.1:"+turnEU), `porthole-turn listening`, turnEnv)
	start("turn-us", bin["porthole-turn"], mapArgs(cmds["turn-us"], "0.0.0.0:3478", "127.0.0.1:"+turnUS), `porthole-turn listening`, turnEnv)
	nodes := map[string]string{"signaling-1": sig1, "signaling-2": sig2}
	for name, p := range nodes {
		start(name, bin["porthole-signaling"], mapArgs(cmds[name], "--listen=0.0.0.0:8080", "--listen=127.0.0.1:"+p), `porthole-signaling listening`, turnEnv)
	}

	// Caddy with deploy/Caddyfile: the upstreams and the agents' port
	// mapped, its HTTPS and HTTP ports moved off 443 and 80, no admin
	// endpoint, its internal CA kept in the test's directory and not
	// installed in the system's trust store.
	cf, err := os.ReadFile(filepath.Join(root, "deploy", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	caddyDir := t.TempDir()
	conf := strings.NewReplacer(
		"signaling-1:8080", "127.0.0.1:"+sig1,
		"signaling-2:8080", "127.0.0.1:"+sig2,
		"\n:8080 {", "\n:"+lbAgents+" {",
		"\tlocal_certs\n", "\tlocal_certs\n\tskip_install_trust\n\tadmin off\n\thttps_port "+lbHTTPS+"\n\thttp_port "+lbHTTP+"\n",
	).Replace(string(cf))
	confPath := filepath.Join(caddyDir, "Caddyfile")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	start("proxy", caddy, []string{"run", "--adapter", "caddyfile", "--config", confPath}, `serving initial configuration`,
		"XDG_DATA_HOME="+caddyDir, "XDG_CONFIG_HOME="+caddyDir, "HOME="+caddyDir)

	start("demo-device", bin["porthole-demo-device"], mapArgs(cmds["demo-device"], "--listen=0.0.0.0:8000", "--listen=127.0.0.1:"+device), `demo device listening`)
	var agentCfg map[string]any
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "agent.json"))
	if err != nil || json.Unmarshal(raw, &agentCfg) != nil {
		t.Fatalf("deploy/agent.json: %v", err)
	}
	agentCfg["server"] = "http://127.0.0.1:" + lbAgents
	agentCfg["keyFile"] = filepath.Join(root, "deploy", "agent.key")
	for _, d := range agentCfg["devices"].([]any) {
		dev := d.(map[string]any)
		if dev["address"] == "demo-device" {
			dev["address"] = "127.0.0.1"
			dev["httpPort"], _ = strconv.Atoi(device)
		}
	}
	agentPath := filepath.Join(t.TempDir(), "agent.json")
	raw, _ = json.Marshal(agentCfg)
	if err := os.WriteFile(agentPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	start("agent", bin["porthole-agent"], append(mapArgs(cmds["agent"], "--config=/etc/porthole/agent.json", "--config="+agentPath), "--loopback-only"), `connected to signaling`)

	// first-admin, as compose runs it once Redis is up.
	admin := start("first-admin", bin["porthole-signaling"], mapArgs(cmds["first-admin"]), `https://app\.localhost/#password/(\S+)`)
	m, _ := admin.WaitLine(context.Background(), regexp.MustCompile(`https://app\.localhost/`+regexp.QuoteMeta(proto.LinkFragment)+`(\S+)`))

	// Clients reach Caddy as a browser would reach app.localhost, trusting
	// Caddy's internal root.
	pool := x509.NewCertPool()
	rootCA := filepath.Join(caddyDir, "caddy", "pki", "authorities", "local", "root.crt")
	testenv.Eventually(t, 15*time.Second, "Caddy's internal root "+rootCA, func() bool {
		b, err := os.ReadFile(rootCA)
		return err == nil && pool.AppendCertsFromPEM(b)
	})
	jar, _ := cookiejar.New(nil)
	c := tlsClientTo(pool, "127.0.0.1:"+lbHTTPS, jar)
	app := "https://app.localhost"
	testenv.Eventually(t, 20*time.Second, "the app through Caddy (TLS, healthy upstreams)", func() bool {
		res, err := c.Get(app + "/")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})

	redeemAdminLink(t, c, app, m[1], "compose cluster first admin 19")
	// Round robin: the login is in Redis, so every node knows it.
	for i := range 4 {
		res, err := c.Get(app + "/v1/me")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/me #%d through Caddy: %s", i, res.Status)
		}
	}

	testenv.Eventually(t, 20*time.Second, "printer-1 online through the cluster", func() bool {
		req, _ := http.NewRequest(http.MethodGet, app+"/v1/devices", nil)
		req.Header.Set("Authorization", "Bearer demo-technician-token")
		res, err := c.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var l struct {
			Devices []struct {
				ID     string `json:"id"`
				Online bool   `json:"online"`
			} `json:"devices"`
		}
		_ = json.NewDecoder(res.Body).Decode(&l)
		for _, d := range l.Devices {
			if d.ID == "printer-1" && d.Online {
				return true
			}
		}
		return false
	})
}
