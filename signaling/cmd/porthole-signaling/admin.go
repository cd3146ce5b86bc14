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

	"github.com/porthole-dev/porthole/signaling/accounts"
	"github.com/porthole-dev/porthole/signaling/authn"
)

const adminUsage = `usage: porthole-signaling admin COMMAND [flags]   (while the server is stopped)

Commands:
  create --name NAME [--password-file F]     create an admin (prints a generated password)
  user   --name NAME [--password-file F] [--role SITE=ROLE ...]
                                             create a user; roles: configurer, user
  site   --id ID --name NAME                 create a site
  agent  --id AGENT --site SITE              put an agent in a site
  enroll-token --site SITE [--id AGENT] [--name NAME]
                                             print a one-time agent enrollment token (1 h)

Every command needs --data-dir, the server's data directory.
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
	name := fs.String("name", "", "")
	pwFile := fs.String("password-file", "", "")
	id := fs.String("id", "", "")
	site := fs.String("site", "", "")
	roles := pairs{}
	fs.Var(roles, "role", "")
	if err := fs.Parse(args[1:]); err != nil {
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
