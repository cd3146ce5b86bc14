// Package hydra runs a real OpenID Connect provider for tests: Ory Hydra
// (github.com/ory/hydra/v2, built from integration/hydra/tool at the version pinned
// there) with an in-memory database, plus the login and consent app that
// Hydra delegates to by design. Hydra does everything a provider does on
// the wire — discovery, the authorization endpoint with PKCE, the token
// endpoint, ID tokens signed with its own keys, JWKS — and asks the app
// only who the user is and what to put in their ID token.
//
// The login app here is deliberately plain: a form of user name and
// password checked against Users, and a consent step that grants what was
// asked and puts the user's groups into the ID token (the way an
// organisation's directory would).
package hydra

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/internal/testenv"
)

// User is an account of the provider's directory.
type User struct {
	Password, Subject, Name string
	Groups                  []string
}

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// Build compiles Hydra from integration/hydra/tool once per test process (with
// SQLite, for its in-memory database; cgo). The Go build cache makes
// later runs quick; the first on a new machine takes a few minutes.
func Build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "porthole-hydra-")
		if err != nil {
			buildErr = err
			return
		}
		built = filepath.Join(dir, "hydra")
		cmd := exec.Command("go", "build", "-tags", "sqlite,sqlite_omit_load_extension", "-o", built, "github.com/ory/hydra/v2")
		cmd.Dir = filepath.Join(testenv.RepoRoot(t), "integration", "hydra", "tool")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build hydra (integration/hydra/tool): %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		testenv.Require(t, "Ory Hydra built from integration/hydra/tool ("+buildErr.Error()+")", false)
	}
	return built
}

// Provider is a running Hydra with its login app.
type Provider struct {
	Issuer   string // http://127.0.0.1:PORT/
	AdminURL string
	Users    map[string]User

	mu     sync.Mutex
	logins []string // user names that signed in, in order
}

// Start runs Hydra and the login app until the test ends.
func Start(t testing.TB, users map[string]User) *Provider {
	t.Helper()
	bin := Build(t)
	p := &Provider{Users: users}
	app := httptest.NewServer(p.loginApp(t))
	t.Cleanup(app.Close)
	pub, adm := testenv.FreePort(t), testenv.FreePort(t)
	p.Issuer = fmt.Sprintf("http://127.0.0.1:%d/", pub)
	p.AdminURL = fmt.Sprintf("http://127.0.0.1:%d", adm)
	env := []string{
		"DSN=memory",
		"SECRETS_SYSTEM=porthole-test-system-secret-0123456789",
		"URLS_SELF_ISSUER=" + p.Issuer,
		"URLS_LOGIN=" + app.URL + "/login",
		"URLS_CONSENT=" + app.URL + "/consent",
		"SERVE_PUBLIC_HOST=127.0.0.1", fmt.Sprintf("SERVE_PUBLIC_PORT=%d", pub),
		"SERVE_ADMIN_HOST=127.0.0.1", fmt.Sprintf("SERVE_ADMIN_PORT=%d", adm),
		"LOG_LEVEL=warn",
	}
	hp, err := proc.Start("hydra", bin, []string{"serve", "all", "--dev", "--sqa-opt-out"}, proc.Options{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := hp.Stop(10 * time.Second); err != nil {
			t.Logf("hydra: %v\n%s", err, hp.Tail(30))
		}
	})
	testenv.Eventually(t, 60*time.Second, "Hydra's discovery document", func() bool {
		resp, err := http.Get(p.Issuer + ".well-known/openid-configuration")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// CreateClient registers an OAuth client with a secret and one redirect
// URI.
func (p *Provider) CreateClient(t testing.TB, id, secret, redirect string) {
	t.Helper()
	body := map[string]any{
		"client_id": id, "client_secret": secret, "redirect_uris": []string{redirect},
		"grant_types": []string{"authorization_code"}, "response_types": []string{"code"},
		"scope": "openid profile email", "token_endpoint_auth_method": "client_secret_basic",
	}
	if err := p.admin(http.MethodPost, "/admin/clients", nil, body, nil); err != nil {
		t.Fatal(err)
	}
}

// Logins lists the user names that signed in at the provider.
func (p *Provider) Logins() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logins...)
}

func (p *Provider) admin(method, path string, q url.Values, in, out any) error {
	b, _ := json.Marshal(in)
	u := p.AdminURL + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("hydra admin %s %s: %s %s", method, path, resp.Status, rb)
	}
	if out != nil {
		return json.Unmarshal(rb, out)
	}
	return nil
}

// challengeOK bounds what the login app passes on: Hydra's challenges
// are long opaque strings.
func challengeOK(ch string) bool { return ch != "" && len(ch) < 16<<10 }

// loginApp is Hydra's login and consent provider.
func (p *Provider) loginApp(t testing.TB) http.Handler {
	mux := http.NewServeMux()
	form := func(w http.ResponseWriter, challenge, problem string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Example directory</title><h1>Example directory</h1><p id="problem">%s</p>
<form method="post" action="/login"><input type="hidden" name="challenge" value="%s">
<label>User <input id="username" name="username"></label><label>Password <input id="password" name="password" type="password"></label>
<button id="submit" type="submit">Sign in</button></form>`, html.EscapeString(problem), html.EscapeString(challenge))
	}
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		ch := r.URL.Query().Get("login_challenge")
		if !challengeOK(ch) {
			http.Error(w, "bad challenge", http.StatusBadRequest)
			return
		}
		form(w, ch, "")
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		ch := r.FormValue("challenge")
		name := r.FormValue("username")
		u, ok := p.Users[name]
		if !ok || u.Password != r.FormValue("password") || !challengeOK(ch) {
			form(w, ch, "Wrong user name or password.")
			return
		}
		var res struct {
			RedirectTo string `json:"redirect_to"`
		}
		if err := p.admin(http.MethodPut, "/admin/oauth2/auth/requests/login/accept", url.Values{"login_challenge": {ch}},
			map[string]any{"subject": u.Subject}, &res); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		p.mu.Lock()
		p.logins = append(p.logins, name)
		p.mu.Unlock()
		http.Redirect(w, r, res.RedirectTo, http.StatusFound)
	})
	mux.HandleFunc("GET /consent", func(w http.ResponseWriter, r *http.Request) {
		ch := r.URL.Query().Get("consent_challenge")
		var req struct {
			Subject   string   `json:"subject"`
			Scope     []string `json:"requested_scope"`
			Audience  []string `json:"requested_access_token_audience"`
			LoginSkip bool     `json:"skip"`
		}
		if err := p.admin(http.MethodGet, "/admin/oauth2/auth/requests/consent", url.Values{"consent_challenge": {ch}}, nil, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		var user *User
		var userName string
		for n, u := range p.Users {
			if u.Subject == req.Subject {
				user, userName = &u, n
			}
		}
		if user == nil {
			http.Error(w, "unknown subject", http.StatusForbidden)
			return
		}
		var res struct {
			RedirectTo string `json:"redirect_to"`
		}
		claims := map[string]any{"preferred_username": userName, "name": user.Name, "groups": user.Groups}
		if err := p.admin(http.MethodPut, "/admin/oauth2/auth/requests/consent/accept", url.Values{"consent_challenge": {ch}},
			map[string]any{"grant_scope": req.Scope, "grant_access_token_audience": req.Audience,
				"session": map[string]any{"id_token": claims}}, &res); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, res.RedirectTo, http.StatusFound)
	})
	return mux
}
