package proto

import "time"

// The identity and access API of signaling: login with an optional second
// factor, the caller's own account and API tokens, the device overview by
// site, device settings, administration, and the OAuth 2.1 endpoints that
// session origins and the CLI use. Browsers authenticate with the app's
// login cookie, other clients with "Authorization: Bearer <API token>".

// API paths.
const (
	PathLogin      = "/v1/login"                   // POST Login → LoginResult (sets the login cookie unless a second factor is due)
	PathLoginMFA   = "/v1/login/mfa"               // POST LoginMFA → LoginResult
	PathLogout     = "/v1/logout"                  // POST; ends the login
	PathMe         = "/v1/me"                      // GET → Me
	PathPassword   = "/v1/me/password"             // POST PasswordChange
	PathTOTP       = "/v1/me/totp"                 // POST → TOTPEnrollment; DELETE with PasswordConfirm
	PathTOTPConf   = "/v1/me/totp/verify"          // POST TOTPVerify → RecoveryCodes (second factor on)
	PathTokens     = "/v1/me/tokens"               // GET → TokenList; POST NewToken → CreatedToken; DELETE /v1/me/tokens/{id}
	PathOverview   = "/v1/overview"                // GET → Overview: the caller's sites and their devices
	PathDevice     = "/v1/devices/{id}"            // PATCH DeviceUpdate → DeviceView; DELETE an adopted device (configurers and admins)
	PathAdopt      = "/v1/devices/adopt"           // POST Adopt → DeviceView: adopt a discovered device (configurers and admins)
	PathDiscovered = "/v1/sites/{id}/discovered"   // GET → DiscoveredList: the site's agents' latest scans (configurers and admins)
	PathDiscover   = "/v1/sites/{id}/discover"     // POST → DiscoverStarted: ask the site's agents to scan now
	PathUsers      = "/v1/users"                   // admin: GET → UserList; POST NewUser → UserView
	PathUser       = "/v1/users/{id}"              // admin: PATCH UserUpdate → UserView; DELETE
	PathUserRole   = "/v1/users/{id}/roles/{site}" // admin: PUT RoleUpdate → UserView
	PathSites      = "/v1/sites"                   // GET → SiteList (admin: all; others: their own); admin POST NewSite → SiteView
	PathSite       = "/v1/sites/{id}"              // admin: DELETE
	PathAgents     = "/v1/agents"                  // admin: GET → AgentList
	PathAgent      = "/v1/agents/{id}"             // admin: PUT AgentUpdate → AgentView
	PathAudit      = "/v1/audit"                   // admin: GET ?after=N&limit=M → AuditList

	PathAuthorize = "/oauth/authorize" // OAuth 2.1 authorization endpoint (GET, and POST for consent)
	PathToken     = "/oauth/token"     // OAuth 2.1 token endpoint (POST, form-encoded)
	PathRevoke    = "/oauth/revoke"    // token revocation (RFC 7009; POST, form-encoded): API tokens the CLI got
	// PathCLICode is the CLI's out-of-band redirect URI (`porthole login
	// --no-browser`): a page that shows the code for the user to paste
	// into the command, on whichever machine it runs.
	PathCLICode = "/oauth/cli-code"

	// PathOAuthMetadata is the authorization server's metadata (RFC 8414):
	// GET → AuthServerMetadata. The CLI starts `porthole login` from it.
	PathOAuthMetadata = "/.well-known/oauth-authorization-server"

	// On each session's shell origin (ShellHostPrefix): the shell's OAuth
	// client configuration (GET → SessionAuth), its redirect URI, and the
	// binding of its token to the window (POST with the bearer token →
	// 204 and the BindCookie; see SECURITY.md).
	PathSessionAuth     = "/__t/auth.json"
	PathSessionCallback = "/__t/callback"
	PathSessionBind     = "/__t/bind"
	// PathSessionWipe, on the shell origin, answers with Clear-Site-Data
	// for the shell's ended view (and expires the BindCookie).
	PathSessionWipe = "/__t/wipe"

	// On each session's device origin: the relay frame the shell hides in
	// itself (the shell redeems its SessionReady.RelayTicket with an opaque
	// request for ?t=<ticket>), and the page every
	// device window is sent to when the session ends, which answers with
	// Clear-Site-Data.
	PathRelayFrame   = "/__t/relay.html"
	PathSessionEnded = "/__t/ended"
)

