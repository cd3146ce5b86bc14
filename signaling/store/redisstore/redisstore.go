// Package redisstore is the Store (and PKI) of a signaling cluster: every
// node keeps its state in one Redis (github.com/redis/go-redis/v9), so any
// node can serve any request.
//
// Records are JSON strings under keys named by kind and ID, with a set per
// kind for listing. Expiring records (tokens, OAuth codes, enrollment
// tokens, attempt counters) carry Redis TTLs; compound changes are either
// one Lua script (consume a code once, count an attempt) or an optimistic
// WATCH/MULTI transaction retried on conflict. Audit logs are Redis streams
// whose entry IDs are the sequence numbers: XADD with an explicit ID fails
// when another node appended first, which is the compare-and-set that keeps
// a chain without gaps or forks. Entries are hashed with store.ChainHash,
// like every backend.
//
// Durability is Redis's: run it with appendonly yes (and appendfsync always
// where an acknowledged audit entry must survive a Redis crash). Behind
// Sentinel, an entry acknowledged by the primary alone is lost when a
// replica that had not received it is promoted; Options.WaitReplicas closes
// that window for audit entries (see the README, Redis high availability).
package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/porthole-dev/porthole/signaling/store"
)

var (
	_ store.Store = (*Store)(nil)
	_ store.PKI   = (*Store)(nil)
)

// Options tune New and Open.
type Options struct {
	// Prefix starts every key, so several deployments (or tests) can share
	// one Redis. Empty means "porthole:", or "{porthole}:" on a Redis
	// Cluster, where the prefix must start with a hash tag (see Open).
	Prefix string
	// Now returns the current time for expiry checks. Nil means time.Now.
	// Redis TTLs always run on Redis's clock.
	Now func() time.Time
	// WaitReplicas, when above zero, makes every audit append and
	// checkpoint wait (Redis WAIT, on the connection that wrote) until
	// that many replicas acknowledged it, and fail with ErrNotReplicated
	// when they did not within WaitTimeout: an entry the caller was told
	// is stored is then on a replica too, and survives a failover.
	WaitReplicas int
	// WaitTimeout bounds that wait; zero means DefaultWaitTimeout. Keep it
	// below the client's read timeout (3 s by default).
	WaitTimeout time.Duration
}

// DefaultWaitTimeout is Options.WaitTimeout's default.
const DefaultWaitTimeout = time.Second

// ErrNotReplicated says Redis took a write but fewer replicas than
// Options.WaitReplicas acknowledged it in time: the write is on the primary
// only, and the caller must treat it as not stored (a retry is safe: audit
// appends at a given sequence number are idempotent, AppendAudit appends
// anew).
var ErrNotReplicated = errors.New("redis: write not acknowledged by enough replicas")

// Store is a Store on Redis. Create it with Open or New.
type Store struct {
	rdb         redis.UniversalClient
	own         bool // Close closes rdb
	p           string
	now         func() time.Time
	waitN       int
	waitTimeout time.Duration
	closed      bool
}

// The query parameters that Open takes for itself; every other one goes to
// go-redis's own URL parser.
const (
	paramCluster      = "cluster"       // true: a Redis Cluster (ParseClusterURL)
	paramWaitReplicas = "wait_replicas" // Options.WaitReplicas
	paramWaitTimeout  = "wait_timeout"  // Options.WaitTimeout (a Go duration)
	paramKeyPrefix    = "key_prefix"    // Options.Prefix
	paramMasterName   = "master_name"   // go-redis's: marks a Sentinel URL
)

