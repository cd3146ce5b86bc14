// Package bus connects the signaling nodes of a cluster: it carries
// messages addressed to one node, says which nodes are alive, which node
// holds which agent (presence), and which node owns which session (the
// directory), so that a technician served by one node reaches an agent
// connected to another.
//
// Two implementations: Local, an in-process network (a single node is the
// default of a signaling server that has no Redis, and several Local nodes
// on one Network let tests run a cluster in one process), and Redis, where
// each node has a pub/sub channel, a heartbeat key with a TTL, and presence
// and directory records with TTLs.
//
// Delivery is in order per sender and receiver and best effort: a message
// to a node that is down, or sent while Redis is unreachable, is lost, and
// the protocols above (request timeouts, a closed bridge) handle that.
package bus

import (
	"context"
	"errors"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("bus closed")

// Presence says which node holds an agent's connection and which devices
// the agent declared there.
type Presence struct {
	Agent   string         `json:"agent"`
	Node    string         `json:"node"`
	Devices []proto.Device `json:"devices"`
	Epoch   int64          `json:"epoch"` // grows with every claim; the newest connection wins
}

// Bus is one node's view of the cluster. Methods are safe for concurrent
// use. Those documented as not blocking may be called under a lock.
type Bus interface {
	// Node is this node's name: what other nodes Send to.
	Node() string
	// Start delivers every message sent to this node to deliver, on one
	// goroutine, in order, until Close. Call it once.
	Start(deliver func(msg []byte))
	// Send queues msg for node and never blocks: false when the queue is
	// full or the bus is closed. Messages from one node to another arrive
	// in the order sent.
	Send(node string, msg []byte) bool
	// Alive reports whether node's heartbeat is current. It does not
	// block (it reads a cache refreshed by the heartbeat).
	Alive(node string) bool

	// SetAgent records, without blocking, that agent is now online on this
	// node with devices (online) or has left it. The newest claim of an
	// agent wins across nodes; leaving removes only this node's claim.
	SetAgent(agent string, devices []proto.Device, online bool)
	// OnLost, if set before Start, is called (on its own goroutine) when
	// another node claimed an agent this node still holds: the local
	// connection is stale and should be dropped.
	OnLost(func(agent string))
	// Agents lists the presence of every agent online on a live node.
	Agents(ctx context.Context) ([]Presence, error)
	// Device returns the presence of the agent that declared device, if
	// that agent is online on a live node.
	Device(ctx context.Context, device string) (Presence, bool, error)

	// PutSession records that this node owns session until expires, and
	// that the tokens whose SHA-256 are hashes open it.
	PutSession(ctx context.Context, session string, expires time.Time, hashes ...[32]byte) error
	// SessionNode returns the node that owns session.
	SessionNode(ctx context.Context, session string) (string, bool, error)
	// TokenSession returns the session a token hash opens and its node.
	TokenSession(ctx context.Context, hash [32]byte) (session, node string, ok bool, err error)

	// PutHandoff stores, for ttl, the state of agent's sessions that a
	// draining node hands over (package cluster), for the node the agent
	// reaches next; it replaces an earlier one.
	PutHandoff(ctx context.Context, agent string, state []byte, ttl time.Duration) error
	// TakeHandoff returns and deletes agent's handed-over state, once.
	TakeHandoff(ctx context.Context, agent string) ([]byte, bool, error)
	// HasHandoff reports whether agent's handed-over state is still
	// waiting to be taken.
	HasHandoff(ctx context.Context, agent string) (bool, error)

	// Close stops delivery and background work and releases this node's
	// claims.
	Close() error
}

// Timings shared by the implementations.
const (
	// HeartbeatInterval is how often a node says it is alive.
	HeartbeatInterval = time.Second
	// NodeTTL is how long a node counts as alive after its last heartbeat:
	// a dead node's agents are offline this long after it died, at most.
	NodeTTL = 3 * time.Second
	// PresenceRefresh is how often a node re-asserts its agents' presence,
	// which lives PresenceTTL. Presence of a live node never lapses; that
	// of a dead node is ignored as soon as the node is not alive.
	PresenceRefresh = 10 * time.Second
	PresenceTTL     = 30 * time.Second
	// QueueSize bounds the messages waiting to be sent.
	QueueSize = 4096
)
