package proto

import (
	"strings"
	"time"
)

// The access log.
//
// The agent records every exchange it serves in a session — each HTTP
// request and each TCP stream — as an AccessEntry numbered from 1 without
// gaps per session. It ships them to signaling over its signaling
// connection in log.entries batches (session in the envelope); signaling
// stores each entry whose Seq is the next one of the session's log, skips
// any it already has (a batch re-sent after a reconnect), and answers
// log.ack with the highest Seq stored. The agent keeps every entry until it
// is acknowledged, and refuses new exchanges while its buffer of
// unacknowledged entries is full (CodeAuditBacklog): no log, no serving.
//
// session.path tells signaling how the technician is connected (the job's
// "connected (direct)" or "connected (relayed)" state).

// Access-log message types.
const (
	TypeAccessLog   MsgType = "log.entries"  // agent → signaling: AccessLog
	TypeAccessAck   MsgType = "log.ack"      // signaling → agent: AccessAck
	TypeSessionPath MsgType = "session.path" // agent → signaling: SessionPath
)

// Limits of the access log.
const (
	MaxAccessBatch = 256 // entries in one log.entries message
)

// Kinds of access-log entries.
const (
	AccessHTTP = "http"
	AccessTCP  = "tcp"
)

// Path types of a connected session.
const (
	PathDirect = "direct"
	PathRelay  = "relay"
)

// AccessEntry is one exchange the agent served.
type AccessEntry struct {
	Seq    uint64    `json:"seq"`
	Kind   string    `json:"kind"` // AccessHTTP or AccessTCP
	Time   time.Time `json:"time"` // when the exchange started
	Method string    `json:"method,omitempty"`
	URL    string    `json:"url,omitempty"` // the origin-form request target
	Port   int       `json:"port,omitempty"`
	// Status is the HTTP status the device answered; 0 when it did not.
	Status    int   `json:"status,omitempty"`
	ReqBytes  int64 `json:"reqBytes"`  // request body, or bytes to the device for TCP
	RespBytes int64 `json:"respBytes"` // response body, or bytes from the device
	// DurationUS is how long the exchange lasted, in microseconds.
	DurationUS int64 `json:"durationUs"`
	// Stream is the data channel that carried it.
	Stream int `json:"stream"`
	// Error is the code the exchange ended with when it did not complete.
	Error Code `json:"error,omitempty"`
	// Via is the path the exchange took: ViaWebRTC (a data channel) or
	// ViaSignaling (the fallback, fetch.go). Empty in entries older than
	// the fallback, which all took a data channel.
	Via string `json:"via,omitempty"`
	// Service is the kind of the device's service on Port (ServiceVNC for
	// its screen, …), as the agent's table declares it; empty for entries
	// of older agents.
	Service ServiceKind `json:"service,omitempty"`
	// ViewOnly marks a VNC stream the agent kept view-only.
	ViewOnly bool `json:"viewOnly,omitempty"`
	// Change flags a state-changing request: a method other than GET,
	// HEAD and OPTIONS, or a GET with a query to a path the device's
	// declaration lists among its actions.
	Change bool `json:"change,omitempty"`
	// Refused is why the agent's policy refused the exchange (the
	// grant's or the site's scope); it never reached the device.
	Refused string `json:"refused,omitempty"`
	// Form is what a form submission sent, with secrets redacted at the
	// agent (internal/redact) before the entry left it.
	Form *AccessForm `json:"form,omitempty"`
}

// Encodings of a recorded form.
const (
	FormURLEncoded = "urlencoded" // application/x-www-form-urlencoded
	FormMultipart  = "multipart"  // multipart/form-data
	FormJSON       = "json"       // application/json: nested keys joined with "."
)

// Limits of a recorded form: past them the form is Truncated.
const (
	MaxFormFields = 64
	MaxFieldName  = 128
	MaxFieldValue = 256
	MaxFormBytes  = 8 << 10 // names and values together
)

// AccessForm is the fields of a form submission.
type AccessForm struct {
	Encoding  string        `json:"encoding"` // one of the Form… values
	Fields    []AccessField `json:"fields"`
	Truncated bool          `json:"truncated,omitempty"` // more fields or bytes than recorded
}

// AccessField is one field of a form. A secret's value is never
// recorded: Redacted says one was sent.
type AccessField struct {
	Name     string `json:"name"`
	Value    string `json:"value,omitempty"`
	Redacted bool   `json:"redacted,omitempty"`
	File     string `json:"file,omitempty"` // a file part's file name; its content is never recorded
	Size     int64  `json:"size,omitempty"` // a file part's bytes
}