// Open connects to Redis as rawURL says. It does no I/O: the first command
// connects. Three forms, parsed by go-redis itself:
//
//   - one server: redis://[user:pass@]host:port[/db] (rediss:// for TLS), by
//     redis.ParseURL;
//   - Sentinel: redis://[user:pass@]sentinel1:26379[/db]?master_name=NAME&addr=sentinel2:26379&…
//     (the user and password are the sentinels'; the data nodes' go in
//     username= and password=), by redis.ParseFailoverURL and
//     redis.NewFailoverClient, which asks the sentinels for the primary and
//     follows a failover;
//   - Redis Cluster: redis://[user:pass@]node1:6379?cluster=true&addr=node2:6379&…,
//     by redis.ParseClusterURL and redis.NewClusterClient.
//
// Open also takes key_prefix= (Options.Prefix), wait_replicas= and
// wait_timeout= (Options.WaitReplicas and WaitTimeout); values in opt win
// over the URL's. On a cluster the prefix must start with a hash tag
// ("{porthole}:" by default) so that every key lands on one slot, which the
// store's multi-key transactions and scripts need.
func Open(rawURL string, opt Options) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", redactURLError(err))
	}
	q := u.Query()
	cluster := false
	if v := q.Get(paramCluster); v != "" {
		if cluster, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("redis URL: %s=%q: not a boolean", paramCluster, v)
		}
	}
	if v := q.Get(paramWaitReplicas); v != "" && opt.WaitReplicas == 0 {
		if opt.WaitReplicas, err = strconv.Atoi(v); err != nil || opt.WaitReplicas < 0 {
			return nil, fmt.Errorf("redis URL: %s=%q: not a replica count", paramWaitReplicas, v)
		}
	}
	if v := q.Get(paramWaitTimeout); v != "" && opt.WaitTimeout == 0 {
		if opt.WaitTimeout, err = time.ParseDuration(v); err != nil || opt.WaitTimeout <= 0 {
			return nil, fmt.Errorf("redis URL: %s=%q: not a positive duration", paramWaitTimeout, v)
		}
	}
	if v := q.Get(paramKeyPrefix); v != "" && opt.Prefix == "" {
		opt.Prefix = v
	}
	for _, k := range []string{paramCluster, paramWaitReplicas, paramWaitTimeout, paramKeyPrefix} {
		q.Del(k)
	}
	u.RawQuery = q.Encode()
	rest := u.String()

	var rdb redis.UniversalClient
	switch {
	case cluster:
		if q.Has(paramMasterName) {
			return nil, fmt.Errorf("redis URL: %s and %s=true exclude each other", paramMasterName, paramCluster)
		}
		if opt.Prefix == "" {
			opt.Prefix = "{porthole}:"
		}
		if !hashTagged(opt.Prefix) {
			return nil, fmt.Errorf("redis URL: key prefix %q on a Redis Cluster must start with a hash tag such as {porthole}", opt.Prefix)
		}
		o, err := redis.ParseClusterURL(rest)
		if err != nil {
			return nil, fmt.Errorf("redis cluster URL: %w", err)
		}
		rdb = redis.NewClusterClient(o)
	case q.Has(paramMasterName):
		o, err := redis.ParseFailoverURL(rest)
		if err != nil {
			return nil, fmt.Errorf("redis sentinel URL: %w", err)
		}
		if o.MasterName == "" {
			return nil, fmt.Errorf("redis sentinel URL: empty %s", paramMasterName)
		}
		rdb = redis.NewFailoverClient(o)
	default:
		o, err := redis.ParseURL(rest)
		if err != nil {
			return nil, fmt.Errorf("redis URL: %w", err)
		}
		rdb = redis.NewClient(o)
	}
	s := New(rdb, opt)
	s.own = true
	return s, nil
}

// redactURLError drops the URL (which may hold a password) from a
// url.Parse error.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// hashTagged reports whether every key under prefix hashes by the same
// non-empty hash tag: the prefix starts with "{tag}".
func hashTagged(prefix string) bool {
	if !strings.HasPrefix(prefix, "{") {
		return false
	}
	end := strings.IndexByte(prefix, '}')
	return end > 1
}

