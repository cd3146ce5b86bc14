package auditlog_test

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/porthole-dev/porthole/signaling/auditlog"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
)

// BenchmarkAccessLogBatch is the cost of storing one batch of 16 access-log
// entries on bbolt: plain, with a signed checkpoint in the store, and with
// the checkpoint also appended (and fsynced) to the anchor file.
func BenchmarkAccessLogBatch(b *testing.B) {
	for _, mode := range []string{"plain", "checkpoint", "checkpoint+anchor"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			st, err := boltstore.Open(filepath.Join(dir, "porthole.db"), boltstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			_, key, _ := ed25519.GenerateKey(nil)
			signer := auditlog.NewSigner(key)
			if mode == "checkpoint+anchor" {
				a, _, err := auditlog.OpenAnchor(auditlog.AnchorPath(dir, ""))
				if err != nil {
					b.Fatal(err)
				}
				defer a.Close()
				signer = signer.WithAnchor(a)
			}
			var s store.Store = st
			if mode != "plain" {
				s = auditlog.Checkpointed(st, signer, nil)
			}
			seq := uint64(1)
			for b.Loop() {
				batch := make([]*store.AuditEntry, 16)
				for i := range batch {
					batch[i] = &store.AuditEntry{Seq: seq, Action: "http", Detail: map[string]string{"url": fmt.Sprint("/p/", seq)}}
					seq++
				}
				if _, err := s.AppendAuditBatch(ctx, "session/abcdefgh12345678", batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
