package proto

import "time"

// The jobs API: every session is kept as a job with its lifecycle and its
// complete access log.

// Jobs API paths.
const (
	PathJobs         = "/v1/jobs"                // GET ?user=&device=&site=&path=&reason=&from=&to=&minDuration=&maxDuration=&limit= → JobList
	PathJob          = "/v1/jobs/{id}"           // GET → JobView
	PathJobLog       = "/v1/jobs/{id}/log"       // GET ?after=N&limit=M → JobLog
	PathJobExport    = "/v1/jobs/{id}/export"    // GET ?format=json|har → a download
	PathJobVerify    = "/v1/jobs/{id}/verify"    // GET → AuditVerification of the job's access log
	PathJobTerminate = "/v1/jobs/{id}/terminate" // admin: POST → JobView (the live session ends, reason admin)
	PathAuditVerify  = "/v1/audit/verify"        // admin: GET ?stream=admin|session/<id> → AuditVerification
)

// JobEndVerificationFailed is the end reason of a job whose device failed
// its identity check (the other reasons are EndReason values).
const JobEndVerificationFailed = "device_verification_failed"

// JobTransition is one step of a job's life.
type JobTransition struct {
	State  string    `json:"state"` // requested, verifying, ready, connected, ended
	Time   time.Time `json:"time"`
	Detail string    `json:"detail,omitempty"`
}

// JobRelay is one TURN relay a job's session went through, from when the
// agent reported the path through it until it moved off it (zero while it
// still does, or until the end).
type JobRelay struct {
	Relay string    `json:"relay"` // proto.SessionPath.RelayServer
	From  time.Time `json:"from"`
	Until time.Time `json:"until,omitzero"`
}

// JobView is one job.
type JobView struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"` // "Open Device Webpage", "Open Device Port", "Open Device Screen" or "Open Device Terminal"
	User        string    `json:"user"`
	UserName    string    `json:"userName,omitempty"`
	Agent       string    `json:"agent"`
	Device      string    `json:"device"`
	DeviceName  string    `json:"deviceName,omitempty"` // as its agent declared it when the job began
	Site        string    `json:"site,omitempty"`
	SiteName    string    `json:"siteName,omitempty"`
	State       string    `json:"state"`
	Live        bool      `json:"live"`
	Path        string    `json:"path,omitempty"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end,omitzero"`
	Expires     time.Time `json:"expires"`
	DurationMS  int64     `json:"durationMs"`
	EndReason   string    `json:"endReason,omitempty"`
	EndMessage  string    `json:"endMessage,omitempty"`
	EndedBy     string    `json:"endedBy,omitempty"`
	EndedByName string    `json:"endedByName,omitempty"`
	Requests    int64     `json:"requests"`
	TCPStreams  int64     `json:"tcpStreams"`
	ReqBytes    int64     `json:"reqBytes"`
	RespBytes   int64     `json:"respBytes"`
	Bytes       int64     `json:"bytes"`
	LogEntries  uint64    `json:"logEntries"`
	// Changes and Refused count the access log's state-changing requests
	// and its exchanges refused by the site's policy.
	Changes int64           `json:"changes,omitempty"`
	Refused int64           `json:"refused,omitempty"`
	States  []JobTransition `json:"states,omitempty"`
	// Relays lists each relay the session used, in order (a relay lost
	// mid-session moves it to another).
	Relays []JobRelay `json:"relays,omitempty"`
	// The approval the session was opened with, when its device needed one.
	ApprovalRequest string    `json:"approvalRequest,omitempty"`
	ApprovedBy      string    `json:"approvedBy,omitempty"`
	ApprovedByName  string    `json:"approvedByName,omitempty"`
	ApprovedAt      time.Time `json:"approvedAt,omitzero"`
	ApprovalReason  string    `json:"approvalReason,omitempty"`
	ApprovalComment string    `json:"approvalComment,omitempty"`
}

// JobList answers GET PathJobs, newest first.
type JobList struct {
	Jobs []JobView `json:"jobs"`
}

// LoggedAccess is a stored access-log entry with its place in the chain.
type LoggedAccess struct {
	AccessEntry
	Prev string `json:"prev"`
	Hash string `json:"hash"`
}

// JobLog answers GET PathJobLog.
type JobLog struct {
	Job     string         `json:"job"`
	Entries []LoggedAccess `json:"entries"`
	More    bool           `json:"more,omitempty"`
}

// AuditVerification answers the verify calls: whether a log is untouched,
// or its first broken entry.
type AuditVerification struct {
	Stream   string `json:"stream"`
	OK       bool   `json:"ok"`
	Entries  uint64 `json:"entries"`
	Attested uint64 `json:"attested"` // entries its signed checkpoint vouches for
	Broken   uint64 `json:"broken,omitempty"`
	Problem  string `json:"problem,omitempty"`
}