// New returns a Store on an existing client, which the caller closes.
func New(rdb redis.UniversalClient, opt Options) *Store {
	if opt.Prefix == "" {
		opt.Prefix = "porthole:"
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.WaitTimeout <= 0 {
		opt.WaitTimeout = DefaultWaitTimeout
	}
	return &Store{rdb: rdb, p: opt.Prefix, now: opt.Now, waitN: opt.WaitReplicas, waitTimeout: opt.WaitTimeout}
}

// Prefix returns the key prefix, which the cluster bus shares (on a Redis
// Cluster its keys need the same hash tag).
func (s *Store) Prefix() string { return s.p }

// Client returns the Redis client (for the cluster bus to share).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Close closes the connection if Open made it.
func (s *Store) Close() error {
	if s.own && !s.closed {
		s.closed = true
		return s.rdb.Close()
	}
	return nil
}

func (s *Store) k(parts ...string) string { return s.p + strings.Join(parts, ":") }

func (s *Store) kUser(id string) string       { return s.k("user", id) }
func (s *Store) kUserName(n string) string    { return s.k("username", n) }
func (s *Store) kUsers() string               { return s.k("users") }
func (s *Store) kSite(id string) string       { return s.k("site", id) }
func (s *Store) kSites() string               { return s.k("sites") }
func (s *Store) kSiteAgents(id string) string { return s.k("siteagents", id) }
func (s *Store) kAgent(id string) string      { return s.k("agent", id) }
func (s *Store) kAgents() string              { return s.k("agents") }
func (s *Store) kDevice(a, id string) string  { return s.k("device", a+"\x00"+id) }
func (s *Store) kDevices(a string) string     { return s.k("agentdevices", a) }
func (s *Store) kDiscovery(a string) string   { return s.k("discovery", a) }
func (s *Store) kToken(h string) string       { return s.k("token", h) }
func (s *Store) kUserTokens(u string) string  { return s.k("usertokens", u) }
func (s *Store) kCode(h string) string        { return s.k("code", h) }
func (s *Store) kAttempts(key string) string  { return s.k("attempts", key) }
func (s *Store) kAudit(stream string) string  { return s.k("audit", stream) }

// maxTxRetries bounds optimistic transactions under contention.
const maxTxRetries = 200

// tx runs fn in a WATCH on keys and retries it while another client
// changed one of them first.
func (s *Store) tx(ctx context.Context, fn func(*redis.Tx) error, keys ...string) error {
	for range maxTxRetries {
		err := s.rdb.Watch(ctx, fn, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return fmt.Errorf("redis transaction on %v: %w: too much contention", keys, store.ErrConflict)
}

type getter interface {
	Get(ctx context.Context, key string) *redis.StringCmd
}

func get[T any](ctx context.Context, c getter, key, what, id string) (*T, error) {
	raw, err := c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%s %q: %w", what, id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", what, id, err)
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("%s %q: %w: %v", what, id, store.ErrBadRecord, err)
	}
	return v, nil
}

func enc(v any) string {
	b, _ := json.Marshal(v) // records are plain structs
	return string(b)
}

// list reads the records named by the members of set, skipping members
// whose record is gone.
func list[T any](ctx context.Context, s *Store, set string, key func(string) string, what string) ([]*T, error) {
	ids, err := s.rdb.SMembers(ctx, set).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = key(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]*T, 0, len(vals))
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue
		}
		t := new(T)
		if err := json.Unmarshal([]byte(raw), t); err != nil {
			return nil, fmt.Errorf("%s %q: %w: %v", what, ids[i], store.ErrBadRecord, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, u *store.User) error {
	if u.ID == "" || u.Name == "" {
		return fmt.Errorf("create user: %w: empty ID or name", store.ErrBadRecord)
	}
	uk, nk := s.kUser(u.ID), s.kUserName(u.Name)
	return s.tx(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, uk).Result()
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("user %q: %w", u.ID, store.ErrExists)
		}
		if n, err = tx.Exists(ctx, nk).Result(); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("user name %q: %w", u.Name, store.ErrExists)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, uk, enc(u), 0)
			p.Set(ctx, nk, u.ID, 0)
			p.SAdd(ctx, s.kUsers(), u.ID)
			return nil
		})
		return err
	}, uk, nk)
}

