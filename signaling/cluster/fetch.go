package cluster

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/internal/fetchx"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/hub"
)

// The signaling fallback across a cluster (package server's device.go). A request for a
// device origin may reach any node (the edge); its session belongs to the
// node its agent is connected to (the owner), whose hub checks the device
// cookie and routes the exchange to the agent. The edge runs the exchange
// (a fetchx.Exchange, as on a single node) and its messages cross the bus
// as they are; the owner runs a forwarder that hands the edge's messages
// to the agent and the agent's to the edge. The credit windows are end to
// end, between the edge and the agent, so every queue on the way stays
// bounded and a slow browser never holds anything but its own exchange.
//
// The surface towards the router is small: four kinds of msg,
// newFetchRelay, and deliver/open/ticket/watch/close hooks.

// forwarderIdle ends a forwarder that heard nothing from its edge for this
// long (a lost fetch.done): longer than any wait the exchange itself has.
const forwarderIdle = proto.FetchHeadTimeout + proto.FetchIdleTimeout

type fetchRelay struct {
	c *Router

	mu     sync.Mutex
	closed bool
	edges  map[bridgeKey]*remoteFetch // exchanges this node runs for sessions owned elsewhere
	owned  map[bridgeKey]*forwarder   // exchanges other nodes run for sessions owned here
}

func newFetchRelay(c *Router) *fetchRelay {
	return &fetchRelay{c: c, edges: map[bridgeKey]*remoteFetch{}, owned: map[bridgeKey]*forwarder{}}
}

// remoteFetch is the edge's side of an exchange.
type remoteFetch struct {
	x     *fetchx.Exchange
	owner string
}

// openRemoteFetch opens an exchange for session on its owner node.
func (c *Router) openRemoteFetch(ctx context.Context, owner, session string, cookie [32]byte) (*Exchange, error) {
	f := c.fx
	key := bridgeKey{edge: c.bus.Node(), id: c.seq.Add(1)}
	r, err := c.call(ctx, owner, &msg{Kind: kindFetchOpen, Session: session, Hash: cookie[:], Bridge: key.id}, 0)
	if err != nil {
		return nil, err
	}
	if r.Err != nil {
		return nil, r.Err
	}
	x := fetchx.New(r.FetchID, func(ctx context.Context, typ proto.MsgType, payload proto.Validator) error {
		b, err := proto.Encode(typ, session, payload)
		if err != nil {
			return err
		}
		if !c.send(owner, &msg{Kind: kindFetchMsg, Bridge: key.id, Data: string(b)}) {
			return proto.Errorf(proto.CodeUnavailable, "the cluster bus is unavailable")
		}
		return nil
	}, 0)
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		c.send(owner, &msg{Kind: kindFetchDone, Bridge: key.id})
		return nil, ErrClosed
	}
	f.edges[key] = &remoteFetch{x: x, owner: owner}
	f.mu.Unlock()
	return &Exchange{Exchange: x, release: func() {
		f.mu.Lock()
		delete(f.edges, key)
		f.mu.Unlock()
		c.send(owner, &msg{Kind: kindFetchDone, Bridge: key.id})
	}}, nil
}

// ticket serves kindTicket on the owner.
func (f *fetchRelay) ticket(m *msg) *msg {
	if len(m.Hash) != sha256.Size {
		return &msg{Err: proto.Errorf(proto.CodeBadMessage, "bad cookie hash")}
	}
	exp, err := f.c.hub.RedeemTicket(m.Session, m.Token, [32]byte(m.Hash))
	return &msg{Expires: exp, Err: protoErr(err)}
}

// forwarder is the owner's side of an exchange an edge runs: it carries
// the edge's messages to the agent (on its own goroutine, since sending to
// the agent may wait) and the agent's to the edge.
type forwarder struct {
	f       *fetchRelay
	key     bridgeKey
	session string
	id      uint64
	send    fetchx.Sender // to the agent
	release func()

	in     chan []byte // the edge's envelopes; nil marks fetch.done
	stop   chan struct{}
	ctx    context.Context // ends with stop
	cancel context.CancelFunc
	once   sync.Once
}

