package deviceproxy_test

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/porthole-dev/porthole/agent/deviceproxy"
)

// mirrorRecorder is a ResponseRecorder that takes mirrored cookies, as the
// tunnel's ResponseWriter does.
type mirrorRecorder struct {
	*httptest.ResponseRecorder
	cookies []string
}

func (m *mirrorRecorder) MirrorCookies(p []string) { m.cookies = append(m.cookies, p...) }

func do(t *testing.T, h http.Handler, method, target string, hdr http.Header, body io.Reader, length int64) *mirrorRecorder {
	t.Helper()
	req := originFormRequest(context.Background(), method, target, hdr)
	if body != nil {
		req.Body = io.NopCloser(body)
		req.ContentLength = length
	}
	rec := &mirrorRecorder{ResponseRecorder: httptest.NewRecorder()}
	h.ServeHTTP(rec, req)
	return rec
}

func deviceServer(t *testing.T, h http.HandlerFunc) (*deviceproxy.Proxy, int) {
	t.Helper()
	dev := httptest.NewServer(h)
	t.Cleanup(dev.Close)
	port := portOf(t, dev.Listener.Addr().String())
	return newProxy(t, deviceproxy.Device{ID: "d1", Host: "127.0.0.1", HTTPPort: port, HostHeader: "printer.local"}), port
}

func TestSessionCookieJar(t *testing.T) {
	seen := make(chan string, 10)
	p, _ := deviceServer(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Cookie")
		switch r.URL.Path {
		case "/login":
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "secret", Path: "/", HttpOnly: true})
			http.SetCookie(w, &http.Cookie{Name: "ui_lang", Value: "en", Path: "/"})
			http.SetCookie(w, &http.Cookie{Name: "other", Value: "x", Domain: "evil.example"})
			http.Redirect(w, r, "/admin", http.StatusFound)
		case "/logout":
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "", Path: "/", MaxAge: -1})
		}
	})
	a, b := p.Session(), p.Session()
	ha, _ := a.Handler(0)
	hb, _ := b.Handler(0)

	rec := do(t, ha, "POST", "/login", nil, strings.NewReader("u=a"), 3)
	<-seen
	if got := rec.Header().Values("Set-Cookie"); len(got) != 0 {
		t.Fatalf("Set-Cookie reached the browser: %q", got)
	}
	if strings.Join(rec.cookies, ",") != "ui_lang=en" {
		t.Fatalf("mirrored %q, want only the script-visible ui_lang=en", rec.cookies)
	}
	// The jar answers; a page cookie cannot override the HttpOnly one.
	do(t, ha, "GET", "/admin", http.Header{"Cookie": {"sid=forged; ui_lang=de; page=1"}}, nil, 0)
	if got := <-seen; got != "sid=secret; ui_lang=de; page=1" {
		t.Fatalf("device got Cookie %q", got)
	}
	// Another session has its own, empty jar.
	do(t, hb, "GET", "/admin", nil, nil, 0)
	if got := <-seen; got != "" {
		t.Fatalf("second session sent Cookie %q", got)
	}
	do(t, ha, "GET", "/logout", nil, nil, 0)
	<-seen
	do(t, ha, "GET", "/admin", nil, nil, 0)
	if got := <-seen; got != "ui_lang=en" {
		t.Fatalf("after logout Cookie %q", got)
	}
}

func TestSessionJarIsBounded(t *testing.T) {
	seen := make(chan string, 1)
	p, _ := deviceServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/check" {
			seen <- r.Header.Get("Cookie")
			return
		}
		for i := range 50 {
			http.SetCookie(w, &http.Cookie{Name: "c" + r.URL.Query().Get("n") + "_" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Value: "v", HttpOnly: true, Path: "/"})
		}
	})
	h, _ := p.Session().Handler(0)
	for n := range 20 {
		do(t, h, "GET", "/set?n="+string(rune('a'+n)), nil, nil, 0)
	}
	do(t, h, "GET", "/check", nil, nil, 0)
	if n := strings.Count(<-seen, "="); n != deviceproxy.MaxCookies {
		t.Fatalf("jar holds %d cookies, want the cap %d", n, deviceproxy.MaxCookies)
	}
}

