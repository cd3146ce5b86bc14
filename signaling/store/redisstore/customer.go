package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/porthole-dev/porthole/signaling/store"
)

func (s *Store) kRequest(id string) string        { return s.k("request", id) }
func (s *Store) kSiteRequests(site string) string { return s.k("siterequests", site) }

// PutRequest implements store.Store.
func (s *Store) PutRequest(ctx context.Context, r *store.Request) error {
	if r.ID == "" || r.Site == "" {
		return fmt.Errorf("put request: %w: empty ID or site", store.ErrBadRecord)
	}
	ok, err := s.rdb.SetNX(ctx, s.kRequest(r.ID), enc(r), 0).Result()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("request %q: %w", r.ID, store.ErrExists)
	}
	return s.rdb.ZAdd(ctx, s.kSiteRequests(r.Site), redis.Z{Member: jobMember(r.Created, r.ID)}).Err()
}

// Request implements store.Store.
func (s *Store) Request(ctx context.Context, id string) (*store.Request, error) {
	return get[store.Request](ctx, s.rdb, s.kRequest(id), "request", id)
}

// UpdateRequest implements store.Store.
func (s *Store) UpdateRequest(ctx context.Context, id string, fn func(*store.Request) error) (r *store.Request, err error) {
	k := s.kRequest(id)
	err = s.tx(ctx, func(tx *redis.Tx) error {
		r, err = get[store.Request](ctx, tx, k, "request", id)
		if err != nil {
			return err
		}
		site, created := r.Site, r.Created
		if err := fn(r); err != nil {
			return err
		}
		if r.ID != id || r.Site != site || !r.Created.Equal(created) {
			return fmt.Errorf("update request %q: %w: ID, site and creation are fixed", id, store.ErrConflict)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, k, enc(r), 0)
			return nil
		})
		return err
	}, k)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Requests implements store.Store.
func (s *Store) Requests(ctx context.Context, site string, since time.Time) ([]*store.Request, error) {
	minLex := "-"
	if !since.IsZero() {
		minLex = "[" + fmt.Sprintf("%016x", uint64(since.UnixNano()))
	}
	members, err := s.rdb.ZRangeByLex(ctx, s.kSiteRequests(site), &redis.ZRangeBy{Min: minLex, Max: "+"}).Result()
	if err != nil || len(members) == 0 {
		return nil, err
	}
	keys := make([]string, len(members))
	for i, m := range members {
		keys[i] = s.kRequest(m[16:])
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]*store.Request, 0, len(vals))
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue
		}
		r := new(store.Request)
		if err := json.Unmarshal([]byte(raw), r); err != nil {
			return nil, fmt.Errorf("request %q: %w: %v", members[i][16:], store.ErrBadRecord, err)
		}
		out = append(out, r)
	}
	return out, nil
}
