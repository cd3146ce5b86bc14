// Package store defines what signaling keeps across restarts — users, sites,
// agents, device settings, login and API tokens, OAuth codes, attempt
// counters and audit logs — as one Store interface with two backends: the
// embedded file store (package boltstore, the default) and Redis in a
// cluster. Package storetest is the conformance suite every backend passes.
//
// The interface offers only operations a key-value store with atomic
// read-modify-write can provide: no queries across records beyond listing
// one kind, and every compound change (consume a code once, bump a counter,
// append to a chain) is a single method so a backend can make it atomic.
//
// Records are plain values: a Store returns fresh copies, and callers may
// modify what they get.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// Errors every backend returns, wrapped with detail; compare with errors.Is.
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrCodeUsed  = errors.New("authorization code already used")
	ErrConflict  = errors.New("conflicting state")
	ErrBadRecord = errors.New("malformed record")
)

// Role is what a user may do on one site.
type Role string

// Roles, per site. Admins are users with User.Admin set; they need no site
// role to see and do everything.
const (
	// RoleConfigurer ("Remote Technician Configurer") sees the devices of
	// the site and changes their "Remote access enabled" setting.
	RoleConfigurer Role = "configurer"
	// RoleUser ("Remote Technician User") opens sessions to the site's
	// enabled devices.
	RoleUser Role = "user"
	// RoleSiteAdmin is the customer's own administrator of the site: sees
	// its devices, live sessions and jobs, approves session requests, ends
	// sessions and sets the site's policies (proto.RoleSiteAdmin).
	RoleSiteAdmin Role = proto.RoleSiteAdmin
)

// Valid reports whether r is a defined role.
func (r Role) Valid() bool { return r == RoleConfigurer || r == RoleUser || r == RoleSiteAdmin }

// User is an account.
type User struct {
	ID           string `json:"id"`
	Name         string `json:"name"` // login name, unique, lower case
	DisplayName  string `json:"displayName,omitempty"`
	PasswordHash string `json:"passwordHash"` // PHC string (argon2id)
	Admin        bool   `json:"admin,omitempty"`
	Disabled     bool   `json:"disabled,omitempty"`
	// Roles maps a site ID to the user's roles there.
	Roles map[string][]Role `json:"roles,omitempty"`
	// TOTPSecret is the base32 RFC 6238 secret; empty means no second
	// factor. TOTPLastStep is the time step of the last code accepted, so
	// a code is never accepted twice.
	TOTPSecret   string `json:"totpSecret,omitempty"`
	TOTPLastStep int64  `json:"totpLastStep,omitempty"`
	// TOTPPending is a secret being enrolled, not yet confirmed by a code.
	TOTPPending string `json:"totpPending,omitempty"`
	// RecoveryCodes are the hashes of the unused recovery codes.
	RecoveryCodes []string  `json:"recoveryCodes,omitempty"`
	Created       time.Time `json:"created"`
	Updated       time.Time `json:"updated"`
	// SSO is "issuer subject" for a user of single sign-on: the identity
	// provider's stable name for them. Such a user has no password and
	// gets roles from their groups at every sign-in (package sso).
	SSO string `json:"sso,omitempty"`
}

// HasRole reports whether u has role on site.
func (u *User) HasRole(site string, role Role) bool {
	return slices.Contains(u.Roles[site], role)
}

// Site groups agents and their devices.
type Site struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Policy is the site's policy (approval, time windows); nil allows
	// sessions at any time without approval.
	Policy *proto.SitePolicy `json:"policy,omitempty"`
}

// Agent records which site an agent belongs to. An agent with no record,
// or with an empty Site, belongs to no site: only admins see its devices.
type Agent struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	Site    string    `json:"site,omitempty"`
	Updated time.Time `json:"updated"`
}

// Device holds the settings of one device an agent declares. A device
// without a record has the zero settings: remote access disabled.
type Device struct {
	Agent     string    `json:"agent"`
	ID        string    `json:"id"`
	Enabled   bool      `json:"enabled"`
	UpdatedBy string    `json:"updatedBy,omitempty"`
	Updated   time.Time `json:"updated"`

	// The inventory. Adopted says a configurer adopted the device in the
	// app: signaling sends it to its agent (proto.InventoryDevice), which
	// checks it against the site's scope. A device declared in the
	// agent's own file is not adopted; its record keeps what the agent
	// last declared, so it is listed (offline) while the agent is away.
	Adopted   bool   `json:"adopted,omitempty"`
	AdoptedBy string `json:"adoptedBy,omitempty"`
	Name      string `json:"name,omitempty"`
	// Addr and Services are the adopted device's (what the agent is sent).
	Addr     string          `json:"addr,omitempty"`
	Services []proto.Service `json:"services,omitempty"`
	// MAC and Serial are the identity seen at adoption, checked before
	// every session unless Relaxed.
	MAC     string `json:"mac,omitempty"`
	Serial  string `json:"serial,omitempty"`
	Relaxed bool   `json:"relaxed,omitempty"`
	// Type, Vendor and Model are what discovery learnt, for people.
	Type   string `json:"type,omitempty"`
	Vendor string `json:"vendor,omitempty"`
	Model  string `json:"model,omitempty"`
	// Declared is the device as its agent last declared it (hello or
	// inventory.applied), with its health; LastSeen when that was.
	Declared *proto.Device `json:"declared,omitempty"`
	LastSeen time.Time     `json:"lastSeen,omitzero"`
	// Refused is the agent's reason for not serving an adopted device
	// (outside the site's scope, say); empty when it serves it.
	Refused string `json:"refused,omitempty"`
	// Moved says discovery found the adopted device (by its MAC, and its
	// serial when recorded) at a new address, which the inventory took:
	// "192.0.2.20 → 192.0.2.31", at MovedAt.
	Moved   string    `json:"moved,omitempty"`
	MovedAt time.Time `json:"movedAt,omitzero"`
	// Policy is the device's policy (approval, scope); nil narrows nothing.
	Policy *proto.DevicePolicy `json:"policy,omitempty"`
}

