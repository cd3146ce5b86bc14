package store

import (
	"fmt"
	"time"
)

// These rules are shared by the Store backends, so that each one checks a
// request and links an audit chain the same way.

// ValidateAuditBatch checks an AppendAuditBatch request: a named stream and
// no entry with sequence number 0.
func ValidateAuditBatch(stream string, entries []*AuditEntry) error {
	if stream == "" {
		return fmt.Errorf("append audit: %w: empty stream", ErrBadRecord)
	}
	for _, e := range entries {
		if e.Seq == 0 {
			return fmt.Errorf("append audit %q: %w: seq 0", stream, ErrBadRecord)
		}
	}
	return nil
}

// AuditGap is the error for entry seq of stream coming after last, when it
// is not last+1.
func AuditGap(stream string, seq, last uint64) error {
	return fmt.Errorf("audit %q entry %d after %d: %w (gap)", stream, seq, last, ErrConflict)
}

// CheckAuditNext checks that entry seq may follow last in stream: ErrExists
// for one already there, ErrConflict for a gap.
func CheckAuditNext(stream string, seq, last uint64) error {
	switch {
	case seq <= last:
		return fmt.Errorf("audit %q entry %d: %w", stream, seq, ErrExists)
	case seq > last+1:
		return AuditGap(stream, seq, last)
	}
	return nil
}

// ChainAuditEntry links e after the entry whose hash is prev: it sets Prev,
// the time (now() when unset, always UTC) and Hash.
func ChainAuditEntry(e *AuditEntry, prev string, now func() time.Time) {
	e.Prev = prev
	if e.Time.IsZero() {
		e.Time = now()
	}
	e.Time = e.Time.UTC()
	e.Hash = ChainHash(e.Prev, e)
}
