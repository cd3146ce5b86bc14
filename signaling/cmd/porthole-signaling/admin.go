package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/internal/settings"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/accounts"
	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/store"
)

const adminUsage = `usage: porthole-signaling admin COMMAND [flags]   (while the server is stopped)

Commands:
  create-admin --name NAME                   create an admin without a password and print a
                                             one-time sign-in link (7 days) to choose one
  link --name NAME                           print a one-time link for a local user to choose a
                                             new password (24 h; an admin locked out, a lost password)
  create --name NAME [--password-file F]     create an admin (prints a generated password)
  user   --name NAME [--password-file F] [--role SITE=ROLE ...]
                                             create a user; roles: configurer, user, siteadmin
  site   --id ID --name NAME                 create a site
  agent  --id AGENT --site SITE              put an agent in a site
  enroll-token --site SITE [--id AGENT] [--name NAME]
                                             print a one-time agent enrollment token (1 h)

Every command needs --data-dir, the server's data directory (or --redis); links
need --app-origin. All three can come from the server's own --config file and
PORTHOLE_* environment, as the server reads them.
`

// admin runs `porthole-signaling admin …` against the store file.
func admin(args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, adminUsage)
		return errors.New("no command")
	}
	if isHelp(args[0]) {
		fmt.Fprint(out, adminUsage)
		return nil
	}
	cmd := args[0]
	fs := flag.NewFlagSet("admin "+cmd, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, adminUsage) }
	dataDir := fs.String("data-dir", "", "directory of the embedded store (required)")
	redisURL := fs.String("redis", "", "the cluster's Redis instead of the embedded store")
	appOrigin := fs.String("app-origin", "", "the app's origin, for links")
	configFile := fs.String("config", "", "the server's configuration file")
	name := fs.String("name", "", "")
	pwFile := fs.String("password-file", "", "")
	id := fs.String("id", "", "")
	site := fs.String("site", "", "")
	roles := pairs{}
	fs.Var(roles, "role", "")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := serverSettings(fs, *configFile, dataDir, redisURL, appOrigin); err != nil {
		return err
	}
	if *dataDir == "" {
		return errors.New("--data-dir is required (it holds the audit key that signs the admin log)")
	}
	raw, err := openStore(*dataDir, *redisURL)
	if err != nil {
		return fmt.Errorf("%w (is porthole-signaling running on this data directory?)", err)
	}
	defer raw.Close()
	// What this command writes to the admin log is signed and anchored
	// like the server's own entries.
	st, closeAnchor, err := auditedStore(raw, *dataDir, *redisURL != "")
	if err != nil {
		return err
	}
	defer closeAnchor()
	m := &accounts.Manager{Store: st, Params: authn.DefaultParams}
	ctx := context.Background()
	const actor = "cli"

	switch cmd {
	case "create", "user":
		pw, generated, err := password(*pwFile)
		if err != nil {
			return err
		}
		u, err := m.CreateUser(ctx, actor, accounts.NewUser{Name: *name, Password: pw, Admin: cmd == "create"})
		if err != nil {
			return err
		}
		for s, r := range roles {
			if _, err := m.SetRoles(ctx, actor, u.ID, s, strings.Split(r, ",")); err != nil {
				return fmt.Errorf("role on %s: %w", s, err)
			}
		}
		kind := "user"
		if u.Admin {
			kind = "admin"
		}
		fmt.Fprintf(out, "created %s %s (id %s)\n", kind, u.Name, u.ID)
		if generated {
			fmt.Fprintf(out, "password: %s\n(shown once; change it after signing in)\n", pw)
		}
	case "create-admin":
		u, err := m.CreateUser(ctx, actor, accounts.NewUser{Name: *name, Admin: true, NoPassword: true})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "created admin %s (id %s)\n", u.Name, u.ID)
		return printLink(ctx, m, actor, u, store.TokenInvite, *appOrigin, out)
	case "link":
		u, err := st.UserByName(ctx, strings.ToLower(*name))
		if err != nil {
			return fmt.Errorf("user %q: %w", *name, err)
		}
		kind := store.TokenReset
		if u.PasswordHash == "" {
			kind = store.TokenInvite
		}
		return printLink(ctx, m, actor, u, kind, *appOrigin, out)
	case "site":
		s, err := m.CreateSite(ctx, actor, *id, *name)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "created site %s (%s)\n", s.ID, s.Name)
	case "agent":
		a, err := m.AssignAgent(ctx, actor, *id, "", *site)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "agent %s is in site %q\n", a.ID, a.Site)
	case "enroll-token":
		return adminEnrollToken(ctx, st, actor, *site, *id, *name, out)
	default:
		fmt.Fprint(os.Stderr, adminUsage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	return nil
}

// password reads the password file, or generates one.
func password(file string) (pw string, generated bool, err error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", false, err
		}
		return strings.TrimRight(string(b), "\r\n"), false, nil
	}
	return strings.ToLower(rand.Text())[:20], true, nil
}

// printLink makes a password link for u and prints it.
func printLink(ctx context.Context, m *accounts.Manager, actor string, u *store.User, kind store.TokenKind, appOrigin string, out io.Writer) error {
	if appOrigin == "" {
		return errors.New("a link needs the app's address: give --app-origin or --config")
	}
	secret, tok, err := m.CreateLink(ctx, actor, u.ID, kind)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "one-time sign-in link for %s (single use, until %s): open it to choose a password\n%s/%s%s\n",
		u.Name, tok.Expires.Format(time.RFC3339), strings.TrimSuffix(appOrigin, "/"), proto.LinkFragment, secret)
	return nil
}

// serverSettings fills data-dir, redis and app-origin, where the command
// line left them unset, from the server's configuration file and
// environment: the same settings the server reads (main.go), so the admin
// commands need no second copy of them.
func serverSettings(cmd *flag.FlagSet, configFile string, dataDir, redisURL, appOrigin *string) error {
	given := map[string]bool{}
	cmd.Visit(func(f *flag.Flag) { given[f.Name] = true })
	fs := flag.NewFlagSet("settings", flag.ContinueOnError)
	d, r, a := fs.String("data-dir", "", ""), fs.String("redis", "", ""), fs.String("app-origin", "", "")
	var args []string
	if configFile != "" {
		args = []string{"--" + settings.ConfigFlag, configFile}
	}
	if _, err := settings.Parse(fs, args, settings.Options{EnvPrefix: EnvPrefix, IgnoreUnknown: true}); err != nil {
		return err
	}
	for _, v := range []struct {
		name     string
		dst, src *string
	}{{"data-dir", dataDir, d}, {"redis", redisURL, r}, {"app-origin", appOrigin, a}} {
		if !given[v.name] {
			*v.dst = *v.src
		}
	}
	return nil
}