// User implements store.Store.
func (s *Store) User(ctx context.Context, id string) (*store.User, error) {
	return get[store.User](ctx, s.rdb, s.kUser(id), "user", id)
}

// UserByName implements store.Store.
func (s *Store) UserByName(ctx context.Context, name string) (*store.User, error) {
	id, err := s.rdb.Get(ctx, s.kUserName(name)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("user name %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return s.User(ctx, id)
}

// Users implements store.Store.
func (s *Store) Users(ctx context.Context) ([]*store.User, error) {
	out, err := list[store.User](ctx, s, s.kUsers(), s.kUser, "user")
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// UpdateUser implements store.Store.
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(*store.User) error) (u *store.User, err error) {
	k := s.kUser(id)
	err = s.tx(ctx, func(tx *redis.Tx) error {
		u, err = get[store.User](ctx, tx, k, "user", id)
		if err != nil {
			return err
		}
		name := u.Name
		if err := fn(u); err != nil {
			return err
		}
		if u.ID != id || u.Name != name {
			return fmt.Errorf("update user %q: %w: ID and name are fixed", id, store.ErrConflict)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, k, enc(u), 0)
			return nil
		})
		return err
	}, k)
	if err != nil {
		return nil, err
	}
	return u, nil
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	k, tk := s.kUser(id), s.kUserTokens(id)
	return s.tx(ctx, func(tx *redis.Tx) error {
		u, err := get[store.User](ctx, tx, k, "user", id)
		if err != nil {
			return err
		}
		hashes, err := tx.SMembers(ctx, tk).Result()
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, h := range hashes {
				p.Del(ctx, s.kToken(h))
			}
			p.Del(ctx, tk, k, s.kUserName(u.Name))
			p.SRem(ctx, s.kUsers(), id)
			return nil
		})
		return err
	}, k, tk)
}

// CreateSite implements store.Store.
func (s *Store) CreateSite(ctx context.Context, site *store.Site) error {
	if site.ID == "" {
		return fmt.Errorf("create site: %w: empty ID", store.ErrBadRecord)
	}
	ok, err := s.rdb.SetNX(ctx, s.kSite(site.ID), enc(site), 0).Result()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("site %q: %w", site.ID, store.ErrExists)
	}
	return s.rdb.SAdd(ctx, s.kSites(), site.ID).Err()
}

// Site implements store.Store.
func (s *Store) Site(ctx context.Context, id string) (*store.Site, error) {
	return get[store.Site](ctx, s.rdb, s.kSite(id), "site", id)
}

// Sites implements store.Store.
func (s *Store) Sites(ctx context.Context) ([]*store.Site, error) {
	out, err := list[store.Site](ctx, s, s.kSites(), s.kSite, "site")
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// UpdateSite implements store.Store.
func (s *Store) UpdateSite(ctx context.Context, id string, fn func(*store.Site) error) (site *store.Site, err error) {
	k := s.kSite(id)
	err = s.tx(ctx, func(tx *redis.Tx) error {
		site, err = get[store.Site](ctx, tx, k, "site", id)
		if err != nil {
			return err
		}
		if err := fn(site); err != nil {
			return err
		}
		if site.ID != id {
			return fmt.Errorf("update site %q: %w: the ID is fixed", id, store.ErrConflict)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, k, enc(site), 0)
			return nil
		})
		return err
	}, k)
	if err != nil {
		return nil, err
	}
	return site, nil
}

// DeleteSite implements store.Store.
func (s *Store) DeleteSite(ctx context.Context, id string) error {
	k, ak := s.kSite(id), s.kSiteAgents(id)
	return s.tx(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, k).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("site %q: %w", id, store.ErrNotFound)
		}
		agents, err := tx.SMembers(ctx, ak).Result()
		if err != nil {
			return err
		}
		if len(agents) > 0 {
			slices.Sort(agents)
			return fmt.Errorf("site %q still has agent %q: %w", id, agents[0], store.ErrConflict)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, k)
			p.SRem(ctx, s.kSites(), id)
			return nil
		})
		return err
	}, k, ak)
}

