package accounts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/store"
)

// How long password links last.
const (
	InviteTTL = 7 * 24 * time.Hour
	ResetTTL  = 24 * time.Hour
)

// Errors of password links; compare with errors.Is.
var (
	// ErrLinkUsed is a link that is unknown, used or expired: one answer
	// for all three, so a guess learns nothing.
	ErrLinkUsed = errors.New("this link is unknown, used or expired")
	// ErrSSOUser is a password change for a user of single sign-on.
	ErrSSOUser = errors.New("this user signs in with single sign-on and has no password here")
)

// CreateLink makes a one-time link secret that lets the user choose a
// password: kind store.TokenInvite for a user who has none yet (an
// invitation, or the first admin), store.TokenReset for one who forgot
// theirs. Only its hash is stored; earlier links of the user stop working.
// The user's current password (if any) keeps working until the link is
// used, so a reset nobody asked for locks nobody out.
func (m *Manager) CreateLink(ctx context.Context, actor, userID string, kind store.TokenKind) (string, *store.Token, error) {
	u, err := m.Store.User(ctx, userID)
	if err != nil {
		return "", nil, err
	}
	var ttl time.Duration
	switch {
	case u.SSO != "":
		return "", nil, fmt.Errorf("%w: %w", ErrInvalid, ErrSSOUser)
	case u.Disabled:
		return "", nil, fmt.Errorf("%w: the account is disabled; enable it first", ErrInvalid)
	case kind == store.TokenInvite && u.PasswordHash != "":
		return "", nil, fmt.Errorf("%w: %s has a password already; make a reset link instead", ErrInvalid, u.Name)
	case kind == store.TokenInvite:
		ttl = InviteTTL
	case kind == store.TokenReset:
		ttl = ResetTTL
	default:
		return "", nil, fmt.Errorf("%w: unknown link kind %q", ErrInvalid, kind)
	}
	if _, err := m.Store.DeleteUserTokens(ctx, userID, store.TokenInvite, store.TokenReset); err != nil {
		return "", nil, err
	}
	secret, hash := authn.NewSecret()
	now := m.now()
	t := &store.Token{Hash: hash, Kind: kind, User: userID, Created: now, Expires: now.Add(ttl)}
	if err := m.Store.PutToken(ctx, t); err != nil {
		return "", nil, err
	}
	return secret, t, m.Audit(ctx, actor, "user.link."+string(kind), userID, "", map[string]string{
		"name": u.Name, "expires": t.Expires.UTC().Format(time.RFC3339)})
}

// RedeemLink uses a link: it sets password as the user's password, ends
// the user's other logins, and returns the user. A link works once, and
// a wrong password (too short) keeps it for another try.
func (m *Manager) RedeemLink(ctx context.Context, secret, password string) (*store.User, error) {
	hash := authn.HashSecret(secret)
	t, err := m.Store.Token(ctx, hash)
	if err != nil || (t.Kind != store.TokenInvite && t.Kind != store.TokenReset) || t.Expired(m.now()) {
		return nil, ErrLinkUsed
	}
	if err := authn.CheckPasswordPolicy(password); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	// Deleting is the claim: of two concurrent uses only one deletes it.
	if err := m.Store.DeleteToken(ctx, hash); err != nil {
		return nil, ErrLinkUsed
	}
	u, err := m.Store.User(ctx, t.User)
	if err != nil || u.Disabled || u.SSO != "" {
		return nil, ErrLinkUsed
	}
	u, err = m.UpdateUser(ctx, u.ID, u.ID, UserChange{Password: &password})
	if err != nil {
		return nil, err
	}
	return u, m.Audit(ctx, u.ID, "user.link.used", u.ID, "", map[string]string{"kind": string(t.Kind)})
}
