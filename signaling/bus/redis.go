package bus

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/porthole-dev/porthole/proto"
)

// RedisOptions configure NewRedis.
type RedisOptions struct {
	// Node is this node's name, unique in the cluster. Required.
	Node string
	// Prefix starts every key and channel; empty means "porthole:".
	Prefix string
	// Logger; nil discards.
	Logger *slog.Logger
}

// Redis is a Bus on Redis:
//
//	<p>node:<name>        pub/sub channel of a node's messages
//	<p>alive:<name>       heartbeat, expires after NodeTTL; <p>nodes lists the names
//	<p>presence:<agent>   hash {node, epoch, devices}, expires after PresenceTTL
//	<p>devloc:<device>    the agent that declared it last, same TTL
//	<p>sess:<id>          the node owning a session, until the session expires
//	<p>tok:<sha256 hex>   the session a token opens, until the session expires
type Redis struct {
	rdb  redis.UniversalClient
	p    string
	node string
	log  *slog.Logger

	out  chan outMsg
	pres chan presenceOp
	ps   *redis.PubSub
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
	lost func(string)

	mu          sync.Mutex
	lastSeen    map[string]time.Time
	lastRead    time.Time // last successful read of the heartbeats
	stableSince time.Time // first successful read after a failed one
	agents      map[string]*claim
}

type outMsg struct {
	node string
	data []byte
}

type presenceOp struct {
	agent   string
	devices []proto.Device
	online  bool
}

// claim is this node's claim on an agent; epoch 0 means not yet written.
type claim struct {
	devices []proto.Device
	epoch   int64
}

var _ Bus = (*Redis)(nil)

