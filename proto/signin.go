package proto

import "time"

// Ways to sign in besides a password: single sign-on with an OpenID
// Connect identity provider, and one-time links that let a local user set
// a password (an invitation, a reset, the first admin's link).

// API paths.
const (
	PathSignIn      = "/v1/signin"          // GET → SignInOptions (no credentials needed)
	PathSSOStart    = "/v1/sso/start"       // GET: redirects to the identity provider (authorization code + PKCE)
	PathSSOCallback = "/v1/sso/callback"    // GET: the identity provider's redirect back; signs in, redirects to the app
	PathLinkRedeem  = "/v1/password-link"   // POST PasswordLinkRedeem → LoginResult (sets the password, signs in)
	PathUserLink    = "/v1/users/{id}/link" // admin: POST NewPasswordLink → CreatedPasswordLink
)

// LinkFragment starts the fragment of a password link in the app:
// https://app.example.com/#password/<secret>. A fragment never reaches a
// server log or a Referer header.
const LinkFragment = "#password/"

// SSOErrorParam is the fragment parameter the app gets back after a
// failed single sign-on: /#signin?sso=<code>, code one of the SSOError…
// values, so the page shows a sentence, never the provider's text.
const SSOErrorParam = "sso"

// Codes of a failed single sign-on.
const (
	SSOErrorDenied      = "denied"      // the provider refused, or the user cancelled
	SSOErrorState       = "state"       // the answer did not belong to this browser's sign-in (retry)
	SSOErrorUnavailable = "unavailable" // the provider could not be reached or answered badly
	SSOErrorConflict    = "conflict"    // a local account has the name the provider gave
	SSOErrorDisabled    = "disabled"    // the account is disabled in Porthole
)

// SignInOptions says how the sign-in page may sign in.
type SignInOptions struct {
	LocalLogin bool        `json:"localLogin"`
	SSO        *SSOOptions `json:"sso,omitempty"`
}

// SSOOptions describes the single sign-on button.
type SSOOptions struct {
	Name string `json:"name"` // "Sign in with <Name>"
	URL  string `json:"url"`  // where the button goes: PathSSOStart
}

// Kinds of password link.
const (
	LinkInvite = "invite" // a new user chooses a first password (7 days)
	LinkReset  = "reset"  // an existing user chooses a new one (24 hours)
)

// NewPasswordLink is the body of POST PathUserLink.
type NewPasswordLink struct {
	Kind string `json:"kind"` // LinkInvite or LinkReset
}

// CreatedPasswordLink is shown once to the admin who made it.
type CreatedPasswordLink struct {
	Kind    string    `json:"kind"`
	User    string    `json:"user"` // user name
	URL     string    `json:"url"`  // the app origin + LinkFragment + secret
	Expires time.Time `json:"expires"`
}

// PasswordLinkRedeem is the body of POST PathLinkRedeem.
type PasswordLinkRedeem struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}