// PutAgent implements store.Store.
func (s *Store) PutAgent(ctx context.Context, a *store.Agent) error {
	if a.ID == "" {
		return fmt.Errorf("put agent: %w: empty ID", store.ErrBadRecord)
	}
	k := s.kAgent(a.ID)
	keys := []string{k}
	if a.Site != "" {
		keys = append(keys, s.kSite(a.Site))
	}
	return s.tx(ctx, func(tx *redis.Tx) error {
		if a.Site != "" {
			n, err := tx.Exists(ctx, s.kSite(a.Site)).Result()
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("site %q: %w", a.Site, store.ErrNotFound)
			}
		}
		old, err := get[store.Agent](ctx, tx, k, "agent", a.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if old != nil && old.Site != "" && old.Site != a.Site {
				p.SRem(ctx, s.kSiteAgents(old.Site), a.ID)
			}
			if a.Site != "" {
				p.SAdd(ctx, s.kSiteAgents(a.Site), a.ID)
			}
			p.Set(ctx, k, enc(a), 0)
			p.SAdd(ctx, s.kAgents(), a.ID)
			return nil
		})
		return err
	}, keys...)
}

// Agent implements store.Store.
func (s *Store) Agent(ctx context.Context, id string) (*store.Agent, error) {
	return get[store.Agent](ctx, s.rdb, s.kAgent(id), "agent", id)
}

// Agents implements store.Store.
func (s *Store) Agents(ctx context.Context) ([]*store.Agent, error) {
	out, err := list[store.Agent](ctx, s, s.kAgents(), s.kAgent, "agent")
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// Device implements store.Store.
func (s *Store) Device(ctx context.Context, agent, id string) (*store.Device, error) {
	return get[store.Device](ctx, s.rdb, s.kDevice(agent, id), "device", agent+"/"+id)
}

// UpdateDevice implements store.Store.
func (s *Store) UpdateDevice(ctx context.Context, agent, id string, fn func(*store.Device) error) (d *store.Device, err error) {
	k := s.kDevice(agent, id)
	err = s.tx(ctx, func(tx *redis.Tx) error {
		d, err = get[store.Device](ctx, tx, k, "device", agent+"/"+id)
		if errors.Is(err, store.ErrNotFound) {
			d, err = &store.Device{Agent: agent, ID: id}, nil
		}
		if err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
		d.Agent, d.ID = agent, id
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, k, enc(d), 0)
			p.SAdd(ctx, s.kDevices(agent), id)
			return nil
		})
		return err
	}, k)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Devices implements store.Store.
func (s *Store) Devices(ctx context.Context, agent string) ([]*store.Device, error) {
	out, err := list[store.Device](ctx, s, s.kDevices(agent), func(id string) string { return s.kDevice(agent, id) }, "device")
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// DeleteDevice implements store.Store.
func (s *Store) DeleteDevice(ctx context.Context, agent, id string) error {
	k := s.kDevice(agent, id)
	return s.tx(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, k).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("device %s/%s: %w", agent, id, store.ErrNotFound)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, k)
			p.SRem(ctx, s.kDevices(agent), id)
			return nil
		})
		return err
	}, k)
}

// PutDiscovery implements store.Store.
func (s *Store) PutDiscovery(ctx context.Context, d *store.Discovery) error {
	if d.Agent == "" {
		return fmt.Errorf("put discovery: %w: empty agent", store.ErrBadRecord)
	}
	return s.rdb.Set(ctx, s.kDiscovery(d.Agent), enc(d), 0).Err()
}

// Discovery implements store.Store.
func (s *Store) Discovery(ctx context.Context, agent string) (*store.Discovery, error) {
	return get[store.Discovery](ctx, s.rdb, s.kDiscovery(agent), "discovery", agent)
}

