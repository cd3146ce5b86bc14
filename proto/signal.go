package proto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Version is the signaling protocol version this package speaks.
const Version = 1

// Limits on signaling messages. They are far above what honest peers send
// (an SDP offer is a few KiB) and low enough that a hostile peer cannot make
// a node buffer much.
const (
	MaxSignalMessage = 64 << 10 // bytes in one WebSocket message
	MaxJSONDepth     = 16       // nesting of objects and arrays
	MaxSDP           = 32 << 10
	MaxCandidate     = 1 << 10
	MaxDevices       = 1024 // devices one agent may declare
	MaxPorts         = 64   // ports one device may declare
	MaxICEServers    = 8
	MaxText          = 512 // free text such as names, messages and reasons
)

// MsgType names a signaling message.
type MsgType string

// Signaling message types.
const (
	TypeHello        MsgType = "hello"         // first message of an agent or client
	TypeWelcome      MsgType = "welcome"       // signaling's reply to hello
	TypeSessionOpen  MsgType = "session.open"  // client asks for a session; signaling tells the agent
	TypeSessionReady MsgType = "session.ready" // agent accepts; signaling tells the client
	TypeSessionEnd   MsgType = "session.end"   // either side, or signaling, ends a session
	TypeOffer        MsgType = "offer"         // SDP offer, client → agent
	TypeAnswer       MsgType = "answer"        // SDP answer, agent → client
	TypeCandidate    MsgType = "candidate"     // trickled ICE candidate, both ways
	TypeError        MsgType = "error"         // a refusal, with a code
)

