package integration

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
)

// The site's HTTP proxy in the proxy topologies: a host on the site's LAN,
// the only one whose TCP may leave the site.
const (
	natProxyIP   = "192.168.1.2"
	techProxyIP  = "10.1.0.2" // the technician's network's proxy (12-both-behind-proxies)
	natProxyPort = 3128
	labProxyUser = "porthole-site"
	labProxyPass = "Lab-Pr0xy-S3cret" // a test greps the agent's log for it
)

// proxyKind names a real proxy from Debian's packages and how it is set
// up: "squid" (no login), "squid-auth" (Basic, basic_ncsa_auth) or
// "tinyproxy-auth" (Basic).
type proxyKind string

func (k proxyKind) auth() bool { return strings.HasSuffix(string(k), "-auth") }

// startProxy starts the proxy of kind on host, listening on its address
// and natProxyPort, and returns its URL (without credentials). Both allow
// CONNECT to port 443 only, as corporate proxies do.
func startProxy(t *testing.T, host *netlab.Host, kind proxyKind) string {
	t.Helper()
	switch kind {
	case "squid", "squid-auth":
		startSquid(t, host, kind.auth())
	case "tinyproxy-auth":
		startTinyproxy(t, host)
	default:
		t.Fatalf("unknown proxy %q", kind)
	}
	return fmt.Sprintf("http://%s:%d", host.Addr(), natProxyPort)
}

