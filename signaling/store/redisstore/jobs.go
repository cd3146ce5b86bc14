package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/porthole-dev/porthole/signaling/store"
)

func (s *Store) kJob(id string) string            { return s.k("job", id) }
func (s *Store) kJobsByTime() string              { return s.k("jobs") }
func (s *Store) kCheckpoint(stream string) string { return s.k("checkpoint", stream) }

// jobMember orders jobs by creation time in a sorted set of equal scores:
// 16 hex digits of the Unix nanoseconds, then the ID.
func jobMember(created time.Time, id string) string {
	return fmt.Sprintf("%016x", uint64(created.UnixNano())) + id
}

// PutJob implements store.Store.
func (s *Store) PutJob(ctx context.Context, j *store.Job) error {
	if j.ID == "" {
		return fmt.Errorf("put job: %w: empty ID", store.ErrBadRecord)
	}
	ok, err := s.rdb.SetNX(ctx, s.kJob(j.ID), enc(j), 0).Result()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("job %q: %w", j.ID, store.ErrExists)
	}
	return s.rdb.ZAdd(ctx, s.kJobsByTime(), redis.Z{Member: jobMember(j.Created, j.ID)}).Err()
}

// Job implements store.Store.
func (s *Store) Job(ctx context.Context, id string) (*store.Job, error) {
	return get[store.Job](ctx, s.rdb, s.kJob(id), "job", id)
}

// UpdateJob implements store.Store.
func (s *Store) UpdateJob(ctx context.Context, id string, fn func(*store.Job) error) (j *store.Job, err error) {
	k := s.kJob(id)
	err = s.tx(ctx, func(tx *redis.Tx) error {
		j, err = get[store.Job](ctx, tx, k, "job", id)
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
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if !j.Created.Equal(created) {
				p.ZRem(ctx, s.kJobsByTime(), jobMember(created, id))
				p.ZAdd(ctx, s.kJobsByTime(), redis.Z{Member: jobMember(j.Created, id)})
			}
			p.Set(ctx, k, enc(j), 0)
			return nil
		})
		return err
	}, k)
	if err != nil {
		return nil, err
	}
	return j, nil
}

// Jobs implements store.Store.
func (s *Store) Jobs(ctx context.Context, before time.Time, limit int) ([]*store.Job, error) {
	maxLex := "+"
	if !before.IsZero() {
		maxLex = "(" + fmt.Sprintf("%016x", uint64(before.UnixNano()))
	}
	by := &redis.ZRangeBy{Max: maxLex, Min: "-"}
	if limit > 0 {
		by.Count = int64(limit)
	}
	members, err := s.rdb.ZRevRangeByLex(ctx, s.kJobsByTime(), by).Result()
	if err != nil || len(members) == 0 {
		return nil, err
	}
	keys := make([]string, len(members))
	for i, m := range members {
		keys[i] = s.kJob(m[16:])
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]*store.Job, 0, len(vals))
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue
		}
		j := new(store.Job)
		if err := json.Unmarshal([]byte(raw), j); err != nil {
			return nil, fmt.Errorf("job %q: %w: %v", members[i][16:], store.ErrBadRecord, err)
		}
		out = append(out, j)
	}
	return out, nil
}

// AppendAuditAt implements store.Store: the stream's tail decides between
// next, duplicate and gap, and XADD with the explicit ID "<seq>-1" settles a
// race between two writers of the same entry.
func (s *Store) AppendAuditAt(ctx context.Context, stream string, e *store.AuditEntry) (*store.AuditEntry, error) {
	if stream == "" || e.Seq == 0 {
		return nil, fmt.Errorf("append audit: %w: empty stream or seq 0", store.ErrBadRecord)
	}
	k := s.kAudit(stream)
	for range maxAppendRetries {
		last, err := s.lastAudit(ctx, k, stream)
		if err != nil {
			return nil, err
		}
		if err := store.CheckAuditNext(stream, e.Seq, last.Seq); err != nil {
			return nil, err
		}
		entry := *e
		store.ChainAuditEntry(&entry, last.Hash, s.now)
		if added, err := s.addAudit(ctx, k, stream, &entry); err != nil {
			return nil, err
		} else if added {
			return &entry, nil
		}
	}
	return nil, fmt.Errorf("append audit %q: %w: too much contention", stream, store.ErrConflict)
}

