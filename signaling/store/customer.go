package store

import (
	"context"
	"time"
)

// Request is a technician's request for a session on a device whose
// policy needs a site admin's approval (proto.RequestView shows it).
// State moves pending → approved → used, or pending → denied / expired
// / canceled, or approved → expired when the approval is not used in time.
type Request struct {
	ID      string    `json:"id"`
	Site    string    `json:"site"`
	Agent   string    `json:"agent"`
	Device  string    `json:"device"`
	User    string    `json:"user"`
	Reason  string    `json:"reason"`
	Minutes int       `json:"minutes"`
	State   string    `json:"state"` // a proto.Request* state
	Created time.Time `json:"created"`
	// Expires is when a pending request expires unanswered, then when an
	// approval expires unused.
	Expires   time.Time `json:"expires"`
	DecidedBy string    `json:"decidedBy,omitempty"`
	Decided   time.Time `json:"decided,omitzero"`
	Comment   string    `json:"comment,omitempty"`
	Session   string    `json:"session,omitempty"` // set when used
}

// RequestStore keeps approval requests. Part of Store; every backend
// implements it.
type RequestStore interface {
	// PutRequest stores a new request; ErrExists if its ID is taken.
	PutRequest(ctx context.Context, r *Request) error
	// Request returns a request; ErrNotFound if none.
	Request(ctx context.Context, id string) (*Request, error)
	// UpdateRequest applies fn to the stored request atomically and stores
	// the result unless fn returns an error (returned as is). fn must not
	// change ID or Site (ErrConflict) and may run more than once.
	UpdateRequest(ctx context.Context, id string, fn func(*Request) error) (*Request, error)
	// Requests lists the requests of site created at or after since,
	// oldest first.
	Requests(ctx context.Context, site string, since time.Time) ([]*Request, error)
}