// Validate checks a form's bounds.
func (f *AccessForm) Validate() error {
	switch f.Encoding {
	case FormURLEncoded, FormMultipart, FormJSON:
	default:
		return Errorf(CodeBadMessage, "access form: unknown encoding %.20q", f.Encoding)
	}
	if len(f.Fields) > MaxFormFields {
		return Errorf(CodeTooLarge, "access form: over %d fields", MaxFormFields)
	}
	n := 0
	for _, fd := range f.Fields {
		if len(fd.Name) > MaxFieldName || len(fd.Value) > MaxFieldValue || len(fd.File) > MaxFieldName || fd.Size < 0 {
			return Errorf(CodeTooLarge, "access form: field over its bounds")
		}
		if fd.Redacted && fd.Value != "" {
			return Errorf(CodeBadMessage, "access form: a redacted field carries a value")
		}
		n += len(fd.Name) + len(fd.Value) + len(fd.File)
	}
	if n > MaxFormBytes {
		return Errorf(CodeTooLarge, "access form: over %d bytes", MaxFormBytes)
	}
	return nil
}

// MaxRefusal bounds AccessEntry.Refused.
const MaxRefusal = 512

// SizeHint is about how many bytes e takes in a batch.
func (e *AccessEntry) SizeHint() int {
	n := 256 + 2*len(e.URL) + len(e.Refused)
	if e.Form != nil {
		for _, f := range e.Form.Fields {
			n += 48 + 2*(len(f.Name)+len(f.Value)+len(f.File))
		}
	}
	return n
}

// AccessLog is the body of log.entries: consecutive entries of the
// envelope's session, in order.
type AccessLog struct {
	Entries []AccessEntry `json:"entries"`
}

// AccessAck is the body of log.ack: every entry of the envelope's session up
// to and including Seq is stored.
type AccessAck struct {
	Seq uint64 `json:"seq"`
}

// SessionPath is the body of session.path.
type SessionPath struct {
	Path string `json:"path"` // PathDirect or PathRelay
	// Local and Remote are the candidate types of the selected pair
	// ("host", "srflx", "prflx", "relay").
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
	// Relay is, when the agent's end of the pair is a relay candidate,
	// how the agent reaches the relay: "udp", "tcp" or "tls".
	Relay string `json:"relay,omitempty"`
	// Proxy is the site's HTTP proxy (host:port) that the agent's relay
	// connection is tunnelled through, if any.
	Proxy string `json:"proxy,omitempty"`
	// Site says why the site needs the relay, when the agent can tell
	// from its own candidates: one of the Site… values.
	Site string `json:"site,omitempty"`
	// RelayServer is, when the path is relayed, which relay: the agent's
	// own, or else the technician's (both are among the session's relays),
	// as the TURN URL it came from when the agent can tell, else the
	// relay's address. The job lists each relay a session
	// used (a relay lost mid-session moves it to another).
	RelayServer string `json:"relayServer,omitempty"`
}

// Why a site needs the relay, as its agent tells from what it gathered
// (SessionPath.Site). The browser's toolbar words them in
// web/session/pathreason.js; SiteReason words them for the job.
const (
	SiteProxyOnly  = "proxy-only"  // no UDP, no direct TCP: TURN over TCP/TLS through the site's HTTP proxy
	SiteTLSOnly    = "tls-only"    // UDP and plain TCP to the relay blocked: TURN over TLS
	SiteUDPBlocked = "udp-blocked" // UDP blocked: TURN over TCP
	// SiteNoDirect: UDP gets out (the agent has a server-reflexive
	// candidate), yet no direct pair worked: the NATs on the way (at
	// the site, the technician's, or both) let no direct path through.
	// The technician's side can tell which from both sides' candidates
	// (the toolbar does); the job records this.
	SiteNoDirect = "no-direct"
)

// SiteReason words a Site… value for people ("" for an unknown one).
func SiteReason(site string) string {
	switch site {
	case SiteProxyOnly:
		return "site allows only an HTTP proxy"
	case SiteTLSOnly:
		return "site lets only TLS out (UDP and plain TCP blocked)"
	case SiteUDPBlocked:
		return "UDP blocked at the site"
	case SiteNoDirect:
		return "no direct path through the NATs"
	}
	return ""
}