func TestSessionLocationAndHeaderPolicy(t *testing.T) {
	p, port := deviceServer(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "unsafe-url")
		h.Set("Report-To", `{"group":"x"}`)
		h.Set("Clear-Site-Data", `"*"`)
		h.Set("Content-Security-Policy", "frame-ancestors 'none'; img-src 'self'; report-uri http://evil.example/r")
		h.Set("Location", r.URL.Query().Get("to"))
		w.WriteHeader(http.StatusFound)
	})
	h, _ := p.Session().Handler(0)
	for _, tc := range []struct{ to, want string }{
		{"http://printer.local/admin?x=1#f", "/admin?x=1#f"},
		{"http://PRINTER.local:80/", "/"},
		{"http://printer.local", "/"},
		{"http://127.0.0.1:" + itoa(port) + "/a", "/a"},
		{"/relative", "/relative"},
		{"next", "next"},
		{"https://printer.local/", "https://printer.local/"}, // another scheme is another origin
		{"http://printer.local:8080/", "http://printer.local:8080/"},
		{"http://example.invalid/", "http://example.invalid/"},
		{"//example.invalid/x", "//example.invalid/x"},
	} {
		rec := do(t, h, "GET", "/r?to="+urlQuery(tc.to), nil, nil, 0)
		if got := rec.Header().Get("Location"); got != tc.want {
			t.Errorf("Location %q became %q, want %q", tc.to, got, tc.want)
		}
	}
	rec := do(t, h, "GET", "/r?to=/", nil, nil, 0)
	hdr := rec.Header()
	for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Strict-Transport-Security", "X-Frame-Options", "Report-To", "Clear-Site-Data"} {
		if v := hdr.Get(k); v != "" {
			t.Errorf("%s: %q reached the browser", k, v)
		}
	}
	csp := hdr.Values("Content-Security-Policy")
	if len(csp) != 2 || csp[0] != "img-src 'self'" || csp[1] != deviceproxy.DeviceCSP {
		t.Errorf("CSP %q", csp)
	}
	if hdr.Get("X-Content-Type-Options") != "nosniff" || hdr.Get("Referrer-Policy") != "same-origin" {
		t.Errorf("nosniff %q, referrer policy %q", hdr.Get("X-Content-Type-Options"), hdr.Get("Referrer-Policy"))
	}
}

func TestSessionDecodesCompressedBodies(t *testing.T) {
	page := bytes.Repeat([]byte("<tr><td>Paper jam in tray 2</td></tr>\n"), 2000)
	encode := map[string]func(io.Writer) io.WriteCloser{
		"gzip":     func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) },
		"deflate":  func(w io.Writer) io.WriteCloser { return zlib.NewWriter(w) },
		"rawflate": func(w io.Writer) io.WriteCloser { z, _ := flate.NewWriter(w, 5); return z },
	}
	var mu sync.Mutex
	var accept []string
	p, _ := deviceServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accept = append(accept, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		kind := strings.TrimPrefix(r.URL.Path, "/")
		var b bytes.Buffer
		z := encode[kind](&b)
		_, _ = z.Write(page)
		_ = z.Close()
		if kind == "rawflate" {
			kind = "deflate"
		}
		w.Header().Set("Content-Encoding", kind)
		w.Header().Set("Content-Length", itoa(b.Len()))
		_, _ = w.Write(b.Bytes())
	})
	h, _ := p.Session().Handler(0)
	for kind := range encode {
		rec := do(t, h, "GET", "/"+kind, http.Header{"Accept-Encoding": {"br, zstd"}}, nil, 0)
		if rec.Header().Get("Content-Encoding") != "" || rec.Header().Get("Content-Length") != "" {
			t.Errorf("%s: Content-Encoding %q Content-Length %q left", kind, rec.Header().Get("Content-Encoding"), rec.Header().Get("Content-Length"))
		}
		if !bytes.Equal(rec.Body.Bytes(), page) {
			t.Errorf("%s: body of %d bytes, want the %d decoded", kind, rec.Body.Len(), len(page))
		}
	}
	for _, a := range accept {
		if a != "gzip, deflate" {
			t.Errorf("device was offered %q, want only what the agent decodes", a)
		}
	}
}

