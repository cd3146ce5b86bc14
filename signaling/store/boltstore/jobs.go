package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/porthole-dev/porthole/signaling/store"
)

func jobTimeKey(created time.Time, id string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(created.UnixNano())), id...)
}

// PutJob implements store.Store.
func (s *Store) PutJob(ctx context.Context, j *store.Job) error {
	if j.ID == "" {
		return fmt.Errorf("put job: %w: empty ID", store.ErrBadRecord)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bJobs)
		if b.Get([]byte(j.ID)) != nil {
			return fmt.Errorf("job %q: %w", j.ID, store.ErrExists)
		}
		if err := tx.Bucket(bJobsByTime).Put(jobTimeKey(j.Created, j.ID), nil); err != nil {
			return err
		}
		return put(b, []byte(j.ID), j)
	})
}

// Job implements store.Store.
func (s *Store) Job(ctx context.Context, id string) (j *store.Job, err error) {
	return viewGet[store.Job](ctx, s, bJobs, []byte(id), "job")
}

// UpdateJob implements store.Store.
func (s *Store) UpdateJob(ctx context.Context, id string, fn func(*store.Job) error) (j *store.Job, err error) {
	err = s.update(ctx, func(tx *bolt.Tx) error {
		j, err = get[store.Job](tx.Bucket(bJobs), []byte(id), "job")
		if err != nil {
			return err
		}
		created := j.Created
		if err := fn(j); err != nil {
			return err
		}
		if j.ID != id {
			return fmt.Errorf("update job %q: %w: the ID is fixed", id, store.ErrConflict)
		}
		if !j.Created.Equal(created) {
			idx := tx.Bucket(bJobsByTime)
			if err := idx.Delete(jobTimeKey(created, id)); err != nil {
				return err
			}
			if err := idx.Put(jobTimeKey(j.Created, id), nil); err != nil {
				return err
			}
		}
		return put(tx.Bucket(bJobs), []byte(id), j)
	})
	if err != nil {
		return nil, err
	}
	return j, nil
}

// Jobs implements store.Store.
func (s *Store) Jobs(ctx context.Context, before time.Time, limit int) (out []*store.Job, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bJobs)
		c := tx.Bucket(bJobsByTime).Cursor()
		var k []byte
		if before.IsZero() {
			k, _ = c.Last()
		} else {
			seek := binary.BigEndian.AppendUint64(nil, uint64(before.UnixNano()))
			k, _ = c.Seek(seek)
			if k == nil {
				k, _ = c.Last()
			}
			for k != nil && bytes.Compare(k[:8], seek) >= 0 {
				k, _ = c.Prev()
			}
		}
		for ; k != nil; k, _ = c.Prev() {
			if limit > 0 && len(out) >= limit {
				break
			}
			j, err := get[store.Job](jobs, k[8:], "job")
			if err != nil {
				return err
			}
			out = append(out, j)
		}
		return nil
	})
	return out, err
}

// AppendAuditAt implements store.Store.
func (s *Store) AppendAuditAt(ctx context.Context, stream string, e *store.AuditEntry) (out *store.AuditEntry, err error) {
	if stream == "" || e.Seq == 0 {
		return nil, fmt.Errorf("append audit: %w: empty stream or seq 0", store.ErrBadRecord)
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bAudit).CreateBucketIfNotExists([]byte(stream))
		if err != nil {
			return err
		}
		last, err := lastAudit(b, stream)
		if err != nil {
			return err
		}
		if err := store.CheckAuditNext(stream, e.Seq, last.Seq); err != nil {
			return err
		}
		entry := *e
		store.ChainAuditEntry(&entry, last.Hash, s.now)
		out = &entry
		return put(b, seqKey(entry.Seq), &entry)
	})
	return out, err
}