// open serves kindFetchOpen on the owner.
func (f *fetchRelay) open(m *msg) *msg {
	if len(m.Hash) != sha256.Size || m.Bridge == 0 {
		return &msg{Err: proto.Errorf(proto.CodeBadMessage, "bad fetch.open")}
	}
	// The edge may send up to a window of data and of credits, the head,
	// the end and an abort before anything is forwarded.
	fw := &forwarder{f: f, key: bridgeKey{edge: m.From, id: m.Bridge}, session: m.Session,
		in: make(chan []byte, 2*proto.FetchWindow+4), stop: make(chan struct{})}
	fw.ctx, fw.cancel = context.WithCancel(context.Background())
	release, err := f.c.hub.OpenFetch(m.Session, [32]byte(m.Hash), func(id uint64, send fetchx.Sender) hub.FetchRoute {
		fw.id, fw.send = id, send
		return fw
	})
	if err != nil {
		fw.cancel()
		return &msg{Err: protoErr(err)}
	}
	fw.release = release
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		fw.cancel()
		release()
		return &msg{Err: ErrClosed}
	}
	f.owned[fw.key] = fw
	f.c.wg.Add(1)
	f.mu.Unlock()
	go fw.run()
	return &msg{FetchID: fw.id}
}

// deliver handles kindFetchMsg and kindFetchDone on the bus's delivery
// goroutine; it never blocks.
func (f *fetchRelay) deliver(m *msg) {
	if m.ToEdge {
		f.mu.Lock()
		r := f.edges[bridgeKey{edge: f.c.bus.Node(), id: m.Bridge}]
		f.mu.Unlock()
		if r == nil || m.Kind != kindFetchMsg {
			return
		}
		env, err := proto.Decode([]byte(m.Data))
		var v proto.Validator
		if err == nil {
			v, err = DecodeFetch(env)
		}
		if err == nil {
			err = r.x.Deliver(env.Type, v)
		}
		if err != nil {
			f.c.log.Info("bad fallback message from the owner node; exchange aborted", "from", m.From, "err", err)
			go r.x.Abort(err)
		}
		return
	}
	f.mu.Lock()
	fw := f.owned[bridgeKey{edge: m.From, id: m.Bridge}]
	f.mu.Unlock()
	if fw == nil {
		return
	}
	var data []byte
	if m.Kind == kindFetchMsg {
		data = []byte(m.Data)
		if len(data) == 0 {
			return
		}
	}
	select {
	case fw.in <- data:
	default:
		f.c.log.Info("edge node overran a fallback exchange; aborted", "from", m.From, "session", fw.session)
		go fw.Abort(proto.Errorf(proto.CodeBadMessage, "the edge node sent more than the window allows"))
	}
}

// run forwards the edge's messages to the agent until the edge is done or
// the exchange is aborted.
func (fw *forwarder) run() {
	defer fw.f.c.wg.Done()
	idle := time.NewTimer(forwarderIdle)
	defer idle.Stop()
	for {
		select {
		case <-fw.stop:
			return
		case <-idle.C:
			fw.Abort(proto.Errorf(proto.CodeDeviceTimeout, "the edge node went quiet"))
			return
		case data := <-fw.in:
			if data == nil { // fetch.done
				fw.finish()
				return
			}
			idle.Reset(forwarderIdle)
			if err := fw.forward(data); err != nil {
				fw.Abort(err)
				return
			}
		}
	}
}

// forward checks one envelope of the edge and sends it to the agent.
func (fw *forwarder) forward(data []byte) error {
	env, err := proto.Decode(data)
	if err != nil {
		return err
	}
	if env.Session != fw.session {
		return proto.Errorf(proto.CodeBadMessage, "fetch message for another session")
	}
	switch env.Type {
	case proto.TypeFetchRequest, proto.TypeFetchData, proto.TypeFetchEnd, proto.TypeFetchAbort, proto.TypeFetchCredit:
	default:
		return proto.Errorf(proto.CodeBadMessage, "the edge does not send %s", env.Type)
	}
	v, err := DecodeFetch(env)
	if err != nil {
		return err
	}
	if FetchID(v) != fw.id {
		return proto.Errorf(proto.CodeBadMessage, "fetch message for another exchange")
	}
	ctx, cancel := context.WithTimeout(fw.ctx, proto.FetchIdleTimeout)
	defer cancel()
	return fw.send(ctx, env.Type, v)
}

