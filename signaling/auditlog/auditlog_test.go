package auditlog_test

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/porthole-dev/porthole/signaling/auditlog"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
)

const stream = "session/abcdefgh12345678"

var ctx = context.Background()

// writeLog stores n entries with a checkpoint of the head in a fresh store
// file and returns its path and the verification key.
func writeLog(t *testing.T, n int) (string, ed25519.PublicKey) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "porthole.db")
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	signer := auditlog.NewSigner(key)
	var head *store.AuditEntry
	for i := 1; i <= n; i++ {
		head, err = st.AppendAuditAt(ctx, stream, &store.AuditEntry{Seq: uint64(i), Actor: "agent", Action: "http",
			Detail: map[string]string{"method": "GET", "url": fmt.Sprintf("/page/%d", i), "status": "200"}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := signer.Checkpoint(ctx, st, stream, head, time.Now()); err != nil {
		t.Fatal(err)
	}
	return path, signer.Public()
}

// tamper edits the stored stream directly in the file, as somebody with
// access to the data directory would.
func tamper(t *testing.T, path string, fn func(b *bolt.Bucket)) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		fn(tx.Bucket([]byte("audit")).Bucket([]byte(stream)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func key(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func edit(t *testing.T, b *bolt.Bucket, seq uint64, fn func(e *store.AuditEntry)) {
	var e store.AuditEntry
	if err := json.Unmarshal(b.Get(key(seq)), &e); err != nil {
		t.Fatal(err)
	}
	fn(&e)
	raw, _ := json.Marshal(&e)
	if err := b.Put(key(seq), raw); err != nil {
		t.Fatal(err)
	}
}

func verify(t *testing.T, path string, pub ed25519.PublicKey) *auditlog.Report {
	t.Helper()
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := (&auditlog.Verifier{Public: pub}).Verify(ctx, st, stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVerifyProvesAnUntouchedLog(t *testing.T) {
	path, pub := writeLog(t, 1200) // more than one page
	r := verify(t, path, pub)
	if !r.OK || r.Entries != 1200 || r.Attested != 1200 || r.Broken != 0 {
		t.Fatalf("report %+v", r)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	tests := []struct {
		name   string
		fn     func(t *testing.T, b *bolt.Bucket)
		broken uint64
		says   string
	}{
		{"altered", func(t *testing.T, b *bolt.Bucket) {
			edit(t, b, 5, func(e *store.AuditEntry) { e.Detail["status"] = "403" })
		}, 5, "altered"},
		{"altered and rehashed", func(t *testing.T, b *bolt.Bucket) {
			// A careful forger recomputes the entry's hash: the next
			// entry no longer links to it.
			edit(t, b, 5, func(e *store.AuditEntry) { e.Detail["url"] = "/innocent"; e.Hash = store.ChainHash(e.Prev, e) })
		}, 6, "does not link"},
		{"removed", func(t *testing.T, b *bolt.Bucket) { _ = b.Delete(key(4)) }, 4, "missing"},
		{"reordered", func(t *testing.T, b *bolt.Bucket) {
			three, four := append([]byte(nil), b.Get(key(3))...), append([]byte(nil), b.Get(key(4))...)
			_ = b.Put(key(3), four)
			_ = b.Put(key(4), three)
		}, 3, "out of order"},
		{"tail cut", func(t *testing.T, b *bolt.Bucket) {
			_ = b.Delete(key(10))
			_ = b.Delete(key(9))
		}, 9, "tail was cut off"},
		{"last entry replaced", func(t *testing.T, b *bolt.Bucket) {
			edit(t, b, 10, func(e *store.AuditEntry) { e.Detail["url"] = "/x"; e.Hash = store.ChainHash(e.Prev, e) })
		}, 10, "differs from the one its checkpoint attests"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, pub := writeLog(t, 10)
			tamper(t, path, func(b *bolt.Bucket) { tc.fn(t, b) })
			r := verify(t, path, pub)
			if r.OK || r.Broken != tc.broken || !strings.Contains(r.Problem, tc.says) {
				t.Fatalf("report %+v, want broken at %d saying %q", r, tc.broken, tc.says)
			}
		})
	}
}

func TestVerifyRefusesAForgedCheckpoint(t *testing.T) {
	path, pub := writeLog(t, 10)
	// Cut the tail and sign a checkpoint for the shorter log with another key.
	tamper(t, path, func(b *bolt.Bucket) { _ = b.Delete(key(10)) })
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := st.Audit(ctx, stream, 8, 1)
	_, other, _ := ed25519.GenerateKey(nil)
	forged := auditlog.NewSigner(other).Sign(stream, entries[0], time.Now())
	forged.Seq = 9
	// The store refuses to move a checkpoint back; the forger writes it
	// into the file.
	st.Close()
	db, _ := bolt.Open(path, 0o600, nil)
	_ = db.Update(func(tx *bolt.Tx) error {
		raw, _ := json.Marshal(forged)
		return tx.Bucket([]byte("checkpoints")).Put([]byte(stream), raw)
	})
	db.Close()
	r := verify(t, path, pub)
	if r.OK || !strings.Contains(r.Problem, "signature") {
		t.Fatalf("forged checkpoint: %+v", r)
	}
}
