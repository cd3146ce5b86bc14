package demodevice

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newServer serves a fresh device with connection accounting.
func newServer(t *testing.T, cfg Config) (*Device, *httptest.Server) {
	t.Helper()
	d := New(cfg)
	srv := httptest.NewUnstartedServer(d.Handler())
	srv.Config.ConnState = d.ConnState
	srv.Start()
	t.Cleanup(srv.Close)
	return d, srv
}

// noRedirect is a client that returns redirects instead of following them.
func noRedirect(srv *httptest.Server) *http.Client {
	c := *srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func get(t *testing.T, c *http.Client, u string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestPagesServeExpectedContent(t *testing.T) {
	_, srv := newServer(t, Config{Serial: "SN-TEST-42"})
	c := noRedirect(srv)
	tests := []struct {
		path        string
		status      int
		contentType string
		contains    []string
	}{
		{"/", 200, "text/html", []string{"Porthole LaserJet 4000", "SN-TEST-42", `id="live-status"`, "/static/status.js", `href="/supplies"`, `href="/settings"`, "<meter", "48,213"}},
		{"/supplies", 200, "text/html", []string{"Cartridges and Consumables", "PH-400X-K", "Paper Trays"}},
		{"/settings", 200, "text/html", []string{`name="hostname"`, "NPI4000-DEMO", `method="post"`}},
		{"/login", 200, "text/html", []string{`name="username"`, `name="password"`}},
		{"/static/style.css", 200, "text/css", []string{".topbar"}},
		{"/static/status.js", 200, "javascript", []string{"fetch(\"/api/status\""}},
		{"/api/status", 200, "application/json", []string{`"serial": "SN-TEST-42"`, `"status": "Ready"`}},
		{"/api/stats", 200, "application/json", []string{`"requests"`}},
		{"/redirect-external", 302, "", nil},
		{"/no-such-page", 404, "", nil},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.path, "/"), func(t *testing.T) {
			resp, body := get(t, c, srv.URL+tt.path)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, tt.contentType) {
				t.Errorf("Content-Type %q, want it to contain %q", ct, tt.contentType)
			}
			for _, s := range tt.contains {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %q", s)
				}
			}
		})
	}
}

func TestRedirectExternalPointsOffDevice(t *testing.T) {
	_, srv := newServer(t, Config{})
	resp, _ := get(t, noRedirect(srv), srv.URL+"/redirect-external")
	if got := resp.Header.Get("Location"); got != "http://example.invalid/" {
		t.Fatalf("Location %q", got)
	}
}

func TestAPIStatusReportsIdentity(t *testing.T) {
	_, srv := newServer(t, Config{Serial: "X1", MAC: "02:00:00:00:00:01", Model: "Test Model"})
	_, body := get(t, srv.Client(), srv.URL+"/api/status")
	var s Status
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	if s.Serial != "X1" || s.MAC != "02:00:00:00:00:01" || s.Model != "Test Model" || s.Hostname != DefaultHostname || len(s.Supplies) == 0 {
		t.Fatalf("status %+v", s)
	}
}

func TestLogoIsDeterministicPNG(t *testing.T) {
	a, b := drawLogo(), drawLogo()
	if !bytes.Equal(a, b) {
		t.Fatal("logo bytes differ between draws")
	}
	_, srv := newServer(t, Config{})
	resp, body := get(t, srv.Client(), srv.URL+"/logo.png")
	if resp.Header.Get("Content-Type") != "image/png" || body != string(a) {
		t.Fatalf("logo: type %q, %d bytes", resp.Header.Get("Content-Type"), len(body))
	}
	img, err := png.Decode(strings.NewReader(body))
	if err != nil || img.Bounds().Dx() != 64 {
		t.Fatalf("decode: %v", err)
	}
}

func TestSettingsPostAcceptsBothEncodings(t *testing.T) {
	urlencoded := func(v url.Values) (string, io.Reader) {
		return "application/x-www-form-urlencoded", strings.NewReader(v.Encode())
	}
	multipartForm := func(v url.Values) (string, io.Reader) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, vs := range v {
			for _, s := range vs {
				_ = mw.WriteField(k, s)
			}
		}
		_ = mw.Close()
		return mw.FormDataContentType(), &buf
	}
	tests := []struct {
		name   string
		encode func(url.Values) (string, io.Reader)
	}{
		{"urlencoded", urlencoded},
		{"multipart", multipartForm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, srv := newServer(t, Config{})
			form := url.Values{
				"hostname": {"lab-" + tt.name}, "location": {"Room <42>"}, "contact": {"ops@example.org"},
				"paperSize": {"Letter"}, "sleepMinutes": {"30"},
			}
			ct, body := tt.encode(form)
			resp, err := noRedirect(srv).Post(srv.URL+"/settings", ct, body)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/settings?saved=1" {
				t.Fatalf("status %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			want := Settings{Hostname: "lab-" + tt.name, Location: "Room <42>", Contact: "ops@example.org", PaperSize: "Letter", SleepMinutes: 30}
			if got := d.Settings(); got != want {
				t.Fatalf("settings %+v, want %+v", got, want)
			}
			_, page := get(t, srv.Client(), srv.URL+"/settings?saved=1")
			for _, s := range []string{`id="saved"`, "lab-" + tt.name, "Room &lt;42&gt;", `<td data-field="duplex">off</td>`, `<td data-field="paperSize">Letter</td>`} {
				if !strings.Contains(page, s) {
					t.Errorf("saved page lacks %q", s)
				}
			}
		})
	}
}

