package store

import (
	"context"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// Job types: what a session was opened for.
const (
	JobWebpage = "Open Device Webpage"
	JobPort    = "Open Device Port"
	// JobScreen is a session that reached only the device's VNC service:
	// its screen, in the browser (noVNC) or through porthole forward.
	JobScreen = "Open Device Screen"
	// JobTerminal is a session that reached only the device's SSH
	// service: a terminal, in the browser or through porthole ssh.
	JobTerminal = "Open Device Terminal"
)

// JobState is where a session is in its life.
type JobState string

// Job states, in the order a session passes them.
const (
	JobRequested JobState = "requested" // signaling created it
	JobVerifying JobState = "verifying" // the agent is verifying the device
	JobReady     JobState = "ready"     // the agent accepted; waiting for the technician's peer
	JobConnected JobState = "connected" // the technician is connected (Path says how)
	JobEnded     JobState = "ended"     // over; EndReason says why
)

// JobTransition is one state change of a job.
type JobTransition struct {
	State  JobState  `json:"state"`
	Time   time.Time `json:"time"`
	Detail string    `json:"detail,omitempty"` // e.g. the path type, the end reason
}

// Job is one session kept as an audited job: who opened which device, how
// it was connected, how it ended, and totals of its access log (the
// "session/<ID>" audit stream, see SessionStream).
type Job struct {
	ID     string `json:"id"` // the session ID
	Type   string `json:"type"`
	User   string `json:"user"`
	Agent  string `json:"agent"`
	Device string `json:"device"`
	// DeviceName is the device's name as its agent declared it when the
	// session was requested (people read names; IDs stay for the CLI).
	DeviceName string    `json:"deviceName,omitempty"`
	Site       string    `json:"site,omitempty"`
	Node       string    `json:"node,omitempty"`
	State      JobState  `json:"state"`
	Path       string    `json:"path,omitempty"` // "direct" or "relay" once connected
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
	Ended      time.Time `json:"ended,omitzero"`
	// EndReason is a proto.EndReason, or "device_verification_failed".
	EndReason  string          `json:"endReason,omitempty"`
	EndMessage string          `json:"endMessage,omitempty"`
	EndedBy    string          `json:"endedBy,omitempty"` // the admin who terminated it
	States     []JobTransition `json:"states,omitempty"`
	// Relays lists the relays the session went through, in order
	// (proto.JobRelay).
	Relays []proto.JobRelay `json:"relays,omitempty"`
	// Totals of the access log, kept as entries are stored.
	Requests  int64  `json:"requests"`
	TCP       int64  `json:"tcp"`
	ReqBytes  int64  `json:"reqBytes"`
	RespBytes int64  `json:"respBytes"`
	LogSeq    uint64 `json:"logSeq"` // the last access-log entry stored
	// Approval is the site admin's approval the session was opened with.
	Approval *proto.GrantApproval `json:"approval,omitempty"`
	// Changes counts the state-changing requests stored, Refused the
	// exchanges the agent's policy refused (issue 18).
	Changes int64 `json:"changes,omitempty"`
	Refused int64 `json:"refused,omitempty"`
}

// SessionStream names the audit stream holding a session's access log.
func SessionStream(session string) string { return "session/" + session }

// Checkpoint is a signed statement of an audit stream's head: its length and
// the hash of its last entry. Checkpoints live outside the stream, so an
// entry cut off the tail is detected even though the chain stays linked.
type Checkpoint struct {
	Stream string    `json:"stream"`
	Seq    uint64    `json:"seq"`
	Hash   string    `json:"hash"`
	Time   time.Time `json:"time"`
	Key    string    `json:"key"` // identifies the signing key
	Sig    string    `json:"sig"` // base64 signature (package auditlog)
}

// JobStore keeps jobs, appends sequenced access-log entries and keeps
// checkpoints. Part of Store; every backend implements it.
type JobStore interface {
	// PutJob stores a new job; ErrExists if its ID is taken.
	PutJob(ctx context.Context, j *Job) error
	// Job returns a job; ErrNotFound if none.
	Job(ctx context.Context, id string) (*Job, error)
	// UpdateJob applies fn to the stored job atomically and stores the
	// result unless fn returns an error (returned as is). fn must not
	// change ID (ErrConflict) and may run more than once.
	UpdateJob(ctx context.Context, id string, fn func(*Job) error) (*Job, error)
	// Jobs lists up to limit jobs created before before (all if before is
	// zero), newest first. A limit of 0 or less means all.
	Jobs(ctx context.Context, before time.Time, limit int) ([]*Job, error)

	// AppendAuditAt appends e to stream only if e.Seq is the stream's next
	// sequence number, setting Prev and Hash; an entry whose Seq is already
	// stored gives ErrExists (a duplicate, the stored one is kept), and one
	// past the next gives ErrConflict (a gap).
	AppendAuditAt(ctx context.Context, stream string, e *AuditEntry) (*AuditEntry, error)
	// AppendAuditBatch appends entries to stream in one atomic step, as
	// AppendAuditAt would one after the other: an entry whose Seq is
	// already stored is skipped (the stored one is kept), and the first one
	// past the next sequence number (a gap) stops the batch with
	// ErrConflict; the entries before it are stored all the same. It
	// returns the entries it stored, in order, with Prev and Hash set (also
	// alongside ErrConflict). An entry with Seq 0 or an empty stream is
	// ErrBadRecord and stores nothing.
	AppendAuditBatch(ctx context.Context, stream string, entries []*AuditEntry) ([]*AuditEntry, error)

	// PutCheckpoint stores c as the stream's checkpoint unless the stored
	// one is for a longer log (ErrConflict): checkpoints only move forward.
	PutCheckpoint(ctx context.Context, c *Checkpoint) error
	// Checkpoint returns the stream's checkpoint; ErrNotFound if none.
	Checkpoint(ctx context.Context, stream string) (*Checkpoint, error)

	// AppendRecording appends chunk seq of job's terminal recording
	// (asciicast, proto/recording.go) only if seq is the recording's next
	// chunk number, and returns the number of its last chunk stored: a
	// chunk already stored is skipped (nil error), one past the next gives
	// ErrConflict (a gap), and one that would make the recording longer
	// than limit bytes is not stored (ErrBadRecord) though its number
	// counts, so the recording stays bounded and the sender moves on.
	AppendRecording(ctx context.Context, job string, seq uint64, data []byte, limit int) (uint64, error)
	// Recording returns job's terminal recording; ErrNotFound if none.
	Recording(ctx context.Context, job string) ([]byte, error)
}
