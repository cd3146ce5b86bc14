// Package auditlog proves audit logs untouched. Every stream in the store is
// a hash chain (store.ChainHash); a chain alone shows an altered, removed or
// reordered entry but not a tail cut off, so signaling also keeps a signed
// checkpoint of each stream's head — its length and last hash, signed with
// an Ed25519 key of signaling's own — outside the stream. Verify walks a
// stream against its checkpoint and names the first broken entry.
package auditlog

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/porthole-dev/porthole/signaling/store"
)

// KeyFile is the name of the checkpoint key in signaling's data directory.
const KeyFile = "audit.key"

// Signer signs checkpoints.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a signer with key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// Key returns the signing key.
func (s *Signer) Key() ed25519.PrivateKey { return s.key }

// Public returns the verification key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// LoadKey reads the Ed25519 seed in path (hex), creating it if create is
// set and it does not exist.
func LoadKey(path string, create bool) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		seed := make([]byte, ed25519.SeedSize)
		_, _ = rand.Read(seed)
		if err := os.WriteFile(path, []byte(hex.EncodeToString(seed)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("audit key: %w", err)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	seed, err := hex.DecodeString(string(trimSpace(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit key %s: not a hex Ed25519 seed", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// message is what a checkpoint signature covers.
func message(c *store.Checkpoint) []byte {
	return []byte("porthole audit checkpoint v1\n" + c.Stream + "\n" + strconv.FormatUint(c.Seq, 10) + "\n" +
		c.Hash + "\n" + c.Time.UTC().Format(time.RFC3339Nano) + "\n")
}

// Sign returns a signed checkpoint of stream at entry e (its head).
func (s *Signer) Sign(stream string, e *store.AuditEntry, now time.Time) *store.Checkpoint {
	c := &store.Checkpoint{Stream: stream, Seq: e.Seq, Hash: e.Hash, Time: now.UTC(), Key: s.id}
	c.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, message(c)))
	return c
}

// Checkpoint signs and stores the checkpoint of stream at head.
func (s *Signer) Checkpoint(ctx context.Context, st store.Store, stream string, head *store.AuditEntry, now time.Time) error {
	err := st.PutCheckpoint(ctx, s.Sign(stream, head, now))
	if errors.Is(err, store.ErrConflict) {
		return nil // a later head was checkpointed meanwhile
	}
	return err
}

// CheckSignature verifies c's signature with pub.
func CheckSignature(c *store.Checkpoint, pub ed25519.PublicKey) bool {
	sig, err := base64.StdEncoding.DecodeString(c.Sig)
	return err == nil && c.Key == KeyID(pub) && ed25519.Verify(pub, message(c), sig)
}

// Report is the result of verifying one stream.
type Report struct {
	Stream  string `json:"stream"`
	Entries uint64 `json:"entries"` // entries read
	// Attested is the length the checkpoint vouches for (0: none).
	Attested uint64 `json:"attested"`
	OK       bool   `json:"ok"`
	// Broken is the sequence number of the first broken entry (0 when OK).
	Broken  uint64 `json:"broken,omitempty"`
	Problem string `json:"problem,omitempty"`
}

func (r *Report) fail(seq uint64, format string, args ...any) *Report {
	r.OK, r.Broken, r.Problem = false, seq, fmt.Sprintf(format, args...)
	return r
}

// pageSize is how many entries Verify reads at a time.
const pageSize = 1000

// Verify checks stream in st: every entry in sequence, linked to the one
// before and unaltered, and the head matching the stream's signed
// checkpoint (verified with pub), so that nothing was cut off the tail. A
// stream without a checkpoint verifies OK as far as its chain goes, with
// Attested 0. Errors are failures to read, not findings.
func Verify(ctx context.Context, st store.Store, pub ed25519.PublicKey, stream string) (*Report, error) {
	r := &Report{Stream: stream, OK: true}
	cp, err := st.Checkpoint(ctx, stream)
	switch {
	case errors.Is(err, store.ErrNotFound):
		cp = nil
	case err != nil:
		return nil, err
	}
	prev, want := "", uint64(1)
	var cpHash string // the hash of the checkpointed entry, once read
	for {
		page, err := st.Audit(ctx, stream, want-1, pageSize)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			switch {
			case e.Seq != want:
				return r.fail(want, "entry %d is missing or out of order (found %d in its place)", want, e.Seq), nil
			case e.Prev != prev:
				return r.fail(want, "entry %d does not link to the entry before it", want), nil
			case store.ChainHash(prev, e) != e.Hash:
				return r.fail(want, "entry %d was altered", want), nil
			}
			if cp != nil && e.Seq == cp.Seq {
				cpHash = e.Hash
			}
			prev = e.Hash
			want++
			r.Entries++
		}
		if len(page) < pageSize {
			break
		}
	}
	if cp == nil {
		return r, nil
	}
	if !CheckSignature(cp, pub) {
		return r.fail(cp.Seq, "the checkpoint's signature does not verify"), nil
	}
	r.Attested = cp.Seq
	switch {
	case r.Entries < cp.Seq:
		return r.fail(r.Entries+1, "the log ends at entry %d but its checkpoint attests %d entries: the tail was cut off", r.Entries, cp.Seq), nil
	case cpHash != cp.Hash:
		return r.fail(cp.Seq, "entry %d differs from the one its checkpoint attests", cp.Seq), nil
	}
	return r, nil
}
