package redisstore_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/redisstore"
	"github.com/porthole-dev/porthole/signaling/store/storetest"
)

// TestConformance runs the Store suite against a real redis-server, each
// test under its own key prefix.
func TestConformance(t *testing.T) {
	addr := testenv.StartRedis(t)
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		prefix := "t" + rand.Text() + ":"
		open := func() store.Store {
			s, err := redisstore.Open("redis://"+addr, redisstore.Options{Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return open(), open
	})
}

func TestPKIConformance(t *testing.T) {
	addr := testenv.StartRedis(t)
	storetest.RunPKI(t, func(t *testing.T, now func() time.Time) store.PKI {
		s, err := redisstore.Open("redis://"+addr, redisstore.Options{Prefix: "t" + rand.Text() + ":", Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestCodesExpireInRedis checks that an OAuth code is gone from Redis
// itself once it expires, not only refused by the expiry check.
func TestCodesExpireInRedis(t *testing.T) {
	addr := testenv.StartRedis(t)
	s, err := redisstore.Open("redis://"+addr, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.PutCode(ctx, &store.Code{Hash: "c", Expires: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	ttl, err := s.Client().PTTL(ctx, "porthole:code:c").Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("code TTL = %v, %v; want (0, 1m]", ttl, err)
	}
	if err := s.PutToken(ctx, &store.Token{Hash: "t", User: "u", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := s.Client().PTTL(ctx, "porthole:token:t").Result(); ttl <= 0 {
		t.Fatalf("token TTL = %v", ttl)
	}
	if typ, _ := s.Client().Type(ctx, "porthole:audit:x").Result(); typ != "none" {
		t.Fatalf("type %s", typ)
	}
	if _, err := s.AppendAudit(ctx, "x", &store.AuditEntry{Actor: "a", Action: "b"}); err != nil {
		t.Fatal(err)
	}
	if typ, _ := s.Client().Type(ctx, "porthole:audit:x").Result(); typ != "stream" {
		t.Fatalf("audit log is a Redis %s, want a stream", typ)
	}
}
