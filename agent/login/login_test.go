package login

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-dev/porthole/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCredentialsKeyedByServerAndPrivate(t *testing.T) {
	c := Credentials{Path: filepath.Join(t.TempDir(), "porthole", "credentials.json")}
	if _, err := c.Get("http://a.example:8080"); !errors.Is(err, ErrNotSignedIn) {
		t.Fatalf("empty file: %v, want ErrNotSignedIn", err)
	}
	if err := c.Put(&Token{Server: "HTTP://A.example:8080/", AccessToken: "tok-a"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(&Token{Server: "https://b.example", AccessToken: "tok-b"}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get("http://a.example:8080"); err != nil || got.AccessToken != "tok-a" {
		t.Fatalf("a: %+v %v", got, err)
	}
	if got, err := c.Get("https://b.example/"); err != nil || got.AccessToken != "tok-b" {
		t.Fatalf("b: %+v %v", got, err)
	}
	for _, p := range []string{c.Path, filepath.Dir(c.Path)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	if ok, err := c.Delete("http://a.example:8080"); !ok || err != nil {
		t.Fatalf("delete a: %v %v", ok, err)
	}
	if _, err := c.Get("http://a.example:8080"); !errors.Is(err, ErrNotSignedIn) {
		t.Fatalf("after delete: %v", err)
	}
	if got, err := c.Get("https://b.example"); err != nil || got.AccessToken != "tok-b" {
		t.Fatalf("b after deleting a: %+v %v", got, err)
	}
	if _, err := ServerKey("ftp://x"); err == nil {
		t.Fatal("ftp server accepted")
	}
}

// fakeAS is a minimal authorization server that checks what the CLI sends.
type fakeAS struct {
	t  *testing.T
	ts *httptest.Server

	mu        sync.Mutex
	challenge string
	redirect  string
	exchanged int
	codePage  string // the out-of-band redirect URI it advertises, if any
}

func newFakeAS(t *testing.T) *fakeAS {
	f := &fakeAS{t: t}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+proto.PathOAuthMetadata, func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(&proto.AuthServerMetadata{
			Issuer: f.ts.URL, AuthorizationEndpoint: f.ts.URL + proto.PathAuthorize, TokenEndpoint: f.ts.URL + proto.PathToken,
			RevocationEndpoint: f.ts.URL + proto.PathRevoke, CodeChallengeMethods: []string{"S256"},
			CLICodeRedirectURI: f.codePage,
		})
	})
	mux.HandleFunc("POST "+proto.PathToken, func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.exchanged++
		if r.PostForm.Get("code") != "the-code" || challenge(r.PostForm.Get("code_verifier")) != f.challenge ||
			r.PostForm.Get("redirect_uri") != f.redirect || r.PostForm.Get("client_id") != proto.CLIClientID {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(&proto.OAuthError{Error: proto.OAuthInvalidGrant, Description: "bad exchange"})
			return
		}
		_ = json.NewEncoder(w).Encode(&proto.TokenResponse{AccessToken: "api-token", TokenType: "Bearer", ExpiresIn: 3600, Scope: "read sessions"})
	})
	mux.HandleFunc("GET "+proto.PathMe, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer api-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(&proto.Me{ID: "u1", Name: "tech"})
	})
	f.ts = httptest.NewServer(mux)
	t.Cleanup(f.ts.Close)
	return f
}

