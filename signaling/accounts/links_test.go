package accounts_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/signaling/accounts"
	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
)

// cheap keeps argon2id fast in tests.
var cheap = authn.Params{Memory: 64, Time: 1, Threads: 1}

func manager(t *testing.T) (*accounts.Manager, *time.Time) {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "p.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now() // the store checks expiry on its own clock too
	return &accounts.Manager{Store: st, Params: cheap, Now: func() time.Time { return now }}, &now
}

func actions(t *testing.T, m *accounts.Manager) []string {
	t.Helper()
	es, err := m.Store.Audit(context.Background(), accounts.AuditStream, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Action)
	}
	return out
}

func TestInvitationLinkSetsTheFirstPasswordOnce(t *testing.T) {
	m, _ := manager(t)
	ctx := context.Background()
	u, err := m.CreateUser(ctx, "admin", accounts.NewUser{Name: "dana", NoPassword: true})
	if err != nil {
		t.Fatal(err)
	}
	if u.PasswordHash != "" {
		t.Fatal("an invited user has a password")
	}
	secret, tok, err := m.CreateLink(ctx, "admin", u.ID, store.TokenInvite)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Hash == secret || tok.Expires.Sub(tok.Created) != accounts.InviteTTL {
		t.Fatalf("link stored as %+v", tok)
	}
	if _, err := m.RedeemLink(ctx, secret, "short"); !errors.Is(err, accounts.ErrInvalid) {
		t.Fatalf("a too short password: %v", err)
	}
	got, err := m.RedeemLink(ctx, secret, "correct horse battery")
	if err != nil {
		t.Fatalf("the link did not survive a refused password: %v", err)
	}
	if !authn.VerifyPassword(got.PasswordHash, "correct horse battery") {
		t.Fatal("password not set")
	}
	if _, err := m.RedeemLink(ctx, secret, "another good password"); !errors.Is(err, accounts.ErrLinkUsed) {
		t.Fatalf("second use: %v", err)
	}
	if _, _, err := m.CreateLink(ctx, "admin", u.ID, store.TokenInvite); !errors.Is(err, accounts.ErrInvalid) {
		t.Fatalf("an invitation for a user with a password: %v", err)
	}
	want := []string{"user.create", "user.link.invite", "user.update", "user.link.used"}
	if got := actions(t, m); len(got) != len(want) || got[1] != want[1] || got[3] != want[3] {
		t.Fatalf("audit %v, want %v", got, want)
	}
}

func TestResetLinkKeepsTheOldPasswordUntilUsedAndEndsLogins(t *testing.T) {
	m, now := manager(t)
	ctx := context.Background()
	u, err := m.CreateUser(ctx, "admin", accounts.NewUser{Name: "erin", Password: "the old password"})
	if err != nil {
		t.Fatal(err)
	}
	_ = m.Store.PutToken(ctx, &store.Token{Hash: "login1", Kind: store.TokenLogin, User: u.ID, Created: *now, Expires: now.Add(time.Hour)})
	first, _, err := m.CreateLink(ctx, "admin", u.ID, store.TokenReset)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := m.CreateLink(ctx, "admin", u.ID, store.TokenReset)
	if err != nil {
		t.Fatal(err)
	}
	if u2, _ := m.Store.User(ctx, u.ID); !authn.VerifyPassword(u2.PasswordHash, "the old password") {
		t.Fatal("making a reset link changed the password")
	}
	if _, err := m.RedeemLink(ctx, first, "a brand new password"); !errors.Is(err, accounts.ErrLinkUsed) {
		t.Fatalf("an earlier link still works: %v", err)
	}
	*now = now.Add(accounts.ResetTTL + time.Second)
	if _, err := m.RedeemLink(ctx, second, "a brand new password"); !errors.Is(err, accounts.ErrLinkUsed) {
		t.Fatalf("an expired link works: %v", err)
	}
	third, _, _ := m.CreateLink(ctx, "admin", u.ID, store.TokenReset)
	if _, err := m.RedeemLink(ctx, third, "a brand new password"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Store.Token(ctx, "login1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the user's login survived a reset: %v", err)
	}
}

func TestConcurrentRedeemsOnlyOneWins(t *testing.T) {
	m, _ := manager(t)
	ctx := context.Background()
	u, _ := m.CreateUser(ctx, "admin", accounts.NewUser{Name: "fay", NoPassword: true})
	secret, _, _ := m.CreateLink(ctx, "admin", u.ID, store.TokenInvite)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 8 {
		wg.Go(func() {
			if _, err := m.RedeemLink(ctx, secret, "password number "+string(rune('a'+i))); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d redeems won", wins)
	}
}

func TestLinksRefusedForSSOAndDisabledUsers(t *testing.T) {
	m, _ := manager(t)
	ctx := context.Background()
	sso, err := m.SignInSSO(ctx, accounts.SSOUser{Subject: "https://idp sub-1", Name: "gus"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.CreateLink(ctx, "admin", sso.ID, store.TokenReset); !errors.Is(err, accounts.ErrSSOUser) {
		t.Fatalf("reset link for an SSO user: %v", err)
	}
	off, _ := m.CreateUser(ctx, "admin", accounts.NewUser{Name: "hal", Password: "a fine password"})
	secret, _, _ := m.CreateLink(ctx, "admin", off.ID, store.TokenReset)
	yes := true
	if _, err := m.UpdateUser(ctx, "admin", off.ID, accounts.UserChange{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.RedeemLink(ctx, secret, "a newer password"); !errors.Is(err, accounts.ErrLinkUsed) {
		t.Fatalf("a disabled user's link worked: %v", err)
	}
}

func TestSSOSignInCreatesMapsAndNeverJoinsLocalAccounts(t *testing.T) {
	m, _ := manager(t)
	ctx := context.Background()
	if _, err := m.CreateSite(ctx, "admin", "acme", "Acme"); err != nil {
		t.Fatal(err)
	}
	roles := map[string][]store.Role{"acme": {store.Role("user")}, "gone": {store.Role("user")}}
	u, err := m.SignInSSO(ctx, accounts.SSOUser{Subject: "https://idp alice-id", Name: "Alice", DisplayName: "Alice A", Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "alice" || u.PasswordHash != "" || len(u.Roles) != 1 || !u.HasRole("acme", "user") {
		t.Fatalf("created %+v", u)
	}
	// Next sign-in: groups changed at the provider; the name too.
	u2, err := m.SignInSSO(ctx, accounts.SSOUser{Subject: "https://idp alice-id", Name: "alice.a", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	if u2.ID != u.ID || !u2.Admin || len(u2.Roles) != 0 {
		t.Fatalf("second sign-in %+v", u2)
	}
	// A provider user named like a local account is refused, not joined.
	if _, err := m.CreateUser(ctx, "admin", accounts.NewUser{Name: "root", Password: "local admin password", Admin: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SignInSSO(ctx, accounts.SSOUser{Subject: "https://idp evil", Name: "root", Admin: false}); !errors.Is(err, accounts.ErrSSOConflict) {
		t.Fatalf("provider user took a local name: %v", err)
	}
	yes := true
	_, _ = m.UpdateUser(ctx, "admin", u.ID, accounts.UserChange{Disabled: &yes})
	if _, err := m.SignInSSO(ctx, accounts.SSOUser{Subject: "https://idp alice-id", Name: "alice"}); !errors.Is(err, accounts.ErrDisabled) {
		t.Fatalf("a disabled SSO user signed in: %v", err)
	}
	got := actions(t, m)
	n := 0
	for _, a := range got {
		if a == "user.roles.sso" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("audit %v: want one user.roles.sso", got)
	}
}
