// Package boltstore is the embedded Store: one bbolt file in signaling's
// data directory. Every method is one bbolt transaction, so each is atomic
// and survives a crash once it returns.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/porthole-dev/porthole/signaling/store"
)

var _ store.Store = (*Store)(nil)

var (
	bUsers      = []byte("users")      // id → User
	bUserNames  = []byte("usernames")  // name → id
	bSites      = []byte("sites")      // id → Site
	bAgents     = []byte("agents")     // id → Agent
	bDevices    = []byte("devices")    // agent \x00 id → Device
	bDiscovery  = []byte("discovery")  // agent → Discovery
	bTokens     = []byte("tokens")     // hash → Token
	bUserTokens = []byte("usertokens") // user \x00 hash → nothing
	bCodes      = []byte("codes")      // hash → Code
	bAttempts   = []byte("attempts")   // key → attempts
	bAudit      = []byte("audit")      // stream → bucket of seq (8 bytes BE) → AuditEntry
	// jobs.go
	bJobs        = []byte("jobs")        // id → Job
	bJobsByTime  = []byte("jobsbytime")  // created (8 bytes BE Unix ns) + id → nothing
	bCheckpoints = []byte("checkpoints") // stream → Checkpoint
	// webhooks.go
	bWebhooks   = []byte("webhooks")   // id → Webhook
	bDeliveries = []byte("deliveries") // webhook → bucket of created + id → WebhookDelivery
	// customer.go
	bRequests     = []byte("requests")     // id → Request
	bSiteRequests = []byte("siterequests") // site \x00 created (8 bytes BE Unix ns) id → nothing
	// A job's terminal recording: its head, and its chunks.
	bRecordings    = []byte("recordings")    // job → recordingMeta
	bRecordingData = []byte("recordingdata") // job \x00 seq (8 bytes BE) → asciicast lines
)

// Options tune Open.
type Options struct {
	// Now returns the current time for expiry. Nil means time.Now.
	Now func() time.Time
	// Timeout is how long Open waits for another process to release the
	// file. Zero means 2 s.
	Timeout time.Duration
}

// Store is a Store on a bbolt file. Create it with Open.
type Store struct {
	db  *bolt.DB
	now func() time.Time
}

// Open opens (creating if needed) the store file at path.
func Open(path string, opt Options) (*Store, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Timeout == 0 {
		opt.Timeout = 2 * time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opt.Timeout})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bUsers, bUserNames, bSites, bAgents, bDevices, bDiscovery, bTokens, bUserTokens, bCodes, bAttempts, bAudit, bJobs, bJobsByTime, bCheckpoints, bWebhooks, bDeliveries, bRequests, bSiteRequests, bRecordings, bRecordingData} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db, now: opt.Now}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func get[T any](b *bolt.Bucket, key []byte, what string) (*T, error) {
	raw := b.Get(key)
	if raw == nil {
		return nil, fmt.Errorf("%s %q: %w", what, key, store.ErrNotFound)
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("%s %q: %w: %v", what, key, store.ErrBadRecord, err)
	}
	return v, nil
}

func put(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

func list[T any](b *bolt.Bucket, what string) ([]*T, error) {
	var out []*T
	err := b.ForEach(func(k, raw []byte) error {
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("%s %q: %w: %v", what, k, store.ErrBadRecord, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// viewGet reads the record under key in bucket in a read transaction;
// what names the record in errors (store.ErrNotFound when it is missing).
func viewGet[T any](ctx context.Context, s *Store, bucket, key []byte, what string) (v *T, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		v, err = get[T](tx.Bucket(bucket), key, what)
		return err
	})
	return v, err
}

func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, u *store.User) error {
	if u.ID == "" || u.Name == "" {
		return fmt.Errorf("create user: %w: empty ID or name", store.ErrBadRecord)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		users, names := tx.Bucket(bUsers), tx.Bucket(bUserNames)
		if users.Get([]byte(u.ID)) != nil {
			return fmt.Errorf("user %q: %w", u.ID, store.ErrExists)
		}
		if names.Get([]byte(u.Name)) != nil {
			return fmt.Errorf("user name %q: %w", u.Name, store.ErrExists)
		}
		if err := names.Put([]byte(u.Name), []byte(u.ID)); err != nil {
			return err
		}
		return put(users, []byte(u.ID), u)
	})
}

// User implements store.Store.
func (s *Store) User(ctx context.Context, id string) (u *store.User, err error) {
	return viewGet[store.User](ctx, s, bUsers, []byte(id), "user")
}

// UserByName implements store.Store.
func (s *Store) UserByName(ctx context.Context, name string) (u *store.User, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		id := tx.Bucket(bUserNames).Get([]byte(name))
		if id == nil {
			return fmt.Errorf("user name %q: %w", name, store.ErrNotFound)
		}
		u, err = get[store.User](tx.Bucket(bUsers), id, "user")
		return err
	})
	return u, err
}