// Deliver is the hub's route: the agent's message goes to the edge.
func (fw *forwarder) Deliver(typ proto.MsgType, payload proto.Validator) error {
	b, err := proto.Encode(typ, fw.session, payload)
	if err != nil {
		return err
	}
	if !fw.f.c.send(fw.key.edge, &msg{Kind: kindFetchMsg, ToEdge: true, Bridge: fw.key.id, Data: string(b)}) {
		return proto.Errorf(proto.CodeUnavailable, "the cluster bus is unavailable")
	}
	return nil
}

// Abort ends the exchange on both sides: the edge and the agent each get a
// fetch.abort (either may be gone already; both ignore late aborts).
func (fw *forwarder) Abort(err error) {
	fw.once.Do(func() {
		close(fw.stop)
		fw.cancel()
		pe := protoErr(err)
		if len(pe.Message) > proto.MaxText {
			pe.Message = pe.Message[:proto.MaxText]
		}
		abort := &proto.FetchAbort{ID: fw.id, Error: *pe}
		_ = fw.Deliver(proto.TypeFetchAbort, abort)
		if fw.send != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = fw.send(ctx, proto.TypeFetchAbort, abort)
			cancel()
		}
		fw.forget()
	})
}

// finish ends a forwarder whose edge is done.
func (fw *forwarder) finish() {
	fw.once.Do(func() {
		close(fw.stop)
		fw.cancel()
		fw.forget()
	})
}

func (fw *forwarder) forget() {
	fw.f.mu.Lock()
	if fw.f.owned[fw.key] == fw {
		delete(fw.f.owned, fw.key)
	}
	fw.f.mu.Unlock()
	if fw.release != nil {
		fw.release()
	}
}

// watch aborts exchanges whose other node stopped heartbeating.
func (f *fetchRelay) watch() {
	f.mu.Lock()
	var edges []*remoteFetch
	for _, r := range f.edges {
		if !f.c.bus.Alive(r.owner) {
			edges = append(edges, r)
		}
	}
	var owned []*forwarder
	for k, fw := range f.owned {
		if !f.c.bus.Alive(k.edge) {
			owned = append(owned, fw)
		}
	}
	f.mu.Unlock()
	lost := proto.Errorf(proto.CodeUnavailable, "the signaling node serving this session went away")
	for _, r := range edges {
		go r.x.Abort(lost)
	}
	for _, fw := range owned {
		go fw.Abort(proto.Errorf(proto.CodeCanceled, "the technician's signaling node went away"))
	}
}

// close aborts every exchange; the cluster's WaitGroup waits for the
// forwarders.
func (f *fetchRelay) close() {
	f.mu.Lock()
	f.closed = true
	var edges []*remoteFetch
	for _, r := range f.edges {
		edges = append(edges, r)
	}
	var owned []*forwarder
	for _, fw := range f.owned {
		owned = append(owned, fw)
	}
	f.mu.Unlock()
	for _, r := range edges {
		r.x.Abort(ErrClosed)
	}
	for _, fw := range owned {
		fw.Abort(ErrClosed)
	}
}

// DecodeFetch decodes the payload of any fetch message.
func DecodeFetch(env *proto.Envelope) (proto.Validator, error) {
	var v proto.Validator
	switch env.Type {
	case proto.TypeFetchRequest:
		v = &proto.FetchRequest{}
	case proto.TypeFetchResponse:
		v = &proto.FetchResponse{}
	case proto.TypeFetchData:
		v = &proto.FetchData{}
	case proto.TypeFetchEnd:
		v = &proto.FetchEnd{}
	case proto.TypeFetchAbort:
		v = &proto.FetchAbort{}
	case proto.TypeFetchCredit:
		v = &proto.FetchCredit{}
	default:
		return nil, proto.Errorf(proto.CodeBadMessage, "%s is not a fetch message", env.Type)
	}
	return v, proto.DecodeData(env, v)
}

// FetchID is the exchange ID of a fetch message.
func FetchID(v proto.Validator) uint64 {
	switch m := v.(type) {
	case *proto.FetchRequest:
		return m.ID
	case *proto.FetchResponse:
		return m.ID
	case *proto.FetchData:
		return m.ID
	case *proto.FetchEnd:
		return m.ID
	case *proto.FetchAbort:
		return m.ID
	case *proto.FetchCredit:
		return m.ID
	}
	return 0
}

// Forwarders counts the fallback exchanges that other nodes run through
// this node for sessions it owns.
func (c *Router) Forwarders() int {
	c.fx.mu.Lock()
	defer c.fx.mu.Unlock()
	return len(c.fx.owned)
}
