package auditlog_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/signaling/auditlog"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
	"github.com/porthole-dev/porthole/signaling/store/redisstore"
)

// raw is what an attacker with write access to the store can do, in the
// store's own terms: no key, no anchor.
type raw interface {
	entries(stream string) []*store.AuditEntry
	setEntries(stream string, es []*store.AuditEntry) // replaces the whole stream
	deleteCheckpoint(stream string)
	deleteJob(id string)
	snapshot() (restore func(now raw)) // restore is called with the raw access of a later tamper
}

// backend opens a store and lets a test tamper with it directly.
type backend struct {
	name string
	open func(t *testing.T) (st store.Store, tamper func(fn func(raw)) store.Store)
}

func backends(t *testing.T) []backend {
	bolt := backend{"bbolt", func(t *testing.T) (store.Store, func(func(raw)) store.Store) {
		path := filepath.Join(t.TempDir(), "porthole.db")
		st, err := boltstore.Open(path, boltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		cur := store.Store(st)
		t.Cleanup(func() { cur.Close() })
		return st, func(fn func(raw)) store.Store {
			// bbolt locks its file: the attacker edits it while signaling
			// is stopped, as the data directory allows.
			cur.Close()
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			br := &boltRaw{t: t, db: db, path: path}
			fn(br)
			br.db.Close() // a restore may have reopened it
			st, err := boltstore.Open(path, boltstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			cur = st
			return st
		}
	}}
	out := []backend{bolt}
	if _, err := exec.LookPath("redis-server"); err == nil || os.Getenv("PORTHOLE_REQUIRE_ALL") != "" {
		addr := testenv.StartRedis(t)
		out = append(out, backend{"redis", func(t *testing.T) (store.Store, func(func(raw)) store.Store) {
			prefix := "t" + rand.Text() + ":"
			st, err := redisstore.Open("redis://"+addr, redisstore.Options{Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			rdb := redis.NewClient(&redis.Options{Addr: addr})
			t.Cleanup(func() { rdb.Close() })
			return st, func(fn func(raw)) store.Store {
				fn(&redisRaw{t: t, rdb: rdb, p: prefix})
				return st
			}
		}})
	} else {
		t.Log("redis-server not installed: the Redis half of the table is skipped")
	}
	return out
}

const session = "abcdefgh12345678"

// world is a store written by signaling: the admin log with 3 entries and
// one session whose job says 10, its log written in two batches of 5, all
// through Checkpointed with an anchor file.
type world struct {
	st      store.Store
	tamper  func(func(raw)) store.Store
	pub     ed25519.PublicKey
	signer  *auditlog.Signer
	anchor  string
	writeTo func(n int) // appends n more access entries
}

func newWorld(t *testing.T, b backend, stop int) *world {
	t.Helper()
	st, tamper := b.open(t)
	_, key, _ := ed25519.GenerateKey(nil)
	anchorPath := auditlog.AnchorPath(t.TempDir(), "")
	a, _, err := auditlog.OpenAnchor(anchorPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	w := &world{st: st, tamper: tamper, pub: key.Public().(ed25519.PublicKey), anchor: anchorPath,
		signer: auditlog.NewSigner(key).WithAnchor(a)}
	cs := auditlog.Checkpointed(st, w.signer, nil)
	for i := range 3 {
		if _, err := cs.AppendAudit(ctx, auditlog.AdminStream, &store.AuditEntry{Actor: "u_admin", Action: "role.grant",
			Target: fmt.Sprintf("u_%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutJob(ctx, &store.Job{ID: session, User: "u_tech", Agent: "a1", Device: "printer-1",
		Created: time.Now(), Expires: time.Now().Add(30 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	next := uint64(1)
	w.writeTo = func(n int) {
		t.Helper()
		var batch []*store.AuditEntry
		for range n {
			batch = append(batch, &store.AuditEntry{Seq: next, Actor: "u_tech", Action: "http",
				Detail: map[string]string{"method": "GET", "url": fmt.Sprintf("/page/%d", next), "status": "200"}})
			next++
		}
		cs := auditlog.Checkpointed(w.st, w.signer, nil) // w.st changes when bbolt is reopened
		if _, err := cs.AppendAuditBatch(ctx, store.SessionStream(session), batch); err != nil {
			t.Fatal(err)
		}
		if _, err := w.st.UpdateJob(ctx, session, func(j *store.Job) error { j.LogSeq = next - 1; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for next <= uint64(stop) {
		w.writeTo(5)
	}
	return w
}

func (w *world) verifyAll(t *testing.T) []*auditlog.Report {
	t.Helper()
	heads, err := auditlog.ReadHeads(w.pub, w.anchor)
	if err != nil {
		t.Fatal(err)
	}
	reps, err := (&auditlog.Verifier{Public: w.pub, Heads: heads, Complete: true}).VerifyAll(ctx, w.st)
	if err != nil {
		t.Fatal(err)
	}
	return reps
}

// TestVerifierCatchesTamperingWithTheStoreAlone: each tampering that an
// attacker with write access to the store (the bbolt file, or Redis) can
// do without the signing key and the anchor file, on both backends. The
// verifier must fail the right log, saying why; untouched logs stay OK.
func TestVerifierCatchesTamperingWithTheStoreAlone(t *testing.T) {
	sess := store.SessionStream(session)
	cases := []struct {
		name   string
		stream string // the log that must fail
		says   string
		before func(w *world) (restore func(raw)) // runs before the last 5 entries are written
		tamper func(r raw)
	}{
		{name: "tail removed with its checkpoint", stream: sess, says: "anchor",
			tamper: func(r raw) {
				r.setEntries(sess, r.entries(sess)[:7])
				r.deleteCheckpoint(sess)
			}},
		{name: "entry altered, plain chain recomputed, checkpoint removed", stream: sess, says: "rewritten",
			tamper: func(r raw) {
				es := r.entries(sess)
				es[2].Detail["url"] = "/innocent"
				rechain(es)
				r.setEntries(sess, es)
				r.deleteCheckpoint(sess)
			}},
		{name: "entry altered, plain chain recomputed, checkpoint kept", stream: sess, says: "rewritten",
			tamper: func(r raw) {
				es := r.entries(sess)
				es[7].Detail["status"] = "403"
				rechain(es)
				r.setEntries(sess, es)
			}},
		{name: "every entry of a session deleted while its job says 10", stream: sess, says: "entries were removed",
			tamper: func(r raw) {
				r.setEntries(sess, nil)
				r.deleteCheckpoint(sess)
			}},
		{name: "whole session erased", stream: sess, says: "",
			tamper: func(r raw) {
				r.setEntries(sess, nil)
				r.deleteCheckpoint(sess)
				r.deleteJob(session)
			}},
		{name: "store rolled back to an older genuine checkpoint", stream: sess, says: "rolled back",
			before: func(w *world) func(raw) {
				var restore func(raw)
				w.st = w.tamper(func(r raw) { restore = r.snapshot() })
				return restore
			}},
		{name: "admin log: tail removed with its checkpoint", stream: auditlog.AdminStream, says: "anchor",
			tamper: func(r raw) {
				r.setEntries(auditlog.AdminStream, r.entries(auditlog.AdminStream)[:1])
				r.deleteCheckpoint(auditlog.AdminStream)
			}},
		{name: "admin log: checkpoint removed", stream: auditlog.AdminStream, says: "no checkpoint",
			tamper: func(r raw) { r.deleteCheckpoint(auditlog.AdminStream) }},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Run("untouched", func(t *testing.T) {
				w := newWorld(t, b, 10)
				for _, r := range w.verifyAll(t) {
					if !r.OK {
						t.Errorf("untouched %s: %+v", r.Stream, r)
					}
				}
			})
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					w := newWorld(t, b, 5)
					var restore func(raw)
					if tc.before != nil {
						restore = tc.before(w)
					}
					w.writeTo(5) // entries 6–10: the job says 10
					w.st = w.tamper(func(r raw) {
						if tc.tamper != nil {
							tc.tamper(r)
						}
						if restore != nil {
							restore(r)
						}
					})
					failed := false
					for _, r := range w.verifyAll(t) {
						switch {
						case r.Stream == tc.stream && r.OK:
							t.Errorf("%s verifies OK after tampering: %+v", r.Stream, r)
						case r.Stream == tc.stream:
							failed = true
							if !strings.Contains(r.Problem, tc.says) {
								t.Errorf("%s: problem %q, want it to mention %q", r.Stream, r.Problem, tc.says)
							}
							t.Logf("%s: %s", r.Stream, r.Problem)
						case !r.OK:
							t.Errorf("untouched %s fails: %+v", r.Stream, r)
						}
					}
					if !failed {
						t.Errorf("no report for %s", tc.stream)
					}
				})
			}
		})
	}
}

// TestVerifierWithTheStoreAndTheKey documents the limit: an attacker who
// also holds the signing key can append forged entries and sign a head for
// them, but still cannot rewrite or cut what the anchor already holds.
func TestVerifierWithTheStoreAndTheKey(t *testing.T) {
	sess := store.SessionStream(session)
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			w := newWorld(t, b, 10)
			keyOnly := auditlog.NewSigner(w.signer.Key()) // the key, without the anchor
			// Rewrite entry 3 and re-sign the head with the real key.
			w.st = w.tamper(func(r raw) {
				es := r.entries(sess)
				es[2].Detail["url"] = "/innocent"
				rechain(es)
				r.setEntries(sess, es)
				r.deleteCheckpoint(sess)
			})
			if err := keyOnly.Checkpoint(ctx, w.st, sess, lastOf(t, w.st, sess), time.Now()); err != nil {
				t.Fatal(err)
			}
			for _, r := range w.verifyAll(t) {
				if r.Stream == sess && (r.OK || !strings.Contains(r.Problem, "anchor")) {
					t.Errorf("rewritten and re-signed with the key: %+v, want the anchor to catch it", r)
				}
			}
		})
	}
}

func lastOf(t *testing.T, st store.Store, stream string) *store.AuditEntry {
	t.Helper()
	es, err := st.Audit(ctx, stream, 0, 0)
	if err != nil || len(es) == 0 {
		t.Fatalf("audit %s: %v (%d entries)", stream, err, len(es))
	}
	return es[len(es)-1]
}

// rechain recomputes the plain SHA-256 chain over es, as anyone can.
func rechain(es []*store.AuditEntry) {
	prev := ""
	for _, e := range es {
		e.Prev = prev
		e.Hash = store.ChainHash(prev, e)
		prev = e.Hash
	}
}

type boltRaw struct {
	t    *testing.T
	db   *bolt.DB
	path string
}

func (r *boltRaw) update(fn func(tx *bolt.Tx) error) {
	r.t.Helper()
	if err := r.db.Update(fn); err != nil {
		r.t.Fatal(err)
	}
}

func (r *boltRaw) entries(stream string) (out []*store.AuditEntry) {
	_ = r.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit")).Bucket([]byte(stream))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			e := new(store.AuditEntry)
			if err := json.Unmarshal(v, e); err != nil {
				r.t.Fatal(err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out
}

func (r *boltRaw) setEntries(stream string, es []*store.AuditEntry) {
	r.update(func(tx *bolt.Tx) error {
		a := tx.Bucket([]byte("audit"))
		_ = a.DeleteBucket([]byte(stream))
		b, err := a.CreateBucket([]byte(stream))
		if err != nil {
			return err
		}
		for _, e := range es {
			v, _ := json.Marshal(e)
			if err := b.Put(binary.BigEndian.AppendUint64(nil, e.Seq), v); err != nil {
				return err
			}
		}
		return nil
	})
}

func (r *boltRaw) deleteCheckpoint(stream string) {
	r.update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("checkpoints")).Delete([]byte(stream)) })
}

func (r *boltRaw) deleteJob(id string) {
	r.update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("jobs")).Delete([]byte(id)); err != nil {
			return err
		}
		idx := tx.Bucket([]byte("jobsbytime"))
		c := idx.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if string(k[8:]) == id {
				return idx.Delete(k)
			}
		}
		return nil
	})
}

