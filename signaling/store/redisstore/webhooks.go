package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/porthole-dev/porthole/signaling/store"
)

// A subscription is a JSON string under webhook:<id>, listed in the set
// sitewebhooks:<site>. Its deliveries are a hash deliveries:<id> (delivery
// ID → record) ordered by a sorted set deliveryorder:<id> of equal scores
// whose members are 16 hex digits of Created's Unix nanoseconds, then the
// delivery ID (as jobs are ordered).

func (s *Store) kWebhook(id string) string       { return s.k("webhook", id) }
func (s *Store) kSiteWebhooks(id string) string  { return s.k("sitewebhooks", id) }
func (s *Store) kDeliveries(id string) string    { return s.k("deliveries", id) }
func (s *Store) kDeliveryOrder(id string) string { return s.k("deliveryorder", id) }

// PutWebhook implements store.Store.
func (s *Store) PutWebhook(ctx context.Context, w *store.Webhook) error {
	if w.ID == "" || w.Site == "" {
		return fmt.Errorf("put webhook: %w: empty ID or site", store.ErrBadRecord)
	}
	ok, err := s.rdb.SetNX(ctx, s.kWebhook(w.ID), enc(w), 0).Result()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("webhook %q: %w", w.ID, store.ErrExists)
	}
	return s.rdb.SAdd(ctx, s.kSiteWebhooks(w.Site), w.ID).Err()
}

// Webhook implements store.Store.
func (s *Store) Webhook(ctx context.Context, id string) (*store.Webhook, error) {
	return get[store.Webhook](ctx, s.rdb, s.kWebhook(id), "webhook", id)
}

// Webhooks implements store.Store.
func (s *Store) Webhooks(ctx context.Context, site string) ([]*store.Webhook, error) {
	out, err := list[store.Webhook](ctx, s, s.kSiteWebhooks(site), s.kWebhook, "webhook")
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

// DeleteWebhook implements store.Store.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	w, err := s.Webhook(ctx, id)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.kWebhook(id), s.kDeliveries(id), s.kDeliveryOrder(id))
		p.SRem(ctx, s.kSiteWebhooks(w.Site), id)
		return nil
	})
	return err
}

// putDelivery stores one delivery and trims the log: KEYS are the
// subscription, its deliveries hash and its order set; ARGV the delivery
// ID, its order member, its record and how many to keep (0: all). It
// returns -1 when the subscription is gone.
var putDelivery = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  redis.call('ZADD', KEYS[3], 0, ARGV[2])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local keep = tonumber(ARGV[4])
local n = redis.call('ZCARD', KEYS[3])
if keep > 0 and n > keep then
  local old = redis.call('ZRANGE', KEYS[3], 0, n - keep - 1)
  for _, m in ipairs(old) do
    redis.call('ZREM', KEYS[3], m)
    redis.call('HDEL', KEYS[2], string.sub(m, 17))
  end
end
return 1
`)

// PutDelivery implements store.Store. A delivery has one writer (the
// dispatcher goroutine that owns it), so reading its first Created before
// the script needs no transaction.
func (s *Store) PutDelivery(ctx context.Context, d *store.WebhookDelivery, keep int) error {
	if d.ID == "" || d.Webhook == "" {
		return fmt.Errorf("put delivery: %w: empty ID or webhook", store.ErrBadRecord)
	}
	rec := *d
	raw, err := s.rdb.HGet(ctx, s.kDeliveries(d.Webhook), d.ID).Bytes()
	switch {
	case err == nil:
		var old store.WebhookDelivery
		if json.Unmarshal(raw, &old) == nil {
			rec.Created = old.Created
		}
	case !errors.Is(err, redis.Nil):
		return err
	}
	n, err := putDelivery.Run(ctx, s.rdb, []string{s.kWebhook(d.Webhook), s.kDeliveries(d.Webhook), s.kDeliveryOrder(d.Webhook)},
		d.ID, jobMember(rec.Created, d.ID), enc(&rec), strconv.Itoa(max(keep, 0))).Int()
	if err != nil {
		return fmt.Errorf("put delivery %q: %w", d.ID, err)
	}
	if n < 0 {
		return fmt.Errorf("webhook %q: %w", d.Webhook, store.ErrNotFound)
	}
	return nil
}

// Deliveries implements store.Store.
func (s *Store) Deliveries(ctx context.Context, webhook string, limit int) ([]*store.WebhookDelivery, error) {
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit) - 1
	}
	members, err := s.rdb.ZRevRange(ctx, s.kDeliveryOrder(webhook), 0, stop).Result()
	if err != nil || len(members) == 0 {
		return nil, err
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m[16:]
	}
	vals, err := s.rdb.HMGet(ctx, s.kDeliveries(webhook), ids...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]*store.WebhookDelivery, 0, len(vals))
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue
		}
		d := new(store.WebhookDelivery)
		if err := json.Unmarshal([]byte(raw), d); err != nil {
			return nil, fmt.Errorf("delivery %q: %w: %v", ids[i], store.ErrBadRecord, err)
		}
		out = append(out, d)
	}
	return out, nil
}