func TestSettingsPostRejectsInvalidValues(t *testing.T) {
	tests := []struct {
		name string
		form url.Values
	}{
		{"empty hostname", url.Values{"hostname": {""}}},
		{"bad paper", url.Values{"hostname": {"a"}, "paperSize": {"B0"}}},
		{"bad sleep", url.Values{"hostname": {"a"}, "sleepMinutes": {"0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, srv := newServer(t, Config{})
			resp, err := noRedirect(srv).PostForm(srv.URL+"/settings", tt.form)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", resp.StatusCode)
			}
			if d.Settings().Hostname != DefaultHostname {
				t.Fatal("invalid form changed the settings")
			}
		})
	}
}

func TestStrictOriginRefusesCrossOriginPosts(t *testing.T) {
	tests := []struct {
		name, origin, referer string
		strict                bool
		want                  int
	}{
		{"lenient foreign origin", "http://evil.example", "", false, http.StatusSeeOther},
		{"strict no origin", "", "", true, http.StatusSeeOther},
		{"strict same origin", "SELF", "", true, http.StatusSeeOther},
		{"strict foreign origin", "http://evil.example", "", true, http.StatusForbidden},
		{"strict foreign referer", "", "http://evil.example/x", true, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newServer(t, Config{StrictOrigin: tt.strict})
			req, _ := http.NewRequest("POST", srv.URL+"/settings", strings.NewReader("hostname=x"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.origin == "SELF" {
				tt.origin = srv.URL
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			if tt.referer != "" {
				req.Header.Set("Referer", tt.referer)
			}
			resp, err := noRedirect(srv).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func TestLoginSetsCookiesAndGuardsAdmin(t *testing.T) {
	_, srv := newServer(t, Config{AdminUser: "root", AdminPass: "s3cret"})
	c := noRedirect(srv)

	// Without a session, /admin sends the browser to /login.
	resp, _ := get(t, c, srv.URL+"/admin")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login" {
		t.Fatalf("anonymous /admin: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Wrong password: the form again, no cookie.
	resp, err := c.PostForm(srv.URL+"/login", url.Values{"username": {"root"}, "password": {"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(resp.Cookies()) != 0 || !strings.Contains(string(body), "Invalid user name or password") {
		t.Fatalf("bad login: %d cookies %v", resp.StatusCode, resp.Cookies())
	}

	// Right password: two cookies and a 302 to /admin.
	resp, err = c.PostForm(srv.URL+"/login", url.Values{"username": {"root"}, "password": {"s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/admin" {
		t.Fatalf("login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookies := map[string]*http.Cookie{}
	for _, ck := range resp.Cookies() {
		cookies[ck.Name] = ck
	}
	sid, lang := cookies["sid"], cookies["ui_lang"]
	if sid == nil || !sid.HttpOnly || sid.Path != "/" || sid.Value == "" {
		t.Fatalf("sid cookie %+v", sid)
	}
	if lang == nil || lang.HttpOnly || lang.Value != "en" || lang.Path != "/" {
		t.Fatalf("ui_lang cookie %+v", lang)
	}

	// A jar-carrying client reaches /admin, then logs out and is sent back to /login.
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(srv.URL)
	jar.SetCookies(u, resp.Cookies())
	c.Jar = jar
	resp, body2 := get(t, c, srv.URL+"/admin")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body2, "Welcome, root") {
		t.Fatalf("/admin with cookie: %d", resp.StatusCode)
	}
	resp, _ = get(t, c, srv.URL+"/logout")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	jar.SetCookies(u, []*http.Cookie{sid}) // even a replayed old sid is dead now
	resp, _ = get(t, c, srv.URL+"/admin")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("/admin after logout: %d", resp.StatusCode)
	}
}

func TestBasicAuth(t *testing.T) {
	_, srv := newServer(t, Config{BasicUser: "tech", BasicPass: "pw"})
	tests := []struct {
		name       string
		user, pass string
		set        bool
		want       int
	}{
		{"none", "", "", false, http.StatusUnauthorized},
		{"wrong", "tech", "nope", true, http.StatusUnauthorized},
		{"right", "tech", "pw", true, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/basic/engine", nil)
			if tt.set {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			if tt.want == http.StatusOK && !strings.Contains(string(body), `id="service-ok"`) {
				t.Errorf("service page missing")
			}
		})
	}
}

func TestGzipFollowsAcceptEncoding(t *testing.T) {
	_, srv := newServer(t, Config{})
	// A transport that neither asks for nor decodes gzip on its own.
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	t.Cleanup(c.CloseIdleConnections)
	tests := []struct {
		accept   string
		wantGzip bool
	}{
		{"", false},
		{"gzip", true},
		{"deflate, gzip;q=0.8", true},
		{"gzip;q=0", false},
		{"br", false},
		{"*", true},
	}
	for _, tt := range tests {
		t.Run("accept="+tt.accept, func(t *testing.T) {
			resp, body := get(t, c, srv.URL+"/gzip", "Accept-Encoding", tt.accept)
			gz := resp.Header.Get("Content-Encoding") == "gzip"
			if gz != tt.wantGzip {
				t.Fatalf("Content-Encoding %q, want gzip=%v", resp.Header.Get("Content-Encoding"), tt.wantGzip)
			}
			if resp.Header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("Vary %q", resp.Header.Get("Vary"))
			}
			if gz {
				zr, err := gzip.NewReader(strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				plain, err := io.ReadAll(zr)
				if err != nil {
					t.Fatal(err)
				}
				if len(plain) <= len(body) {
					t.Errorf("gzip did not shrink the page: %d -> %d", len(plain), len(body))
				}
				body = string(plain)
			}
			if !strings.Contains(body, "Event Log") || !strings.Contains(body, "13.A2.D2") {
				t.Error("event log content missing")
			}
		})
	}
}

func TestXFOPageForbidsFraming(t *testing.T) {
	_, srv := newServer(t, Config{})
	resp, body := get(t, srv.Client(), srv.URL+"/xfo")
	if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Content-Security-Policy") != "frame-ancestors 'none'" {
		t.Fatalf("headers %v", resp.Header)
	}
	if !strings.Contains(body, "/static/framebust.js") {
		t.Fatal("frame-busting script missing")
	}
}

func TestUploadHashesStreamedBody(t *testing.T) {
	_, srv := newServer(t, Config{MaxUploadBytes: 1 << 20})
	tests := []struct {
		name string
		size int64
		want int
	}{
		{"empty", 0, http.StatusOK},
		{"small", 1000, http.StatusOK},
		{"at limit", 1 << 20, http.StatusOK},
		{"over limit", 1<<20 + 1, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := srv.Client().Post(srv.URL+"/upload", "application/octet-stream", io.LimitReader(FirmwareReader(tt.size), tt.size))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want != http.StatusOK {
				return
			}
			var r UploadResult
			if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
				t.Fatal(err)
			}
			if r.Bytes != tt.size || r.SHA256 != FirmwareSHA256(tt.size) {
				t.Fatalf("got %+v, want %d bytes %s", r, tt.size, FirmwareSHA256(tt.size))
			}
		})
	}
}

func TestEchoReflectsRequest(t *testing.T) {
	_, srv := newServer(t, Config{})
	req, _ := http.NewRequest("PUT", srv.URL+"/echo?a=1&b=two", strings.NewReader("hello"))
	req.Header.Set("X-Custom", "v1")
	req.Header.Set("Origin", "http://device.local")
	req.Host = "printer.lan:8080"
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e Echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if e.Method != "PUT" || e.Path != "/echo" || e.RawQuery != "a=1&b=two" || e.Query["b"][0] != "two" ||
		e.Host != "printer.lan:8080" || e.BodyLength != 5 || e.Headers["X-Custom"][0] != "v1" || e.Headers["Origin"][0] != "http://device.local" {
		t.Fatalf("echo %+v", e)
	}
}

func TestSlowStreamsChunksApart(t *testing.T) {
	_, srv := newServer(t, Config{})
	resp, err := srv.Client().Get(srv.URL + "/slow?ms=50&chunks=4")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4096)
	start := time.Now()
	var arrivals []time.Duration
	var text strings.Builder
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			arrivals = append(arrivals, time.Since(start))
			text.Write(buf[:n])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Count(text.String(), "\n"); got != 4 {
		t.Fatalf("%d lines: %q", got, text.String())
	}
	if len(arrivals) < 2 || arrivals[len(arrivals)-1] < 120*time.Millisecond {
		t.Fatalf("chunks were not spread out: %v", arrivals)
	}
	for _, bad := range []string{"ms=-1", "chunks=0", "ms=x", "chunks=100000"} {
		resp, _ := get(t, srv.Client(), srv.URL+"/slow?"+bad)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("/slow?%s: status %d, want 400", bad, resp.StatusCode)
		}
	}
}

func TestCancelledSlowRequestReleasesConnection(t *testing.T) {
	d, srv := newServer(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/slow?ms=200&chunks=100", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resp.Body.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if d.Stats().OpenConns.Load() != 1 || d.Stats().InFlight.Load() != 1 {
		t.Fatalf("before cancel: %+v", d.Stats().Snapshot())
	}
	cancel()
	resp.Body.Close()
	waitFor(t, func() bool {
		s := d.Stats().Snapshot()
		return s.OpenConns == 0 && s.InFlight == 0 && s.Aborted == 1
	})
}

func TestServeCountsConnectionsAndShutsDown(t *testing.T) {
	d := New(Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, d) }()
	tr := &http.Transport{}
	c := &http.Client{Transport: tr}
	for range 3 {
		resp, err := c.Get("http://" + ln.Addr().String() + "/api/status")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	s := d.Stats().Snapshot()
	if s.TotalConns != 1 || s.OpenConns != 1 || s.Requests != 3 {
		t.Fatalf("keep-alive stats %+v", s)
	}
	tr.CloseIdleConnections()
	waitFor(t, func() bool { return d.Stats().OpenConns.Load() == 0 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

// waitFor polls cond until it holds or 5 seconds pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	// Generous: the machine may be busy with other test processes; the
	// condition usually holds within milliseconds.
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		<-tick.C
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestFrameBustingPages(t *testing.T) {
	_, srv := newServer(t, Config{StrictOrigin: true})
	for i, v := range BustVariants {
		resp, body := get(t, srv.Client(), srv.URL+"/bust/"+v)
		next := BustVariants[(i+1)%len(BustVariants)]
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "<!DOCTYPE html>") || !strings.Contains(body, `href="/bust/`+next+`"`) ||
			!strings.Contains(body, "top") || resp.Header.Get("X-Frame-Options") != "SAMEORIGIN" {
			t.Errorf("%s: %d %.300s", v, resp.StatusCode, body)
		}
		// The form saves, from the device's own origin only.
		c := noRedirect(srv)
		post := func(origin string) *http.Response {
			req, _ := http.NewRequest("POST", srv.URL+"/bust/"+v+"/save", strings.NewReader("note=hello+there"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", origin)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		if r := post(srv.URL); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/bust/"+v+"?saved=hello+there" {
			t.Errorf("%s save: %d %q", v, r.StatusCode, r.Header.Get("Location"))
		}
		if r := post("https://evil.example"); r.StatusCode != http.StatusForbidden {
			t.Errorf("%s cross-origin save: %d", v, r.StatusCode)
		}
		if _, body := get(t, srv.Client(), srv.URL+"/bust/"+v+"?saved=%3Cb%3Ex"); !strings.Contains(body, `id="saved">&lt;b&gt;x<`) {
			t.Errorf("%s: saved text not escaped: %.400s", v, body)
		}
	}
	if resp, _ := get(t, srv.Client(), srv.URL+"/bust/nope"); resp.StatusCode != 404 {
		t.Errorf("unknown variant: %d", resp.StatusCode)
	}
}

// TestEWSConsoleServesItsSubresources: /ews names EWSSubresources - EWSPolls
// static subresources (the polls are the first script's), each served
// no-store with a body.
func TestEWSConsoleServesItsSubresources(t *testing.T) {
	srv := httptest.NewServer(New(Config{}).Handler())
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()
	get := func(path string) []byte {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" || len(b) == 0 {
			t.Fatalf("GET %s: %s, Cache-Control %q, %d bytes", path, resp.Status, resp.Header.Get("Cache-Control"), len(b))
		}
		return b
	}
	page := string(get("/ews"))
	refs := regexp.MustCompile(`(?:src|href)="(/ews/[^"]+)"`).FindAllStringSubmatch(page, -1)
	var css []string
	for _, m := range refs {
		body := get(m[1])
		if strings.HasSuffix(m[1], ".css") {
			css = append(css, string(body))
		}
	}
	var fromCSS int
	for _, c := range css {
		for _, m := range regexp.MustCompile(`url\((/ews/img/[^)]+)\)`).FindAllStringSubmatch(c, -1) {
			get(m[1])
			fromCSS++
		}
	}
	if got := len(refs) + fromCSS + EWSPolls; got != EWSSubresources || EWSSubresources != 40 {
		t.Fatalf("the page names %d subresources and its stylesheets %d, with %d polls: %d, want %d (40)", len(refs), fromCSS, EWSPolls, got, EWSSubresources)
	}
	if js := string(get("/ews/js/0.js")); !strings.Contains(js, "/ews/api/poll") {
		t.Fatalf("the first script does not poll: %.200s", js)
	}
	get("/ews/api/status")
	resp, err := srv.Client().Get(srv.URL + "/ews/img/99.png")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("an image past the last: %s", resp.Status)
	}
}