// proxyDir is a directory squid's unprivileged user can use.
func proxyDir(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "porthole-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startSquid(t *testing.T, host *netlab.Host, auth bool) {
	t.Helper()
	squid := testenv.NeedBinary(t, "squid")
	dir := proxyDir(t, "squid")
	var authConf string
	if auth {
		helper := "/usr/lib/squid/basic_ncsa_auth"
		_, err := os.Stat(helper)
		testenv.Require(t, "squid's "+helper, err == nil)
		openssl := testenv.NeedBinary(t, "openssl")
		// basic_ncsa_auth reads MD5-crypt hashes; openssl makes one.
		out, err := exec.Command(openssl, "passwd", "-1", labProxyPass).Output()
		if err != nil {
			t.Fatalf("openssl passwd: %v", err)
		}
		pw := filepath.Join(dir, "passwd")
		if err := os.WriteFile(pw, []byte(labProxyUser+":"+strings.TrimSpace(string(out))+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		authConf = fmt.Sprintf(`auth_param basic program %s %s
auth_param basic realm porthole-lab
auth_param basic children 2 startup=1
acl authed proxy_auth REQUIRED
http_access deny !authed
`, helper, pw)
	}
	// visible_hostname: otherwise squid spends 10 s resolving its own
	// name in a namespace without DNS.
	conf := fmt.Sprintf(`http_port %s:%d
visible_hostname porthole-lab-proxy
pid_filename none
cache_log %s/cache.log
access_log stdio:%s/access.log
cache_store_log none
cache deny all
cache_mem 4 MB
coredump_dir %s
pinger_enable off
netdb_filename none
shutdown_lifetime 0 seconds
acl SSL_ports port 443
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
%shttp_access allow all
`, host.Addr(), natProxyPort, dir, dir, dir, authConf)
	path := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	host.StartAndWait("squid", squid, []string{"-N", "-d1", "-f", path}, `Accepting HTTP Socket connections`, 20*time.Second)
}

func startTinyproxy(t *testing.T, host *netlab.Host) {
	t.Helper()
	tinyproxy := testenv.NeedBinary(t, "tinyproxy")
	dir := proxyDir(t, "tinyproxy")
	conf := fmt.Sprintf(`Port %d
Listen %s
Timeout 600
MaxClients 64
ConnectPort 443
BasicAuth %s %s
LogLevel Info
`, natProxyPort, host.Addr(), labProxyUser, labProxyPass)
	path := filepath.Join(dir, "tinyproxy.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := host.Start("tinyproxy", tinyproxy, []string{"-d", "-c", path})
	// tinyproxy says nothing reliable when it listens: wait for the port.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		c, err := host.DialContext(ctx, "tcp", fmt.Sprintf("%s:%d", host.Addr(), natProxyPort))
		if err == nil {
			c.Close()
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("tinyproxy did not listen: %v\n%s", err, p.Tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNATProxyCredentials: at a site whose squid asks for a login, an
// agent without credentials — or with the wrong ones — does not connect;
// its log names the proxy and the proxy's answer (407), it keeps trying
// with backoff, and neither the password nor its Basic encoding ever
// appears in its output.
func TestNATProxyCredentials(t *testing.T) {
	netlab.Require(t)
	bin := stack.Build(t)
	lab := netlab.New(t)
	inet := lab.Internet("203.0.113.0/24", "198.51.100.0/24")
	svc := startNATServices(t, lab, inet, bin, natOptions{relayTLS: true})
	_, agentHost, deviceHost := proxyOnlySite(lab, inet)
	proxyURL := startProxy(t, lab.Host("proxy", agentHost.Segment(), natProxyIP), "squid-auth")
	wrong := filepath.Join(svc.dir, "wrong.pass")
	if err := os.WriteFile(wrong, []byte("not-"+labProxyPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opt  siteOptions
		hint string
	}{
		// The environment with a password in the URL (user:password@) is
		// the case most likely to leak it.
		{"no credentials", siteOptions{env: []string{"HTTPS_PROXY=" + proxyURL, "HTTP_PROXY=" + proxyURL}, noWait: true},
			"none are configured"},
		{"wrong password", siteOptions{proxy: map[string]any{"url": proxyURL, "username": labProxyUser, "passwordFile": wrong}, noWait: true},
			"the proxy refused the credentials given"},
		{"wrong password in HTTPS_PROXY", siteOptions{env: []string{
			"HTTPS_PROXY=http://" + labProxyUser + ":not-" + labProxyPass + "@" + strings.TrimPrefix(proxyURL, "http://"),
			"HTTP_PROXY=http://" + labProxyUser + ":not-" + labProxyPass + "@" + strings.TrimPrefix(proxyURL, "http://")}, noWait: true},
			"the proxy refused the credentials given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			agent, _ := svc.startSite(t, agentHost, deviceHost, tc.opt)
			refused := regexp.MustCompile(`time=(\S+) level=WARN msg="signaling connection lost; reconnecting" err=".*\(via proxy ` +
				regexp.QuoteMeta(natProxyIP) + `:3128\): proxy 192\.168\.1\.2:3128, CONNECT 203\.0\.113\.10:443: the proxy asks for credentials: ` +
				`it answered \\"407 Proxy Authentication Required.*` + regexp.QuoteMeta(tc.hint) + `.*" in=(\S+)`)
			// Three refusals, each after a wait of its own: backoff, not a
			// hot loop.
			var times []time.Time
			deadline := time.Now().Add(20 * time.Second)
			for len(times) < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("fewer than 3 refusals logged as wanted:\n%s", agent.Tail(30))
				}
				times = times[:0]
				for _, line := range strings.Split(agent.Tail(1000), "\n") {
					if m := refused.FindStringSubmatch(line); m != nil {
						ts, err := time.Parse(time.RFC3339Nano, m[1])
						if err != nil {
							t.Fatal(err)
						}
						times = append(times, ts)
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			for i := 1; i < len(times); i++ {
				if gap := times[i].Sub(times[i-1]); gap < 200*time.Millisecond {
					t.Errorf("retry %d came %s after the previous one: no backoff", i, gap)
				}
			}
			out := agent.Tail(100000)
			if strings.Contains(out, "connected to signaling") {
				t.Fatalf("the agent connected without the proxy's credentials")
			}
			checkNoProxySecret(t, out)
			t.Logf("%d refusals in %s; last:\n%s", len(times), times[len(times)-1].Sub(times[0]).Round(time.Millisecond),
				refused.FindString(agent.Tail(5)))
			_ = agent.Stop(5 * time.Second)
		})
	}
}

// checkNoProxySecret fails if the lab proxy's password, or its Basic
// encoding, is in out.
func checkNoProxySecret(t *testing.T, out string) {
	t.Helper()
	for _, s := range []string{labProxyPass, base64.StdEncoding.EncodeToString([]byte(labProxyUser + ":" + labProxyPass)),
		base64.StdEncoding.EncodeToString([]byte(labProxyUser + ":not-" + labProxyPass))} {
		if strings.Contains(out, s) {
			t.Fatalf("a proxy credential is in the agent's output:\n%s", out)
		}
	}
}