// Discovery is the latest scan an agent reported: the candidates the app
// shows as "Discovered" beside the site's devices.
type Discovery struct {
	Agent     string             `json:"agent"`
	Scan      string             `json:"scan"`
	Scope     []string           `json:"scope,omitempty"`
	Started   time.Time          `json:"started"`
	Finished  time.Time          `json:"finished,omitzero"`
	Probes    int                `json:"probes,omitempty"`
	Truncated bool               `json:"truncated,omitempty"`
	Devices   []proto.Discovered `json:"devices,omitempty"`
}

// TokenKind says what a token is good for.
type TokenKind string

// Token kinds.
const (
	TokenLogin TokenKind = "login" // a browser's login (the app's cookie)
	TokenMFA   TokenKind = "mfa"   // password accepted, second factor pending
	TokenAPI   TokenKind = "api"   // a personal API token (also what `porthole login` gets)
	// A one-time link that sets the user's password: an invitation (or
	// the first admin's link) and a reset (package accounts, links.go).
	TokenInvite TokenKind = "invite"
	TokenReset  TokenKind = "reset"
)

// Token is a bearer secret, stored by the hex SHA-256 of the secret only.
type Token struct {
	Hash    string    `json:"hash"`
	Kind    TokenKind `json:"kind"`
	User    string    `json:"user"`
	Name    string    `json:"name,omitempty"`
	Scopes  []string  `json:"scopes,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"` // zero: never
}

// Expired reports whether t has expired at now.
func (t *Token) Expired(now time.Time) bool { return !t.Expires.IsZero() && !now.Before(t.Expires) }

// Code is an OAuth authorization code, stored by the hex SHA-256 of the code.
type Code struct {
	Hash        string    `json:"hash"`
	User        string    `json:"user"`
	ClientID    string    `json:"clientId"`
	RedirectURI string    `json:"redirectUri"`
	Challenge   string    `json:"challenge"` // S256 code challenge
	Session     string    `json:"session,omitempty"`
	Scopes      []string  `json:"scopes,omitempty"`
	Expires     time.Time `json:"expires"`
	// Used is set by the first ConsumeCode, together with Issued: the hash
	// of the token that the exchange issues, revoked if the code is
	// replayed.
	Used   bool   `json:"used,omitempty"`
	Issued string `json:"issued,omitempty"`
}

// AuditEntry is one entry of an append-only, hash-chained audit log.
// Seq starts at 1 and has no gaps; Hash is ChainHash(Prev, entry).
type AuditEntry struct {
	Seq    uint64            `json:"seq"`
	Time   time.Time         `json:"time"`
	Actor  string            `json:"actor"`  // user ID, or "system"
	Action string            `json:"action"` // e.g. "device.enable", "role.grant"
	Target string            `json:"target,omitempty"`
	Site   string            `json:"site,omitempty"`
	Detail map[string]string `json:"detail,omitempty"`
	Prev   string            `json:"prev"` // hex hash of the previous entry; "" for the first
	Hash   string            `json:"hash"`
}