// Envelope is one signaling message.
type Envelope struct {
	V       int             `json:"v"`
	Type    MsgType         `json:"type"`
	Session string          `json:"session,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Role says which kind of peer sent a hello.
type Role string

// Peer roles.
const (
	RoleAgent  Role = "agent"
	RoleClient Role = "client"
)

// Hello is the first message on a signaling connection.
type Hello struct {
	Role     Role     `json:"role"`
	Software string   `json:"software,omitempty"` // e.g. "porthole-agent/0.1.0"
	Devices  []Device `json:"devices,omitempty"`  // agents only: the declared inventory
	// Region is the agent's configured region, e.g. "eu-west": signaling
	// hands its sessions the TURN relays of that region first (relays.go).
	Region string `json:"region,omitempty"`
	// Fetch is, for agents, the version of the signaling fallback
	// (fetch.go) the agent serves; 0 for agents that predate it.
	Fetch int `json:"fetch,omitempty"`
	// Inventory says, for agents, that the agent applies the inventory
	// signaling sends (discovery.go); agents that predate it are sent none.
	Inventory bool `json:"inventory,omitempty"`
}

// Device is a device as an agent declares it: an ID the technician names,
// never an address. Addresses stay in the agent's own configuration.
type Device struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Ports    []int  `json:"ports,omitempty"`
	HTTPPort int    `json:"httpPort,omitempty"` // the port whose web page "open" shows; 0: no web page
	Scheme   string `json:"scheme,omitempty"`   // "http" or "https" towards the device
	// Services say what each declared port is (web, SSH, VNC or raw
	// TCP), so clients can offer the right way in. Ports lists the same
	// ports; older agents send no services.
	Services []Service `json:"services,omitempty"`
	// Health is the agent's last check of the device (inventory.go).
	Health *DeviceHealth `json:"health,omitempty"`
	// Policy is the site's own policy for the device in the agent's
	// file (policy.go), absent without one.
	Policy *AgentPolicy `json:"policy,omitempty"`
}

// ServiceKind names what a device offers on a port.
type ServiceKind string

// Service kinds. A device may offer any set of them, none required.
const (
	ServiceWeb ServiceKind = "web" // its web page, through the tunnel's HTTP path
	ServiceSSH ServiceKind = "ssh" // an SSH server (porthole ssh)
	ServiceVNC ServiceKind = "vnc" // an RFB (VNC) server
	ServiceTCP ServiceKind = "tcp" // any other TCP port (porthole forward)
)

// Service is one way into a device.
type Service struct {
	Kind   ServiceKind `json:"kind"`
	Port   int         `json:"port"`
	Scheme string      `json:"scheme,omitempty"` // web only: "http" or "https"
	Name   string      `json:"name,omitempty"`   // for people, e.g. "raw printing"
}

// Validate checks one service of device.
func (s *Service) Validate(device string) error {
	switch s.Kind {
	case ServiceWeb:
		switch s.Scheme {
		case "", "http", "https":
		default:
			return Errorf(CodeBadMessage, "device %s: web service scheme must be http or https", device)
		}
	case ServiceSSH, ServiceVNC, ServiceTCP:
		if s.Scheme != "" {
			return Errorf(CodeBadMessage, "device %s: only a web service has a scheme", device)
		}
	default:
		return Errorf(CodeBadMessage, "device %s: unknown service kind %.20q (want web, ssh, vnc or tcp)", device, s.Kind)
	}
	if s.Port < 1 || s.Port > 65535 {
		return Errorf(CodeBadMessage, "device %s: %s service port %d out of range", device, s.Kind, s.Port)
	}
	if len(s.Name) > MaxText {
		return Errorf(CodeTooLarge, "device %s: service name too long", device)
	}
	return nil
}

// Service returns d's first service of kind, if any.
func (d *Device) Service(kind ServiceKind) (Service, bool) {
	for _, s := range d.Services {
		if s.Kind == kind {
			return s, true
		}
	}
	return Service{}, false
}

// Welcome answers a hello.
type Welcome struct {
	ID      string   `json:"id"` // the connection's identity as signaling knows it (agent or user)
	Node    string   `json:"node,omitempty"`
	Devices []Device `json:"devices,omitempty"` // clients: devices they may open (with their agent's ID prefix)
	// Relays are, for agents, the TURN relay URLs to measure and report
	// with relay.rtt (relays.go).
	Relays []string `json:"relays,omitempty"`
}

// SessionOpen asks for a session (client → signaling) or announces one
// (signaling → agent, with Session in the envelope and the other fields set).
type SessionOpen struct {
	Device     string      `json:"device"`
	User       string      `json:"user,omitempty"`
	Expires    time.Time   `json:"expires,omitzero"`
	ICEServers []ICEServer `json:"iceServers,omitempty"`
	Grant      string      `json:"grant,omitempty"` // signed session grant (identity issue)
}

// SessionReady tells the client that the agent accepted the session.
type SessionReady struct {
	Device string `json:"device,omitempty"`
	// DeviceName and SiteName are what the session window shows the
	// technician: the device's name as its agent declared it, and the
	// name of the site (the customer) it belongs to. Empty when unknown.
	DeviceName string      `json:"deviceName,omitempty"`
	SiteName   string      `json:"siteName,omitempty"`
	Expires    time.Time   `json:"expires,omitzero"`
	ICEServers []ICEServer `json:"iceServers,omitempty"`
	// RelayTicket is a single-use secret, valid for RelayTicketTTL, that
	// the browser shell redeems on the device origin (PathRelayFrame?t=
	// <ticket>, an opaque request of the shell's, so the ticket never
	// enters a realm of the device origin). Each client hello gets
	// a fresh one; clients without a relay ignore it.
	RelayTicket string `json:"relayTicket,omitempty"`
}

// RelayTicketTTL is how long a SessionReady.RelayTicket may wait for use.
const RelayTicketTTL = time.Minute

// SessionEnd ends a session, saying why.
type SessionEnd struct {
	Reason  EndReason `json:"reason"`
	Message string    `json:"message,omitempty"`
}

// EndReason says why a session ended.
type EndReason string

// Reasons a session ends.
const (
	EndByClient   EndReason = "client"
	EndByAgent    EndReason = "agent"
	EndExpired    EndReason = "expired"
	EndAgentLost  EndReason = "agent_lost"
	EndClientLost EndReason = "client_lost"
	EndByAdmin    EndReason = "admin"
	EndError      EndReason = "error"
)

// ICEServer has the shape of the browser's RTCIceServer.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// SessionDescription has the shape of the browser's RTCSessionDescriptionInit.
type SessionDescription struct {
	Type string `json:"type"` // "offer" or "answer"
	SDP  string `json:"sdp"`
}

// Candidate has the shape of the browser's RTCIceCandidateInit. An empty
// Candidate marks the end of gathering.
type Candidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

var (
	idPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	sessionPattern = regexp.MustCompile(`^[a-z0-9]{8,64}$`)
)

// ValidID reports whether s is acceptable as an agent, device or user ID.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// ValidSessionID reports whether s is acceptable as a session ID. Session IDs
// become DNS labels of the session origin, so they are lower-case
// alphanumerics.
func ValidSessionID(s string) bool { return sessionPattern.MatchString(s) }

// Encode builds an envelope for typ with data marshalled from payload (which
// may be nil).
func Encode(typ MsgType, session string, payload any) ([]byte, error) {
	env := Envelope{V: Version, Type: typ, Session: session}
	if payload != nil {
		raw, err := json.Marshal(payload)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", typ, err)
		}
		env.Data = raw
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	if len(b) > MaxSignalMessage {
		return nil, Errorf(CodeTooLarge, "%s message is %d bytes, limit %d", typ, len(b), MaxSignalMessage)
	}
	return b, nil
}

// Decode parses and validates one signaling message. The payload stays raw;
// use DecodeData for it. Errors are *Error values with a stable code.
func Decode(b []byte) (*Envelope, error) {
	if len(b) > MaxSignalMessage {
		return nil, Errorf(CodeTooLarge, "message is %d bytes, limit %d", len(b), MaxSignalMessage)
	}
	if err := CheckJSON(b); err != nil {
		return nil, err
	}
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&env); err != nil {
		return nil, Errorf(CodeBadMessage, "malformed JSON: %v", err)
	}
	if dec.More() {
		return nil, Errorf(CodeBadMessage, "trailing data after message")
	}
	if env.V != Version {
		return nil, Errorf(CodeUnsupported, "protocol version %d, want %d", env.V, Version)
	}
	if !knownTypes[env.Type] {
		return nil, Errorf(CodeUnsupported, "unknown message type %.40q", env.Type)
	}
	if env.Session != "" && !ValidSessionID(env.Session) {
		return nil, Errorf(CodeBadMessage, "malformed session id")
	}
	if needsSession[env.Type] && env.Session == "" {
		return nil, Errorf(CodeBadMessage, "%s needs a session", env.Type)
	}
	return &env, nil
}

var knownTypes = map[MsgType]bool{
	TypeHello: true, TypeWelcome: true, TypeSessionOpen: true, TypeSessionReady: true,
	TypeSessionEnd: true, TypeOffer: true, TypeAnswer: true, TypeCandidate: true, TypeError: true,
	TypeAccessLog: true, TypeAccessAck: true, TypeSessionPath: true, // accesslog.go
	TypeRecording: true, TypeRecordingAck: true, // recording.go
	TypeRelayRTT:   true,                       // relays.go
	TypeICERefresh: true, TypeICEServers: true, // relays.go
	TypeDrain: true, // drain.go
	// fetch.go
	TypeFetchRequest: true, TypeFetchResponse: true, TypeFetchData: true,
	TypeFetchEnd: true, TypeFetchAbort: true, TypeFetchCredit: true,
	// discovery.go
	TypeDiscoveryReport: true, TypeDiscoveryRun: true, TypeInventory: true, TypeInventoryApplied: true,
}

var needsSession = map[MsgType]bool{
	TypeSessionReady: true, TypeSessionEnd: true, TypeOffer: true, TypeAnswer: true, TypeCandidate: true,
	TypeAccessLog: true, TypeAccessAck: true, TypeSessionPath: true,
	TypeRecording: true, TypeRecordingAck: true,
	TypeFetchRequest: true, TypeFetchResponse: true, TypeFetchData: true,
	TypeFetchEnd: true, TypeFetchAbort: true, TypeFetchCredit: true,
}

// Validator is implemented by payloads that check their own fields.
type Validator interface{ Validate() error }

// DecodeData unmarshals env.Data into v, rejecting unknown fields, and runs
// v's Validate method if it has one.
func DecodeData(env *Envelope, v any) error {
	if len(env.Data) == 0 {
		return Errorf(CodeBadMessage, "%s without data", env.Type)
	}
	if err := CheckJSON(env.Data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(env.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeBadMessage, "%s: %v", env.Type, err)
	}
	if val, ok := v.(Validator); ok {
		if err := val.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a hello.
func (h *Hello) Validate() error {
	switch h.Role {
	case RoleAgent, RoleClient:
	default:
		return Errorf(CodeBadMessage, "hello: unknown role %.20q", h.Role)
	}
	if len(h.Software) > MaxText {
		return Errorf(CodeTooLarge, "hello: software string too long")
	}
	if h.Role == RoleClient && len(h.Devices) > 0 {
		return Errorf(CodeBadMessage, "hello: clients declare no devices")
	}
	if h.Fetch < 0 || h.Fetch > 1000 || (h.Fetch != 0 && h.Role != RoleAgent) {
		return Errorf(CodeBadMessage, "hello: bad fetch version %d", h.Fetch)
	}
	if h.Inventory && h.Role != RoleAgent {
		return Errorf(CodeBadMessage, "hello: only agents apply an inventory")
	}
	if h.Region != "" && !ValidRegion(h.Region) {
		return Errorf(CodeBadMessage, "hello: malformed region %.40q", h.Region)
	}
	return validateDevices("hello", h.Devices)
}

// validateDevices checks an agent's device declarations (hello,
// inventory.applied): within the limit, each valid, none twice.
func validateDevices(what string, devs []Device) error {
	if len(devs) > MaxDevices {
		return Errorf(CodeTooLarge, "%s: %d devices, limit %d", what, len(devs), MaxDevices)
	}
	seen := make(map[string]bool, len(devs))
	for i := range devs {
		if err := devs[i].Validate(); err != nil {
			return err
		}
		if seen[devs[i].ID] {
			return Errorf(CodeBadMessage, "%s: device %q declared twice", what, devs[i].ID)
		}
		seen[devs[i].ID] = true
	}
	return nil
}

// Validate checks a device declaration.
func (d *Device) Validate() error {
	if !ValidID(d.ID) {
		return Errorf(CodeBadMessage, "device: malformed id %.40q", d.ID)
	}
	if d.Policy != nil {
		if err := d.Policy.Validate(); err != nil {
			return err
		}
	}
	if len(d.Name) > MaxText {
		return Errorf(CodeTooLarge, "device %s: name too long", d.ID)
	}
	if len(d.Ports) > MaxPorts {
		return Errorf(CodeTooLarge, "device %s: %d ports, limit %d", d.ID, len(d.Ports), MaxPorts)
	}
	for _, p := range d.Ports {
		if p < 1 || p > 65535 {
			return Errorf(CodeBadMessage, "device %s: port %d out of range", d.ID, p)
		}
	}
	if d.HTTPPort < 0 || d.HTTPPort > 65535 {
		return Errorf(CodeBadMessage, "device %s: http port %d out of range", d.ID, d.HTTPPort)
	}
	switch d.Scheme {
	case "", "http", "https":
	default:
		return Errorf(CodeBadMessage, "device %s: scheme must be http or https", d.ID)
	}
	if len(d.Services) > MaxPorts {
		return Errorf(CodeTooLarge, "device %s: %d services, limit %d", d.ID, len(d.Services), MaxPorts)
	}
	webs := 0
	for i := range d.Services {
		if err := d.Services[i].Validate(d.ID); err != nil {
			return err
		}
		if d.Services[i].Kind == ServiceWeb {
			webs++
		}
		if !slices.Contains(d.Ports, d.Services[i].Port) {
			return Errorf(CodeBadMessage, "device %s: service port %d is not among its ports", d.ID, d.Services[i].Port)
		}
	}
	if webs > 1 {
		return Errorf(CodeBadMessage, "device %s: more than one web service", d.ID)
	}
	if d.Health != nil {
		return d.Health.Validate()
	}
	return nil
}

// Validate checks a welcome.
func (w *Welcome) Validate() error {
	if len(w.ID) > MaxText || len(w.Node) > MaxText {
		return Errorf(CodeTooLarge, "welcome: field too long")
	}
	if len(w.Devices) > MaxDevices {
		return Errorf(CodeTooLarge, "welcome: too many devices")
	}
	if err := validateRelayURLs(w.Relays); err != nil {
		return err
	}
	for i := range w.Devices {
		if err := w.Devices[i].Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a session request or announcement.
func (s *SessionOpen) Validate() error {
	if !ValidID(s.Device) {
		return Errorf(CodeBadMessage, "session.open: malformed device id")
	}
	if s.User != "" && !ValidID(s.User) {
		return Errorf(CodeBadMessage, "session.open: malformed user id")
	}
	if len(s.Grant) > 4096 {
		return Errorf(CodeTooLarge, "session.open: grant too long")
	}
	return validateICEServers(s.ICEServers)
}

// Validate checks a session.ready.
func (s *SessionReady) Validate() error {
	if s.Device != "" && !ValidID(s.Device) {
		return Errorf(CodeBadMessage, "session.ready: malformed device id")
	}
	if len(s.RelayTicket) > 128 || !isToken(s.RelayTicket) {
		return Errorf(CodeBadMessage, "session.ready: malformed relay ticket")
	}
	return validateICEServers(s.ICEServers)
}

func validateICEServers(servers []ICEServer) error {
	if len(servers) > MaxICEServers {
		return Errorf(CodeTooLarge, "too many ICE servers")
	}
	for _, s := range servers {
		if len(s.URLs) == 0 || len(s.URLs) > MaxICEServers {
			return Errorf(CodeBadMessage, "ICE server needs 1 to %d URLs", MaxICEServers)
		}
		for _, u := range s.URLs {
			if len(u) > MaxText || !(hasPrefix(u, "stun:") || hasPrefix(u, "turn:") || hasPrefix(u, "turns:")) {
				return Errorf(CodeBadMessage, "ICE server URL must be stun:, turn: or turns:")
			}
		}
		if len(s.Username) > MaxText || len(s.Credential) > MaxText {
			return Errorf(CodeTooLarge, "ICE server credential too long")
		}
	}
	return nil
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// Validate checks a session end.
func (s *SessionEnd) Validate() error {
	switch s.Reason {
	case EndByClient, EndByAgent, EndExpired, EndAgentLost, EndClientLost, EndByAdmin, EndError:
	default:
		return Errorf(CodeBadMessage, "session.end: unknown reason %.20q", s.Reason)
	}
	if len(s.Message) > MaxText {
		return Errorf(CodeTooLarge, "session.end: message too long")
	}
	return nil
}

// Validate checks an offer or answer.
func (d *SessionDescription) Validate() error {
	if d.Type != "offer" && d.Type != "answer" {
		return Errorf(CodeBadMessage, "description type must be offer or answer")
	}
	if d.SDP == "" {
		return Errorf(CodeBadMessage, "empty SDP")
	}
	if len(d.SDP) > MaxSDP {
		return Errorf(CodeTooLarge, "SDP is %d bytes, limit %d", len(d.SDP), MaxSDP)
	}
	return nil
}

// Validate checks a trickled candidate.
func (c *Candidate) Validate() error {
	if len(c.Candidate) > MaxCandidate {
		return Errorf(CodeTooLarge, "candidate too long")
	}
	if c.SDPMid != nil && len(*c.SDPMid) > 64 {
		return Errorf(CodeTooLarge, "sdpMid too long")
	}
	if c.UsernameFragment != nil && len(*c.UsernameFragment) > 256 {
		return Errorf(CodeTooLarge, "usernameFragment too long")
	}
	return nil
}

// Validate checks an error message.
func (e *Error) Validate() error {
	if !e.Code.Known() {
		return Errorf(CodeBadMessage, "unknown error code %.40q", e.Code)
	}
	if len(e.Message) > MaxText {
		return Errorf(CodeTooLarge, "error message too long")
	}
	return nil
}

// checkDepth refuses JSON nested deeper than max without decoding it, so a
// hostile peer cannot make the decoder recurse. It tracks strings so that
// brackets inside them do not count.
func checkDepth(b []byte, max int) error {
	depth, inString, escaped := 0, false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return Errorf(CodeBadMessage, "JSON nested deeper than %d", max)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}
