package accounts

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/store"
)

// Errors of single sign-on; compare with errors.Is.
var (
	// ErrSSOConflict is an identity provider's user whose name belongs to
	// a local account (or to another provider's user). Porthole never
	// joins them on its own: that would let whoever controls a name at
	// the provider take over the local account of that name.
	ErrSSOConflict = errors.New("a Porthole account of that name exists and is not linked to this identity")
	// ErrDisabled is a sign-in of a disabled account.
	ErrDisabled = errors.New("the account is disabled")
)

// SSOUser is what an identity provider says of a user at sign-in.
type SSOUser struct {
	// Subject is "issuer subject": stable for the user at the provider.
	Subject     string
	Name        string // the Porthole login name it becomes (lower case)
	DisplayName string
	// Admin and Roles are what the user's groups map to (package sso).
	Admin bool
	Roles map[string][]store.Role
}

// SignInSSO returns the Porthole user of an identity provider's user,
// creating it at the first sign-in, and gives it the admin flag and the
// roles that its groups map to now: for these users the provider is the
// source of truth, so a group removed there is a role removed here at the
// next sign-in. Roles on sites that do not exist are left out. Every
// creation and every change of roles is in the audit log.
func (m *Manager) SignInSSO(ctx context.Context, in SSOUser) (*store.User, error) {
	name := strings.ToLower(strings.TrimSpace(in.Name))
	if in.Subject == "" || !ValidUserName(name) {
		return nil, fmt.Errorf("%w: the identity provider gave no usable user name (%q)", ErrInvalid, in.Name)
	}
	if len(in.DisplayName) > 128 {
		in.DisplayName = in.DisplayName[:128]
	}
	u, err := m.ssoUser(ctx, name, in.Subject)
	if err != nil {
		return nil, err
	}
	roles := map[string][]store.Role{}
	for site, rs := range in.Roles {
		if _, err := m.Store.Site(ctx, site); err != nil {
			continue
		}
		rs = slices.Clone(rs)
		slices.Sort(rs)
		roles[site] = slices.Compact(rs)
	}
	if u == nil {
		now := m.now()
		u = &store.User{ID: authn.NewID(), Name: name, DisplayName: in.DisplayName, Admin: in.Admin,
			Roles: roles, SSO: in.Subject, Created: now, Updated: now}
		if err := m.Store.CreateUser(ctx, u); err != nil {
			if errors.Is(err, store.ErrExists) {
				return nil, ErrSSOConflict
			}
			return nil, err
		}
		return u, m.Audit(ctx, "sso", "user.create", u.ID, "", map[string]string{
			"name": name, "admin": fmt.Sprint(in.Admin), "roles": describeRoles(roles), "sso": in.Subject})
	}
	if u.Disabled {
		return nil, ErrDisabled
	}
	before, beforeAdmin := describeRoles(u.Roles), u.Admin
	after := describeRoles(roles)
	u, err = m.Store.UpdateUser(ctx, u.ID, func(u *store.User) error {
		u.Admin, u.Roles = in.Admin, roles
		if in.DisplayName != "" {
			u.DisplayName = in.DisplayName
		}
		u.Updated = m.now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if before != after || beforeAdmin != in.Admin {
		err = m.Audit(ctx, "sso", "user.roles.sso", u.ID, "", map[string]string{
			"name": u.Name, "before": before, "after": after,
			"adminBefore": fmt.Sprint(beforeAdmin), "admin": fmt.Sprint(in.Admin)})
	}
	return u, err
}

// ssoUser finds the user of subject: by name (the usual case), else by
// subject (the provider renamed them). nil means none yet.
func (m *Manager) ssoUser(ctx context.Context, name, subject string) (*store.User, error) {
	u, err := m.Store.UserByName(ctx, name)
	switch {
	case err == nil && u.SSO == subject:
		return u, nil
	case err == nil:
		return nil, ErrSSOConflict
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	users, err := m.Store.Users(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if u.SSO == subject {
			return u, nil
		}
	}
	return nil, nil
}

// describeRoles is "site=role+role;…" in site order, for audit lines.
func describeRoles(m map[string][]store.Role) string {
	var parts []string
	for _, site := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, site+"="+joinRoles(m[site]))
	}
	return strings.Join(parts, ";")
}
