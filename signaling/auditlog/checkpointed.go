package auditlog

import (
	"context"
	"errors"
	"time"

	"github.com/porthole-dev/porthole/signaling/store"
)

// Checkpointed returns st with every audit append signed and checkpointed
// (and anchored, when signer has an anchor) before it returns: the admin
// log, the access logs, any stream. A failure to sign or anchor is returned
// as the append's error, so nothing unanchored is acknowledged; the entries
// stay stored, and the next append to the stream (a re-sent batch too)
// checkpoints them. Wrapping a store twice with the same signer returns it
// unchanged.
func Checkpointed(st store.Store, signer *Signer, now func() time.Time) store.Store {
	if c, ok := st.(*checkpointed); ok && c.signer == signer {
		return st
	}
	if now == nil {
		now = time.Now
	}
	return &checkpointed{Store: st, signer: signer, now: now}
}

type checkpointed struct {
	store.Store
	signer *Signer
	now    func() time.Time
}

func (c *checkpointed) AppendAudit(ctx context.Context, stream string, e *store.AuditEntry) (*store.AuditEntry, error) {
	out, err := c.Store.AppendAudit(ctx, stream, e)
	if err != nil {
		return nil, err
	}
	if err := c.signer.Checkpoint(ctx, c.Store, stream, out, c.now()); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *checkpointed) AppendAuditAt(ctx context.Context, stream string, e *store.AuditEntry) (*store.AuditEntry, error) {
	out, err := c.Store.AppendAuditAt(ctx, stream, e)
	if errors.Is(err, store.ErrExists) {
		if cerr := c.catchUp(ctx, stream); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if err := c.signer.Checkpoint(ctx, c.Store, stream, out, c.now()); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *checkpointed) AppendAuditBatch(ctx context.Context, stream string, entries []*store.AuditEntry) ([]*store.AuditEntry, error) {
	out, err := c.Store.AppendAuditBatch(ctx, stream, entries)
	if len(out) == 0 {
		if err == nil && len(entries) > 0 {
			// All duplicates: a re-sent batch whose first try failed to
			// checkpoint. Sign what is stored now.
			if cerr := c.catchUp(ctx, stream); cerr != nil {
				return nil, cerr
			}
		}
		return out, err
	}
	if cerr := c.signer.Checkpoint(ctx, c.Store, stream, out[len(out)-1], c.now()); cerr != nil {
		return nil, cerr
	}
	return out, err
}

// catchUp checkpoints stream's head if its checkpoint is behind it.
func (c *checkpointed) catchUp(ctx context.Context, stream string) error {
	var after uint64
	cp, err := c.Store.Checkpoint(ctx, stream)
	switch {
	case err == nil:
		after = cp.Seq
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	var head *store.AuditEntry
	for {
		page, err := c.Store.Audit(ctx, stream, after, pageSize)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		head = page[len(page)-1]
		after = head.Seq
	}
	if head == nil {
		return nil
	}
	return c.signer.Checkpoint(ctx, c.Store, stream, head, c.now())
}

// Bootstrap anchors the current checkpoint of every stream in st (the admin
// log and every job's; heads are signed anew where a stream has entries
// beyond its checkpoint or none at all). Call it once, when a new anchor
// file was just created, so that logs written before the anchor existed
// are pinned from now on (trust on first use). It returns how many heads it
// anchored.
func Bootstrap(ctx context.Context, st store.Store, signer *Signer, now time.Time) (int, error) {
	jobs, err := st.Jobs(ctx, time.Time{}, 0)
	if err != nil {
		return 0, err
	}
	streams := []string{AdminStream}
	for _, j := range jobs {
		streams = append(streams, store.SessionStream(j.ID))
	}
	n := 0
	for _, stream := range streams {
		var head *store.AuditEntry
		for after := uint64(0); ; {
			page, err := st.Audit(ctx, stream, after, pageSize)
			if err != nil {
				return n, err
			}
			if len(page) == 0 {
				break
			}
			head = page[len(page)-1]
			after = head.Seq
		}
		if head == nil {
			continue
		}
		if err := signer.Checkpoint(ctx, st, stream, head, now); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