// Describe is the path on one line for a job's record: "relay (TURN/TLS
// through proxy 10.0.0.1:3128): site allows only an HTTP proxy".
func (p *SessionPath) Describe() string {
	d := p.Path
	if p.Relay != "" {
		d += " (TURN/" + strings.ToUpper(p.Relay)
		if p.Proxy != "" {
			d += " through proxy " + p.Proxy
		}
		d += ")"
	}
	if r := SiteReason(p.Site); r != "" {
		d += ": " + r
	}
	return d
}

// Validate checks one entry.
func (e *AccessEntry) Validate() error {
	switch {
	case e.Seq == 0:
		return Errorf(CodeBadMessage, "access entry: seq starts at 1")
	case e.Kind != AccessHTTP && e.Kind != AccessTCP:
		return Errorf(CodeBadMessage, "access entry %d: unknown kind %.20q", e.Seq, e.Kind)
	case e.Time.IsZero():
		return Errorf(CodeBadMessage, "access entry %d: no time", e.Seq)
	case len(e.Method) > 32 || strings.ContainsAny(e.Method, " \r\n\t"):
		return Errorf(CodeBadMessage, "access entry %d: malformed method", e.Seq)
	case len(e.URL) > MaxTarget:
		return Errorf(CodeTooLarge, "access entry %d: URL too long", e.Seq)
	case e.Port < 0 || e.Port > 65535:
		return Errorf(CodeBadMessage, "access entry %d: port out of range", e.Seq)
	case e.Status < 0 || e.Status > 999:
		return Errorf(CodeBadMessage, "access entry %d: status out of range", e.Seq)
	case e.ReqBytes < 0 || e.RespBytes < 0 || e.DurationUS < 0:
		return Errorf(CodeBadMessage, "access entry %d: negative count", e.Seq)
	case e.Stream < 0 || e.Stream > 65535:
		return Errorf(CodeBadMessage, "access entry %d: stream out of range", e.Seq)
	case e.Error != "" && !e.Error.Known():
		return Errorf(CodeBadMessage, "access entry %d: unknown error code", e.Seq)
	case e.Via != "" && e.Via != ViaWebRTC && e.Via != ViaSignaling:
		return Errorf(CodeBadMessage, "access entry %d: unknown path %.20q", e.Seq, e.Via)
	case e.Service != "" && e.Service != ServiceWeb && e.Service != ServiceSSH && e.Service != ServiceVNC && e.Service != ServiceTCP:
		return Errorf(CodeBadMessage, "access entry %d: unknown service %.20q", e.Seq, e.Service)
	case len(e.Refused) > MaxRefusal:
		return Errorf(CodeTooLarge, "access entry %d: refusal over %d bytes", e.Seq, MaxRefusal)
	}
	if e.Form != nil {
		if err := e.Form.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a batch: 1 to MaxAccessBatch valid entries with
// consecutive sequence numbers.
func (l *AccessLog) Validate() error {
	if len(l.Entries) == 0 || len(l.Entries) > MaxAccessBatch {
		return Errorf(CodeBadMessage, "log.entries: 1 to %d entries", MaxAccessBatch)
	}
	for i := range l.Entries {
		if err := l.Entries[i].Validate(); err != nil {
			return err
		}
		if i > 0 && l.Entries[i].Seq != l.Entries[i-1].Seq+1 {
			return Errorf(CodeBadMessage, "log.entries: sequence numbers must be consecutive")
		}
	}
	return nil
}

// Validate checks an acknowledgement.
func (a *AccessAck) Validate() error { return nil }

// Validate checks a path report.
func (p *SessionPath) Validate() error {
	if p.Path != PathDirect && p.Path != PathRelay {
		return Errorf(CodeBadMessage, "session.path: path must be direct or relay")
	}
	if len(p.Local) > 16 || len(p.Remote) > 16 {
		return Errorf(CodeTooLarge, "session.path: candidate type too long")
	}
	switch p.Relay {
	case "", "udp", "tcp", "tls":
	default:
		return Errorf(CodeBadMessage, "session.path: relay transport must be udp, tcp or tls")
	}
	if len(p.Proxy) > 255 || strings.ContainsAny(p.Proxy, " \r\n\t\"") {
		return Errorf(CodeBadMessage, "session.path: malformed proxy address")
	}
	if p.Site != "" && SiteReason(p.Site) == "" {
		return Errorf(CodeBadMessage, "session.path: unknown site reason %.20q", p.Site)
	}
	if len(p.RelayServer) > 255 || strings.ContainsAny(p.RelayServer, " \r\n\t\"") {
		return Errorf(CodeBadMessage, "session.path: malformed relay server")
	}
	return nil
}
