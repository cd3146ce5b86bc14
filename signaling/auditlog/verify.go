package auditlog

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/signaling/store"
)

// AdminStream is the administration audit log (accounts.AuditStream; here
// too so that this package needs no import of accounts).
const AdminStream = "admin"

// Report is the result of verifying one stream.
type Report struct {
	Stream  string `json:"stream"`
	Entries uint64 `json:"entries"` // entries read
	// Attested is the length the checkpoint vouches for (0: none).
	Attested uint64 `json:"attested"`
	// Anchored is the longest length an anchored head vouches for (0: none).
	Anchored uint64 `json:"anchored,omitempty"`
	OK       bool   `json:"ok"`
	// Broken is the sequence number of the first broken entry (0 when OK,
	// or when the finding concerns no single entry).
	Broken  uint64 `json:"broken,omitempty"`
	Problem string `json:"problem,omitempty"`
}

func (r *Report) fail(seq uint64, format string, args ...any) *Report {
	r.OK, r.Broken, r.Problem = false, seq, fmt.Sprintf(format, args...)
	return r
}

// pageSize is how many entries Verify reads at a time.
const pageSize = 1000

// Verifier checks streams against their checkpoints and the anchored heads.
type Verifier struct {
	// Public verifies checkpoint and anchor signatures. Required.
	Public ed25519.PublicKey
	// Heads are the anchored heads (ReadHeads); nil means no anchor is
	// available, and Verify then trusts the store's checkpoints alone.
	Heads *Heads
	// Complete says Heads holds every head ever signed (a single node, or
	// the anchor files of every node). A stream whose entries no anchored
	// head vouches for then fails: its checkpoint was not made by signaling.
	Complete bool
}