// AppendAuditBatch implements store.Store: one transaction, so one sync
// to disk, for the whole batch.
func (s *Store) AppendAuditBatch(ctx context.Context, stream string, entries []*store.AuditEntry) (out []*store.AuditEntry, err error) {
	if err := store.ValidateAuditBatch(stream, entries); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, nil
	}
	var gap error
	err = s.update(ctx, func(tx *bolt.Tx) error {
		out, gap = nil, nil // fn may run again
		b, err := tx.Bucket(bAudit).CreateBucketIfNotExists([]byte(stream))
		if err != nil {
			return err
		}
		last, err := lastAudit(b, stream)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Seq <= last.Seq {
				continue // a duplicate
			}
			if e.Seq > last.Seq+1 {
				gap = store.AuditGap(stream, e.Seq, last.Seq)
				break
			}
			entry := *e
			store.ChainAuditEntry(&entry, last.Hash, s.now)
			if err := put(b, seqKey(entry.Seq), &entry); err != nil {
				return err
			}
			out = append(out, &entry)
			last = entry
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, gap
}

// PutCheckpoint implements store.Store.
func (s *Store) PutCheckpoint(ctx context.Context, c *store.Checkpoint) error {
	if c.Stream == "" {
		return fmt.Errorf("put checkpoint: %w: empty stream", store.ErrBadRecord)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bCheckpoints)
		old, err := get[store.Checkpoint](b, []byte(c.Stream), "checkpoint")
		if err == nil && old.Seq > c.Seq {
			return fmt.Errorf("checkpoint %q at %d behind %d: %w", c.Stream, c.Seq, old.Seq, store.ErrConflict)
		}
		return put(b, []byte(c.Stream), c)
	})
}

// Checkpoint implements store.Store.
func (s *Store) Checkpoint(ctx context.Context, stream string) (c *store.Checkpoint, err error) {
	return viewGet[store.Checkpoint](ctx, s, bCheckpoints, []byte(stream), "checkpoint")
}

// recordingMeta is the head of a job's recording in bRecordings.
type recordingMeta struct {
	Seq  uint64 `json:"seq"`
	Size int    `json:"size"`
}

// AppendRecording implements store.Store. A recording's chunks are kept
// under job + 8 bytes BE seq in bRecordingData, its head under job in
// bRecordings.
func (s *Store) AppendRecording(ctx context.Context, job string, seq uint64, data []byte, limit int) (head uint64, err error) {
	if job == "" || seq == 0 {
		return 0, fmt.Errorf("append recording: %w: empty job or seq 0", store.ErrBadRecord)
	}
	var over bool
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bRecordings)
		m, err := get[recordingMeta](b, []byte(job), "recording")
		if errors.Is(err, store.ErrNotFound) {
			m, err = &recordingMeta{}, nil
		}
		if err != nil {
			return err
		}
		head = m.Seq
		switch {
		case seq <= m.Seq:
			return nil
		case seq > m.Seq+1:
			return fmt.Errorf("recording of %s: chunk %d after %d: %w", job, seq, m.Seq, store.ErrConflict)
		}
		m.Seq, head = seq, seq
		if m.Size+len(data) > limit {
			over = true
		} else {
			m.Size += len(data)
			if err := tx.Bucket(bRecordingData).Put(binary.BigEndian.AppendUint64([]byte(job+"\x00"), seq), data); err != nil {
				return err
			}
		}
		return put(b, []byte(job), m)
	})
	if err == nil && over {
		err = fmt.Errorf("recording of %s: chunk %d over %d bytes: %w", job, seq, limit, store.ErrBadRecord)
	}
	return head, err
}

// Recording implements store.Store.
func (s *Store) Recording(ctx context.Context, job string) ([]byte, error) {
	var out []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bRecordings).Get([]byte(job)) == nil {
			return fmt.Errorf("recording of %s: %w", job, store.ErrNotFound)
		}
		prefix := []byte(job + "\x00")
		c := tx.Bucket(bRecordingData).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			out = append(out, v...)
		}
		return nil
	})
	return out, err
}