// Users implements store.Store.
func (s *Store) Users(ctx context.Context) (out []*store.User, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		out, err = list[store.User](tx.Bucket(bUsers), "user")
		return err
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// UpdateUser implements store.Store.
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(*store.User) error) (u *store.User, err error) {
	err = s.update(ctx, func(tx *bolt.Tx) error {
		u, err = get[store.User](tx.Bucket(bUsers), []byte(id), "user")
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
		return put(tx.Bucket(bUsers), []byte(id), u)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		u, err := get[store.User](tx.Bucket(bUsers), []byte(id), "user")
		if err != nil {
			return err
		}
		if _, err := deleteUserTokens(tx, id, nil); err != nil {
			return err
		}
		if err := tx.Bucket(bUserNames).Delete([]byte(u.Name)); err != nil {
			return err
		}
		return tx.Bucket(bUsers).Delete([]byte(id))
	})
}

// CreateSite implements store.Store.
func (s *Store) CreateSite(ctx context.Context, site *store.Site) error {
	if site.ID == "" {
		return fmt.Errorf("create site: %w: empty ID", store.ErrBadRecord)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bSites)
		if b.Get([]byte(site.ID)) != nil {
			return fmt.Errorf("site %q: %w", site.ID, store.ErrExists)
		}
		return put(b, []byte(site.ID), site)
	})
}

// Site implements store.Store.
func (s *Store) Site(ctx context.Context, id string) (site *store.Site, err error) {
	return viewGet[store.Site](ctx, s, bSites, []byte(id), "site")
}

// Sites implements store.Store.
func (s *Store) Sites(ctx context.Context) (out []*store.Site, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		out, err = list[store.Site](tx.Bucket(bSites), "site")
		return err
	})
	return out, err
}

// UpdateSite implements store.Store.
func (s *Store) UpdateSite(ctx context.Context, id string, fn func(*store.Site) error) (site *store.Site, err error) {
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bSites)
		site, err = get[store.Site](b, []byte(id), "site")
		if err != nil {
			return err
		}
		if err := fn(site); err != nil {
			return err
		}
		if site.ID != id {
			return fmt.Errorf("update site %q: %w: the ID is fixed", id, store.ErrConflict)
		}
		return put(b, []byte(id), site)
	})
	if err != nil {
		return nil, err
	}
	return site, nil
}

// DeleteSite implements store.Store.
func (s *Store) DeleteSite(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bSites)
		if b.Get([]byte(id)) == nil {
			return fmt.Errorf("site %q: %w", id, store.ErrNotFound)
		}
		agents, err := list[store.Agent](tx.Bucket(bAgents), "agent")
		if err != nil {
			return err
		}
		for _, a := range agents {
			if a.Site == id {
				return fmt.Errorf("site %q still has agent %q: %w", id, a.ID, store.ErrConflict)
			}
		}
		return b.Delete([]byte(id))
	})
}

// PutAgent implements store.Store.
func (s *Store) PutAgent(ctx context.Context, a *store.Agent) error {
	if a.ID == "" {
		return fmt.Errorf("put agent: %w: empty ID", store.ErrBadRecord)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		if a.Site != "" && tx.Bucket(bSites).Get([]byte(a.Site)) == nil {
			return fmt.Errorf("site %q: %w", a.Site, store.ErrNotFound)
		}
		return put(tx.Bucket(bAgents), []byte(a.ID), a)
	})
}

// Agent implements store.Store.
func (s *Store) Agent(ctx context.Context, id string) (a *store.Agent, err error) {
	return viewGet[store.Agent](ctx, s, bAgents, []byte(id), "agent")
}

// Agents implements store.Store.
func (s *Store) Agents(ctx context.Context) (out []*store.Agent, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		out, err = list[store.Agent](tx.Bucket(bAgents), "agent")
		return err
	})
	return out, err
}

func deviceKey(agent, id string) []byte { return []byte(agent + "\x00" + id) }

// Device implements store.Store.
func (s *Store) Device(ctx context.Context, agent, id string) (d *store.Device, err error) {
	return viewGet[store.Device](ctx, s, bDevices, deviceKey(agent, id), "device")
}