// Verify checks stream in st: every entry in sequence, linked to the one
// before and unaltered; a checkpoint, signed with Public, that attests the
// whole stream; and every anchored head of the stream present in it. want,
// when not 0, is the length the stream's job counts (Job.LogSeq). Errors are
// failures to read, not findings.
func (v *Verifier) Verify(ctx context.Context, st store.Store, stream string, want uint64) (*Report, error) {
	r := &Report{Stream: stream, OK: true}
	var anchored []Head
	if v.Heads != nil {
		anchored = slices.Clone(v.Heads.ByStream[stream])
		slices.SortFunc(anchored, func(a, b Head) int { return cmpUint(a.Seq, b.Seq) })
	}
	var hashes []string // hashes[i] is entry i+1's
	prev := ""
	// walk reads the entries after those read so far; false with r failed.
	walk := func() (bool, error) {
		for {
			page, err := st.Audit(ctx, stream, r.Entries, pageSize)
			if err != nil {
				return false, err
			}
			for _, e := range page {
				next := r.Entries + 1
				switch {
				case e.Seq != next:
					r.fail(next, "entry %d is missing or out of order (found %d in its place)", next, e.Seq)
					return false, nil
				case e.Prev != prev:
					r.fail(next, "entry %d does not link to the entry before it", next)
					return false, nil
				case store.ChainHash(prev, e) != e.Hash:
					r.fail(next, "entry %d was altered", next)
					return false, nil
				}
				hashes = append(hashes, e.Hash)
				prev = e.Hash
				r.Entries++
			}
			if len(page) < pageSize {
				return true, nil
			}
		}
	}
	if ok, err := walk(); err != nil || !ok {
		return r, err
	}
	// The checkpoint is read after the entries: a live log may have grown
	// meanwhile (read on), or be between an append and its checkpoint (wait
	// a moment for it), before either counts as a finding.
	var cp *store.Checkpoint
	for attempt := 0; ; attempt++ {
		c, err := st.Checkpoint(ctx, stream)
		switch {
		case errors.Is(err, store.ErrNotFound):
			c = nil
		case err != nil:
			return nil, err
		}
		cp = c
		switch {
		case attempt >= 3:
		case cp != nil && cp.Seq > r.Entries:
			if ok, err := walk(); err != nil || !ok {
				return r, err
			}
			continue
		case cp != nil && cp.Seq < r.Entries, cp == nil && r.Entries > 0:
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		break
	}
	hashAt := func(seq uint64) string {
		if seq == 0 || seq > uint64(len(hashes)) {
			return ""
		}
		return hashes[seq-1]
	}
	// The anchor first: it is the part the store cannot rewrite.
	for _, h := range anchored {
		r.Anchored = max(r.Anchored, h.Seq)
		switch {
		case h.Seq > r.Entries:
			return r.fail(r.Entries+1, "the log ends at entry %d but the anchor (%s) attests %d entries: entries were removed or the store was rolled back", r.Entries, h.Where, h.Seq), nil
		case hashAt(h.Seq) != h.Hash:
			return r.fail(h.Seq, "entry %d differs from the one the anchor (%s) attests: the log was rewritten", h.Seq, h.Where), nil
		}
	}
	if want > r.Entries {
		return r.fail(r.Entries+1, "its job counts %d entries but the log has %d: entries were removed", want, r.Entries), nil
	}
	if cp == nil {
		if r.Entries > 0 || r.Anchored > 0 {
			return r.fail(0, "the log has %d entries but no checkpoint: it was removed, or the log was not written by signaling", r.Entries), nil
		}
		return r, nil // an empty log that never had an entry
	}
	if !CheckSignature(cp, v.Public) {
		return r.fail(cp.Seq, "the checkpoint's signature does not verify"), nil
	}
	r.Attested = cp.Seq
	switch {
	case cp.Seq > r.Entries:
		return r.fail(r.Entries+1, "the log ends at entry %d but its checkpoint attests %d entries: the tail was cut off", r.Entries, cp.Seq), nil
	case hashAt(cp.Seq) != cp.Hash:
		return r.fail(cp.Seq, "entry %d differs from the one its checkpoint attests", cp.Seq), nil
	case cp.Seq < r.Anchored:
		return r.fail(0, "the checkpoint attests %d entries but the anchor attests %d: the store was rolled back", cp.Seq, r.Anchored), nil
	case cp.Seq < r.Entries:
		return r.fail(cp.Seq+1, "entries %d to %d come after the signed head: they were added by someone else (or signaling stopped before signing them)", cp.Seq+1, r.Entries), nil
	case v.Heads != nil && v.Complete && cp.Seq > r.Anchored:
		return r.fail(0, "the checkpoint attests %d entries but the anchor only %d: the checkpoint was not anchored by signaling", cp.Seq, r.Anchored), nil
	}
	return r, nil
}

// VerifyAll verifies the admin log, every job's access log (against its
// job's count) and every stream the anchor names, so that a session erased
// from the store altogether is found too. Reports are in that order.
func (v *Verifier) VerifyAll(ctx context.Context, st store.Store) ([]*Report, error) {
	jobs, err := st.Jobs(ctx, time.Time{}, 0)
	if err != nil {
		return nil, err
	}
	var out []*Report
	add := func(stream string, want uint64) error {
		r, err := v.Verify(ctx, st, stream, want)
		if err != nil {
			return fmt.Errorf("verify %s: %w", stream, err)
		}
		out = append(out, r)
		return nil
	}
	if err := add(AdminStream, 0); err != nil {
		return nil, err
	}
	seen := map[string]bool{AdminStream: true}
	for i := len(jobs) - 1; i >= 0; i-- { // oldest first
		stream := store.SessionStream(jobs[i].ID)
		seen[stream] = true
		if err := add(stream, jobs[i].LogSeq); err != nil {
			return nil, err
		}
	}
	if v.Heads == nil {
		return out, nil
	}
	var orphans []string
	for stream := range v.Heads.ByStream {
		if !seen[stream] {
			orphans = append(orphans, stream)
		}
	}
	slices.Sort(orphans)
	for _, stream := range orphans {
		if err := add(stream, 0); err != nil {
			return nil, err
		}
		r := out[len(out)-1]
		if r.OK && strings.HasPrefix(stream, "session/") {
			h, _ := v.Heads.Latest(stream)
			r.fail(0, "the anchor (%s) attests this session's log but its job is gone: the session was erased", h.Where)
		}
	}
	for _, bad := range v.Heads.Bad {
		out = append(out, (&Report{Stream: "anchor"}).fail(0, "anchor line %s", bad))
	}
	return out, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