func (r *boltRaw) snapshot() func(raw) {
	r.t.Helper()
	// The file as it stands: bbolt has synced every committed transaction.
	b, err := os.ReadFile(r.path)
	if err != nil {
		r.t.Fatal(err)
	}
	return func(now raw) {
		r := now.(*boltRaw)
		r.db.Close()
		if err := os.WriteFile(r.path, b, 0o600); err != nil {
			r.t.Fatal(err)
		}
		db, err := bolt.Open(r.path, 0o600, nil)
		if err != nil {
			r.t.Fatal(err)
		}
		r.db = db
	}
}

type redisRaw struct {
	t   *testing.T
	rdb *redis.Client
	p   string
}

var rctx = context.Background()

func (r *redisRaw) must(err error) {
	r.t.Helper()
	if err != nil && err != redis.Nil {
		r.t.Fatal(err)
	}
}

func (r *redisRaw) entries(stream string) (out []*store.AuditEntry) {
	msgs, err := r.rdb.XRange(rctx, r.p+"audit:"+stream, "-", "+").Result()
	r.must(err)
	for _, m := range msgs {
		e := new(store.AuditEntry)
		r.must(json.Unmarshal([]byte(m.Values["e"].(string)), e))
		out = append(out, e)
	}
	return out
}

func (r *redisRaw) setEntries(stream string, es []*store.AuditEntry) {
	k := r.p + "audit:" + stream
	r.must(r.rdb.Del(rctx, k).Err())
	for _, e := range es {
		v, _ := json.Marshal(e)
		r.must(r.rdb.XAdd(rctx, &redis.XAddArgs{Stream: k, ID: fmt.Sprintf("%d-1", e.Seq), Values: []any{"e", string(v)}}).Err())
	}
}

