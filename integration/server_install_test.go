package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// The names of the packaged signaling.conf, which the README's block
// keeps (its $EDITOR step changes nothing here).
const (
	installAppName  = "porthole.example.com"
	installSessions = "porthole-sessions.example"
)

// readmeBlock returns the shell commands between <!-- name --> and
// <!-- /name --> in the README, without the code fence.
func readmeBlock(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- "+name+" -->\n")
	block, _, ok2 := strings.Cut(rest, "<!-- /"+name+" -->")
	if !ok || !ok2 {
		t.Fatalf("README.md has no <!-- %s --> block", name)
	}
	block = strings.TrimSpace(block)
	block = strings.TrimPrefix(block, "```sh\n")
	return strings.TrimSuffix(block, "```")
}

// runREADMEBlock runs the README's block name word for word with bash in
// dir (the packages' folder), but for the placeholders in subst (old, new
// pairs: a token the app shows, the server's address), with env added and
// a systemctl on PATH that only records what it is asked (returned): this
// machine runs no systemd. It fails the test if the block fails.
func runREADMEBlock(t *testing.T, name, dir string, subst []string, env ...string) (out []byte, systemctl string) {
	t.Helper()
	block := readmeBlock(t, name)
	if len(subst) > 0 {
		block = strings.NewReplacer(subst...).Replace(block)
	}
	shims := t.TempDir()
	calls := filepath.Join(shims, "systemctl.calls")
	if err := os.WriteFile(filepath.Join(shims, "systemctl"), []byte("#!/bin/sh\necho \"$@\" >> "+calls+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sh := exec.Command("bash", "-euo", "pipefail", "-c", block)
	sh.Dir = dir
	sh.Env = append(os.Environ(), append([]string{"PATH=" + shims + ":" + os.Getenv("PATH"), "DEBIAN_FRONTEND=noninteractive"}, env...)...)
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("README block %s: %v\n%s\n%s", name, err, block, out)
	}
	got, _ := os.ReadFile(calls)
	return out, strings.TrimSpace(string(got))
}

// writeServerCert makes a CA and, signed by it, the certificate the README
// asks for (the app's name and the sessions wildcard) as
// /etc/porthole/tls/{fullchain,privkey}.pem, the key readable by group gid.
func writeServerCert(t *testing.T, gid int) *x509.CertPool {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: installAppName},
		DNSNames:  []string{installAppName, "*." + installSessions},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.MkdirAll("/etc/porthole/tls", 0o755); err != nil {
		t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile("/etc/porthole/tls/fullchain.pem", chain, 0o644); err != nil {
		t.Fatal(err)
	}
	kf := "/etc/porthole/tls/privkey.pem"
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(kf, 0, gid); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

// testServerInstallFromREADME follows README "Installing a server" on this
// machine: certificate files where the README puts them, then the
// README's block run word for word by bash in the packages' folder (with
// $EDITOR leaving the packaged example names, and a systemctl that only
// records what it was asked: this machine runs no systemd). Then it
// starts the unit's ExecStart as the unit would (its user and groups, no
// capability beyond the unit's, no_new_privs), on loopback ports, opens
// the one-time link create-admin printed, chooses the admin's password
// through it, and is signed in as that admin. Purging removes it all.
// tlsClientTo is a client that reaches every name at addr, as DNS would,
// trusting pool; jar may be nil.
func tlsClientTo(pool *x509.CertPool, addr string, jar http.CookieJar) *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Jar: jar, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
}

// redeemAdminLink chooses password through the one-time link secret as
// the app's page does, and checks that it signed in the admin "admin".
func redeemAdminLink(t *testing.T, c *http.Client, app, secret, password string) {
	t.Helper()
	body, _ := json.Marshal(proto.PasswordLinkRedeem{Token: secret, Password: password})
	req, _ := http.NewRequest(http.MethodPost, app+"/v1/password-link", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", app)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var lr proto.LoginResult
	err = json.NewDecoder(res.Body).Decode(&lr)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || err != nil || lr.User == nil || lr.User.Name != "admin" || !lr.User.Admin {
		t.Fatalf("the sign-in link: %s %+v %v", res.Status, lr, err)
	}
}

func testServerInstallFromREADME(t *testing.T, dir string) {
	testenv.NeedRoot(t)
	for _, b := range []string{"dpkg", "apt-get", "runuser", "setpriv", "groupadd"} {
		testenv.NeedBinary(t, b)
	}
	for _, p := range []string{"porthole-signaling", "porthole-turn"} {
		if exec.Command("dpkg", "-s", p).Run() == nil {
			t.Fatalf("%s is already installed on this machine; the test installs and purges its own: dpkg --purge %s", p, p)
		}
	}
	for _, f := range []string{"/etc/porthole/signaling.conf", "/etc/porthole/turn.secret", "/etc/porthole/tls"} {
		if _, err := os.Stat(f); err == nil {
			t.Fatalf("%s exists: the test needs a machine without a Porthole server", f)
		}
	}

	// The admin's certificate, ready before the install: for the group
	// the package creates, made beforehand (the package keeps it).
	mustRun(t, "groupadd", "--system", "porthole-signaling")
	t.Cleanup(func() {
		for _, p := range []string{"porthole-signaling", "porthole-turn"} {
			if exec.Command("dpkg", "-s", p).Run() == nil {
				if out, err := exec.Command("dpkg", "--purge", p).CombinedOutput(); err != nil {
					t.Errorf("dpkg --purge %s: %v\n%s", p, err, out)
				}
			}
		}
		_ = os.RemoveAll("/etc/porthole/tls")
		_ = os.Remove("/etc/porthole/turn.secret")
		_ = exec.Command("groupdel", "porthole").Run()
		_ = exec.Command("groupdel", "porthole-signaling").Run()
	})
	gr := strings.Split(strings.TrimSpace(mustRun(t, "getent", "group", "porthole-signaling")), ":")
	if len(gr) < 3 {
		t.Fatalf("group porthole-signaling: %v", gr)
	}
	gid, err := strconv.Atoi(gr[2])
	if err != nil {
		t.Fatalf("group porthole-signaling: %v", gr)
	}
	pool := writeServerCert(t, gid)

	out, systemctl := runREADMEBlock(t, "install-server", dir, nil, "EDITOR=true")
	t.Logf("README block install-server:\n%s", out)
	link := regexp.MustCompile(`https://` + regexp.QuoteMeta(installAppName) + `/` + regexp.QuoteMeta(proto.LinkFragment) + `(\S+)`).FindSubmatch(out)
	if link == nil {
		t.Fatalf("create-admin printed no sign-in link:\n%s", out)
	}
	if systemctl != "enable --now porthole-signaling porthole-turn" {
		t.Fatalf("systemctl asked %q", systemctl)
	}
	if !bytes.Contains(out, []byte("# preflight")) {
		t.Fatalf("config check printed no preflight:\n%s", out)
	}
	if v := mustRun(t, "/usr/bin/porthole-turn", "--version"); !strings.HasPrefix(v, "porthole-turn ") {
		t.Fatalf("porthole-turn --version: %q", v)
	}

	unit := "/usr/lib/systemd/system/porthole-signaling.service"
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		for _, u := range []string{unit, "/usr/lib/systemd/system/porthole-turn.service"} {
			if out, err := exec.Command(analyze, "verify", u).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", u, err, out)
			}
			sec, _ := exec.Command(analyze, "security", "--offline=true", "--no-pager", u).CombinedOutput()
			if m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`).FindSubmatch(sec); m != nil {
				t.Logf("systemd-analyze security %s: exposure %s %s", filepath.Base(u), m[1], m[2])
			}
		}
	}
	user, exec0 := unitValues(t, unit, "User"), unitValues(t, unit, "ExecStart")
	caps := unitValues(t, unit, "CapabilityBoundingSet")
	if len(user) != 1 || len(exec0) != 1 || len(caps) != 1 || caps[0] != "CAP_NET_BIND_SERVICE" {
		t.Fatalf("unit User %q ExecStart %q CapabilityBoundingSet %q", user, exec0, caps)
	}
	// As the unit would run it, on loopback ports instead of 443 and 8443
	// (PORTHOLE_* wins over the file).
	asUnit := []string{"--reuid", user[0], "--regid", user[0], "--init-groups", "--no-new-privs",
		"--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all,+net_bind_service", "--"}
	p, err := proc.Start("porthole-signaling (deb)", "/usr/bin/setpriv", append(asUnit, strings.Fields(exec0[0])...),
		proc.Options{Env: []string{"PORTHOLE_LISTEN=127.0.0.1:0", "PORTHOLE_AGENT_LISTEN=127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, err := p.WaitLine(ctx, regexp.MustCompile(`listening on https://(\S+)`))
	if err != nil {
		t.Fatalf("the installed server did not start: %v\n%s", err, p.Tail(30))
	}
	addr := m[1]

	c := tlsClientTo(pool, addr, nil)
	app := "https://" + installAppName
	res, err := c.Get(app + "/")
	if err != nil {
		t.Fatalf("the app over TLS: %v\n%s", err, p.Tail(20))
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %s", res.Status)
	}
	redeemAdminLink(t, c, app, string(link[1]), "correct horse battery staple 19")
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("installed server: %v\n%s", err, p.Tail(20))
	}

	mustRun(t, "dpkg", "--purge", "porthole-signaling", "porthole-turn")
	for _, gone := range []string{"/usr/bin/porthole-signaling", unit, "/var/lib/porthole-signaling", "/etc/porthole/signaling.conf"} {
		if _, err := os.Stat(gone); err == nil {
			t.Errorf("purge left %s", gone)
		}
	}
}