// appendAuditBatch adds a run of chained entries to a stream in one atomic
// step, provided the stream's tail is still the one the chain was computed
// from: KEYS[1] is the stream, ARGV[1] the tail's sequence number ("0" for
// an empty stream), then the ID and encoding of each entry. It returns the
// number of entries added, or -1 when another writer moved the tail.
var appendAuditBatch = redis.NewScript(`
local t = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local tail = '0'
if #t == 1 then tail = string.match(t[1][1], '^(%d+)-') end
if tail ~= ARGV[1] then return -1 end
for i = 2, #ARGV, 2 do
  redis.call('XADD', KEYS[1], ARGV[i], 'e', ARGV[i + 1])
end
return (#ARGV - 1) / 2
`)

// AppendAuditBatch implements store.Store: it reads the stream's tail,
// chains the batch's new entries onto it and adds them with one script
// that checks the tail did not move meanwhile (else it reads it again), so
// the whole batch costs about two round trips.
func (s *Store) AppendAuditBatch(ctx context.Context, stream string, entries []*store.AuditEntry) ([]*store.AuditEntry, error) {
	if err := store.ValidateAuditBatch(stream, entries); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, nil
	}
	k := s.kAudit(stream)
	for range maxAppendRetries {
		last, err := s.lastAudit(ctx, k, stream)
		if err != nil {
			return nil, err
		}
		from := strconv.FormatUint(last.Seq, 10)
		var (
			out  []*store.AuditEntry
			gap  error
			args = []any{from}
		)
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
			args = append(args, strconv.FormatUint(entry.Seq, 10)+"-1", enc(&entry))
			out = append(out, &entry)
			last = entry
		}
		if len(out) == 0 {
			return nil, gap
		}
		var n int
		if s.waitN > 0 {
			// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT.
			var cmd *redis.Cmd
			err = s.replicated(ctx, k, func(p redis.Pipeliner) { cmd = appendAuditBatch.Eval(ctx, p, []string{k}, args...) })
			if cmd != nil { // nil: no connection to the primary
				if cerr := cmd.Err(); cerr != nil {
					err = cerr
				} else if n, _ = cmd.Int(); n != len(out) {
					err = nil // the tail moved: nothing was written, try again
				}
			}
		} else {
			n, err = appendAuditBatch.Run(ctx, s.rdb, []string{k}, args...).Int()
		}
		if err != nil {
			return nil, fmt.Errorf("append audit %q: %w", stream, err)
		}
		if n == len(out) {
			return out, gap
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("append audit %q: %w: too much contention", stream, store.ErrConflict)
}

// putCheckpoint moves a checkpoint forward only.
var putCheckpoint = redis.NewScript(`
local old = redis.call('HGET', KEYS[1], 'seq')
if old and tonumber(old) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'rec', ARGV[2])
return 1
`)

// PutCheckpoint implements store.Store.
func (s *Store) PutCheckpoint(ctx context.Context, c *store.Checkpoint) error {
	if c.Stream == "" {
		return fmt.Errorf("put checkpoint: %w: empty stream", store.ErrBadRecord)
	}
	k, args := s.kCheckpoint(c.Stream), []any{strconv.FormatUint(c.Seq, 10), enc(c)}
	var (
		ok  int
		err error
	)
	if s.waitN > 0 {
		var cmd *redis.Cmd
		err = s.replicated(ctx, k, func(p redis.Pipeliner) { cmd = putCheckpoint.Eval(ctx, p, []string{k}, args...) })
		if cmd != nil { // nil: no connection to the primary
			if cerr := cmd.Err(); cerr != nil {
				err = cerr
			} else if err == nil {
				ok, _ = cmd.Int()
			}
		}
	} else {
		ok, err = putCheckpoint.Run(ctx, s.rdb, []string{k}, args...).Int()
	}
	if err != nil {
		return err
	}
	if ok == 0 {
		return fmt.Errorf("checkpoint %q at %d: %w: a longer log is checkpointed", c.Stream, c.Seq, store.ErrConflict)
	}
	return nil
}