// UpdateDevice implements store.Store.
func (s *Store) UpdateDevice(ctx context.Context, agent, id string, fn func(*store.Device) error) (d *store.Device, err error) {
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bDevices)
		d, err = get[store.Device](b, deviceKey(agent, id), "device")
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
		return put(b, deviceKey(agent, id), d)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Devices implements store.Store.
func (s *Store) Devices(ctx context.Context, agent string) (out []*store.Device, err error) {
	prefix := deviceKey(agent, "")
	err = s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bDevices).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			d := new(store.Device)
			if err := json.Unmarshal(v, d); err != nil {
				return fmt.Errorf("device %q: %w: %v", k, store.ErrBadRecord, err)
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// DeleteDevice implements store.Store.
func (s *Store) DeleteDevice(ctx context.Context, agent, id string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bDevices)
		if b.Get(deviceKey(agent, id)) == nil {
			return fmt.Errorf("device %s/%s: %w", agent, id, store.ErrNotFound)
		}
		return b.Delete(deviceKey(agent, id))
	})
}

// PutDiscovery implements store.Store.
func (s *Store) PutDiscovery(ctx context.Context, d *store.Discovery) error {
	if d.Agent == "" {
		return fmt.Errorf("put discovery: %w: empty agent", store.ErrBadRecord)
	}
	return s.update(ctx, func(tx *bolt.Tx) error { return put(tx.Bucket(bDiscovery), []byte(d.Agent), d) })
}

// Discovery implements store.Store.
func (s *Store) Discovery(ctx context.Context, agent string) (*store.Discovery, error) {
	return viewGet[store.Discovery](ctx, s, bDiscovery, []byte(agent), "discovery")
}

func userTokenKey(user, hash string) []byte { return []byte(user + "\x00" + hash) }

// PutToken implements store.Store.
func (s *Store) PutToken(ctx context.Context, t *store.Token) error {
	if t.Hash == "" || t.User == "" {
		return fmt.Errorf("put token: %w: empty hash or user", store.ErrBadRecord)
	}
	now := s.now()
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bTokens)
		if b.Get([]byte(t.Hash)) != nil {
			return fmt.Errorf("token: %w", store.ErrExists)
		}
		// Drop the user's expired tokens while we are here.
		if _, err := deleteUserTokens(tx, t.User, func(old *store.Token) bool { return old.Expired(now) }); err != nil {
			return err
		}
		if err := tx.Bucket(bUserTokens).Put(userTokenKey(t.User, t.Hash), nil); err != nil {
			return err
		}
		return put(b, []byte(t.Hash), t)
	})
}

