package proto

import "time"

// The webhooks API: a site's subscriptions and their delivery logs, for
// admins and the site's site admins.
const (
	PathWebhooks          = "/v1/sites/{site}/webhooks"                 // GET → WebhookList; POST NewWebhook → WebhookCreated
	PathWebhook           = "/v1/sites/{site}/webhooks/{id}"            // DELETE
	PathWebhookTest       = "/v1/sites/{site}/webhooks/{id}/test"       // POST → 202 WebhookEvent (queued)
	PathWebhookDeliveries = "/v1/sites/{site}/webhooks/{id}/deliveries" // GET ?limit=N → WebhookDeliveryList
)

// WebhookTest is the type of the event that the test endpoint sends.
const WebhookTest = "webhook.test"

// WebhookTypes lists the event types a subscription can filter on.
var WebhookTypes = []string{WebhookSessionRequested, WebhookSessionApproved, WebhookSessionDenied, WebhookSessionExpired,
	WebhookSessionStarted, WebhookSessionEnded, WebhookSessionTerminated, WebhookPolicyRefused}

// NewWebhook subscribes an endpoint to a site's events.
type NewWebhook struct {
	URL    string   `json:"url"`              // https://…
	Events []string `json:"events,omitempty"` // WebhookTypes; empty means all
}

// WebhookView is a subscription as the API shows it: never its secret.
type WebhookView struct {
	ID        string    `json:"id"`
	Site      string    `json:"site"`
	URL       string    `json:"url"`
	Events    []string  `json:"events,omitempty"`
	CreatedBy string    `json:"createdBy,omitempty"`
	Created   time.Time `json:"created"`
}

// WebhookCreated answers the creation, the only time the secret is shown.
type WebhookCreated struct {
	WebhookView
	Secret string `json:"secret"` // the HMAC-SHA256 key of Porthole-Signature
}

// WebhookList is a site's subscriptions.
type WebhookList struct {
	Webhooks []WebhookView `json:"webhooks"`
}

// WebhookDelivery is one event's delivery to one subscription.
type WebhookDelivery struct {
	ID        string    `json:"id"` // the Porthole-Delivery header, the same on every retry
	Event     string    `json:"event"`
	EventID   string    `json:"eventId"`
	Status    string    `json:"status"` // pending, delivered or failed
	Attempts  int       `json:"attempts"`
	Code      int       `json:"code,omitempty"` // the endpoint's last HTTP status
	LastError string    `json:"lastError,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
}

// WebhookDeliveryList is a subscription's delivery log, newest first.
type WebhookDeliveryList struct {
	Deliveries []WebhookDelivery `json:"deliveries"`
}