// approve plays the browser: it reads the authorization request and
// answers on its redirect URI with code and the given state (or the
// request's own when state is "").
func (f *fakeAS) approve(authURL, state, errCode string) (int, string) {
	u, err := url.Parse(authURL)
	if err != nil {
		f.t.Error(err)
		return 0, ""
	}
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("client_id") != proto.CLIClientID || q.Get("response_type") != "code" || len(q.Get("state")) < 16 {
		f.t.Errorf("authorization request %v", q)
	}
	f.mu.Lock()
	f.challenge, f.redirect = q.Get("code_challenge"), q.Get("redirect_uri")
	f.mu.Unlock()
	if state == "" {
		state = q.Get("state")
	}
	cb := url.Values{"state": {state}}
	if errCode != "" {
		cb.Set("error", errCode)
	} else {
		cb.Set("code", "the-code")
	}
	resp, err := http.Get(q.Get("redirect_uri") + "?" + cb.Encode())
	if err != nil {
		f.t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestLoginRefusesWrongStateThenTakesTheRightOne(t *testing.T) {
	f := newFakeAS(t)
	var msgs []string
	var mu sync.Mutex
	urls := make(chan string, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type result struct {
		tok *Token
		err error
	}
	res := make(chan result, 1)
	go func() {
		tok, err := Login(ctx, Config{Server: f.ts.URL, Open: func(u string) { urls <- u }, Progress: func(m string) {
			mu.Lock()
			msgs = append(msgs, m)
			mu.Unlock()
		}})
		res <- result{tok, err}
	}()
	authURL := <-urls
	if !strings.HasPrefix(authURL, f.ts.URL+proto.PathAuthorize+"?") {
		t.Fatalf("authorization URL %s", authURL)
	}
	if status, _ := f.approve(authURL, "forged-state", ""); status != http.StatusBadRequest {
		t.Fatalf("callback with a wrong state = %d, want 400", status)
	}
	f.mu.Lock()
	n := f.exchanged
	f.mu.Unlock()
	if n != 0 {
		t.Fatal("a callback with a wrong state was exchanged")
	}
	status, body := f.approve(authURL, "", "")
	if status != http.StatusOK || !strings.Contains(body, "signed in as tech") {
		t.Fatalf("callback = %d %q", status, body)
	}
	r := <-res
	if r.err != nil || r.tok.AccessToken != "api-token" || r.tok.User != "tech" || r.tok.RevocationEndpoint != f.ts.URL+proto.PathRevoke ||
		r.tok.Expires.Sub(r.tok.Created) != time.Hour {
		t.Fatalf("login = %+v, %v", r.tok, r.err)
	}
	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"Waiting for you to approve in the browser… (Ctrl-C to cancel)", "state does not match", authURL} {
		if !strings.Contains(all, want) {
			t.Errorf("progress lacks %q:\n%s", want, all)
		}
	}
}

func TestLoginDeniedAndTimedOut(t *testing.T) {
	f := newFakeAS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Login(ctx, Config{Server: f.ts.URL, Open: func(u string) { go f.approve(u, "", proto.OAuthAccessDenied) }})
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("denied: %v, want ErrDenied", err)
	}

	cause := errors.New("timed out after 1ms")
	short, cancel2 := context.WithTimeoutCause(context.Background(), time.Millisecond, cause)
	defer cancel2()
	if _, err := Login(short, Config{Server: f.ts.URL}); !errors.Is(err, cause) {
		t.Fatalf("nobody approves: %v, want the timeout", err)
	}
}

func TestLoginListensOnLoopbackOnly(t *testing.T) {
	f := newFakeAS(t)
	if _, err := Login(context.Background(), Config{Server: f.ts.URL, Listen: "0.0.0.0:0"}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("non-loopback listener: %v", err)
	}
}

func TestRevoke(t *testing.T) {
	var got url.Values
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		got = r.PostForm
	}))
	defer ts.Close()
	if ok, err := Revoke(context.Background(), ts.Client(), &Token{AccessToken: "t1", RevocationEndpoint: ts.URL}); !ok || err != nil || got.Get("token") != "t1" {
		t.Fatalf("revoke: %v %v %v", ok, err, got)
	}
	if ok, err := Revoke(context.Background(), ts.Client(), &Token{AccessToken: "t1"}); ok || err != nil {
		t.Fatalf("no endpoint: %v %v", ok, err)
	}
}

// TestLoginOutOfBandByPastedCode: with the browser on another machine, the
// authorization request redirects to the server's code page, and the user
// pastes what it shows; a code with another state is refused and the
// login goes on waiting; the exchange still proves the PKCE verifier and
// names the code page as its redirect URI.
func TestLoginOutOfBandByPastedCode(t *testing.T) {
	f := newFakeAS(t)
	f.codePage = "https://app.example" + proto.PathCLICode
	pr, pw := io.Pipe()
	defer pw.Close()
	urls := make(chan string, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type result struct {
		tok *Token
		err error
	}
	res := make(chan result, 1)
	go func() {
		tok, err := Login(ctx, Config{Server: f.ts.URL, OutOfBand: true, Paste: pr, Progress: func(m string) {
			if i := strings.Index(m, "http"); i >= 0 && strings.Contains(m, proto.PathAuthorize) {
				urls <- strings.TrimSpace(m[i:])
			}
		}})
		res <- result{tok, err}
	}()
	authURL := <-urls
	u, _ := url.Parse(authURL)
	q := u.Query()
	if q.Get("redirect_uri") != f.codePage {
		t.Fatalf("redirect_uri %q, want the code page", q.Get("redirect_uri"))
	}
	f.mu.Lock()
	f.challenge, f.redirect = q.Get("code_challenge"), q.Get("redirect_uri")
	f.mu.Unlock()
	for _, line := range []string{"", "garbage", "forged-state.the-code"} {
		if _, err := io.WriteString(pw, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.WriteString(pw, q.Get("state")+".the-code\n"); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil || r.tok.AccessToken != "api-token" || r.tok.User != "tech" {
		t.Fatalf("login = %+v, %v", r.tok, r.err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.exchanged != 1 {
		t.Fatalf("%d exchanges, want 1 (the forged state must not be exchanged)", f.exchanged)
	}
}

func TestParsePasted(t *testing.T) {
	tests := []struct {
		in          string
		state, code string
		ok          bool
	}{
		{"st4te.c0de", "st4te", "c0de", true},
		{"  st4te.c0de.with.dots \r", "st4te", "c0de.with.dots", true},
		{"http://127.0.0.1:41234/callback?code=c0de&state=st4te", "st4te", "c0de", true},
		{"https://app.example/oauth/cli-code?state=st4te&code=c0de", "st4te", "c0de", true},
		{"https://app.example/oauth/cli-code?state=st4te", "", "", false},
		{"nodot", "", "", false},
		{"a b.c", "", "", false},
		{".code", "", "", false},
	}
	for _, tc := range tests {
		q, ok := parsePasted(tc.in)
		if ok != tc.ok || (ok && (q.Get("state") != tc.state || q.Get("code") != tc.code)) {
			t.Errorf("parsePasted(%q) = %v %v", tc.in, q, ok)
		}
	}
}
