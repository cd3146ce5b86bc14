package redisstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
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

// TestACLUserCannotDeleteAuditStreams runs redis-server with the ACL file
// that compose.yaml uses (deploy/redis-users.acl): the app's user passes the
// whole Store conformance suite, yet Redis refuses it every command that
// removes audit entries, while the admin user may.
func TestACLUserCannotDeleteAuditStreams(t *testing.T) {
	acl := filepath.Join(testenv.RepoRoot(t), "deploy", "redis-users.acl")
	addr := testenv.StartRedisWith(t, "--aclfile", acl, "--databases", "200")
	const app = "porthole:change-me-demo-redis-password"
	const admin = "porthole-admin:change-me-demo-redis-admin-password"
	db := 0
	t.Run("the app works", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
			db++ // the ACL knows one prefix, so each test gets a database of its own
			url := fmt.Sprintf("redis://%s@%s/%d", app, addr, db)
			open := func() store.Store {
				s, err := redisstore.Open(url, redisstore.Options{})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			return open(), open
		})
	})

	ctx := context.Background()
	s, err := redisstore.Open(fmt.Sprintf("redis://%s@%s/%d", app, addr, db+1), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		if _, err := s.AppendAudit(ctx, "admin", &store.AuditEntry{Actor: "u", Action: fmt.Sprint("a", i)}); err != nil {
			t.Fatalf("append as the app user: %v", err)
		}
	}
	if _, err := s.AppendAuditBatch(ctx, "session/s1", []*store.AuditEntry{{Seq: 1, Action: "http"}, {Seq: 2, Action: "http"}}); err != nil {
		t.Fatalf("batch append as the app user: %v", err)
	}
	rdb := s.Client()
	for _, cmd := range [][]any{
		{"XDEL", "porthole:audit:admin", "2-1"},
		{"XTRIM", "porthole:audit:admin", "MAXLEN", "0"},
		{"DEL", "porthole:audit:admin"},
		{"UNLINK", "porthole:audit:session/s1"},
		{"RENAME", "porthole:audit:admin", "porthole:x"},
		{"EXPIRE", "porthole:audit:admin", "1"},
		{"SET", "porthole:audit:admin", "x"},
		{"DEL", "porthole:user:u1", "porthole:audit:admin"},
		{"EVAL", "return redis.call('XDEL', KEYS[1], '1-1')", "1", "porthole:audit:admin"},
		{"FLUSHDB"},
		{"FLUSHALL"},
	} {
		// NOPERM, or inside a script Redis's "can't access" refusal.
		err := rdb.Do(ctx, cmd...).Err()
		if err == nil || !strings.Contains(err.Error(), "NOPERM") && !strings.Contains(err.Error(), "can't access") {
			t.Errorf("%v as the app user: %v, want NOPERM", cmd, err)
		}
	}
	if n, err := rdb.XLen(ctx, "porthole:audit:admin").Result(); err != nil || n != 3 {
		t.Fatalf("admin stream has %d entries (%v) after the refusals, want 3", n, err)
	}
	// The ACL user still deletes its other keys (tokens, codes, …).
	if err := rdb.Do(ctx, "SET", "porthole:token:x", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Do(ctx, "DEL", "porthole:token:x").Err(); err != nil {
		t.Fatalf("DEL of a non-audit key as the app user: %v", err)
	}
	// What an ACL cannot refuse: XADD with MAXLEN trims the stream (an option,
	// not a command). The audit anchor catches it (auditlog's tamper tests).
	if err := rdb.Do(ctx, "XADD", "porthole:audit:session/s1", "MAXLEN", "1", "9-1", "e", "{}").Err(); err != nil {
		t.Logf("XADD MAXLEN refused too: %v", err)
	} else if n, _ := rdb.XLen(ctx, "porthole:audit:session/s1").Result(); n != 1 {
		t.Errorf("XADD MAXLEN 1 left %d entries", n)
	}
	// Control: the operator's user may, so the refusals above are the ACL's.
	ops, err := redisstore.Open(fmt.Sprintf("redis://%s@%s/%d", admin, addr, db+1), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	if err := ops.Client().Do(ctx, "XDEL", "porthole:audit:admin", "3-1").Err(); err != nil {
		t.Fatalf("XDEL as the admin user: %v", err)
	}
}

// TestACLCoversTheClusterPrefix checks deploy/redis-users.acl under the
// Redis Cluster prefix "{porthole}:" too: the app's user appends to audit
// streams and writes and deletes its other keys, but cannot remove audit
// entries.
func TestACLCoversTheClusterPrefix(t *testing.T) {
	acl := filepath.Join(testenv.RepoRoot(t), "deploy", "redis-users.acl")
	addr := testenv.StartRedisWith(t, "--aclfile", acl)
	const app = "porthole:change-me-demo-redis-password"
	s, err := redisstore.Open(fmt.Sprintf("redis://%s@%s?key_prefix={porthole}:", app, addr), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 3 {
		if _, err := s.AppendAudit(ctx, "admin", &store.AuditEntry{Actor: "u", Action: fmt.Sprint("a", i)}); err != nil {
			t.Fatalf("append as the app user: %v", err)
		}
	}
	if _, err := s.AppendAuditBatch(ctx, "session/s1", []*store.AuditEntry{{Seq: 1, Action: "http"}}); err != nil {
		t.Fatalf("batch append as the app user: %v", err)
	}
	if err := s.CreateUser(ctx, &store.User{ID: "u1", Name: "alice"}); err != nil {
		t.Fatalf("create user as the app user: %v", err)
	}
	if err := s.DeleteUser(ctx, "u1"); err != nil {
		t.Fatalf("delete user as the app user: %v", err)
	}
	rdb := s.Client()
	for _, cmd := range [][]any{
		{"XDEL", "{porthole}:audit:admin", "2-1"},
		{"XTRIM", "{porthole}:audit:admin", "MAXLEN", "0"},
		{"DEL", "{porthole}:audit:admin"},
		{"UNLINK", "{porthole}:audit:session/s1"},
		{"RENAME", "{porthole}:audit:admin", "{porthole}:x"},
		{"SET", "{porthole}:audit:admin", "x"},
		{"EVAL", "return redis.call('XDEL', KEYS[1], '1-1')", "1", "{porthole}:audit:admin"},
	} {
		err := rdb.Do(ctx, cmd...).Err()
		if err == nil || !strings.Contains(err.Error(), "NOPERM") && !strings.Contains(err.Error(), "can't access") {
			t.Errorf("%v as the app user: %v, want NOPERM", cmd, err)
		}
	}
	if n, err := rdb.XLen(ctx, "{porthole}:audit:admin").Result(); err != nil || n != 3 {
		t.Fatalf("admin stream has %d entries (%v) after the refusals, want 3", n, err)
	}
}
