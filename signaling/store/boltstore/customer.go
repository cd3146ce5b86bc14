package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/porthole-dev/porthole/signaling/store"
)

func siteRequestKey(site string, created time.Time, id string) []byte {
	k := append([]byte(site), 0)
	k = binary.BigEndian.AppendUint64(k, uint64(created.UnixNano()))
	return append(k, id...)
}

// PutRequest implements store.Store.
func (s *Store) PutRequest(ctx context.Context, r *store.Request) error {
	if r.ID == "" || r.Site == "" {
		return fmt.Errorf("put request: %w: empty ID or site", store.ErrBadRecord)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bRequests)
		if b.Get([]byte(r.ID)) != nil {
			return fmt.Errorf("request %q: %w", r.ID, store.ErrExists)
		}
		if err := tx.Bucket(bSiteRequests).Put(siteRequestKey(r.Site, r.Created, r.ID), nil); err != nil {
			return err
		}
		return put(b, []byte(r.ID), r)
	})
}

// Request implements store.Store.
func (s *Store) Request(ctx context.Context, id string) (*store.Request, error) {
	return viewGet[store.Request](ctx, s, bRequests, []byte(id), "request")
}

// UpdateRequest implements store.Store.
func (s *Store) UpdateRequest(ctx context.Context, id string, fn func(*store.Request) error) (r *store.Request, err error) {
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bRequests)
		r, err = get[store.Request](b, []byte(id), "request")
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
		return put(b, []byte(id), r)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Requests implements store.Store.
func (s *Store) Requests(ctx context.Context, site string, since time.Time) (out []*store.Request, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		reqs := tx.Bucket(bRequests)
		prefix := append([]byte(site), 0)
		c := tx.Bucket(bSiteRequests).Cursor()
		seek := prefix
		if !since.IsZero() {
			seek = binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(since.UnixNano()))
		}
		for k, _ := c.Seek(seek); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			r, err := get[store.Request](reqs, k[len(prefix)+8:], "request")
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