// The two origins of a session <id> under the sessions domain D: the shell
// (the session window, which holds the token, the bind cookie and the peer
// connection) on ShellHostPrefix+<id>.D, and the device's pages (which hold
// nothing secret) on <id>.D. Session IDs are [a-z0-9], so the prefix never
// collides with one.
const ShellHostPrefix = "shell-"

// ClearSiteData is the Clear-Site-Data value both origins of an ended
// session answer with (PathSessionWipe, PathSessionEnded). Not "cookies":
// browsers clear cookies for the whole site with it (Chromium 156,
// measured), which would be every other session's cookies too; each origin
// expires its own cookies by name instead.
const ClearSiteData = `"cache", "storage"`

// BindCookie binds a session token to the shell window that obtained it:
// __Host-, Secure, HttpOnly, SameSite=Strict, on the shell origin only. A
// bound token opens the session socket only together with it.
const BindCookie = "__Host-porthole-bind"

// CLIClientID is the OAuth client ID of the `porthole` CLI, a native app
// whose redirect URI is a loopback address on any port (RFC 8252):
// http://127.0.0.1:<port>/callback or http://[::1]:<port>/callback.
const CLIClientID = "porthole-cli"

// Roles on a site.
const (
	RoleConfigurer = "configurer" // Remote Technician Configurer: sees devices, changes "Remote access enabled"
	RoleUser       = "user"       // Remote Technician User: opens sessions to enabled devices
	// RoleSiteAdmin is the customer's own administrator of a site: sees the
	// site's devices, live sessions and jobs (and nothing of other sites),
	// approves or denies session requests, ends live sessions, sets the
	// site's policies and subscribes webhooks (issue 18).
	RoleSiteAdmin = "siteadmin"
)

// Login is the body of POST /v1/login.
type Login struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// LoginResult answers a login step. With MFARequired, MFAToken goes with
// the code to PathLoginMFA (within a few minutes); otherwise the login
// cookie is set and User is the account.
type LoginResult struct {
	MFARequired bool   `json:"mfaRequired,omitempty"`
	MFAToken    string `json:"mfaToken,omitempty"`
	User        *Me    `json:"user,omitempty"`
}

// LoginMFA is the second login step: a TOTP code or a recovery code.
type LoginMFA struct {
	MFAToken     string `json:"mfaToken"`
	Code         string `json:"code,omitempty"`
	RecoveryCode string `json:"recoveryCode,omitempty"`
}

// Me describes the caller.
type Me struct {
	ID            string              `json:"id"`
	Name          string              `json:"name"`
	DisplayName   string              `json:"displayName,omitempty"`
	Admin         bool                `json:"admin"`
	TOTP          bool                `json:"totp"`
	RecoveryCodes int                 `json:"recoveryCodes"`
	Roles         map[string][]string `json:"roles"`
	SSO           bool                `json:"sso,omitempty"` // signs in with single sign-on: no password here
}

// PasswordChange is the body of POST /v1/me/password. Every other login of
// the user ends.
type PasswordChange struct {
	Current string `json:"current"`
	New     string `json:"new"`
}

// PasswordConfirm confirms a sensitive change with the current password.
type PasswordConfirm struct {
	Password string `json:"password"`
}

// TOTPEnrollment starts second-factor enrolment: the secret is pending
// until a code from it is verified.
type TOTPEnrollment struct {
	Secret string `json:"secret"`
	URL    string `json:"url"` // otpauth://totp/…
}

// TOTPVerify completes enrolment.
type TOTPVerify struct {
	Code string `json:"code"`
}

// RecoveryCodes are shown once; each signs in once instead of a TOTP code.
type RecoveryCodes struct {
	Codes []string `json:"codes"`
}

// Scopes of API tokens.
const (
	ScopeRead     = "read"     // GET endpoints
	ScopeSessions = "sessions" // open and end sessions
	ScopeManage   = "manage"   // changes: device settings, administration (as far as the user's roles allow)
)

// NewToken asks for a personal API token.
type NewToken struct {
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	ExpiresIn int64    `json:"expiresIn,omitempty"` // seconds; 0 means never
}

