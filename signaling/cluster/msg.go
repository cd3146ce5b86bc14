package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// Version is the version of the messages between nodes. A node drops a
// message of another version (a node of another release; the cluster's
// nodes must be upgraded together), so a field changes meaning only with
// a new Version. The golden files in testdata/ freeze every kind.
const Version = 1

// msg is the one message type between nodes: a call (which gets a reply),
// a bridge's frame or close, or a fallback exchange's message.
type msg struct {
	V       int                `json:"v"`
	Kind    string             `json:"k"`
	From    string             `json:"f"`
	Call    uint64             `json:"c,omitempty"`
	Bridge  uint64             `json:"b,omitempty"`
	ToEdge  bool               `json:"e,omitempty"` // a bridge message for the node holding the real WebSocket
	Session string             `json:"s,omitempty"`
	User    string             `json:"u,omitempty"`
	Agent   string             `json:"a,omitempty"`
	Device  string             `json:"d,omitempty"`
	Token   string             `json:"t,omitempty"`
	Hash    []byte             `json:"h,omitempty"`
	Bind    []byte             `json:"bd,omitempty"` // join, bind: SHA-256 of the client's bind cookie
	Browser bool               `json:"br,omitempty"` // join: the client is a web page (it sent an Origin)
	Data    string             `json:"x,omitempty"`
	Code    int                `json:"n,omitempty"`
	OK      bool               `json:"ok,omitempty"`
	Expires time.Time          `json:"exp,omitzero"`
	Err     *proto.Error       `json:"err,omitempty"`
	Info    *proto.SessionInfo `json:"info,omitempty"`
	FetchID uint64             `json:"fx,omitempty"` // fetch.go
}

// Kinds of msg.
const (
	kindReply     = "reply"
	kindOpen      = "open"       // call: OpenSession on the agent's node
	kindCheck     = "check"      // call: which session a token opens
	kindLive      = "live"       // call: SessionLive
	kindOwner     = "owner"      // call: SessionOwner
	kindAddToken  = "addtoken"   // call: AddToken
	kindRevoke    = "revoke"     // RevokeToken (no reply)
	kindBind      = "bind"       // call: BindToken
	kindEnd       = "end"        // call: EndSession
	kindTerminate = "terminate"  // call: TerminateSession
	kindJoin      = "join"       // a bridged client WebSocket starts
	kindFrame     = "frame"      // one WebSocket message of a bridge
	kindClose     = "close"      // a bridge ends
	kindFetchOpen = "fetch.open" // call: OpenFetch on the owner (Session, Hash: the cookie's SHA-256, Bridge: the edge's key)
	kindFetchMsg  = "fetch.msg"  // one fetch.* envelope of an exchange (Data), towards the edge if ToEdge
	kindFetchDone = "fetch.done" // the edge is done with an exchange
	kindTicket    = "ticket"     // call: RedeemTicket on the owner (Session, Token: the ticket, Hash)
	kindInventory = "inventory"  // call: PushInventory on the agent's node (Agent)
	kindDiscover  = "discover"   // call: RunDiscovery on the agent's node (Agent, Data: the reason)
)

// encodeMsg stamps m with the version and its sender, and encodes it.
func encodeMsg(from string, m *msg) ([]byte, error) {
	m.V, m.From = Version, from
	return json.Marshal(m)
}

// errVersion refuses a message of another version.
var errVersion = errors.New("message of another version")

// decodeMsg decodes a message from another node.
func decodeMsg(raw []byte) (*msg, error) {
	m := new(msg)
	if err := json.Unmarshal(raw, m); err != nil {
		return nil, err
	}
	if m.V != Version {
		return m, fmt.Errorf("%w: version %d from node %q, this node speaks %d", errVersion, m.V, m.From, Version)
	}
	return m, nil
}