func TestSessionSpoolsBodiesOfUnknownLength(t *testing.T) {
	type got struct {
		length int64
		te     []string
		sum    string
	}
	seen := make(chan got, 1)
	p, port := deviceServer(t, func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		_, _ = io.Copy(h, r.Body)
		seen <- got{r.ContentLength, r.TransferEncoding, hex.EncodeToString(h.Sum(nil))}
	})
	_ = p
	small := newProxy(t, deviceproxy.Device{ID: "d2", Host: "127.0.0.1", HTTPPort: port, UploadSpoolLimit: 3 << 20, SpoolDir: t.TempDir()})
	chunked := newProxy(t, deviceproxy.Device{ID: "d3", Host: "127.0.0.1", HTTPPort: port, UploadSpoolLimit: -1})
	body := bytes.Repeat([]byte("firmware"), 2<<20/8+123) // 2 MiB and a bit
	sum := sha256.Sum256(body)
	for _, tc := range []struct {
		name    string
		p       *deviceproxy.Proxy
		body    []byte
		status  int
		chunked bool
	}{
		{"small in memory", small, body[:1000], 200, false},
		{"large spooled", small, body, 200, false},
		{"over the limit", small, append(body, body...), http.StatusRequestEntityTooLarge, false},
		{"streamed chunked", chunked, body, 200, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := tc.p.Session().Handler(0)
			rec := do(t, h, "POST", "/upload", nil, bytes.NewReader(tc.body), -1)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status != 200 {
				return
			}
			g := <-seen
			want := sha256.Sum256(tc.body)
			if tc.name == "large spooled" || tc.chunked {
				want = sum
			}
			if g.sum != hex.EncodeToString(want[:]) {
				t.Fatalf("device got a different body")
			}
			if tc.chunked {
				if g.length != -1 || len(g.te) == 0 {
					t.Fatalf("length %d TE %q, want chunked", g.length, g.te)
				}
			} else if g.length != int64(len(tc.body)) || len(g.te) != 0 {
				t.Fatalf("length %d TE %q, want Content-Length %d", g.length, g.te, len(tc.body))
			}
		})
	}
}