// Token implements store.Store.
func (s *Store) Token(ctx context.Context, hash string) (t *store.Token, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		t, err = get[store.Token](tx.Bucket(bTokens), []byte(hash), "token")
		if err == nil && t.Expired(s.now()) {
			err = fmt.Errorf("token: %w (expired)", store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

func userTokens(tx *bolt.Tx, user string) ([]*store.Token, error) {
	var out []*store.Token
	prefix := []byte(user + "\x00")
	c := tx.Bucket(bUserTokens).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		t, err := get[store.Token](tx.Bucket(bTokens), k[len(prefix):], "token")
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func kindFilter(kinds []store.TokenKind) func(*store.Token) bool {
	return func(t *store.Token) bool { return len(kinds) == 0 || slices.Contains(kinds, t.Kind) }
}

// UserTokens implements store.Store.
func (s *Store) UserTokens(ctx context.Context, user string, kinds ...store.TokenKind) (out []*store.Token, err error) {
	now := s.now()
	match := kindFilter(kinds)
	err = s.view(ctx, func(tx *bolt.Tx) error {
		all, err := userTokens(tx, user)
		for _, t := range all {
			if match(t) && !t.Expired(now) {
				out = append(out, t)
			}
		}
		return err
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// DeleteToken implements store.Store.
func (s *Store) DeleteToken(ctx context.Context, hash string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		t, err := get[store.Token](tx.Bucket(bTokens), []byte(hash), "token")
		if err != nil {
			return err
		}
		if err := tx.Bucket(bUserTokens).Delete(userTokenKey(t.User, hash)); err != nil {
			return err
		}
		return tx.Bucket(bTokens).Delete([]byte(hash))
	})
}

func deleteUserTokens(tx *bolt.Tx, user string, match func(*store.Token) bool) (int, error) {
	all, err := userTokens(tx, user)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range all {
		if match != nil && !match(t) {
			continue
		}
		if err := tx.Bucket(bUserTokens).Delete(userTokenKey(user, t.Hash)); err != nil {
			return n, err
		}
		if err := tx.Bucket(bTokens).Delete([]byte(t.Hash)); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// DeleteUserTokens implements store.Store.
func (s *Store) DeleteUserTokens(ctx context.Context, user string, kinds ...store.TokenKind) (n int, err error) {
	err = s.update(ctx, func(tx *bolt.Tx) error {
		n, err = deleteUserTokens(tx, user, kindFilter(kinds))
		return err
	})
	return n, err
}

// PutCode implements store.Store.
func (s *Store) PutCode(ctx context.Context, c *store.Code) error {
	if c.Hash == "" {
		return fmt.Errorf("put code: %w: empty hash", store.ErrBadRecord)
	}
	now := s.now()
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bCodes)
		if b.Get([]byte(c.Hash)) != nil {
			return fmt.Errorf("code: %w", store.ErrExists)
		}
		// Codes live for seconds: sweep the expired ones on every write.
		var expired [][]byte
		_ = b.ForEach(func(k, raw []byte) error {
			var old store.Code
			if json.Unmarshal(raw, &old) != nil || !now.Before(old.Expires) {
				expired = append(expired, bytes.Clone(k))
			}
			return nil
		})
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if !now.Before(c.Expires) {
			return nil // born expired: nothing to keep
		}
		stored := *c
		stored.Used, stored.Issued = false, ""
		return put(b, []byte(c.Hash), &stored)
	})
}

// ConsumeCode implements store.Store.
func (s *Store) ConsumeCode(ctx context.Context, hash, issued string) (c *store.Code, err error) {
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bCodes)
		c, err = get[store.Code](b, []byte(hash), "code")
		if err != nil {
			return err
		}
		if !s.now().Before(c.Expires) {
			return fmt.Errorf("code: %w (expired)", store.ErrNotFound)
		}
		if c.Used {
			return store.ErrCodeUsed
		}
		c.Used, c.Issued = true, issued
		return put(b, []byte(hash), c)
	})
	if errors.Is(err, store.ErrCodeUsed) {
		return c, err
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

type attempts struct {
	Count   int       `json:"count"`
	Expires time.Time `json:"expires"`
}

// Attempt implements store.Store.
func (s *Store) Attempt(ctx context.Context, key string, window time.Duration) (n int, err error) {
	now := s.now()
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bAttempts)
		a, err := get[attempts](b, []byte(key), "attempts")
		if err != nil || !now.Before(a.Expires) {
			a = &attempts{Expires: now.Add(window)}
		}
		a.Count++
		n = a.Count
		return put(b, []byte(key), a)
	})
	return n, err
}

// Attempts implements store.Store.
func (s *Store) Attempts(ctx context.Context, key string) (n int, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		a, err := get[attempts](tx.Bucket(bAttempts), []byte(key), "attempts")
		if err == nil && s.now().Before(a.Expires) {
			n = a.Count
		}
		return nil
	})
	return n, err
}

// ResetAttempts implements store.Store.
func (s *Store) ResetAttempts(ctx context.Context, key string) error {
	return s.update(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bAttempts).Delete([]byte(key)) })
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// lastAudit returns the tail of an audit stream's bucket, or the zero entry
// for an empty stream.
func lastAudit(b *bolt.Bucket, stream string) (last store.AuditEntry, err error) {
	if k, raw := b.Cursor().Last(); k != nil {
		if err := json.Unmarshal(raw, &last); err != nil {
			return last, fmt.Errorf("audit %q tail: %w: %v", stream, store.ErrBadRecord, err)
		}
	}
	return last, nil
}

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(ctx context.Context, stream string, e *store.AuditEntry) (out *store.AuditEntry, err error) {
	if stream == "" {
		return nil, fmt.Errorf("append audit: %w: empty stream", store.ErrBadRecord)
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bAudit).CreateBucketIfNotExists([]byte(stream))
		if err != nil {
			return err
		}
		last, err := lastAudit(b, stream)
		if err != nil {
			return err
		}
		entry := *e
		entry.Seq = last.Seq + 1
		store.ChainAuditEntry(&entry, last.Hash, s.now)
		out = &entry
		return put(b, seqKey(entry.Seq), &entry)
	})
	return out, err
}

// Audit implements store.Store.
func (s *Store) Audit(ctx context.Context, stream string, after uint64, limit int) (out []*store.AuditEntry, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bAudit).Bucket([]byte(stream))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, raw := c.Seek(seqKey(after + 1)); k != nil; k, raw = c.Next() {
			if limit > 0 && len(out) >= limit {
				break
			}
			e := new(store.AuditEntry)
			if err := json.Unmarshal(raw, e); err != nil {
				return fmt.Errorf("audit %q: %w: %v", stream, store.ErrBadRecord, err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}
