package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/signaling/store"
)

func testJobs(t *testing.T, open Factory) {
	s := newStore(t, open)
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i := range 5 {
		must(t, s.PutJob(ctx, &store.Job{ID: fmt.Sprintf("job%d", i), Type: store.JobWebpage, User: "u1", Agent: "ag1",
			Device: "d1", Site: "a", State: store.JobRequested, Created: base.Add(time.Duration(i) * time.Minute),
			Expires: base.Add(time.Duration(i)*time.Minute + 30*time.Minute)}))
	}
	wantErr(t, s.PutJob(ctx, &store.Job{ID: "job1", Created: base}), store.ErrExists)
	_, err := s.Job(ctx, "nope")
	wantErr(t, err, store.ErrNotFound)
	j, err := s.Job(ctx, "job2")
	must(t, err)
	if j.Device != "d1" || !j.Created.Equal(base.Add(2*time.Minute)) || j.State != store.JobRequested {
		t.Fatalf("Job = %+v", j)
	}
	j.Device = "mutated" // a copy
	if j, _ := s.Job(ctx, "job2"); j.Device != "d1" {
		t.Fatal("the store returned its own record")
	}

	all, err := s.Jobs(ctx, time.Time{}, 0)
	must(t, err)
	if len(all) != 5 || all[0].ID != "job4" || all[4].ID != "job0" {
		t.Fatalf("Jobs: %d, want 5 newest first", len(all))
	}
	page, err := s.Jobs(ctx, base.Add(3*time.Minute), 2)
	must(t, err)
	if len(page) != 2 || page[0].ID != "job2" || page[1].ID != "job1" {
		t.Fatalf("Jobs before job3, limit 2 = %v", ids(page))
	}
	early, err := s.Jobs(ctx, base, 0)
	must(t, err)
	if len(early) != 0 {
		t.Fatalf("Jobs before the first = %v", ids(early))
	}

	end := base.Add(10 * time.Minute)
	j, err = s.UpdateJob(ctx, "job2", func(j *store.Job) error {
		j.State, j.Ended, j.EndReason = store.JobEnded, end, "expired"
		j.States = append(j.States, store.JobTransition{State: store.JobEnded, Time: end, Detail: "expired"})
		return nil
	})
	must(t, err)
	if j.State != store.JobEnded || !j.Ended.Equal(end) {
		t.Fatalf("UpdateJob = %+v", j)
	}
	if j, _ := s.Job(ctx, "job2"); j.EndReason != "expired" || len(j.States) != 1 {
		t.Fatalf("stored after update: %+v", j)
	}
	_, err = s.UpdateJob(ctx, "job2", func(j *store.Job) error { j.ID = "other"; return nil })
	wantErr(t, err, store.ErrConflict)
	boom := errors.New("boom")
	if _, err := s.UpdateJob(ctx, "job2", func(*store.Job) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	_, err = s.UpdateJob(ctx, "nope", func(*store.Job) error { return nil })
	wantErr(t, err, store.ErrNotFound)
}

func ids(jobs []*store.Job) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}