// ChainHash returns the hex SHA-256 that links e to the entry before it:
// over the previous hash and e's JSON encoding without its Prev and Hash.
// Every backend computes it this way so logs verify the same everywhere.
func ChainHash(prev string, e *AuditEntry) string {
	c := *e
	c.Prev, c.Hash = "", ""
	c.Time = c.Time.UTC()
	b, _ := json.Marshal(&c)
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// VerifyChain checks that entries (in order, starting at Seq 1 or
// continuing from prev) are linked and unaltered. It returns the index of
// the first broken entry, or -1.
func VerifyChain(prev string, first uint64, entries []*AuditEntry) int {
	for i, e := range entries {
		if e.Seq != first+uint64(i) || e.Prev != prev || ChainHash(prev, e) != e.Hash {
			return i
		}
		prev = e.Hash
	}
	return -1
}

// Store is signaling's persistent state. Implementations are safe for
// concurrent use; every method is atomic.
type Store interface {
	// CreateUser adds u; ErrExists if its ID or Name is taken.
	CreateUser(ctx context.Context, u *User) error
	User(ctx context.Context, id string) (*User, error)
	UserByName(ctx context.Context, name string) (*User, error)
	// Users lists every user, sorted by Name.
	Users(ctx context.Context) ([]*User, error)
	// UpdateUser applies fn to the stored user atomically and stores the
	// result, unless fn returns an error (returned as is). fn must not
	// change ID or Name (ErrConflict) and may run more than once.
	UpdateUser(ctx context.Context, id string, fn func(*User) error) (*User, error)
	// DeleteUser removes the user and every token of theirs.
	DeleteUser(ctx context.Context, id string) error

	// CreateSite adds s; ErrExists if its ID is taken.
	CreateSite(ctx context.Context, s *Site) error
	Site(ctx context.Context, id string) (*Site, error)
	// Sites lists every site, sorted by ID.
	Sites(ctx context.Context) ([]*Site, error)
	// UpdateSite applies fn to the stored site atomically and stores the
	// result unless fn returns an error (returned as is); ErrNotFound if
	// there is no such site. fn must not change ID and may run more than
	// once.
	UpdateSite(ctx context.Context, id string, fn func(*Site) error) (*Site, error)
	// DeleteSite removes a site; ErrConflict while agents belong to it.
	DeleteSite(ctx context.Context, id string) error

	// PutAgent creates or replaces an agent's record; ErrNotFound if its
	// Site is set and does not exist.
	PutAgent(ctx context.Context, a *Agent) error
	Agent(ctx context.Context, id string) (*Agent, error)
	// Agents lists every agent record, sorted by ID.
	Agents(ctx context.Context) ([]*Agent, error)

	// Device returns a device's settings; ErrNotFound if never set.
	Device(ctx context.Context, agent, id string) (*Device, error)
	// UpdateDevice applies fn to the device's settings (the zero settings
	// if none are stored) atomically and stores the result.
	UpdateDevice(ctx context.Context, agent, id string, fn func(*Device) error) (*Device, error)
	// Devices lists the device records of agent, sorted by ID.
	Devices(ctx context.Context, agent string) ([]*Device, error)
	// DeleteDevice removes a device record; ErrNotFound if there is none.
	DeleteDevice(ctx context.Context, agent, id string) error

	// PutDiscovery stores an agent's latest scan, replacing the last.
	PutDiscovery(ctx context.Context, d *Discovery) error
	// Discovery returns an agent's latest scan; ErrNotFound if none.
	Discovery(ctx context.Context, agent string) (*Discovery, error)

	// PutToken stores t; ErrExists if its Hash is taken.
	PutToken(ctx context.Context, t *Token) error
	// Token returns the token with hash; ErrNotFound if none or expired.
	Token(ctx context.Context, hash string) (*Token, error)
	// UserTokens lists a user's live tokens of the given kinds (all kinds
	// if none are given), oldest first.
	UserTokens(ctx context.Context, user string, kinds ...TokenKind) ([]*Token, error)
	// DeleteToken removes a token; ErrNotFound if none.
	DeleteToken(ctx context.Context, hash string) error
	// DeleteUserTokens removes a user's tokens of the given kinds (all if
	// none are given) and reports how many.
	DeleteUserTokens(ctx context.Context, user string, kinds ...TokenKind) (int, error)

	// PutCode stores an unused authorization code; ErrExists if taken.
	PutCode(ctx context.Context, c *Code) error
	// ConsumeCode marks the code used, recording issued, and returns it.
	// A code already used is returned with ErrCodeUsed (and the Issued of
	// its first use); an unknown or expired one gives ErrNotFound.
	ConsumeCode(ctx context.Context, hash, issued string) (*Code, error)

	// Attempt counts one attempt under key and returns the count within
	// the current window, which starts at the first attempt and lasts
	// window.
	Attempt(ctx context.Context, key string, window time.Duration) (int, error)
	// Attempts returns the current count under key without adding one.
	Attempts(ctx context.Context, key string) (int, error)
	// ResetAttempts forgets key's attempts.
	ResetAttempts(ctx context.Context, key string) error

	// AppendAudit appends e to the log named stream, setting its Seq, Prev
	// and Hash, and returns the stored entry.
	AppendAudit(ctx context.Context, stream string, e *AuditEntry) (*AuditEntry, error)
	// Audit returns up to limit entries of stream with Seq > after, in
	// order. A limit of 0 or less means all.
	Audit(ctx context.Context, stream string, after uint64, limit int) ([]*AuditEntry, error)

	// JobStore: sessions as jobs, their access logs and checkpoints (jobs.go).
	JobStore
	// WebhookStore: sites' webhook subscriptions and deliveries (webhooks.go).
	WebhookStore
	// RequestStore: technicians' requests for approval (customer.go).
	RequestStore

	// Close releases the store. Other methods must not be called after.
	Close() error
}
