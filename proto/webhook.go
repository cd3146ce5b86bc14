package proto

import "time"

// Webhooks (issue 18): signaling tells a site's subscribers what happens to
// sessions on the site. A delivery is an HTTP POST of one WebhookEvent as
// JSON, signed with HMAC-SHA256 over the body with the subscription's
// secret; the signature and the delivery's id travel in the headers below.

// Webhook headers of every delivery.
const (
	WebhookSignatureHeader = "Porthole-Signature" // "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>"
	WebhookEventHeader     = "Porthole-Event"     // the event's Type
	WebhookDeliveryHeader  = "Porthole-Delivery"  // the delivery id, the same on every retry
)

// Webhook event types.
const (
	WebhookSessionRequested  = "session.requested"  // a technician asked for approval
	WebhookSessionApproved   = "session.approved"   // a site admin approved
	WebhookSessionDenied     = "session.denied"     // a site admin denied
	WebhookSessionExpired    = "session.expired"    // nobody answered the request in time
	WebhookSessionStarted    = "session.started"    // the session connected
	WebhookSessionEnded      = "session.ended"      // it ended (time limit, either side)
	WebhookSessionTerminated = "session.terminated" // an admin or site admin ended it
	WebhookPolicyRefused     = "policy.refused"     // a session or a request was refused by policy
)

// WebhookEvent is the body of one delivery.
type WebhookEvent struct {
	ID      string    `json:"id"`   // unique per event
	Type    string    `json:"type"` // one of the Webhook* types
	Time    time.Time `json:"time"`
	Site    string    `json:"site"`
	Device  string    `json:"device,omitempty"`
	User    string    `json:"user,omitempty"`    // the technician
	Session string    `json:"session,omitempty"` // the job/session id, once there is one
	Request string    `json:"request,omitempty"` // the approval request id
	Reason  string    `json:"reason,omitempty"`  // the technician's reason, or why policy refused
	By      string    `json:"by,omitempty"`      // who approved, denied or terminated
	Comment string    `json:"comment,omitempty"` // the approver's comment
	Until   time.Time `json:"until,omitzero"`    // when an approval or a session expires
}
