package boltstore

import (
	"context"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"

	"github.com/porthole-dev/porthole/signaling/store"
)

var _ store.PKI = (*Store)(nil)

// Buckets of the PKI state, created on first write.
var (
	bEnrollTokens = []byte("enrolltokens") // hash → EnrollToken
	bAgentCerts   = []byte("agentcerts")   // agent → AgentCert
)

// PutEnrollToken implements store.PKI.
func (s *Store) PutEnrollToken(ctx context.Context, t *store.EnrollToken) error {
	if t.Hash == "" || t.Site == "" || t.Agent == "" {
		return fmt.Errorf("put enrollment token: %w: empty hash, site or agent", store.ErrBadRecord)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bEnrollTokens)
		if err != nil {
			return err
		}
		if b.Get([]byte(t.Hash)) != nil {
			return fmt.Errorf("enrollment token: %w", store.ErrExists)
		}
		return put(b, []byte(t.Hash), t)
	})
}

// ConsumeEnrollToken implements store.PKI.
func (s *Store) ConsumeEnrollToken(ctx context.Context, hash string) (t *store.EnrollToken, err error) {
	expired := false
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bEnrollTokens)
		if b == nil {
			return fmt.Errorf("enrollment token: %w", store.ErrNotFound)
		}
		t, err = get[store.EnrollToken](b, []byte(hash), "enrollment token")
		if err != nil {
			return err
		}
		expired = !s.now().Before(t.Expires)
		return b.Delete([]byte(hash)) // used or expired: gone either way
	})
	if err != nil {
		return nil, err
	}
	if expired {
		return nil, fmt.Errorf("enrollment token: %w (expired)", store.ErrNotFound)
	}
	return t, nil
}

// EnrollTokens implements store.PKI.
func (s *Store) EnrollTokens(ctx context.Context) (out []*store.EnrollToken, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bEnrollTokens)
		if b == nil {
			return nil
		}
		all, err := list[store.EnrollToken](b, "enrollment token")
		now := s.now()
		for _, t := range all {
			if now.Before(t.Expires) {
				out = append(out, t)
			}
		}
		return err
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// AgentCert implements store.PKI.
func (s *Store) AgentCert(ctx context.Context, agent string) (c *store.AgentCert, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bAgentCerts)
		if b == nil {
			return fmt.Errorf("agent certificate %q: %w", agent, store.ErrNotFound)
		}
		c, err = get[store.AgentCert](b, []byte(agent), "agent certificate")
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// UpdateAgentCert implements store.PKI.
func (s *Store) UpdateAgentCert(ctx context.Context, agent string, fn func(*store.AgentCert) error) (c *store.AgentCert, err error) {
	if agent == "" {
		return nil, fmt.Errorf("update agent certificate: %w: empty agent", store.ErrBadRecord)
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bAgentCerts)
		if err != nil {
			return err
		}
		c = &store.AgentCert{Agent: agent}
		if b.Get([]byte(agent)) != nil {
			if c, err = get[store.AgentCert](b, []byte(agent), "agent certificate"); err != nil {
				return err
			}
		}
		if err := fn(c); err != nil {
			return err
		}
		if c.Agent != agent {
			return fmt.Errorf("update agent certificate %q: %w: agent is fixed", agent, store.ErrConflict)
		}
		return put(b, []byte(agent), c)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}