func testJobUpdateAtomic(t *testing.T, open Factory) {
	s := newStore(t, open)
	must(t, s.PutJob(ctx, &store.Job{ID: "j", Created: time.Now()}))
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := s.UpdateJob(ctx, "j", func(j *store.Job) error { j.Requests++; return nil }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if j, _ := s.Job(ctx, "j"); j.Requests != 20 {
		t.Fatalf("%d increments survived, want 20", j.Requests)
	}
}

func testAppendAuditAt(t *testing.T, open Factory) {
	s := newStore(t, open)
	const stream = "session/abc"
	for seq := uint64(1); seq <= 3; seq++ {
		e, err := s.AppendAuditAt(ctx, stream, &store.AuditEntry{Seq: seq, Actor: "agent", Action: "http", Detail: map[string]string{"url": fmt.Sprint("/", seq)}})
		must(t, err)
		if e.Seq != seq || e.Hash == "" {
			t.Fatalf("entry %d = %+v", seq, e)
		}
	}
	// A re-sent entry is a duplicate and changes nothing, whatever it says.
	_, err := s.AppendAuditAt(ctx, stream, &store.AuditEntry{Seq: 2, Actor: "agent", Action: "http", Detail: map[string]string{"url": "/other"}})
	wantErr(t, err, store.ErrExists)
	_, err = s.AppendAuditAt(ctx, stream, &store.AuditEntry{Seq: 5, Actor: "agent", Action: "http"})
	wantErr(t, err, store.ErrConflict)
	_, err = s.AppendAuditAt(ctx, stream, &store.AuditEntry{Seq: 0, Actor: "agent", Action: "http"})
	wantErr(t, err, store.ErrBadRecord)
	all, err := s.Audit(ctx, stream, 0, 0)
	must(t, err)
	if len(all) != 3 || all[1].Detail["url"] != "/2" {
		t.Fatalf("stream = %d entries, second %v", len(all), all[1].Detail)
	}
	if i := store.VerifyChain("", 1, all); i >= 0 {
		t.Fatalf("chain broken at %d", i)
	}
	// AppendAudit continues the same chain.
	e, err := s.AppendAudit(ctx, stream, &store.AuditEntry{Actor: "system", Action: "end"})
	must(t, err)
	if e.Seq != 4 || e.Prev != all[2].Hash {
		t.Fatalf("AppendAudit after AppendAuditAt = %+v", e)
	}
}

func testAppendAuditAtRace(t *testing.T, open Factory) {
	s := newStore(t, open)
	const stream = "session/race"
	// Two shippers send the same 20 entries at once: each is stored once.
	var stored, dup atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for seq := uint64(1); seq <= 20; seq++ {
				_, err := s.AppendAuditAt(ctx, stream, &store.AuditEntry{Seq: seq, Actor: "agent", Action: "http"})
				switch {
				case err == nil:
					stored.Add(1)
				case errors.Is(err, store.ErrExists):
					dup.Add(1)
				default:
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if stored.Load() != 20 || dup.Load() != 20 {
		t.Fatalf("stored %d, duplicates %d; want 20 and 20", stored.Load(), dup.Load())
	}
	all, err := s.Audit(ctx, stream, 0, 0)
	must(t, err)
	if len(all) != 20 || store.VerifyChain("", 1, all) >= 0 {
		t.Fatalf("%d entries or broken chain", len(all))
	}
}

func batch(from, to uint64, url string) []*store.AuditEntry {
	var out []*store.AuditEntry
	for seq := from; seq <= to; seq++ {
		out = append(out, &store.AuditEntry{Seq: seq, Actor: "agent", Action: "http",
			Time: time.Date(2025, 1, 2, 3, 4, 5, int(seq), time.UTC), Detail: map[string]string{"url": fmt.Sprint(url, seq)}})
	}
	return out
}

func seqs(es []*store.AuditEntry) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func testAppendAuditBatch(t *testing.T, open Factory) {
	s := newStore(t, open)
	const stream = "session/batch"
	if out, err := s.AppendAuditBatch(ctx, stream, nil); err != nil || len(out) != 0 {
		t.Fatalf("empty batch = %v, %v", out, err)
	}
	out, err := s.AppendAuditBatch(ctx, stream, batch(1, 3, "/"))
	must(t, err)
	if fmt.Sprint(seqs(out)) != "[1 2 3]" || out[0].Prev != "" || out[1].Prev != out[0].Hash || out[2].Hash == "" {
		t.Fatalf("first batch stored %+v", out)
	}
	// A re-sent batch overlapping the stored entries: only the new ones
	// count, the stored ones are kept whatever the re-sent ones say.
	out, err = s.AppendAuditBatch(ctx, stream, append(batch(2, 3, "/other"), batch(4, 5, "/")...))
	must(t, err)
	if fmt.Sprint(seqs(out)) != "[4 5]" || out[0].Prev == "" {
		t.Fatalf("overlapping batch stored %v", seqs(out))
	}
	// Entirely stored already: nothing, no error.
	out, err = s.AppendAuditBatch(ctx, stream, batch(1, 5, "/"))
	if err != nil || len(out) != 0 {
		t.Fatalf("duplicate batch = %v, %v", seqs(out), err)
	}
	// A gap stops the batch; what comes before it is stored.
	b := append(batch(6, 7, "/"), batch(9, 10, "/")...)
	out, err = s.AppendAuditBatch(ctx, stream, b)
	wantErr(t, err, store.ErrConflict)
	if fmt.Sprint(seqs(out)) != "[6 7]" {
		t.Fatalf("batch with a gap stored %v", seqs(out))
	}
	out, err = s.AppendAuditBatch(ctx, stream, batch(12, 13, "/"))
	wantErr(t, err, store.ErrConflict)
	if len(out) != 0 {
		t.Fatalf("batch after a gap stored %v", seqs(out))
	}
	// Seq 0 or no stream refuses the whole batch.
	_, err = s.AppendAuditBatch(ctx, stream, append(batch(8, 8, "/"), &store.AuditEntry{Actor: "agent", Action: "http"}))
	wantErr(t, err, store.ErrBadRecord)
	_, err = s.AppendAuditBatch(ctx, "", batch(1, 1, "/"))
	wantErr(t, err, store.ErrBadRecord)

	all, err := s.Audit(ctx, stream, 0, 0)
	must(t, err)
	if fmt.Sprint(seqs(all)) != "[1 2 3 4 5 6 7]" || all[1].Detail["url"] != "/2" {
		t.Fatalf("stream = %v, second %v", seqs(all), all[1].Detail)
	}
	if i := store.VerifyChain("", 1, all); i >= 0 {
		t.Fatalf("chain broken at %d", i)
	}
	// The same entries stored one by one chain to the same hashes.
	for _, e := range batch(1, 7, "/") {
		one, err := s.AppendAuditAt(ctx, "session/one", e)
		must(t, err)
		if one.Hash != all[e.Seq-1].Hash {
			t.Fatalf("entry %d: hash %s one by one, %s in a batch", e.Seq, one.Hash, all[e.Seq-1].Hash)
		}
	}
	// The single-entry appends continue the batch's chain, and the other way round.
	e, err := s.AppendAuditAt(ctx, stream, batch(8, 8, "/")[0])
	must(t, err)
	if e.Prev != all[6].Hash {
		t.Fatalf("AppendAuditAt after a batch = %+v", e)
	}
	e, err = s.AppendAudit(ctx, stream, &store.AuditEntry{Actor: "system", Action: "end"})
	must(t, err)
	out, err = s.AppendAuditBatch(ctx, stream, batch(9, 10, "/"))
	must(t, err)
	if fmt.Sprint(seqs(out)) != "[10]" || out[0].Prev != e.Hash {
		t.Fatalf("batch after AppendAudit stored %+v", out)
	}
	all, err = s.Audit(ctx, stream, 0, 0)
	must(t, err)
	if len(all) != 10 || store.VerifyChain("", 1, all) >= 0 {
		t.Fatalf("%d entries or broken chain", len(all))
	}
}

func testAppendAuditBatchRace(t *testing.T, open Factory) {
	s := newStore(t, open)
	const stream = "session/batchrace"
	// Three shippers send the same 60 entries at once in batches of
	// different sizes: each entry is stored once and the chain holds.
	var stored atomic.Int64
	var wg sync.WaitGroup
	for _, size := range []uint64{1, 7, 20} {
		wg.Go(func() {
			for from := uint64(1); from <= 60; from += size {
				out, err := s.AppendAuditBatch(ctx, stream, batch(from, min(from+size-1, 60), "/"))
				if err != nil {
					t.Error(err)
					return
				}
				stored.Add(int64(len(out)))
			}
		})
	}
	wg.Wait()
	if stored.Load() != 60 {
		t.Fatalf("stored %d entries, want 60", stored.Load())
	}
	all, err := s.Audit(ctx, stream, 0, 0)
	must(t, err)
	if len(all) != 60 || store.VerifyChain("", 1, all) >= 0 {
		t.Fatalf("%d entries or broken chain", len(all))
	}
}

func testCheckpoints(t *testing.T, open Factory) {
	s := newStore(t, open)
	_, err := s.Checkpoint(ctx, "session/x")
	wantErr(t, err, store.ErrNotFound)
	now := time.Now().UTC().Truncate(time.Second)
	must(t, s.PutCheckpoint(ctx, &store.Checkpoint{Stream: "session/x", Seq: 5, Hash: "h5", Time: now, Key: "k", Sig: "s5"}))
	must(t, s.PutCheckpoint(ctx, &store.Checkpoint{Stream: "session/x", Seq: 5, Hash: "h5", Time: now, Key: "k", Sig: "s5b"}))
	wantErr(t, s.PutCheckpoint(ctx, &store.Checkpoint{Stream: "session/x", Seq: 4, Hash: "h4", Key: "k", Sig: "s4"}), store.ErrConflict)
	must(t, s.PutCheckpoint(ctx, &store.Checkpoint{Stream: "session/x", Seq: 9, Hash: "h9", Time: now, Key: "k", Sig: "s9"}))
	c, err := s.Checkpoint(ctx, "session/x")
	must(t, err)
	if c.Seq != 9 || c.Hash != "h9" || c.Sig != "s9" || !c.Time.Equal(now) {
		t.Fatalf("Checkpoint = %+v", c)
	}
	if _, err := s.Checkpoint(ctx, "session/y"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other stream: %v", err)
	}
}

func testJobsRestart(t *testing.T, open Factory) {
	s, reopen := open(t)
	now := time.Now().UTC()
	must(t, s.PutJob(ctx, &store.Job{ID: "j1", Created: now, State: store.JobConnected, Path: "relay"}))
	_, err := s.AppendAuditAt(ctx, "session/j1", &store.AuditEntry{Seq: 1, Actor: "agent", Action: "http"})
	must(t, err)
	must(t, s.PutCheckpoint(ctx, &store.Checkpoint{Stream: "session/j1", Seq: 1, Hash: "h", Key: "k", Sig: "s"}))
	must(t, s.Close())

	s = reopen()
	t.Cleanup(func() { s.Close() })
	if j, err := s.Job(ctx, "j1"); err != nil || j.Path != "relay" {
		t.Fatalf("job after restart: %+v, %v", j, err)
	}
	if _, err := s.AppendAuditAt(ctx, "session/j1", &store.AuditEntry{Seq: 1, Actor: "agent", Action: "http"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("re-sent entry after restart: %v", err)
	}
	if c, err := s.Checkpoint(ctx, "session/j1"); err != nil || c.Seq != 1 {
		t.Fatalf("checkpoint after restart: %+v, %v", c, err)
	}
}

// testRecording: a job's terminal recording takes its chunks in order
// (a re-sent one is skipped, a gap refused), stays within its limit, is
// one recording per job, and survives a restart.
func testRecording(t *testing.T, open Factory) {
	s, reopen := open(t)
	_, err := s.Recording(ctx, "r1")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.AppendRecording(ctx, "r1", 0, []byte("x\n"), 100)
	wantErr(t, err, store.ErrBadRecord)
	head := `{"version":2,"width":80,"height":24}` + "\n"
	if n, err := s.AppendRecording(ctx, "r1", 1, []byte(head), 100); err != nil || n != 1 {
		t.Fatalf("chunk 1: %d, %v", n, err)
	}
	if n, err := s.AppendRecording(ctx, "r1", 1, []byte("dup\n"), 100); err != nil || n != 1 {
		t.Fatalf("re-sent chunk 1: %d, %v", n, err)
	}
	n, err := s.AppendRecording(ctx, "r1", 3, []byte("gap\n"), 100)
	wantErr(t, err, store.ErrConflict)
	if n != 1 {
		t.Fatalf("head after a gap = %d, want 1", n)
	}
	if n, err := s.AppendRecording(ctx, "r1", 2, []byte(`[0.5,"o","$ "]`+"\n"), 100); err != nil || n != 2 {
		t.Fatalf("chunk 2: %d, %v", n, err)
	}
	n, err = s.AppendRecording(ctx, "r1", 3, []byte(strings.Repeat("y", 100)+"\n"), 100)
	wantErr(t, err, store.ErrBadRecord)
	if n != 3 {
		t.Fatalf("an over-limit chunk does not count: head %d, want 3", n)
	}
	if _, err := s.AppendRecording(ctx, "r2", 1, []byte("other\n"), 100); err != nil {
		t.Fatal(err)
	}
	want := head + `[0.5,"o","$ "]` + "\n"
	if got, err := s.Recording(ctx, "r1"); err != nil || string(got) != want {
		t.Fatalf("Recording = %q, %v; want %q", got, err, want)
	}
	must(t, s.Close())
	s = reopen()
	t.Cleanup(func() { s.Close() })
	if got, err := s.Recording(ctx, "r1"); err != nil || string(got) != want {
		t.Fatalf("Recording after restart = %q, %v", got, err)
	}
	if n, err := s.AppendRecording(ctx, "r1", 4, []byte("z\n"), 100); err != nil || n != 4 {
		t.Fatalf("chunk 4 after restart: %d, %v", n, err)
	}
}