// NewRedis returns the bus of node on rdb, which the caller closes after
// the bus. It does no I/O until Start.
func NewRedis(rdb redis.UniversalClient, opt RedisOptions) (*Redis, error) {
	if opt.Node == "" {
		return nil, errors.New("bus: a node name is required")
	}
	if opt.Prefix == "" {
		opt.Prefix = "porthole:"
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Redis{
		rdb: rdb, p: opt.Prefix, node: opt.Node, log: opt.Logger.With("node", opt.Node),
		out:      make(chan outMsg, QueueSize),
		pres:     make(chan presenceOp, QueueSize),
		stop:     make(chan struct{}),
		lastSeen: map[string]time.Time{},
		agents:   map[string]*claim{},
	}, nil
}

func (r *Redis) channel(node string) string { return r.p + "node:" + node }
func (r *Redis) kAlive(node string) string  { return r.p + "alive:" + node }
func (r *Redis) kNodes() string             { return r.p + "nodes" }
func (r *Redis) kPresence(a string) string  { return r.p + "presence:" + a }
func (r *Redis) kAgents() string            { return r.p + "presence" }
func (r *Redis) kEpoch() string             { return r.p + "presence-epoch" }
func (r *Redis) kDevLoc(d string) string    { return r.p + "devloc:" + d }
func (r *Redis) kSess(id string) string     { return r.p + "sess:" + id }
func (r *Redis) kTok(h [32]byte) string     { return r.p + "tok:" + hex.EncodeToString(h[:]) }
func (r *Redis) kHandoff(a string) string   { return r.p + "handoff:" + a }

// Node implements Bus.
func (r *Redis) Node() string { return r.node }

// OnLost implements Bus.
func (r *Redis) OnLost(f func(string)) { r.lost = f }

// Start implements Bus: it subscribes to this node's channel and starts the
// publisher, the heartbeat and the presence writer.
func (r *Redis) Start(deliver func([]byte)) {
	ctx := context.Background()
	// The subscription reconnects and resubscribes by itself after Redis
	// restarts; messages published meanwhile are lost.
	r.ps = r.rdb.Subscribe(ctx, r.channel(r.node))
	// Subscribe does not wait for Redis to confirm: wait (bounded), so a
	// node that has just started (a rolling restart) gets the replies to
	// its first calls instead of waiting for their timeout.
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if _, err := r.ps.Receive(sctx); err != nil {
		r.log.Warn("bus subscription not confirmed yet; it is retried in the background", "err", err)
	}
	cancel()
	ch := r.ps.Channel(redis.WithChannelSize(QueueSize))
	r.wg.Go(func() {
		for m := range ch {
			deliver([]byte(m.Payload))
		}
	})
	r.wg.Go(r.publish)
	r.wg.Go(r.heartbeat)
	r.wg.Go(r.presence)
}

// Send implements Bus.
func (r *Redis) Send(node string, msg []byte) bool {
	select {
	case <-r.stop:
		return false
	default:
	}
	select {
	case r.out <- outMsg{node, msg}:
		return true
	default:
		r.log.Warn("bus send queue full; message dropped", "to", node)
		return false
	}
}

// publish sends queued messages in order, pipelining what has piled up.
func (r *Redis) publish() {
	ctx := context.Background()
	batch := make([]outMsg, 0, 256)
	for {
		select {
		case <-r.stop:
			return
		case m := <-r.out:
			batch = append(batch[:0], m)
		}
	more:
		for len(batch) < cap(batch) {
			select {
			case m := <-r.out:
				batch = append(batch, m)
			default:
				break more
			}
		}
		pipe := r.rdb.Pipeline()
		for _, m := range batch {
			// go-redis counts PUBLISH as keyless, so a cluster client would
			// send each to a random node, and Redis Cluster's forwarding
			// between nodes would reorder them: route by the channel's slot.
			cmd := redis.NewIntCmd(ctx, "publish", r.channel(m.node), m.data)
			cmd.SetFirstKeyPos(1)
			_ = pipe.Process(ctx, cmd)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			r.log.Warn("bus publish failed; messages dropped", "count", len(batch), "err", err)
		}
	}
}

// Alive implements Bus.
func (r *Redis) Alive(node string) bool {
	if node == r.node {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	seen, ok := r.lastSeen[node]
	if !ok {
		return false
	}
	// Right after Redis came back, give every node a full TTL to heartbeat
	// again before calling it dead.
	return r.lastRead.Sub(seen) < NodeTTL || r.lastRead.Sub(r.stableSince) < NodeTTL
}

func (r *Redis) heartbeat() {
	t := time.NewTicker(HeartbeatInterval)
	defer t.Stop()
	failed := true
	for {
		ctx, cancel := context.WithTimeout(context.Background(), HeartbeatInterval)
		err := r.beat(ctx, &failed)
		cancel()
		if err != nil && !failed {
			r.log.Warn("bus heartbeat failed", "err", err)
		}
		if err != nil {
			failed = true
		}
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
	}
}

func (r *Redis) beat(ctx context.Context, failed *bool) error {
	pipe := r.rdb.Pipeline()
	pipe.Set(ctx, r.kAlive(r.node), "1", NodeTTL)
	pipe.SAdd(ctx, r.kNodes(), r.node)
	nodes := pipe.SMembers(ctx, r.kNodes())
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	names := nodes.Val()
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = r.kAlive(n)
	}
	vals, err := r.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return err
	}
	now := time.Now()
	r.mu.Lock()
	if *failed {
		r.stableSince = now
		*failed = false
	}
	r.lastRead = now
	for i, v := range vals {
		if v != nil {
			r.lastSeen[names[i]] = now
		}
	}
	r.mu.Unlock()
	return nil
}

// SetAgent implements Bus.
func (r *Redis) SetAgent(agent string, devices []proto.Device, online bool) {
	select {
	case r.pres <- presenceOp{agent, devices, online}:
	default:
		// The refresh re-asserts every claim, so a dropped claim is late,
		// not lost; a dropped release expires with its TTL.
		r.log.Warn("presence queue full; update deferred to the next refresh", "agent", agent)
		if online {
			r.mu.Lock()
			r.agents[agent] = &claim{devices: devices}
			r.mu.Unlock()
		}
	}
}

var claimScript = redis.NewScript(`
local e = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'epoch', e, 'devices', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
for i = 4, #KEYS do redis.call('SET', KEYS[i], ARGV[4], 'PX', ARGV[3]) end
return e
`)

var refreshScript = redis.NewScript(`
local e = redis.call('HGET', KEYS[1], 'epoch')
if not e then return -1 end
if e ~= ARGV[1] then return 0 end
for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
return 1
`)

var releaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
`)

func (r *Redis) presenceKeys(agent string, devices []proto.Device) []string {
	keys := []string{r.kPresence(agent), r.kEpoch(), r.kAgents()}
	for _, d := range devices {
		keys = append(keys, r.kDevLoc(d.ID))
	}
	return keys
}

func (r *Redis) claimAgent(ctx context.Context, agent string, c *claim) error {
	devs, _ := json.Marshal(c.devices)
	e, err := claimScript.Run(ctx, r.rdb, r.presenceKeys(agent, c.devices),
		r.node, string(devs), PresenceTTL.Milliseconds(), agent).Int64()
	if err != nil {
		return err
	}
	c.epoch = e
	return nil
}

// presence applies presence changes in order and refreshes every claim of
// this node each PresenceRefresh (and retries failed claims each second).
func (r *Redis) presence() {
	refresh := time.NewTicker(PresenceRefresh)
	defer refresh.Stop()
	retry := time.NewTicker(HeartbeatInterval)
	defer retry.Stop()
	ctx := context.Background()
	for {
		select {
		case <-r.stop:
			return
		case op := <-r.pres:
			r.apply(ctx, op)
		case <-retry.C:
			r.refresh(ctx, true)
		case <-refresh.C:
			r.refresh(ctx, false)
		}
	}
}

func (r *Redis) apply(ctx context.Context, op presenceOp) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r.mu.Lock()
	old := r.agents[op.agent]
	if op.online {
		c := &claim{devices: op.devices}
		r.agents[op.agent] = c
		r.mu.Unlock()
		if err := r.claimAgent(ctx, op.agent, c); err != nil {
			r.log.Warn("presence claim failed; retrying", "agent", op.agent, "err", err)
		}
		return
	}
	delete(r.agents, op.agent)
	r.mu.Unlock()
	if old != nil && old.epoch != 0 {
		if err := releaseScript.Run(ctx, r.rdb, []string{r.kPresence(op.agent)}, strconv.FormatInt(old.epoch, 10)).Err(); err != nil {
			r.log.Warn("presence release failed; it expires on its own", "agent", op.agent, "err", err)
		}
	}
}

// refresh re-asserts this node's claims (only the unwritten ones if
// pendingOnly). A claim another node took since is given up: the local
// connection is stale.
func (r *Redis) refresh(ctx context.Context, pendingOnly bool) {
	r.mu.Lock()
	var todo []string
	for a, c := range r.agents {
		if !pendingOnly || c.epoch == 0 {
			todo = append(todo, a)
		}
	}
	r.mu.Unlock()
	for _, a := range todo {
		select {
		case <-r.stop:
			return
		default:
		}
		r.mu.Lock()
		c := r.agents[a]
		r.mu.Unlock()
		if c == nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res := int64(-1)
		var err error
		if c.epoch != 0 {
			keys := append([]string{r.kPresence(a)}, r.presenceKeys(a, c.devices)[3:]...)
			res, err = refreshScript.Run(cctx, r.rdb, keys, strconv.FormatInt(c.epoch, 10), PresenceTTL.Milliseconds()).Int64()
		}
		switch {
		case err != nil:
		case res == -1: // never written, or lost with Redis's data
			err = r.claimAgent(cctx, a, c)
		case res == 0:
			r.mu.Lock()
			if r.agents[a] == c {
				delete(r.agents, a)
			}
			r.mu.Unlock()
			r.log.Info("agent claimed by another node; dropping the stale connection", "agent", a)
			if r.lost != nil {
				r.wg.Go(func() { r.lost(a) })
			}
		}
		cancel()
		if err != nil {
			r.log.Debug("presence refresh failed", "agent", a, "err", err)
			return // Redis is down: try again later
		}
	}
}

func (r *Redis) readPresence(ctx context.Context, agent string) (Presence, bool, error) {
	m, err := r.rdb.HGetAll(ctx, r.kPresence(agent)).Result()
	if err != nil || len(m) == 0 {
		return Presence{}, false, err
	}
	p := Presence{Agent: agent, Node: m["node"]}
	p.Epoch, _ = strconv.ParseInt(m["epoch"], 10, 64)
	_ = json.Unmarshal([]byte(m["devices"]), &p.Devices)
	return p, r.Alive(p.Node), nil
}

// Agents implements Bus.
func (r *Redis) Agents(ctx context.Context) ([]Presence, error) {
	ids, err := r.rdb.SMembers(ctx, r.kAgents()).Result()
	if err != nil {
		return nil, err
	}
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, r.kPresence(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]Presence, 0, len(ids))
	for i, c := range cmds {
		m := c.Val()
		if len(m) == 0 {
			r.rdb.SRem(ctx, r.kAgents(), ids[i])
			continue
		}
		p := Presence{Agent: ids[i], Node: m["node"]}
		if !r.Alive(p.Node) {
			continue
		}
		p.Epoch, _ = strconv.ParseInt(m["epoch"], 10, 64)
		_ = json.Unmarshal([]byte(m["devices"]), &p.Devices)
		out = append(out, p)
	}
	return out, nil
}

// Device implements Bus.
func (r *Redis) Device(ctx context.Context, device string) (Presence, bool, error) {
	agent, err := r.rdb.Get(ctx, r.kDevLoc(device)).Result()
	if errors.Is(err, redis.Nil) {
		return Presence{}, false, nil
	}
	if err != nil {
		return Presence{}, false, err
	}
	p, alive, err := r.readPresence(ctx, agent)
	if err != nil || !alive {
		return Presence{}, false, err
	}
	for _, d := range p.Devices {
		if d.ID == device {
			return p, true, nil
		}
	}
	return Presence{}, false, nil
}

// PutSession implements Bus.
func (r *Redis) PutSession(ctx context.Context, session string, expires time.Time, hashes ...[32]byte) error {
	pipe := r.rdb.Pipeline()
	pipe.Set(ctx, r.kSess(session), r.node, 0)
	pipe.PExpireAt(ctx, r.kSess(session), expires)
	for _, h := range hashes {
		pipe.Set(ctx, r.kTok(h), session, 0)
		pipe.PExpireAt(ctx, r.kTok(h), expires)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// SessionNode implements Bus.
func (r *Redis) SessionNode(ctx context.Context, session string) (string, bool, error) {
	node, err := r.rdb.Get(ctx, r.kSess(session)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	return node, err == nil, err
}

// TokenSession implements Bus.
func (r *Redis) TokenSession(ctx context.Context, hash [32]byte) (string, string, bool, error) {
	id, err := r.rdb.Get(ctx, r.kTok(hash)).Result()
	if errors.Is(err, redis.Nil) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	node, ok, err := r.SessionNode(ctx, id)
	return id, node, ok, err
}

// PutHandoff implements Bus.
func (r *Redis) PutHandoff(ctx context.Context, agent string, state []byte, ttl time.Duration) error {
	return r.rdb.Set(ctx, r.kHandoff(agent), state, ttl).Err()
}

// TakeHandoff implements Bus: GETDEL, so that one node adopts the state.
func (r *Redis) TakeHandoff(ctx context.Context, agent string) ([]byte, bool, error) {
	b, err := r.rdb.GetDel(ctx, r.kHandoff(agent)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// HasHandoff implements Bus.
func (r *Redis) HasHandoff(ctx context.Context, agent string) (bool, error) {
	n, err := r.rdb.Exists(ctx, r.kHandoff(agent)).Result()
	return n > 0, err
}

// Close implements Bus: it releases this node's claims and heartbeat so
// the others see its agents offline at once.
func (r *Redis) Close() error {
	r.once.Do(func() {
		close(r.stop)
		if r.ps != nil {
			_ = r.ps.Close()
		}
	})
	r.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r.mu.Lock()
	claims := r.agents
	r.agents = map[string]*claim{}
	r.mu.Unlock()
	pipe := r.rdb.Pipeline()
	for a, c := range claims {
		if c.epoch != 0 {
			releaseScript.Eval(ctx, pipe, []string{r.kPresence(a)}, strconv.FormatInt(c.epoch, 10))
		}
	}
	pipe.Del(ctx, r.kAlive(r.node))
	_, _ = pipe.Exec(ctx)
	return nil
}
