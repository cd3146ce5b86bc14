package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"

	"github.com/porthole-dev/porthole/signaling/store"
)

// Webhooks live in bWebhooks (id → Webhook); each subscription's
// deliveries in a bucket of bDeliveries named by its ID, keyed by Created
// (8 bytes BE Unix ns) + delivery ID, so the log reads in time order.

func deliveryKey(d *store.WebhookDelivery) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(d.Created.UnixNano())), d.ID...)
}

// PutWebhook implements store.Store.
func (s *Store) PutWebhook(ctx context.Context, w *store.Webhook) error {
	if w.ID == "" || w.Site == "" {
		return fmt.Errorf("put webhook: %w: empty ID or site", store.ErrBadRecord)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bWebhooks)
		if b.Get([]byte(w.ID)) != nil {
			return fmt.Errorf("webhook %q: %w", w.ID, store.ErrExists)
		}
		return put(b, []byte(w.ID), w)
	})
}

// Webhook implements store.Store.
func (s *Store) Webhook(ctx context.Context, id string) (*store.Webhook, error) {
	return viewGet[store.Webhook](ctx, s, bWebhooks, []byte(id), "webhook")
}

// Webhooks implements store.Store.
func (s *Store) Webhooks(ctx context.Context, site string) (out []*store.Webhook, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		all, err := list[store.Webhook](tx.Bucket(bWebhooks), "webhook")
		if err != nil {
			return err
		}
		for _, w := range all {
			if w.Site == site {
				out = append(out, w)
			}
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// DeleteWebhook implements store.Store.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bWebhooks)
		if b.Get([]byte(id)) == nil {
			return fmt.Errorf("webhook %q: %w", id, store.ErrNotFound)
		}
		if err := b.Delete([]byte(id)); err != nil {
			return err
		}
		if tx.Bucket(bDeliveries).Bucket([]byte(id)) != nil {
			return tx.Bucket(bDeliveries).DeleteBucket([]byte(id))
		}
		return nil
	})
}

// PutDelivery implements store.Store.
func (s *Store) PutDelivery(ctx context.Context, d *store.WebhookDelivery, keep int) error {
	if d.ID == "" || d.Webhook == "" {
		return fmt.Errorf("put delivery: %w: empty ID or webhook", store.ErrBadRecord)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bWebhooks).Get([]byte(d.Webhook)) == nil {
			return fmt.Errorf("webhook %q: %w", d.Webhook, store.ErrNotFound)
		}
		b, err := tx.Bucket(bDeliveries).CreateBucketIfNotExists([]byte(d.Webhook))
		if err != nil {
			return err
		}
		rec := *d
		c := b.Cursor()
		// The first Created stored for an ID stays (the key is built on it).
		for k, raw := c.First(); k != nil; k, raw = c.Next() {
			if string(k[8:]) == d.ID {
				old, err := decode[store.WebhookDelivery](k, raw, "delivery")
				if err != nil {
					return err
				}
				rec.Created = old.Created
				break
			}
		}
		if err := put(b, deliveryKey(&rec), &rec); err != nil {
			return err
		}
		if keep <= 0 {
			return nil
		}
		var keys [][]byte
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			keys = append(keys, k)
		}
		for _, k := range keys[:max(len(keys)-keep, 0)] {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Deliveries implements store.Store.
func (s *Store) Deliveries(ctx context.Context, webhook string, limit int) (out []*store.WebhookDelivery, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bDeliveries).Bucket([]byte(webhook))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, raw := c.Last(); k != nil; k, raw = c.Prev() {
			if limit > 0 && len(out) >= limit {
				break
			}
			d, err := decode[store.WebhookDelivery](k, raw, "delivery")
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

func decode[T any](k, raw []byte, what string) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("%s %q: %w: %v", what, k, store.ErrBadRecord, err)
	}
	return v, nil
}
