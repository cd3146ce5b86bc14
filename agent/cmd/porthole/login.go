package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/porthole-dev/porthole/agent/login"
)

// resolveToken fills in the token `porthole login` kept for the server
// when neither --token nor PORTHOLE_TOKEN gave one.
func (g *globals) resolveToken(now time.Time) error {
	if g.token != "" {
		return nil
	}
	if g.creds.Path == "" {
		return errors.New("no token: give --token or PORTHOLE_TOKEN (no config directory to keep a login in)")
	}
	t, err := g.creds.Get(g.server)
	switch {
	case errors.Is(err, login.ErrNotSignedIn):
		return fmt.Errorf("not signed in to %s: run 'porthole login' (or give --token / PORTHOLE_TOKEN)", g.server)
	case err != nil:
		return err
	case t.Expired(now):
		return fmt.Errorf("your login to %s ended at %s: run 'porthole login' again", g.server, t.Expires.Local().Format(time.DateTime))
	}
	g.token = t.AccessToken
	return nil
}

// openBrowser starts xdg-open on the address if it is installed; the
// address is printed either way, so a failure changes nothing.
func openBrowser(u string) {
	bin, err := exec.LookPath("xdg-open")
	if err != nil {
		return
	}
	cmd := exec.Command(bin, u)
	if cmd.Start() == nil {
		go func() { _ = cmd.Wait() }() // reap it; the browser outlives us
	}
}

func loginCmd(ctx context.Context, g globals, open func(string), timeout time.Duration, out io.Writer) error {
	if g.creds.Path == "" {
		return errors.New("no config directory to keep the login in (set HOME or XDG_CONFIG_HOME)")
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("timed out after %s; run 'porthole login' again", timeout))
	defer cancel()
	t, err := login.Login(ctx, login.Config{
		Server:   g.server,
		Open:     open,
		Progress: func(msg string) { fmt.Fprintln(out, msg) },
	})
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if err := g.creds.Put(t); err != nil {
		return err
	}
	until := ""
	if !t.Expires.IsZero() {
		until = " until " + t.Expires.Local().Format(time.DateTime)
	}
	fmt.Fprintf(out, "Signed in to %s as %s%s (scopes: %s). The token is in %s.\n", t.Server, t.User, until, t.Scope, g.creds.Path)
	return nil
}

func logoutCmd(ctx context.Context, g globals, out io.Writer) error {
	if g.creds.Path == "" {
		return errors.New("no config directory: nothing to log out of")
	}
	t, err := g.creds.Get(g.server)
	if errors.Is(err, login.ErrNotSignedIn) {
		fmt.Fprintf(out, "Not signed in to %s.\n", g.server)
		return nil
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	revoked, rerr := login.Revoke(ctx, nil, t)
	if _, err := g.creds.Delete(g.server); err != nil {
		return err
	}
	switch {
	case rerr != nil:
		fmt.Fprintf(out, "Signed out of %s here, but the server did not revoke the token (%v).\n"+
			"Revoke it in the app under Account → API tokens; it is named \"porthole login …\".\n", t.Server, rerr)
		return nil
	case !revoked:
		fmt.Fprintf(out, "Signed out of %s here; the server has no revocation endpoint, so the token stays valid until it expires.\n", t.Server)
		return nil
	}
	fmt.Fprintf(out, "Signed out of %s; the token is revoked.\n", t.Server)
	return nil
}
