package bus

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// Network is an in-process cluster: the nodes that Join it reach each
// other through memory.
type Network struct {
	mu       sync.Mutex
	nodes    map[string]*Local
	epoch    int64
	agents   map[string]Presence
	sessions map[string]localSession
	tokens   map[[32]byte]string
	handoffs map[string]localHandoff
}

type localHandoff struct {
	state   []byte
	expires time.Time
}

type localSession struct {
	node    string
	expires time.Time
}

// NewNetwork returns an empty in-process network.
func NewNetwork() *Network {
	return &Network{
		nodes:    map[string]*Local{},
		agents:   map[string]Presence{},
		sessions: map[string]localSession{},
		tokens:   map[[32]byte]string{},
		handoffs: map[string]localHandoff{},
	}
}

// NewLocal returns a single node on a network of its own: what a signaling
// server without Redis uses.
func NewLocal(node string) *Local { return NewNetwork().Join(node) }

// Local is one node of a Network.
type Local struct {
	net    *Network
	node   string
	inbox  chan []byte
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	lost   func(string)
	closed bool // guarded by net.mu
}

var _ Bus = (*Local)(nil)

// Join adds a node named node (replacing a closed one of that name).
func (n *Network) Join(node string) *Local {
	l := &Local{net: n, node: node, inbox: make(chan []byte, QueueSize), done: make(chan struct{})}
	n.mu.Lock()
	n.nodes[node] = l
	n.mu.Unlock()
	return l
}

// Node implements Bus.
func (l *Local) Node() string { return l.node }

// Start implements Bus.
func (l *Local) Start(deliver func([]byte)) {
	l.wg.Go(func() {
		for {
			select {
			case <-l.done:
				return
			case m := <-l.inbox:
				deliver(m)
			}
		}
	})
}

// Send implements Bus.
func (l *Local) Send(node string, msg []byte) bool {
	l.net.mu.Lock()
	to := l.net.nodes[node]
	ok := to != nil && !to.closed && !l.closed
	l.net.mu.Unlock()
	if !ok {
		return false
	}
	select {
	case to.inbox <- msg:
		return true
	default:
		return false
	}
}

// Alive implements Bus.
func (l *Local) Alive(node string) bool {
	l.net.mu.Lock()
	defer l.net.mu.Unlock()
	n := l.net.nodes[node]
	return n != nil && !n.closed
}

// OnLost implements Bus.
func (l *Local) OnLost(f func(agent string)) { l.lost = f }

// SetAgent implements Bus.
func (l *Local) SetAgent(agent string, devices []proto.Device, online bool) {
	n := l.net
	n.mu.Lock()
	defer n.mu.Unlock()
	old, had := n.agents[agent]
	if !online {
		if had && old.Node == l.node {
			delete(n.agents, agent)
		}
		return
	}
	n.epoch++
	n.agents[agent] = Presence{Agent: agent, Node: l.node, Devices: slices.Clone(devices), Epoch: n.epoch}
	if had && old.Node != l.node {
		if prev := n.nodes[old.Node]; prev != nil && !prev.closed && prev.lost != nil {
			go prev.lost(agent)
		}
	}
}

// Agents implements Bus.
func (l *Local) Agents(context.Context) ([]Presence, error) {
	n := l.net
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Presence, 0, len(n.agents))
	for _, p := range n.agents {
		if node := n.nodes[p.Node]; node != nil && !node.closed {
			out = append(out, p)
		}
	}
	return out, nil
}

// Device implements Bus.
func (l *Local) Device(ctx context.Context, device string) (Presence, bool, error) {
	all, _ := l.Agents(ctx)
	var best Presence
	found := false
	for _, p := range all {
		for _, d := range p.Devices {
			if d.ID == device && (!found || p.Epoch > best.Epoch) {
				best, found = p, true
			}
		}
	}
	return best, found, nil
}

// PutSession implements Bus.
func (l *Local) PutSession(_ context.Context, session string, expires time.Time, hashes ...[32]byte) error {
	n := l.net
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	for id, s := range n.sessions { // sweep, as Redis TTLs would
		if !now.Before(s.expires) {
			delete(n.sessions, id)
		}
	}
	for h, id := range n.tokens {
		if _, ok := n.sessions[id]; !ok {
			delete(n.tokens, h)
		}
	}
	n.sessions[session] = localSession{node: l.node, expires: expires}
	for _, h := range hashes {
		n.tokens[h] = session
	}
	return nil
}

// SessionNode implements Bus.
func (l *Local) SessionNode(_ context.Context, session string) (string, bool, error) {
	n := l.net
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.sessions[session]
	if !ok || !time.Now().Before(s.expires) {
		return "", false, nil
	}
	return s.node, true, nil
}

// TokenSession implements Bus.
func (l *Local) TokenSession(ctx context.Context, hash [32]byte) (string, string, bool, error) {
	l.net.mu.Lock()
	id, ok := l.net.tokens[hash]
	l.net.mu.Unlock()
	if !ok {
		return "", "", false, nil
	}
	node, ok, err := l.SessionNode(ctx, id)
	return id, node, ok, err
}

// Close implements Bus.
func (l *Local) Close() error {
	l.once.Do(func() {
		n := l.net
		n.mu.Lock()
		l.closed = true
		for a, p := range n.agents {
			if p.Node == l.node {
				delete(n.agents, a)
			}
		}
		n.mu.Unlock()
		close(l.done)
	})
	l.wg.Wait()
	return nil
}

// PutHandoff implements Bus.
func (l *Local) PutHandoff(_ context.Context, agent string, state []byte, ttl time.Duration) error {
	l.net.mu.Lock()
	defer l.net.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.net.handoffs[agent] = localHandoff{state: slices.Clone(state), expires: time.Now().Add(ttl)}
	return nil
}

// TakeHandoff implements Bus.
func (l *Local) TakeHandoff(_ context.Context, agent string) ([]byte, bool, error) {
	l.net.mu.Lock()
	defer l.net.mu.Unlock()
	h, ok := l.net.handoffs[agent]
	delete(l.net.handoffs, agent)
	if !ok || !time.Now().Before(h.expires) {
		return nil, false, nil
	}
	return h.state, true, nil
}

// HasHandoff implements Bus.
func (l *Local) HasHandoff(_ context.Context, agent string) (bool, error) {
	l.net.mu.Lock()
	defer l.net.mu.Unlock()
	h, ok := l.net.handoffs[agent]
	return ok && time.Now().Before(h.expires), nil
}
