// Package login signs the technician's command-line client in: the OAuth
// 2.1 authorization-code flow with PKCE (S256) for a native app with a
// loopback redirect (RFC 8252), against the signaling server's app origin,
// as client porthole-cli. The user approves in a browser where they are
// signed in to the app; the API token that comes back (scopes read and
// sessions) is kept in a credentials file readable by its owner only, keyed
// by server, and revoked (RFC 7009) on logout.
//
// The flow, top to bottom in Login:
//
//  1. discover the endpoints (RFC 8414 metadata on the server; without
//     it, the server's own /oauth/authorize and /oauth/token);
//  2. listen on 127.0.0.1:0 and serve /callback there — or, out of band
//     (`porthole login --no-browser`, the browser on another machine),
//     redirect to the server's code page instead, which shows
//     "<state>.<code>" for the user to paste;
//  3. send the user to the authorization URL with a fresh state and code
//     challenge;
//  4. take the first answer whose state matches — a callback (others get
//     400 and are ignored) or a pasted line, the code page's or the
//     address the browser landed on — exchange its code with the verifier,
//     and learn the account's name with the new token.
//
// Either way the verifier never leaves this process, the state is checked
// in constant time, and the code is single-use: the security properties
// of the loopback flow hold for the pasted one.
package login

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/proto"
)

// Config shapes a login.
type Config struct {
	// Server is the signaling URL the CLI talks to.
	Server string
	// Client makes every request; nil means a client with a 30 s timeout.
	Client *http.Client
	// Open is given the authorization URL once the loopback listener is
	// up, to start a browser. It must not block; nil opens nothing (the URL
	// is always reported through Progress).
	Open func(authURL string)
	// Progress receives messages for the user; nil drops them.
	Progress func(msg string)
	// Listen is the loopback address of the redirect listener; empty means
	// 127.0.0.1:0. It must be a loopback IP address.
	Listen string
	// Now is the clock for the token's expiry; nil means time.Now.
	Now func() time.Time
	// OutOfBand redirects to the server's code page rather than to a
	// loopback listener, for a browser on another machine; the user
	// pastes what it shows into Paste. A server without the page gets
	// the loopback redirect, and the user pastes the address the browser
	// landed on instead.
	OutOfBand bool
	// Paste, if set, is read line by line for answers the user pastes:
	// the code page's "<state>.<code>" or a whole redirect address.
	Paste io.Reader
}

// Errors of a login.
var (
	ErrDenied = errors.New("access was denied in the browser")
)

// Endpoints are an authorization server's endpoints.
type Endpoints struct {
	Authorization, Token, Revocation string
	// CLICode is the out-of-band redirect URI (proto.PathCLICode), if
	// the server has one.
	CLICode string
}

// Discover reads the authorization server metadata of server (RFC 8414).
// A server without it (404) gets its own /oauth/authorize and /oauth/token
// and no revocation endpoint.
func Discover(ctx context.Context, c *http.Client, server string) (*Endpoints, error) {
	base := strings.TrimRight(server, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+proto.PathOAuthMetadata, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client(c).Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach %s: %w", server, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return &Endpoints{Authorization: base + proto.PathAuthorize, Token: base + proto.PathToken}, nil
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("authorization server metadata of %s: HTTP %d", server, resp.StatusCode)
	}
	var m proto.AuthServerMetadata
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err == nil {
		err = proto.CheckJSON(b) // a repeated endpoint must not be resolved last-wins
	}
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		return nil, fmt.Errorf("authorization server metadata of %s: %w", server, err)
	}
	e := &Endpoints{Authorization: m.AuthorizationEndpoint, Token: m.TokenEndpoint, Revocation: m.RevocationEndpoint, CLICode: m.CLICodeRedirectURI}
	for _, u := range []string{e.Authorization, e.Token, e.Revocation, e.CLICode} {
		if p, err := url.Parse(u); u != "" && (err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "") {
			return nil, fmt.Errorf("authorization server metadata of %s: bad endpoint %q", server, u)
		}
	}
	if e.Authorization == "" || e.Token == "" {
		return nil, fmt.Errorf("authorization server metadata of %s: no authorization or token endpoint", server)
	}
	if !methodS256(m.CodeChallengeMethods) {
		return nil, fmt.Errorf("authorization server of %s does not offer PKCE S256", server)
	}
	return e, nil
}

func methodS256(ms []string) bool {
	for _, m := range ms {
		if m == "S256" {
			return true
		}
	}
	return len(ms) == 0 // RFC 8414: absent means unknown; the server refuses plain anyway
}

