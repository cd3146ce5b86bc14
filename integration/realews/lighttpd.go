// Package realews runs real web servers from Debian's packages as the
// embedded web servers of devices, configured with the quirks of old EWS:
// lighttpd with a CGI that prints no Content-Type, a Digest-protected
// admin area, pages naming their own address, an http port that sends
// its admin pages to https, and an https port that speaks only TLS 1.0
// with RSA key exchange; an admin page that meta-refreshes to its https
// URL, and a CGI that answers 426 over http.
package realews

import (
	"bytes"
	"crypto/md5" //nolint:gosec // htdigest is MD5
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/internal/tlstest"
)

// onePixelPNG is a 1×1 PNG, the background the stylesheet names by the
// device's address.
func onePixelPNG() string {
	var b bytes.Buffer
	img := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	img.Set(0, 0, color.NRGBA{R: 0x20, G: 0x60, B: 0xa0, A: 0xff})
	_ = png.Encode(&b, img) // into memory: cannot fail
	return b.String()
}

// Lighttpd is a running lighttpd.
type Lighttpd struct {
	HTTPPort, HTTPSPort                 int
	Cert                                *tlstest.Cert
	DigestUser, DigestPass, DigestRealm string
}

// StartLighttpd runs lighttpd on 127.0.0.1 with the quirks above; it is
// stopped by t.Cleanup. It skips without lighttpd (fails under
// PORTHOLE_REQUIRE_ALL=1).
func StartLighttpd(t testing.TB) *Lighttpd {
	t.Helper()
	bin := testenv.NeedBinary(t, "lighttpd")
	if _, err := os.Stat("/usr/lib/lighttpd/mod_openssl.so"); err != nil {
		testenv.Require(t, "lighttpd-mod-openssl", false)
	}
	l := &Lighttpd{HTTPPort: testenv.FreePort(t), HTTPSPort: testenv.FreePort(t),
		Cert:       tlstest.NewCert(t, tlstest.CertOptions{Bits: 1024, SHA1: true, Expired: true}),
		DigestUser: "service", DigestPass: "service", DigestRealm: "EWS Service"}
	dir := t.TempDir()
	doc := filepath.Join(dir, "www")
	for _, d := range []string{doc, filepath.Join(doc, "cgi-bin"), filepath.Join(doc, "admin"), filepath.Join(doc, "secure")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self := fmt.Sprintf("127.0.0.1:%d", l.HTTPPort)
	files := map[string]string{
		"index.html": `<!DOCTYPE html><html><head><title>EWS</title><link rel="stylesheet" href="http://` + self + `/style.css"></head>` +
			`<body><a id="status" href="http://` + self + `/cgi-bin/status.cgi">Status</a>` +
			`<a id="admin" href="//` + self + `/admin/">Admin</a><a id="vendor" href="http://example.invalid/">Vendor</a></body></html>`,
		"style.css":        `body { background: url(http://` + self + `/bg.png); }`,
		"bg.png":           onePixelPNG(),
		"admin/index.html": `<!DOCTYPE html><title>Admin</title><h1 id="admin">Admin area</h1>`,
		"secure/index.html": `<!DOCTYPE html><title>Secure</title><h1 id="secure">Secure area</h1>` +
			`<a href="https://127.0.0.1:` + fmt.Sprint(l.HTTPSPort) + `/secure/next.html">next</a>`,
		// An admin page that sends the browser to its own https URL with a
		// meta refresh, as many EWS do.
		"upgrade.html": `<!DOCTYPE html><html><head><meta http-equiv="refresh" content="0; url=https://127.0.0.1:` + fmt.Sprint(l.HTTPSPort) +
			`/secure/"><title>Redirecting</title></head><body>Redirecting…</body></html>`,
		// A CGI that insists on TLS: 426 over http, its page over https.
		"cgi-bin/admin.cgi": "#!/bin/sh\nif [ \"$HTTPS\" != on ]; then printf 'Status: 426 Upgrade Required\\r\\nUpgrade: TLS/1.0, HTTP/1.1\\r\\nConnection: Upgrade\\r\\n\\r\\n'; exit 0; fi\n" +
			"printf 'Content-Type: text/html\\r\\n\\r\\n<h1 id=\"tlsadmin\">Admin over TLS</h1>\\n'\n",
		// A CGI that prints its body after an empty header block: no
		// Content-Type, as old printer firmware does.
		"cgi-bin/status.cgi": "#!/bin/sh\nprintf '\\r\\n'\nprintf '<HTML><BODY><H1 id=\"cgi\">Ready</H1></BODY></HTML>\\n'\n",
	}
	for name, body := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".cgi") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(doc, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	sum := md5.Sum([]byte(l.DigestUser + ":" + l.DigestRealm + ":" + l.DigestPass)) //nolint:gosec // htdigest
	htdigest := filepath.Join(dir, "htdigest")
	if err := os.WriteFile(htdigest, []byte(l.DigestUser+":"+l.DigestRealm+":"+hex.EncodeToString(sum[:])+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pem := filepath.Join(dir, "server.pem")
	cert, _ := os.ReadFile(l.Cert.CertFile)
	key, _ := os.ReadFile(l.Cert.KeyFile)
	if err := os.WriteFile(pem, append(key, cert...), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`
server.document-root = %q
server.bind = "127.0.0.1"
server.port = %d
server.errorlog = %q
server.modules = ("mod_access", "mod_auth", "mod_authn_file", "mod_cgi", "mod_redirect", "mod_openssl")
index-file.names = ("index.html")
mimetype.assign = (".html" => "text/html", ".css" => "text/css", ".png" => "image/png")
cgi.assign = (".cgi" => "")
auth.backend = "htdigest"
auth.backend.htdigest.userfile = %q
auth.require = ("/admin/" => ("method" => "digest", "realm" => %q, "require" => "valid-user"))
$SERVER["socket"] == "127.0.0.1:%d" {
  ssl.engine = "enable"
  ssl.pemfile = %q
  ssl.openssl.ssl-conf-cmd = ("MinProtocol" => "TLSv1", "MaxProtocol" => "TLSv1", "CipherString" => "AES128-SHA:@SECLEVEL=0")
}
$SERVER["socket"] == "127.0.0.1:%d" {
  $HTTP["url"] =~ "^/secure/" {
    url.redirect = (".*" => "https://127.0.0.1:%d${url.path}")
  }
}
`, doc, l.HTTPPort, filepath.Join(dir, "error.log"), htdigest, l.DigestRealm, l.HTTPSPort, pem, l.HTTPPort, l.HTTPSPort)
	confFile := filepath.Join(dir, "lighttpd.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-tt", "-f", confFile).CombinedOutput(); err != nil {
		t.Fatalf("lighttpd config: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-D", "-f", confFile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start lighttpd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	testenv.Eventually(t, 10*time.Second, "lighttpd listening", func() bool {
		c, err := net.DialTimeout("tcp", self, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return l
}