func (r *redisRaw) deleteCheckpoint(stream string) {
	r.must(r.rdb.Del(rctx, r.p+"checkpoint:"+stream).Err())
}

func (r *redisRaw) deleteJob(id string) {
	r.must(r.rdb.Del(rctx, r.p+"job:"+id, r.p+"jobs").Err())
}

func (r *redisRaw) snapshot() func(raw) {
	r.t.Helper()
	keys, err := r.rdb.Keys(rctx, r.p+"*").Result()
	r.must(err)
	dumps := map[string]string{}
	for _, k := range keys {
		d, err := r.rdb.Dump(rctx, k).Result()
		r.must(err)
		dumps[k] = d
	}
	return func(raw) {
		now, err := r.rdb.Keys(rctx, r.p+"*").Result()
		r.must(err)
		if len(now) > 0 {
			r.must(r.rdb.Del(rctx, now...).Err())
		}
		for k, d := range dumps {
			r.must(r.rdb.Restore(rctx, k, 0, d).Err())
		}
	}
}

// laggingStore answers Checkpoint with the checkpoint as it was before the
// last append for its first calls: a live log between an append and its
// checkpoint.
type laggingStore struct {
	store.Store
	old   *store.Checkpoint
	calls int
}

func (l *laggingStore) Checkpoint(ctx context.Context, stream string) (*store.Checkpoint, error) {
	l.calls++
	if l.calls <= 2 {
		return l.old, nil
	}
	return l.Store.Checkpoint(ctx, stream)
}

// TestVerifyWaitsForALiveCheckpoint: a verification that reads a log
// between an append and its checkpoint is not a finding.
func TestVerifyWaitsForALiveCheckpoint(t *testing.T) {
	w := newWorld(t, backends(t)[0], 5)
	sess := store.SessionStream(session)
	old, err := w.st.Checkpoint(ctx, sess)
	if err != nil {
		t.Fatal(err)
	}
	w.writeTo(5)
	heads, err := auditlog.ReadHeads(w.pub, w.anchor)
	if err != nil {
		t.Fatal(err)
	}
	ls := &laggingStore{Store: w.st, old: old}
	r, err := (&auditlog.Verifier{Public: w.pub, Heads: heads, Complete: true}).Verify(ctx, ls, sess, 10)
	if err != nil || !r.OK || r.Attested != 10 || ls.calls < 3 {
		t.Fatalf("report %+v (%v) after %d checkpoint reads", r, err, ls.calls)
	}
}