// Checkpoint implements store.Store.
func (s *Store) Checkpoint(ctx context.Context, stream string) (*store.Checkpoint, error) {
	raw, err := s.rdb.HGet(ctx, s.kCheckpoint(stream), "rec").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("checkpoint %q: %w", stream, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	c := new(store.Checkpoint)
	if err := json.Unmarshal(raw, c); err != nil {
		return nil, fmt.Errorf("checkpoint %q: %w: %v", stream, store.ErrBadRecord, err)
	}
	return c, nil
}

// A job's terminal recording: a hash of its head (seq, size) and a string
// of its asciicast, both under the store's prefix (one hash slot).
func (s *Store) kRecording(job string) string     { return s.k("recording", job) }
func (s *Store) kRecordingData(job string) string { return s.k("recordingdata", job) }

// appendRecording returns {stored, head}: stored is 1 when the chunk was
// appended, 0 when it was already stored, -1 for a gap, 2 when it counts
// but was over the limit.
var appendRecording = redis.NewScript(`
local old = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local size = tonumber(redis.call('HGET', KEYS[1], 'size') or '0')
local seq = tonumber(ARGV[1])
if seq <= old then return {0, old} end
if seq > old + 1 then return {-1, old} end
if size + string.len(ARGV[2]) > tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'seq', seq, 'size', size)
  return {2, seq}
end
redis.call('APPEND', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], 'seq', seq, 'size', size + string.len(ARGV[2]))
return {1, seq}
`)

// AppendRecording implements store.Store.
func (s *Store) AppendRecording(ctx context.Context, job string, seq uint64, data []byte, limit int) (uint64, error) {
	if job == "" || seq == 0 {
		return 0, fmt.Errorf("append recording: %w: empty job or seq 0", store.ErrBadRecord)
	}
	keys := []string{s.kRecording(job), s.kRecordingData(job)}
	args := []any{strconv.FormatUint(seq, 10), data, strconv.Itoa(limit)}
	var (
		res []int64
		err error
	)
	if s.waitN > 0 {
		var cmd *redis.Cmd
		err = s.replicated(ctx, keys[0], func(p redis.Pipeliner) { cmd = appendRecording.Eval(ctx, p, keys, args...) })
		if cmd != nil {
			if cerr := cmd.Err(); cerr != nil {
				err = cerr
			} else if err == nil {
				res, err = cmd.Int64Slice()
			}
		}
	} else {
		res, err = appendRecording.Run(ctx, s.rdb, keys, args...).Int64Slice()
	}
	if err != nil {
		return 0, err
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("append recording: %w: unexpected reply", store.ErrBadRecord)
	}
	head := uint64(res[1])
	switch res[0] {
	case -1:
		return head, fmt.Errorf("recording of %s: chunk %d after %d: %w", job, seq, head, store.ErrConflict)
	case 2:
		return head, fmt.Errorf("recording of %s: chunk %d over %d bytes: %w", job, seq, limit, store.ErrBadRecord)
	}
	return head, nil
}

// Recording implements store.Store.
func (s *Store) Recording(ctx context.Context, job string) ([]byte, error) {
	n, err := s.rdb.Exists(ctx, s.kRecording(job)).Result()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("recording of %s: %w", job, store.ErrNotFound)
	}
	b, err := s.rdb.Get(ctx, s.kRecordingData(job)).Bytes()
	if errors.Is(err, redis.Nil) {
		return []byte{}, nil
	}
	return b, err
}
