package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/redis/go-redis/v9"

	"github.com/porthole-dev/porthole/signaling/store"
)

func (s *Store) kEnroll(h string) string    { return s.k("enroll", h) }
func (s *Store) kEnrolls() string           { return s.k("enrolls") }
func (s *Store) kAgentCert(a string) string { return s.k("agentcert", a) }

// PutEnrollToken implements store.PKI.
func (s *Store) PutEnrollToken(ctx context.Context, t *store.EnrollToken) error {
	if t.Hash == "" || t.Site == "" || t.Agent == "" {
		return fmt.Errorf("put enrollment token: %w: empty hash, site or agent", store.ErrBadRecord)
	}
	k := s.kEnroll(t.Hash)
	ok, err := s.rdb.SetNX(ctx, k, enc(t), 0).Result()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("enrollment token: %w", store.ErrExists)
	}
	// Redis expires it on its own clock too; the check against Now below
	// is what decides.
	if !t.Expires.IsZero() {
		s.rdb.PExpireAt(ctx, k, t.Expires)
	}
	return s.rdb.SAdd(ctx, s.kEnrolls(), t.Hash).Err()
}

// ConsumeEnrollToken implements store.PKI: GETDEL takes the token once,
// whichever node asks first.
func (s *Store) ConsumeEnrollToken(ctx context.Context, hash string) (*store.EnrollToken, error) {
	raw, err := s.rdb.GetDel(ctx, s.kEnroll(hash)).Bytes()
	s.rdb.SRem(ctx, s.kEnrolls(), hash)
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("enrollment token: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	t := new(store.EnrollToken)
	if err := json.Unmarshal(raw, t); err != nil {
		return nil, fmt.Errorf("enrollment token: %w: %v", store.ErrBadRecord, err)
	}
	if !s.now().Before(t.Expires) {
		return nil, fmt.Errorf("enrollment token: %w (expired)", store.ErrNotFound)
	}
	return t, nil
}

// EnrollTokens implements store.PKI.
func (s *Store) EnrollTokens(ctx context.Context) ([]*store.EnrollToken, error) {
	all, err := list[store.EnrollToken](ctx, s, s.kEnrolls(), s.kEnroll, "enrollment token")
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out []*store.EnrollToken
	for _, t := range all {
		if now.Before(t.Expires) {
			out = append(out, t)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// AgentCert implements store.PKI.
func (s *Store) AgentCert(ctx context.Context, agent string) (*store.AgentCert, error) {
	return get[store.AgentCert](ctx, s.rdb, s.kAgentCert(agent), "agent certificate", agent)
}

// UpdateAgentCert implements store.PKI.
func (s *Store) UpdateAgentCert(ctx context.Context, agent string, fn func(*store.AgentCert) error) (c *store.AgentCert, err error) {
	if agent == "" {
		return nil, fmt.Errorf("update agent certificate: %w: empty agent", store.ErrBadRecord)
	}
	k := s.kAgentCert(agent)
	err = s.tx(ctx, func(tx *redis.Tx) error {
		c, err = get[store.AgentCert](ctx, tx, k, "agent certificate", agent)
		if errors.Is(err, store.ErrNotFound) {
			c, err = &store.AgentCert{Agent: agent}, nil
		}
		if err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
		if c.Agent != agent {
			return fmt.Errorf("update agent certificate %q: %w: agent is fixed", agent, store.ErrConflict)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, k, enc(c), 0)
			return nil
		})
		return err
	}, k)
	if err != nil {
		return nil, err
	}
	return c, nil
}