// TokenView describes an API token without its secret. ID is the token's
// hash prefix, enough to revoke it.
type TokenView struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Scopes  []string   `json:"scopes"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
}

// CreatedToken carries the secret once.
type CreatedToken struct {
	TokenView
	Token string `json:"token"`
}

// TokenList answers GET /v1/me/tokens.
type TokenList struct {
	Tokens []TokenView `json:"tokens"`
}

// DeviceView is a device as the caller may see it.
type DeviceView struct {
	DeviceStatus
	Site         string `json:"site,omitempty"`
	Enabled      bool   `json:"enabled"`      // "Remote access enabled"
	CanOpen      bool   `json:"canOpen"`      // the caller may open a session now (enabled, online, role)
	CanConfigure bool   `json:"canConfigure"` // the caller may change Enabled
	// NeedsApproval: a session needs a site admin's approval first
	// (customer.go); CanAdminister: the caller is a site admin of its site.
	NeedsApproval bool `json:"needsApproval,omitempty"`
	CanAdminister bool `json:"canAdminister,omitempty"`
	// WindowClosed: the site's time windows allow no session now;
	// NextWindow is when the next one opens, TimeZone the site's zone.
	WindowClosed bool      `json:"windowClosed,omitempty"`
	NextWindow   time.Time `json:"nextWindow,omitzero"`
	TimeZone     string    `json:"timeZone,omitempty"`
}

// SiteView is a site with the caller's roles on it and, in an overview,
// its devices.
type SiteView struct {
	ID      string       `json:"id"`
	Name    string       `json:"name"`
	Roles   []string     `json:"roles,omitempty"`
	Devices []DeviceView `json:"devices,omitempty"`
}

// Overview answers GET /v1/overview: the caller's sites with their devices.
// Devices whose agent belongs to no site are listed, for admins, under a
// site with an empty ID.
type Overview struct {
	User  Me         `json:"user"`
	Sites []SiteView `json:"sites"`
}

// DeviceUpdate is the body of PATCH /v1/devices/{id}. Name and Relaxed
// change only adopted devices (a device of the agent's file is the
// site's to change).
type DeviceUpdate struct {
	Enabled *bool   `json:"enabled"`
	Name    *string `json:"name,omitempty"`
	// Relaxed turns the identity check (MAC and serial, recorded at
	// adoption) off before sessions; the app warns first.
	Relaxed *bool `json:"relaxed,omitempty"`
}

// Adopt is the body of POST /v1/devices/adopt: a device of the agent's
// latest scan (by address) becomes a device of the site. An empty ID is
// derived from the name; nil Services means what the scan found.
type Adopt struct {
	Agent    string    `json:"agent"`
	Addr     string    `json:"addr"`
	ID       string    `json:"id,omitempty"`
	Name     string    `json:"name"`
	Services []Service `json:"services,omitempty"`
	Type     string    `json:"type,omitempty"`
	Relaxed  bool      `json:"relaxed,omitempty"`
}

// DiscoveredCandidate is a discovered device, with the ID of the device it became
// if it was adopted.
type DiscoveredCandidate struct {
	Discovered
	Adopted string `json:"adopted,omitempty"`
}

// AgentScan is one agent's latest scan.
type AgentScan struct {
	Agent      string                `json:"agent"`
	AgentName  string                `json:"agentName,omitempty"`
	Online     bool                  `json:"online"`
	Scan       string                `json:"scan,omitempty"`
	Scope      []string              `json:"scope,omitempty"`
	Started    time.Time             `json:"started,omitzero"`
	Finished   time.Time             `json:"finished,omitzero"`
	Probes     int                   `json:"probes,omitempty"`
	Truncated  bool                  `json:"truncated,omitempty"`
	Candidates []DiscoveredCandidate `json:"candidates"`
}

// DiscoveredList answers GET /v1/sites/{id}/discovered.
type DiscoveredList struct {
	Agents []AgentScan `json:"agents"`
}

// DiscoverStarted answers POST /v1/sites/{id}/discover: the agents asked
// to scan, and those offline.
type DiscoverStarted struct {
	Asked   []string `json:"asked"`
	Offline []string `json:"offline,omitempty"`
}

// SiteList answers GET /v1/sites.
type SiteList struct {
	Sites []SiteView `json:"sites"`
}

// NewSite is the body of POST /v1/sites. An empty ID is derived.
type NewSite struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
}

// UserView describes an account to admins.
type UserView struct {
	ID          string              `json:"id"`
	Name        string              `json:"name"`
	DisplayName string              `json:"displayName,omitempty"`
	Admin       bool                `json:"admin"`
	Disabled    bool                `json:"disabled"`
	TOTP        bool                `json:"totp"`
	Roles       map[string][]string `json:"roles"`
	// SSO: signs in with single sign-on (roles come from the provider's
	// groups). Invited: a local user without a password yet.
	SSO     bool `json:"sso,omitempty"`
	Invited bool `json:"invited,omitempty"`
}

// UserList answers GET /v1/users.
type UserList struct {
	Users []UserView `json:"users"`
}

// NewUser is the body of POST /v1/users.
type NewUser struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName,omitempty"`
	Password    string `json:"password"`
	Admin       bool   `json:"admin,omitempty"`
}

