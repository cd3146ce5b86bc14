package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os/exec"
	"time"

	"github.com/porthole-dev/porthole/agent/login"
)

// resolveToken fills in the token `porthole login` kept for the server
// when neither --token nor PORTHOLE_TOKEN gave one.
func (a *app) resolveToken(now time.Time) error {
	if a.token != "" {
		return nil
	}
	if a.creds.Path == "" {
		return &userError{what: "no token, and no config directory to keep a login in", next: "give --token or PORTHOLE_TOKEN, or set HOME", code: exitAuth}
	}
	t, err := a.creds.Get(a.server)
	switch {
	case errors.Is(err, login.ErrNotSignedIn):
		return &userError{what: "not signed in to " + a.server, next: "run 'porthole login' (or give --token / PORTHOLE_TOKEN)", code: exitAuth}
	case err != nil:
		return err
	case t.Expired(now):
		return &userError{what: fmt.Sprintf("your login to %s ended at %s", a.server, t.Expires.Local().Format(time.DateTime)),
			next: "run 'porthole login' again", code: exitAuth}
	}
	a.token = t.AccessToken
	return nil
}

func defineLogin(fs *flag.FlagSet) func(context.Context, *app, []string) error {
	noBrowser := fs.Bool("no-browser", false, "start no browser; approve in one on any machine and paste the code it shows")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the approval")
	return func(ctx context.Context, a *app, args []string) error {
		if len(args) != 0 {
			return usageErrorf("login", "login takes no arguments")
		}
		var open func(string)
		// Without a display, xdg-open may start a text browser in this
		// terminal: then only print the address.
		if !*noBrowser && (a.getenv("DISPLAY") != "" || a.getenv("WAYLAND_DISPLAY") != "") {
			open = openBrowser
		}
		return a.login(ctx, open, *noBrowser, *timeout)
	}
}

func defineLogout(*flag.FlagSet) func(context.Context, *app, []string) error {
	return func(ctx context.Context, a *app, args []string) error {
		if len(args) != 0 {
			return usageErrorf("logout", "logout takes no arguments")
		}
		return a.logout(ctx)
	}
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

func (a *app) login(ctx context.Context, open func(string), outOfBand bool, timeout time.Duration) error {
	if a.creds.Path == "" {
		return &userError{what: "no config directory to keep the login in", next: "set HOME or XDG_CONFIG_HOME", code: exitError}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, &userError{what: fmt.Sprintf("no approval within %s", timeout),
		next: "run 'porthole login' again (--timeout 10m waits longer)", code: exitAuth})
	defer cancel()
	out := a.stdout
	cfg := login.Config{
		Server:    a.server,
		Client:    a.httpClient(),
		Open:      open,
		OutOfBand: outOfBand,
		Progress:  func(msg string) { fmt.Fprintln(out, msg) },
	}
	if outOfBand {
		cfg.Paste = a.stdin
	}
	t, err := login.Login(ctx, cfg)
	if errors.Is(err, login.ErrDenied) {
		return &userError{what: "you denied the porthole command in the browser; it stays signed out", code: exitAuth}
	}
	if err != nil {
		var ue *userError
		if errors.As(err, &ue) {
			return ue
		}
		return fmt.Errorf("login: %w", err)
	}
	if err := a.creds.Put(t); err != nil {
		return err
	}
	until := ""
	if !t.Expires.IsZero() {
		until = " until " + t.Expires.Local().Format(time.DateTime)
	}
	fmt.Fprintf(out, "Signed in to %s as %s%s (scopes: %s). The token is in %s.\n", t.Server, t.User, until, t.Scope, a.creds.Path)
	return nil
}

func (a *app) logout(ctx context.Context) error {
	out := a.stdout
	if a.creds.Path == "" {
		return errors.New("no config directory: nothing to log out of")
	}
	t, err := a.creds.Get(a.server)
	if errors.Is(err, login.ErrNotSignedIn) {
		fmt.Fprintf(out, "Not signed in to %s.\n", a.server)
		return nil
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	revoked, rerr := login.Revoke(ctx, a.httpClient(), t)
	if _, err := a.creds.Delete(a.server); err != nil {
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
