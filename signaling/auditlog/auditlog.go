// Package auditlog proves audit logs untouched without trusting the store
// they live in.
//
// Every stream in the store is a hash chain (store.ChainHash). A chain
// alone shows an altered, removed or reordered entry but not a tail cut off,
// and anyone who can write the store can recompute it, so after every append
// signaling signs the stream's head — its length and last hash — with an
// Ed25519 key the store does not hold (the data directory's audit.key), and
// keeps that signed head twice: as the stream's checkpoint in the store, and
// as a signed note (golang.org/x/mod/sumdb/note) appended to an append-only
// anchor file outside the store (Anchor). Checkpointed wraps a store so that
// every audit append, the admin log's included, is signed and anchored
// before it is acknowledged.
//
// A Verifier walks a stream against its checkpoint and every anchored head
// of it, and names the first broken entry: a stream with entries but no
// checkpoint fails, and so does a checkpoint older than what the anchor
// attests (a store rolled back to an older genuine state), a stream shorter
// than its job's count, and an anchored stream whose job or entries are gone.
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

// Signer signs checkpoints and, when it has an anchor, appends each to it.
type Signer struct {
	key    ed25519.PrivateKey
	id     string
	anchor *Anchor
}

// NewSigner returns a signer with key and no anchor.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}
}

// WithAnchor returns a signer with the same key that appends every
// checkpoint it stores to a first.
func (s *Signer) WithAnchor(a *Anchor) *Signer {
	c := *s
	c.anchor = a
	return &c
}

// Anchor returns the signer's anchor, or nil.
func (s *Signer) Anchor() *Anchor { return s.anchor }

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

// Checkpoint signs the head of stream, appends it to the anchor (when the
// signer has one; synced to disk before it returns) and stores it as the
// stream's checkpoint. The anchor comes first: a head the anchor does not
// hold is never acknowledged.
func (s *Signer) Checkpoint(ctx context.Context, st store.Store, stream string, head *store.AuditEntry, now time.Time) error {
	c := s.Sign(stream, head, now)
	if s.anchor != nil {
		if err := s.anchor.append(s, c); err != nil {
			return err
		}
	}
	err := st.PutCheckpoint(ctx, c)
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
