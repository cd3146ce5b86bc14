// Package accounts changes users, sites, roles, agents and device settings
// in a store.Store and records every change in the administration audit
// log. The admin API and `porthole-signaling admin` both go through it, so
// a change is validated and logged the same way whoever makes it.
package accounts

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/store"
)

// AuditStream is the audit log that administration changes go to.
const AuditStream = "admin"

// Errors for invalid requests; compare with errors.Is.
var (
	ErrInvalid = errors.New("invalid")
)

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)
	siteRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

// ValidUserName reports whether name can be a login name (lower case).
func ValidUserName(name string) bool { return nameRE.MatchString(name) }

// ValidSiteID reports whether id can be a site ID.
func ValidSiteID(id string) bool { return siteRE.MatchString(id) }

// Manager applies changes. Actor names who makes them in the audit log.
type Manager struct {
	Store  store.Store
	Params authn.Params // password hashing
	Now    func() time.Time
}

func (m *Manager) now() time.Time {
	if m.Now == nil {
		return time.Now()
	}
	return m.Now()
}

// Audit appends one entry to the administration log.
func (m *Manager) Audit(ctx context.Context, actor, action, target, site string, detail map[string]string) error {
	_, err := m.Store.AppendAudit(ctx, AuditStream, &store.AuditEntry{
		Time: m.now(), Actor: actor, Action: action, Target: target, Site: site, Detail: detail,
	})
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// NewUser describes an account to create.
type NewUser struct {
	Name, DisplayName, Password string
	Admin                       bool
	// NoPassword creates the user without a password, for an invitation
	// link (CreateLink) to give them one; Password must be empty.
	NoPassword bool
}

// CreateUser creates an account.
func (m *Manager) CreateUser(ctx context.Context, actor string, nu NewUser) (*store.User, error) {
	name := strings.ToLower(strings.TrimSpace(nu.Name))
	if !ValidUserName(name) {
		return nil, fmt.Errorf("%w: user name must be 1-64 of a-z 0-9 . _ @ -", ErrInvalid)
	}
	if nu.NoPassword && nu.Password != "" {
		return nil, fmt.Errorf("%w: a password for a user created without one", ErrInvalid)
	}
	if err := authn.CheckPasswordPolicy(nu.Password); err != nil && !nu.NoPassword {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(nu.DisplayName) > 128 {
		return nil, fmt.Errorf("%w: display name too long", ErrInvalid)
	}
	now := m.now()
	u := &store.User{
		ID: authn.NewID(), Name: name, DisplayName: nu.DisplayName, Admin: nu.Admin,
		Roles: map[string][]store.Role{}, Created: now, Updated: now,
	}
	if !nu.NoPassword {
		u.PasswordHash = authn.HashPassword(nu.Password, m.Params)
	}
	if err := m.Store.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	return u, m.Audit(ctx, actor, "user.create", u.ID, "", map[string]string{"name": name, "admin": fmt.Sprint(nu.Admin)})
}

// SetRoles replaces the user's roles on site.
func (m *Manager) SetRoles(ctx context.Context, actor, userID, site string, roles []string) (*store.User, error) {
	if _, err := m.Store.Site(ctx, site); err != nil {
		return nil, err
	}
	var set []store.Role
	for _, r := range roles {
		role := store.Role(r)
		if !role.Valid() {
			return nil, fmt.Errorf("%w: unknown role %q", ErrInvalid, r)
		}
		if !slices.Contains(set, role) {
			set = append(set, role)
		}
	}
	slices.Sort(set)
	var before []store.Role
	u, err := m.Store.UpdateUser(ctx, userID, func(u *store.User) error {
		before = slices.Clone(u.Roles[site])
		if u.Roles == nil {
			u.Roles = map[string][]store.Role{}
		}
		if len(set) == 0 {
			delete(u.Roles, site)
		} else {
			u.Roles[site] = set
		}
		u.Updated = m.now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, m.Audit(ctx, actor, "user.roles", userID, site, map[string]string{
		"before": joinRoles(before), "after": joinRoles(set),
	})
}

func joinRoles(rs []store.Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

// UserChange is a partial update of an account.
type UserChange struct {
	DisplayName *string
	Admin       *bool
	Disabled    *bool
	Password    *string
	ResetTOTP   bool
}

// UpdateUser applies a change; a new password or disabling ends the user's
// logins and API tokens stay (they are revoked separately).
func (m *Manager) UpdateUser(ctx context.Context, actor, userID string, c UserChange) (*store.User, error) {
	var hash string
	if c.Password != nil {
		if err := authn.CheckPasswordPolicy(*c.Password); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		hash = authn.HashPassword(*c.Password, m.Params)
	}
	detail := map[string]string{}
	u, err := m.Store.UpdateUser(ctx, userID, func(u *store.User) error {
		if c.DisplayName != nil {
			u.DisplayName = *c.DisplayName
			detail["displayName"] = *c.DisplayName
		}
		if c.Admin != nil {
			u.Admin = *c.Admin
			detail["admin"] = fmt.Sprint(*c.Admin)
		}
		if c.Disabled != nil {
			u.Disabled = *c.Disabled
			detail["disabled"] = fmt.Sprint(*c.Disabled)
		}
		if hash != "" {
			u.PasswordHash = hash
			detail["password"] = "changed"
		}
		if c.ResetTOTP {
			u.TOTPSecret, u.TOTPLastStep, u.RecoveryCodes = "", 0, nil
			detail["totp"] = "reset"
		}
		u.Updated = m.now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if hash != "" || (c.Disabled != nil && *c.Disabled) {
		if _, err := m.Store.DeleteUserTokens(ctx, userID, store.TokenLogin, store.TokenMFA); err != nil {
			return nil, err
		}
	}
	return u, m.Audit(ctx, actor, "user.update", userID, "", detail)
}

// DeleteUser removes an account and its tokens.
func (m *Manager) DeleteUser(ctx context.Context, actor, userID string) error {
	if err := m.Store.DeleteUser(ctx, userID); err != nil {
		return err
	}
	return m.Audit(ctx, actor, "user.delete", userID, "", nil)
}

// CreateSite creates a site; an empty id is derived from the name.
func (m *Manager) CreateSite(ctx context.Context, actor, id, name string) (*store.Site, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 128 {
		return nil, fmt.Errorf("%w: site name must be 1-128 characters", ErrInvalid)
	}
	if id == "" {
		id = slug(name)
	}
	if !ValidSiteID(id) {
		return nil, fmt.Errorf("%w: site ID must be 1-63 of a-z 0-9 -", ErrInvalid)
	}
	s := &store.Site{ID: id, Name: name, Created: m.now()}
	if err := m.Store.CreateSite(ctx, s); err != nil {
		return nil, err
	}
	return s, m.Audit(ctx, actor, "site.create", id, id, map[string]string{"name": name})
}

func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 63 {
			break
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if s == "" {
		s = "site-" + authn.NewID()[:8]
	}
	return s
}

// DeleteSite removes a site (refused while agents belong to it) and every
// role on it.
func (m *Manager) DeleteSite(ctx context.Context, actor, id string) error {
	if err := m.Store.DeleteSite(ctx, id); err != nil {
		return err
	}
	users, err := m.Store.Users(ctx)
	if err != nil {
		return err
	}
	for _, u := range users {
		if _, ok := u.Roles[id]; ok {
			if _, err := m.Store.UpdateUser(ctx, u.ID, func(u *store.User) error { delete(u.Roles, id); return nil }); err != nil {
				return err
			}
		}
	}
	return m.Audit(ctx, actor, "site.delete", id, id, nil)
}

// AssignAgent puts an agent in a site ("" takes it out).
func (m *Manager) AssignAgent(ctx context.Context, actor, agentID, name, site string) (*store.Agent, error) {
	before := ""
	if old, err := m.Store.Agent(ctx, agentID); err == nil {
		before = old.Site
		if name == "" {
			name = old.Name
		}
	}
	a := &store.Agent{ID: agentID, Name: name, Site: site, Updated: m.now()}
	if err := m.Store.PutAgent(ctx, a); err != nil {
		return nil, err
	}
	return a, m.Audit(ctx, actor, "agent.assign", agentID, site, map[string]string{"before": before, "after": site})
}

// SetDeviceEnabled changes a device's "Remote access enabled" setting.
func (m *Manager) SetDeviceEnabled(ctx context.Context, actor, agentID, deviceID, site string, enabled bool) (*store.Device, error) {
	var before bool
	d, err := m.Store.UpdateDevice(ctx, agentID, deviceID, func(d *store.Device) error {
		before = d.Enabled
		d.Enabled, d.UpdatedBy, d.Updated = enabled, actor, m.now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	action := "device.disable"
	if enabled {
		action = "device.enable"
	}
	return d, m.Audit(ctx, actor, action, deviceID, site, map[string]string{"agent": agentID, "before": fmt.Sprint(before)})
}