func client(c *http.Client) *http.Client {
	if c == nil {
		return &http.Client{Timeout: 30 * time.Second}
	}
	return c
}

// random returns n random bytes, base64url without padding.
func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// challenge is the S256 code challenge of verifier (RFC 7636).
func challenge(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// callback is what the redirect listener took.
type callback struct {
	tok *Token
	err error
}

// Login runs the flow and returns the token; it does not store it. It
// returns when the login succeeded or failed, or ctx ended (use a
// deadline: the user may never come back).
func Login(ctx context.Context, cfg Config) (*Token, error) {
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	key, err := ServerKey(cfg.Server)
	if err != nil {
		return nil, err
	}
	c := client(cfg.Client)
	ep, err := Discover(ctx, c, cfg.Server)
	if err != nil {
		return nil, err
	}

	addr := cfg.Listen
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if host, _, err := net.SplitHostPort(addr); err != nil || !isLoopbackIP(host) {
		return nil, fmt.Errorf("redirect listener %q: want a loopback IP address and port", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("redirect listener: %w", err)
	}
	redirect := "http://" + ln.Addr().String() + "/callback"
	outOfBand := cfg.OutOfBand && ep.CLICode != ""
	if outOfBand {
		redirect = ep.CLICode
	}

	verifier, state := random(32), random(16)
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {proto.CLIClientID},
		"redirect_uri":          {redirect},
		"code_challenge":        {challenge(verifier)},
		"code_challenge_method": {"S256"},
		"state":                 {state},
	}
	authURL := ep.Authorization + "?" + q.Encode()

	done := make(chan callback, 1)
	var once sync.Once
	finish := func(cb callback) { once.Do(func() { done <- cb }) }
	var taken sync.Mutex // one exchange at a time; after a success, none
	var got bool
	// answer handles one answer to this login, from the loopback callback
	// or pasted; it returns a title and text for the user.
	answer := func(aq url.Values) (status int, title, text string) {
		if subtle.ConstantTimeCompare([]byte(aq.Get("state")), []byte(state)) != 1 {
			// Not the answer to this login (a stale tab, or a page trying
			// to sign this CLI in to another account): refused, and the
			// login goes on waiting.
			progress("refused an answer whose state does not match this login; still waiting")
			return http.StatusBadRequest, "Not this login", "This answer does not belong to the porthole login that is waiting. Nothing was changed."
		}
		taken.Lock()
		defer taken.Unlock()
		if got {
			return http.StatusConflict, "Already signed in", "This login has already completed. You can close this tab."
		}
		if e := aq.Get("error"); e != "" {
			got = true
			err := fmt.Errorf("the server refused the login: %s: %s", e, aq.Get("error_description"))
			if e == proto.OAuthAccessDenied {
				err = ErrDenied
			}
			finish(callback{err: err})
			return http.StatusOK, "Not signed in", "The porthole command was not signed in. You can close this tab."
		}
		code := aq.Get("code")
		if code == "" {
			return http.StatusBadRequest, "No code", "The answer carries no authorization code."
		}
		got = true
		tok, err := exchange(ctx, c, ep, key, redirect, code, verifier, now)
		if err == nil {
			var me *proto.Me
			me, err = (&sigclient.API{Base: cfg.Server, Token: tok.AccessToken, Client: c}).Me(ctx)
			if err == nil {
				tok.User = me.Name
			}
		}
		if err != nil {
			finish(callback{err: err})
			return http.StatusBadGateway, "Sign-in failed", "The porthole command could not complete the sign-in; see its output. You can close this tab."
		}
		finish(callback{tok: tok})
		return http.StatusOK, "Signed in", "The porthole command is signed in as " + tok.User + ". You can close this tab."
	}
	h := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" || r.Method != http.MethodGet || outOfBand {
			http.NotFound(w, r)
			return
		}
		status, title, text := answer(r.URL.Query())
		page(w, status, title, text)
	}
	srv := &http.Server{Handler: http.HandlerFunc(h), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln) // ends with Shutdown below
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // lets the callback page finish
		<-served
	}()
	if cfg.Paste != nil {
		go readPasted(cfg.Paste, progress, answer)
	}

	switch {
	case outOfBand:
		progress("Open this address in a browser where you are signed in to Porthole, on this or any other machine, and allow the porthole command:\n\n  " + authURL + "\n")
		progress("The page then shows a code. Paste it here and press Enter (Ctrl-C to cancel):")
	case cfg.OutOfBand:
		progress("Open this address in a browser where you are signed in to Porthole, and allow the porthole command:\n\n  " + authURL + "\n")
		progress("This server has no code page (an older version). If the browser is on another machine, its page will not load after you allow: copy the address it shows and paste it here, then press Enter (Ctrl-C to cancel):")
	default:
		progress("Open this address in a browser where you are signed in to Porthole, and allow the porthole command:\n\n  " + authURL + "\n")
		if cfg.Open != nil {
			cfg.Open(authURL)
		}
		progress("Waiting for you to approve in the browser… (Ctrl-C to cancel)")
	}
	select {
	case cb := <-done:
		return cb.tok, cb.err
	case <-ctx.Done():
		return nil, fmt.Errorf("no approval from the browser: %w", context.Cause(ctx))
	}
}