// setExpiring stores v under key until expires (forever if zero). An
// expiry already past deletes the key.
func setExpiring(ctx context.Context, p redis.Pipeliner, key string, v any, expires time.Time) {
	if expires.IsZero() {
		p.Set(ctx, key, enc(v), 0)
		return
	}
	p.Set(ctx, key, enc(v), 0)
	p.PExpireAt(ctx, key, expires)
}

// PutToken implements store.Store.
func (s *Store) PutToken(ctx context.Context, t *store.Token) error {
	if t.Hash == "" || t.User == "" {
		return fmt.Errorf("put token: %w: empty hash or user", store.ErrBadRecord)
	}
	k := s.kToken(t.Hash)
	return s.tx(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, k).Result()
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("token: %w", store.ErrExists)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			setExpiring(ctx, p, k, t, t.Expires)
			p.SAdd(ctx, s.kUserTokens(t.User), t.Hash)
			return nil
		})
		return err
	}, k)
}

// Token implements store.Store.
func (s *Store) Token(ctx context.Context, hash string) (*store.Token, error) {
	t, err := get[store.Token](ctx, s.rdb, s.kToken(hash), "token", "")
	if err != nil {
		return nil, err
	}
	if t.Expired(s.now()) {
		return nil, fmt.Errorf("token: %w (expired)", store.ErrNotFound)
	}
	return t, nil
}

// userTokens returns the user's stored tokens and drops index entries
// whose token expired in Redis.
func (s *Store) userTokens(ctx context.Context, user string) ([]*store.Token, error) {
	all, err := list[store.Token](ctx, s, s.kUserTokens(user), s.kToken, "token")
	if err != nil {
		return nil, err
	}
	if members, err := s.rdb.SCard(ctx, s.kUserTokens(user)).Result(); err == nil && int(members) > len(all) {
		live := make(map[string]bool, len(all))
		for _, t := range all {
			live[t.Hash] = true
		}
		if hashes, err := s.rdb.SMembers(ctx, s.kUserTokens(user)).Result(); err == nil {
			for _, h := range hashes {
				if !live[h] {
					s.rdb.SRem(ctx, s.kUserTokens(user), h)
				}
			}
		}
	}
	return all, nil
}

// UserTokens implements store.Store.
func (s *Store) UserTokens(ctx context.Context, user string, kinds ...store.TokenKind) ([]*store.Token, error) {
	all, err := s.userTokens(ctx, user)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out []*store.Token
	for _, t := range all {
		if (len(kinds) == 0 || slices.Contains(kinds, t.Kind)) && !t.Expired(now) {
			out = append(out, t)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Hash < out[j].Hash
	})
	return out, nil
}

// DeleteToken implements store.Store.
func (s *Store) DeleteToken(ctx context.Context, hash string) error {
	k := s.kToken(hash)
	return s.tx(ctx, func(tx *redis.Tx) error {
		t, err := get[store.Token](ctx, tx, k, "token", "")
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, k)
			p.SRem(ctx, s.kUserTokens(t.User), hash)
			return nil
		})
		return err
	}, k)
}

// DeleteUserTokens implements store.Store.
func (s *Store) DeleteUserTokens(ctx context.Context, user string, kinds ...store.TokenKind) (int, error) {
	all, err := s.userTokens(ctx, user)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range all {
		if len(kinds) > 0 && !slices.Contains(kinds, t.Kind) {
			continue
		}
		deleted, err := s.rdb.Del(ctx, s.kToken(t.Hash)).Result()
		if err != nil {
			return n, err
		}
		s.rdb.SRem(ctx, s.kUserTokens(user), t.Hash)
		n += int(deleted)
	}
	return n, nil
}

// PutCode implements store.Store.
func (s *Store) PutCode(ctx context.Context, c *store.Code) error {
	if c.Hash == "" {
		return fmt.Errorf("put code: %w: empty hash", store.ErrBadRecord)
	}
	stored := *c
	stored.Used, stored.Issued = false, ""
	ok, err := putCode.Run(ctx, s.rdb, []string{s.kCode(c.Hash)},
		enc(&stored), c.Expires.UnixMilli(), s.now().UnixMilli()).Int()
	if err != nil {
		return err
	}
	if ok == 0 {
		return fmt.Errorf("code: %w", store.ErrExists)
	}
	return nil
}