// UserUpdate is the body of PATCH /v1/users/{id}; absent fields stay.
// Setting Password ends the user's logins; ResetTOTP turns their second
// factor off.
type UserUpdate struct {
	DisplayName *string `json:"displayName,omitempty"`
	Admin       *bool   `json:"admin,omitempty"`
	Disabled    *bool   `json:"disabled,omitempty"`
	Password    *string `json:"password,omitempty"`
	ResetTOTP   bool    `json:"resetTotp,omitempty"`
}

// RoleUpdate is the body of PUT /v1/users/{id}/roles/{site}: the user's
// complete set of roles there (empty removes the user from the site).
type RoleUpdate struct {
	Roles []string `json:"roles"`
}

// AgentView describes an agent to admins.
type AgentView struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Site    string `json:"site,omitempty"`
	Online  bool   `json:"online"`
	Devices int    `json:"devices"`
}

// AgentList answers GET /v1/agents.
type AgentList struct {
	Agents []AgentView `json:"agents"`
}

// AgentUpdate is the body of PUT /v1/agents/{id}.
type AgentUpdate struct {
	Name string `json:"name,omitempty"`
	Site string `json:"site"` // "" takes the agent out of every site
}

// AuditEntry is one entry of the administration log (who, what, when),
// hash-chained: Hash covers the entry and Prev.
type AuditEntry struct {
	Seq    uint64            `json:"seq"`
	Time   time.Time         `json:"time"`
	Actor  string            `json:"actor"`
	Action string            `json:"action"`
	Target string            `json:"target,omitempty"`
	Site   string            `json:"site,omitempty"`
	Detail map[string]string `json:"detail,omitempty"`
	Prev   string            `json:"prev"`
	Hash   string            `json:"hash"`
}

// AuditList answers GET /v1/audit.
type AuditList struct {
	Entries []AuditEntry `json:"entries"`
}

// SessionAuth answers GET PathSessionAuth on a session origin: how the
// shell obtains its access token.
type SessionAuth struct {
	AuthorizationEndpoint string `json:"authorizationEndpoint"`
	TokenEndpoint         string `json:"tokenEndpoint"`
	ClientID              string `json:"clientId"`
	RedirectURI           string `json:"redirectUri"`
	// FragmentTokens says the server runs in development mode, where a
	// session token handed over in the URL fragment (#token=…) is accepted
	// instead of the OAuth flow.
	FragmentTokens bool `json:"fragmentTokens,omitempty"`
}

// TokenResponse answers a successful token request (RFC 6749 §5.1).
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"` // "Bearer"
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
	Session     string `json:"session,omitempty"`
}

// AuthServerMetadata describes the authorization server (RFC 8414). The
// endpoints are on the app origin, which may differ from the URL a client
// reached signaling by.
type AuthServerMetadata struct {
	Issuer                        string   `json:"issuer"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	RevocationEndpoint            string   `json:"revocation_endpoint,omitempty"`
	ResponseTypes                 []string `json:"response_types_supported"`
	GrantTypes                    []string `json:"grant_types_supported"`
	CodeChallengeMethods          []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethods []string `json:"revocation_endpoint_auth_methods_supported,omitempty"`
	Scopes                        []string `json:"scopes_supported,omitempty"`
	// CLICodeRedirectURI (an extension) is the redirect URI client
	// porthole-cli may use instead of a loopback one: the page shows
	// "<state>.<code>" for the user to paste into the command.
	CLICodeRedirectURI string `json:"porthole_cli_code_redirect_uri,omitempty"`
}

// OAuthError answers a failed OAuth request (RFC 6749 §5.2).
type OAuthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// OAuth error codes (RFC 6749).
const (
	OAuthInvalidRequest          = "invalid_request"
	OAuthInvalidClient           = "invalid_client"
	OAuthInvalidGrant            = "invalid_grant"
	OAuthUnsupportedGrantType    = "unsupported_grant_type"
	OAuthUnsupportedResponseType = "unsupported_response_type"
	OAuthAccessDenied            = "access_denied"
	OAuthLoginRequired           = "login_required"
)