func TestSessionBasicCredentials(t *testing.T) {
	var mu sync.Mutex
	var auths []string
	p, _ := deviceServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get(deviceproxy.CredentialsHeader) != "" {
			t.Errorf("credentials header reached the device")
		}
		u, pw, ok := r.BasicAuth()
		if !ok || u != "service" || pw != "service" {
			w.Header().Set("WWW-Authenticate", `Basic realm="Service", charset="UTF-8"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "service menu")
	})
	s := p.Session()
	h, _ := s.Handler(0)
	if rec := do(t, h, "GET", "/basic/", nil, nil, 0); rec.Code != 401 || rec.Header().Get("Www-Authenticate") == "" {
		t.Fatalf("first: %d, want the device's 401 with its challenge", rec.Code)
	}
	creds := func(u, p string) http.Header {
		return http.Header{deviceproxy.CredentialsHeader: {base64.StdEncoding.EncodeToString([]byte(u + ":" + p))}}
	}
	if rec := do(t, h, "GET", "/basic/", creds("service", "wrong"), nil, 0); rec.Code != 401 {
		t.Fatalf("wrong credentials: %d", rec.Code)
	}
	if rec := do(t, h, "GET", "/basic/", nil, nil, 0); rec.Code != 401 {
		t.Fatalf("refused credentials must be forgotten: %d", rec.Code)
	}
	if rec := do(t, h, "GET", "/basic/", creds("service", "service"), nil, 0); rec.Code != 200 {
		t.Fatalf("right credentials: %d", rec.Code)
	}
	if rec := do(t, h, "GET", "/basic/other", nil, nil, 0); rec.Code != 200 {
		t.Fatalf("later request of the session: %d", rec.Code)
	}
	h2, _ := p.Session().Handler(0)
	if rec := do(t, h2, "GET", "/basic/", nil, nil, 0); rec.Code != 401 {
		t.Fatalf("another session got the credentials: %d", rec.Code)
	}
	if rec := do(t, h, "GET", "/", http.Header{deviceproxy.CredentialsHeader: {"%%%"}}, nil, 0); rec.Code != 400 {
		t.Fatalf("malformed credentials: %d", rec.Code)
	}
}

func TestSessionDigestCredentials(t *testing.T) {
	const realm, user, pass = "Service", "service", "s3cret"
	var mu sync.Mutex
	nonce, served := "n1", 0
	p, _ := deviceServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if checkDigest(r, realm, user, pass, nonce) {
			served++
			if served == 2 {
				nonce = "n2" // the next request meets a stale nonce
			}
			_, _ = io.WriteString(w, "ok")
			return
		}
		stale := ""
		if strings.Contains(r.Header.Get("Authorization"), "Digest") && !strings.Contains(r.Header.Get("Authorization"), `nonce="`+nonce+`"`) {
			stale = ", stale=true"
		}
		w.Header().Set("WWW-Authenticate", `Digest realm="`+realm+`", qop="auth", algorithm=SHA-256, nonce="`+nonce+`", opaque="op"`+stale)
		w.Header().Add("WWW-Authenticate", `Basic realm="`+realm+`"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	h, _ := p.Session().Handler(0)
	if rec := do(t, h, "GET", "/x", nil, nil, 0); rec.Code != 401 {
		t.Fatalf("first: %d", rec.Code)
	}
	hdr := http.Header{deviceproxy.CredentialsHeader: {base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}}
	for i, target := range []string{"/x", "/y?z=1", "/after-stale"} {
		var hd http.Header
		if i == 0 {
			hd = hdr
		}
		if rec := do(t, h, "GET", target, hd, nil, 0); rec.Code != 200 {
			t.Fatalf("%s: %d", target, rec.Code)
		}
	}
}

// checkDigest verifies an RFC 7616 SHA-256 Authorization with qop=auth.
func checkDigest(r *http.Request, realm, user, pass, nonce string) bool {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Digest ")
	if !ok {
		return false
	}
	p := map[string]string{}
	for part := range strings.SplitSeq(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		p[k] = strings.Trim(val, `"`)
	}
	h := func(s string) string { x := sha256.Sum256([]byte(s)); return hex.EncodeToString(x[:]) }
	ha1 := h(user + ":" + realm + ":" + pass)
	ha2 := h(r.Method + ":" + p["uri"])
	want := h(ha1 + ":" + nonce + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + ha2)
	return p["username"] == user && p["nonce"] == nonce && p["uri"] == r.URL.RequestURI() && p["response"] == want && p["opaque"] == "op"
}

func TestSessionSetsOriginOnStateChangingRequests(t *testing.T) {
	seen := make(chan [2]string, 1)
	p, _ := deviceServer(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- [2]string{r.Header.Get("Origin"), r.Header.Get("Referer")}
	})
	h, _ := p.Session().Handler(0)
	do(t, h, "POST", "/settings", nil, strings.NewReader("a=1"), 3)
	if got := <-seen; got != [2]string{"http://printer.local", "http://printer.local/"} {
		t.Fatalf("POST without Origin: device saw %q", got)
	}
	do(t, h, "GET", "/", nil, nil, 0)
	if got := <-seen; got != [2]string{"", ""} {
		t.Fatalf("GET: device saw %q", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func urlQuery(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "?", "%3F", "+", "%2B", " ", "%20")
	return r.Replace(s)
}