// putCode stores a code as a hash {rec, exp} that expires at exp (ms);
// a code born expired is not kept. It returns 0 if the key exists.
var putCode = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if tonumber(ARGV[2]) <= tonumber(ARGV[3]) then return 1 end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'exp', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
`)

// consumeCode marks a code used once: {0, rec} the first time, {1, rec,
// issued} after; nil for an unknown or expired code.
var consumeCode = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local exp = tonumber(redis.call('HGET', KEYS[1], 'exp'))
if exp <= tonumber(ARGV[2]) then return nil end
local used = redis.call('HGET', KEYS[1], 'issued')
if used then return {1, redis.call('HGET', KEYS[1], 'rec'), used} end
redis.call('HSET', KEYS[1], 'issued', ARGV[1])
return {0, redis.call('HGET', KEYS[1], 'rec')}
`)

// ConsumeCode implements store.Store.
func (s *Store) ConsumeCode(ctx context.Context, hash, issued string) (*store.Code, error) {
	res, err := consumeCode.Run(ctx, s.rdb, []string{s.kCode(hash)}, issued, s.now().UnixMilli()).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("code: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if len(res) < 2 {
		return nil, fmt.Errorf("code: %w: unexpected script reply", store.ErrBadRecord)
	}
	raw, _ := res[1].(string)
	c := new(store.Code)
	if err := json.Unmarshal([]byte(raw), c); err != nil {
		return nil, fmt.Errorf("code: %w: %v", store.ErrBadRecord, err)
	}
	c.Used = true
	if used, _ := res[0].(int64); used == 1 {
		c.Issued, _ = res[2].(string)
		return c, store.ErrCodeUsed
	}
	c.Issued = issued
	return c, nil
}

