package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/proto"
)

// browserLogin signs in over HTTP as a browser would and returns the
// Cookie header with both login cookies (the Strict one for the app, the
// Lax one for the authorization endpoint).
func browserLogin(t *testing.T, s *stack.Stack, name, pw string) string {
	t.Helper()
	b, _ := json.Marshal(&proto.Login{Username: name, Password: pw})
	resp, err := http.Post(s.SignalingURL+proto.PathLogin, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var parts []string
	for _, c := range resp.Cookies() {
		parts = append(parts, c.Name+"="+c.Value)
	}
	if len(parts) != 2 {
		t.Fatalf("login %s: %s, cookies %v", name, resp.Status, parts)
	}
	return strings.Join(parts, "; ")
}

// approveInBrowser plays the user's browser for `porthole login`: it opens
// the authorization URL with the login cookies, reads the consent page
// and allows. It returns the redirect to the CLI's loopback listener,
// not yet followed.
func approveInBrowser(t *testing.T, s *stack.Stack, cookies, authURL string) *url.URL {
	t.Helper()
	loc := approve(t, s, cookies, authURL)
	if loc.Hostname() != "127.0.0.1" {
		t.Fatalf("consent redirects to %s, want the loopback listener", loc)
	}
	return loc
}

// approve is approveInBrowser for any redirect URI.
func approve(t *testing.T, s *stack.Stack, cookies, authURL string) *url.URL {
	t.Helper()
	noFollow := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, authURL, nil)
	req.Header.Set("Cookie", cookies)
	req.Header.Set("Sec-Fetch-Site", "none")
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Allow the porthole command?") {
		t.Fatalf("consent page: %s\n%.500s", resp.Status, page)
	}
	form := url.Values{"decision": {"allow"}}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(string(page), -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	au, _ := url.Parse(authURL)
	req, _ = http.NewRequest(http.MethodPost, au.Scheme+"://"+au.Host+proto.PathAuthorize, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", cookies)
	req.Header.Set("Origin", au.Scheme+"://"+au.Host)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("consent: %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	return loc
}

// cliEnv is the environment of a technician who signs in with
// `porthole login`: a fresh home and config directory, no token in the
// environment, no display (so no browser is started).
func cliEnv(s *stack.Stack, home string) []string {
	return []string{
		"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"PORTHOLE_SERVER=" + s.SignalingURL, "PORTHOLE_TOKEN=", "DISPLAY=", "WAYLAND_DISPLAY=",
	}
}

// runCLI runs one porthole command to its end.
func runCLI(t *testing.T, s *stack.Stack, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Bin["porthole"], args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startLogin starts `porthole login` and returns it with the
// authorization URL it printed, once it says it is waiting.
func startLogin(t *testing.T, s *stack.Stack, env []string) (*proc.Proc, string) {
	t.Helper()
	p, err := proc.Start("porthole login", s.Bin["porthole"], []string{"login", "--timeout", "60s"}, proc.Options{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := p.WaitLine(ctx, regexp.MustCompile(`^\s+(http://\S+/oauth/authorize\?\S+)$`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitLine(ctx, regexp.MustCompile(regexp.QuoteMeta("Waiting for you to approve in the browser… (Ctrl-C to cancel)"))); err != nil {
		t.Fatal(err)
	}
	return p, m[1]
}

// follow delivers a loopback redirect to the CLI, as the browser would.
func follow(t *testing.T, u *url.URL) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitExit waits for p to end and fails the test unless it succeeded.
func waitExit(t *testing.T, p *proc.Proc) {
	t.Helper()
	select {
	case <-p.Exited():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit:\n%s", p.Name, p.Tail(20))
	}
	if err := p.ExitErr(); err != nil {
		t.Fatalf("%s: %v\n%s", p.Name, err, p.Tail(20))
	}
}

// TestCLILoginThroughBrowserApproval runs `porthole login` as a real
// process against real signaling: the technician approves in the
// "browser" (an HTTP client with their login cookies), the CLI keeps the
// API token in its config directory, and `porthole devices` and `porthole
// http` then work with it and nothing in the environment. A callback with
// another state is refused and not exchanged; a replayed code is refused
// and revokes the token it issued; `porthole logout` revokes the token on
// the server and forgets it.
func TestCLILoginThroughBrowserApproval(t *testing.T) {
	const pw = "login-test-password-1"
	s := stack.Start(t, stack.Options{Users: []stack.User{{Name: "tech", Password: pw, Roles: []string{"configurer", "user"}}}})
	home := t.TempDir()
	env := cliEnv(s, home)
	credsPath := filepath.Join(home, ".config", "porthole", "credentials.json")

	// Not signed in: a clear message, before any request.
	if out, err := runCLI(t, s, env, "devices"); err == nil || !strings.Contains(out, "not signed in to "+s.SignalingURL) || !strings.Contains(out, "porthole login") {
		t.Fatalf("devices before login: %v\n%s", err, out)
	}

	cookies := browserLogin(t, s, "tech", pw)
	p, authURL := startLogin(t, s, env)
	au, _ := url.Parse(authURL)
	if q := au.Query(); q.Get("client_id") != proto.CLIClientID || q.Get("code_challenge_method") != "S256" || q.Get("state") == "" ||
		!strings.HasPrefix(q.Get("redirect_uri"), "http://127.0.0.1:") || au.Host != strings.TrimPrefix(s.AppURL, "http://") {
		t.Fatalf("authorization URL %s", authURL)
	}
	cb := approveInBrowser(t, s, cookies, authURL)

	// Negative: the same code with another state (a stale tab, or a page
	// signing the CLI in to another account) is refused and not used.
	forged := *cb
	fq := forged.Query()
	fq.Set("state", "not-the-state")
	forged.RawQuery = fq.Encode()
	if status, body := follow(t, &forged); status != http.StatusBadRequest || !strings.Contains(body, "Not this login") {
		t.Fatalf("callback with a wrong state: %d %.200s", status, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.WaitLine(ctx, regexp.MustCompile("refused an answer whose state does not match")); err != nil {
		t.Fatal(err)
	}

	// The real callback: the CLI exchanges the code (still unused) and
	// keeps the token.
	if status, body := follow(t, cb); status != http.StatusOK || !strings.Contains(body, "signed in as tech") {
		t.Fatalf("callback: %d %.200s", status, body)
	}
	if _, err := p.WaitLine(ctx, regexp.MustCompile(`Signed in to \S+ as tech until .*scopes: read sessions`)); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p)
	fi, err := os.Stat(credsPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file %s: %v %v", credsPath, fi, err)
	}
	var creds struct {
		Servers map[string]struct {
			AccessToken string `json:"accessToken"`
		} `json:"servers"`
	}
	b, _ := os.ReadFile(credsPath)
	if err := json.Unmarshal(b, &creds); err != nil || creds.Servers[s.SignalingURL].AccessToken == "" {
		t.Fatalf("credentials file: %v\n%s", err, b)
	}
	token := creds.Servers[s.SignalingURL].AccessToken

	// The configurer side of the same account enables the printer; then
	// the stored token lists and opens it.
	var v proto.DeviceView
	apiCall(t, s, &http.Cookie{Name: "__Host-porthole", Value: cookieValue(cookies, "__Host-porthole")}, http.MethodPatch, "/v1/devices/"+stack.DeviceID, &proto.DeviceUpdate{Enabled: ptrTo(true)}, &v)
	if out, err := runCLI(t, s, env, "devices"); err != nil || !regexp.MustCompile(stack.DeviceID+`\s+Demo printer\s+online\s+web:\d+\s+reachable`).MatchString(out) {
		t.Fatalf("devices with the stored token: %v\n%s", err, out)
	}
	hp, err := proc.Start("porthole http", s.Bin["porthole"], []string{"--loopback-only", "http", stack.DeviceID, "--listen", "127.0.0.1:0"}, proc.Options{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hp.Stop(10 * time.Second) })
	m, err := hp.WaitLine(ctx, regexp.MustCompile(`serving \S+ web page at (http://\S+/)`))
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := get(t, http.DefaultClient, m[1]); resp.StatusCode != 200 || !strings.Contains(string(body), "Porthole LaserJet 4000") {
		t.Fatalf("device page through `porthole http`: %d %.200s", resp.StatusCode, body)
	}
	if err := hp.Stop(10 * time.Second); err != nil {
		t.Logf("porthole http: %v", err)
	}

	// Negative: the code replayed at the token endpoint (by whoever saw
	// the redirect) is refused, and the token it issued is revoked.
	resp, err := http.PostForm(s.SignalingURL+proto.PathToken, url.Values{
		"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")}, "client_id": {proto.CLIClientID},
		"redirect_uri": {au.Query().Get("redirect_uri")}, "code_verifier": {strings.Repeat("x", 43)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var oe proto.OAuthError
	_ = json.NewDecoder(resp.Body).Decode(&oe)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || oe.Error != proto.OAuthInvalidGrant {
		t.Fatalf("replayed code: %s %+v, want 400 invalid_grant", resp.Status, oe)
	}
	if out, err := runCLI(t, s, env, "devices"); err == nil || !strings.Contains(out, "the server refused your token") || !strings.Contains(out, "run 'porthole login'") {
		t.Fatalf("devices with the token of a replayed code: %v\n%s", err, out)
	}
	if status := bearerStatus(t, s, token); status != http.StatusUnauthorized {
		t.Fatalf("token of a replayed code: %d, want 401", status)
	}

	// Sign in again, then out: the token is revoked on the server and gone
	// from the file.
	p, authURL = startLogin(t, s, env)
	if status, _ := follow(t, approveInBrowser(t, s, cookies, authURL)); status != http.StatusOK {
		t.Fatalf("second login callback: %d", status)
	}
	waitExit(t, p)
	b, _ = os.ReadFile(credsPath)
	_ = json.Unmarshal(b, &creds)
	token = creds.Servers[s.SignalingURL].AccessToken
	if status := bearerStatus(t, s, token); status != http.StatusOK {
		t.Fatalf("second token: %d", status)
	}
	if out, err := runCLI(t, s, env, "logout"); err != nil || !strings.Contains(out, "the token is revoked") {
		t.Fatalf("logout: %v\n%s", err, out)
	}
	if status := bearerStatus(t, s, token); status != http.StatusUnauthorized {
		t.Fatalf("token after logout: %d, want 401", status)
	}
	if b, _ := os.ReadFile(credsPath); strings.Contains(string(b), token) {
		t.Fatalf("token still in the credentials file after logout:\n%s", b)
	}
	if out, err := runCLI(t, s, env, "devices"); err == nil || !strings.Contains(out, "not signed in") {
		t.Fatalf("devices after logout: %v\n%s", err, out)
	}
}

func bearerStatus(t *testing.T, s *stack.Stack, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.SignalingURL+proto.PathDevices, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func cookieValue(header, name string) string {
	for _, c := range strings.Split(header, "; ") {
		if v, ok := strings.CutPrefix(c, name+"="); ok {
			return v
		}
	}
	return ""
}

func ptrTo[T any](v T) *T { return &v }

// TestCLILoginNoBrowserFromAnotherMachine: `porthole login --no-browser`
// runs where no browser can reach it; the technician approves in a
// browser elsewhere, which lands on the app's code page, and pastes the
// line it shows. A pasted code of another login (wrong state) is refused
// and the command keeps waiting; the code works once; PKCE still binds it
// to this command.
func TestCLILoginNoBrowserFromAnotherMachine(t *testing.T) {
	const pw = "login-test-password-2"
	s := stack.Start(t, stack.Options{Users: []stack.User{{Name: "tech", Password: pw, Roles: []string{"user"}}}})
	home := t.TempDir()
	env := cliEnv(s, home)
	cookies := browserLogin(t, s, "tech", pw)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Bin["porthole"], "login", "--no-browser", "--timeout", "60s")
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw2 := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw2, pw2
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw2.Close() }()
	var seen []string
	waitFor := func(re *regexp.Regexp) []string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("porthole login ended before %q:\n%s", re, strings.Join(seen, "\n"))
				}
				seen = append(seen, l)
				if m := re.FindStringSubmatch(l); m != nil {
					return m
				}
			case <-ctx.Done():
				t.Fatalf("waiting for %q:\n%s", re, strings.Join(seen, "\n"))
			}
		}
	}
	authURL := waitFor(regexp.MustCompile(`^\s+(http://\S+/oauth/authorize\?\S+)$`))[1]
	waitFor(regexp.MustCompile(`Paste it here`))
	au, _ := url.Parse(authURL)
	if got := au.Query().Get("redirect_uri"); got != s.AppURL+proto.PathCLICode {
		t.Fatalf("redirect_uri %q, want the app's code page", got)
	}

	loc := approve(t, s, cookies, authURL)
	if loc.String() == "" || !strings.HasPrefix(loc.String(), s.AppURL+proto.PathCLICode+"?") {
		t.Fatalf("consent redirects to %s", loc)
	}
	resp, err := http.Get(loc.String()) // the browser, on another machine, shows the page
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`<pre id="code" class="cli-code">([^<]+)</pre>`).FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil || resp.Header.Get("Referrer-Policy") != "no-referrer" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("code page: %s %v\n%.500s", resp.Status, resp.Header, page)
	}
	line := html.UnescapeString(string(m[1]))

	// A code of another login: refused, nothing exchanged.
	_, code, _ := strings.Cut(line, ".")
	if _, err := io.WriteString(stdin, "another-login-state."+code+"\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(regexp.MustCompile("refused an answer whose state does not match"))
	if _, err := io.WriteString(stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(regexp.MustCompile(`Signed in to \S+ as tech until .*scopes: read sessions`))
	if err := <-done; err != nil {
		t.Fatalf("porthole login: %v\n%s", err, strings.Join(seen, "\n"))
	}
	if out, err := runCLI(t, s, env, "devices"); err != nil || !strings.Contains(out, stack.DeviceID) {
		t.Fatalf("devices after the pasted login: %v\n%s", err, out)
	}
	// Single use: the same code again is refused.
	resp, err = http.PostForm(s.SignalingURL+proto.PathToken, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "client_id": {proto.CLIClientID},
		"redirect_uri": {s.AppURL + proto.PathCLICode}, "code_verifier": {strings.Repeat("x", 43)},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the pasted code replayed: %s, want 400", resp.Status)
	}
}