// maxPasteLine bounds one pasted line.
const maxPasteLine = 4096

// readPasted hands each pasted line to answer until one completes the
// login or r ends. A line is the code page's "<state>.<code>" or an
// address whose query carries code and state (or error).
func readPasted(r io.Reader, progress func(string), answer func(url.Values) (int, string, string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxPasteLine)
	for sc.Scan() {
		q, ok := parsePasted(sc.Text())
		if !ok {
			if strings.TrimSpace(sc.Text()) != "" {
				progress("that is not a code from the sign-in page; paste the line it shows (or the whole address)")
			}
			continue
		}
		status, title, text := answer(q)
		if status == http.StatusOK || status == http.StatusBadGateway || status == http.StatusConflict {
			return
		}
		progress(title + ": " + text)
	}
}

// parsePasted reads one pasted answer.
func parsePasted(line string) (url.Values, bool) {
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "http://") || strings.HasPrefix(line, "https://") {
		u, err := url.Parse(line)
		if err != nil {
			return nil, false
		}
		q := u.Query()
		if q.Get("state") == "" || (q.Get("code") == "" && q.Get("error") == "") {
			return nil, false
		}
		return q, true
	}
	state, code, ok := strings.Cut(line, ".")
	if !ok || state == "" || code == "" || strings.ContainsAny(line, " \t") {
		return nil, false
	}
	return url.Values{"state": {state}, "code": {code}}, true
}

func isLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// exchange trades the code for a token at the token endpoint.
func exchange(ctx context.Context, c *http.Client, ep *Endpoints, server, redirect, code, verifier string, now func() time.Time) (*Token, error) {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirect},
		"client_id":     {proto.CLIClientID},
		"code_verifier": {verifier},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.Token, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("token exchange: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		var oe proto.OAuthError
		if json.Unmarshal(body, &oe) == nil && oe.Error != "" {
			return nil, fmt.Errorf("token exchange refused: %s: %s", oe.Error, oe.Description)
		}
		return nil, fmt.Errorf("token exchange: HTTP %d", resp.StatusCode)
	}
	var tr proto.TokenResponse
	if err := proto.CheckJSON(body); err != nil {
		return nil, fmt.Errorf("token exchange: %w", err)
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" || !strings.EqualFold(tr.TokenType, "Bearer") {
		return nil, fmt.Errorf("token exchange: unexpected answer")
	}
	t := &Token{Server: server, AccessToken: tr.AccessToken, Scope: tr.Scope, Created: now().UTC(), RevocationEndpoint: ep.Revocation}
	if tr.ExpiresIn > 0 {
		t.Expires = t.Created.Add(time.Duration(tr.ExpiresIn) * time.Second)
	}
	return t, nil
}

// Revoke revokes t at its revocation endpoint (RFC 7009). It reports
// false, nil when the server names no such endpoint.
func Revoke(ctx context.Context, c *http.Client, t *Token) (bool, error) {
	if t.RevocationEndpoint == "" {
		return false, nil
	}
	form := url.Values{"token": {t.AccessToken}, "token_type_hint": {"access_token"}, "client_id": {proto.CLIClientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.RevocationEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client(c).Do(req)
	if err != nil {
		return false, fmt.Errorf("revoke: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("revoke: HTTP %d", resp.StatusCode)
	}
	return true, nil
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} — porthole</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto"><h1>{{.Title}}</h1><p>{{.Text}}</p></body></html>`))

// page answers the browser on the loopback redirect. The URL carried the
// code: no referrer leaves this page, and it loads nothing.
func page(w http.ResponseWriter, status int, title, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, map[string]string{"Title": title, "Text": text})
}