// attempt counts one attempt in a window that starts at the first.
var attempt = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`)

// Attempt implements store.Store.
func (s *Store) Attempt(ctx context.Context, key string, window time.Duration) (int, error) {
	n, err := attempt.Run(ctx, s.rdb, []string{s.kAttempts(key)}, max(window.Milliseconds(), 1)).Int()
	return n, err
}

// Attempts implements store.Store.
func (s *Store) Attempts(ctx context.Context, key string) (int, error) {
	n, err := s.rdb.Get(ctx, s.kAttempts(key)).Int()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// ResetAttempts implements store.Store.
func (s *Store) ResetAttempts(ctx context.Context, key string) error {
	return s.rdb.Del(ctx, s.kAttempts(key)).Err()
}

// maxAppendRetries bounds AppendAudit's retries when other writers keep
// appending to the same stream first.
const maxAppendRetries = 1000

// AppendAudit implements store.Store. The stream entry ID is "<seq>-1";
// XADD refuses an ID not above the tail, so two nodes appending at once
// cannot both take one sequence number: the loser reads the new tail and
// tries again.
func (s *Store) AppendAudit(ctx context.Context, stream string, e *store.AuditEntry) (*store.AuditEntry, error) {
	if stream == "" {
		return nil, fmt.Errorf("append audit: %w: empty stream", store.ErrBadRecord)
	}
	k := s.kAudit(stream)
	for range maxAppendRetries {
		last, err := s.lastAudit(ctx, k, stream)
		if err != nil {
			return nil, err
		}
		entry := *e
		entry.Seq = last.Seq + 1
		store.ChainAuditEntry(&entry, last.Hash, s.now)
		if added, err := s.addAudit(ctx, k, stream, &entry); err != nil {
			return nil, err
		} else if added {
			return &entry, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("append audit %q: %w: too much contention", stream, store.ErrConflict)
}

// lastAudit returns the tail of the audit stream at key k, or the zero
// entry for an empty stream.
func (s *Store) lastAudit(ctx context.Context, k, stream string) (store.AuditEntry, error) {
	tail, err := s.rdb.XRevRangeN(ctx, k, "+", "-", 1).Result()
	if err != nil {
		return store.AuditEntry{}, fmt.Errorf("audit %q tail: %w", stream, err)
	}
	if len(tail) == 0 {
		return store.AuditEntry{}, nil
	}
	last, err := decodeEntry(tail[0])
	if err != nil {
		return store.AuditEntry{}, fmt.Errorf("audit %q tail: %w", stream, err)
	}
	return *last, nil
}

// addAudit adds the chained entry e to the audit stream at key k with the
// ID "<seq>-1". It reports false, with no error, when XADD refused the ID
// because another writer took that sequence number or a later one first.
func (s *Store) addAudit(ctx context.Context, k, stream string, e *store.AuditEntry) (bool, error) {
	args := &redis.XAddArgs{
		Stream: k,
		ID:     strconv.FormatUint(e.Seq, 10) + "-1",
		Values: []string{"e", enc(e)},
	}
	var err error
	if s.waitN > 0 {
		var add *redis.StringCmd
		err = s.replicated(ctx, k, func(p redis.Pipeliner) { add = p.XAdd(ctx, args) })
		if add != nil && add.Err() != nil {
			err = add.Err() // the refused ID matters more than WAIT's reply
		}
	} else {
		err = s.rdb.XAdd(ctx, args).Err()
	}
	if err == nil {
		return true, nil
	}
	if errors.Is(err, ErrNotReplicated) || !strings.Contains(err.Error(), "equal or smaller") {
		return false, fmt.Errorf("append audit %q: %w", stream, err)
	}
	return false, nil
}

// replicated runs the writes that queue adds, then WAIT for s.waitN
// replicas, in one pipeline on one connection (WAIT counts the writes of its
// own connection only; on a cluster, the connection to the primary of key's
// slot). It returns the first command error, else ErrNotReplicated when
// fewer replicas than s.waitN acknowledged within s.waitTimeout.
func (s *Store) replicated(ctx context.Context, key string, queue func(redis.Pipeliner)) error {
	var c redis.Cmdable = s.rdb
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return err
		}
		c = m
	}
	var wait *redis.Cmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		queue(p)
		wait = p.Do(ctx, "WAIT", s.waitN, s.waitTimeout.Milliseconds())
		return nil
	})
	if err != nil {
		return err
	}
	if n, err := wait.Int64(); err != nil {
		return err
	} else if n < int64(s.waitN) {
		return fmt.Errorf("%w: %d of %d within %s", ErrNotReplicated, n, s.waitN, s.waitTimeout)
	}
	return nil
}

func decodeEntry(m redis.XMessage) (*store.AuditEntry, error) {
	raw, _ := m.Values["e"].(string)
	e := new(store.AuditEntry)
	if err := json.Unmarshal([]byte(raw), e); err != nil {
		return nil, fmt.Errorf("entry %s: %w: %v", m.ID, store.ErrBadRecord, err)
	}
	return e, nil
}

// Audit implements store.Store.
func (s *Store) Audit(ctx context.Context, stream string, after uint64, limit int) ([]*store.AuditEntry, error) {
	start := strconv.FormatUint(after+1, 10) + "-0"
	var (
		msgs []redis.XMessage
		err  error
	)
	if limit > 0 {
		msgs, err = s.rdb.XRangeN(ctx, s.kAudit(stream), start, "+", int64(limit)).Result()
	} else {
		msgs, err = s.rdb.XRange(ctx, s.kAudit(stream), start, "+").Result()
	}
	if err != nil {
		return nil, fmt.Errorf("audit %q: %w", stream, err)
	}
	out := make([]*store.AuditEntry, 0, len(msgs))
	for _, m := range msgs {
		e, err := decodeEntry(m)
		if err != nil {
			return nil, fmt.Errorf("audit %q: %w", stream, err)
		}
		out = append(out, e)
	}
	return out, nil
}
