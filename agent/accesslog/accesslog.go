// Package accesslog is the agent's side of the access log: it numbers the
// entries of each session, keeps every entry until signaling acknowledges
// it (in memory and, with a spool directory, on disk, so an agent restart
// loses nothing), hands out batches to ship, and refuses to admit a new
// exchange while its bounded buffer is full — the audit log is
// fail-closed: no log, no serving.
//
// An exchange first takes a Slot (Begin), which reserves room for its
// entry, and Commits the entry when it ends, so an exchange that was
// served is always recorded.
package accesslog

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/agent/spool"
	"github.com/porthole-dev/porthole/proto"
)

// DefaultCapacity is the default bound on entries not yet acknowledged
// (plus exchanges in progress).
const DefaultCapacity = 4096

// ErrFull refuses an exchange while the buffer is full.
var ErrFull = &proto.Error{Code: proto.CodeAuditBacklog,
	Message: "the agent cannot record more requests until signaling acknowledges its access log; it serves again once it can"}

// Config configures a Log.
type Config struct {
	// Dir is the spool directory; empty keeps entries in memory only.
	Dir string
	// Capacity bounds unacknowledged entries plus exchanges in progress;
	// zero means DefaultCapacity.
	Capacity int
	// Logger; nil discards.
	Logger *slog.Logger
}

// Log is the agent's access log. It is safe for concurrent use.
type Log struct {
	cfg    Config
	log    *slog.Logger
	notify chan struct{}

	mu       sync.Mutex
	reserved int // slots taken, entries not yet committed
	unacked  int // committed entries not yet acknowledged
	streams  map[string]*stream
}

// stream is one session's log.
type stream struct {
	id      string
	next    uint64              // the sequence number of the next entry
	acked   uint64              // every entry up to here is acknowledged
	sent    uint64              // every entry up to here was handed out on this connection
	flights []flight            // batches handed out and not yet acknowledged, oldest first
	entries []proto.AccessEntry // unacknowledged, in order
	file    *os.File            // spool, nil without Dir
	ended   bool                // the session is over: forget the stream once drained
}

// flight is a batch handed out and not yet acknowledged.
type flight struct {
	last uint64    // its last entry
	at   time.Time // when it was handed out
}

// Open opens the log, reading back what an earlier run left in the spool:
// those sessions are over (the process that served them is gone) and their
// entries are shipped again (signaling drops the ones it has).
func Open(cfg Config) (*Log, error) {
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultCapacity
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{cfg: cfg, log: cfg.Logger, notify: make(chan struct{}, 1), streams: map[string]*stream{}}
	if cfg.Dir == "" {
		return l, nil
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("access log spool: %w", err)
	}
	ids, err := spool.Sessions(cfg.Dir, ".log")
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		name := filepath.Join(cfg.Dir, id+".log")
		entries, err := readSpool(name)
		if err != nil {
			l.log.Warn("access log spool unreadable; keeping what it holds", "file", name, "err", err)
		}
		if len(entries) == 0 {
			_ = os.Remove(name)
			continue
		}
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("access log spool: %w", err)
		}
		first := entries[0].Seq
		s := &stream{id: id, next: entries[len(entries)-1].Seq + 1, acked: first - 1, sent: first - 1,
			entries: entries, file: f, ended: true}
		l.streams[id] = s
		l.unacked += len(entries)
		l.log.Info("access log entries from an earlier run to ship", "session", id, "entries", len(entries))
	}
	return l, nil
}

// readSpool reads a spool file: one JSON entry per line, in sequence. A
// torn last line (a crash mid-write) ends it.
func readSpool(name string) ([]proto.AccessEntry, error) {
	return spool.Read(name, 1<<20, func(e *proto.AccessEntry) uint64 { return e.Seq },
		func(e *proto.AccessEntry) error { return e.Validate() })
}

// Slot is room reserved for one exchange's entry.
type Slot struct {
	l       *Log
	session string
	once    sync.Once
}

// Begin reserves room for an exchange of session, or refuses with ErrFull
// (a *proto.Error with CodeAuditBacklog) while the buffer is full.
func (l *Log) Begin(session string) (*Slot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reserved+l.unacked >= l.cfg.Capacity {
		return nil, ErrFull
	}
	l.reserved++
	return &Slot{l: l, session: session}, nil
}

// Commit numbers e as the session's next entry and keeps it until it is
// acknowledged. Only the first call of a slot counts.
func (s *Slot) Commit(e proto.AccessEntry) {
	s.once.Do(func() { s.l.commit(s.session, e) })
}

func (l *Log) commit(session string, e proto.AccessEntry) {
	l.mu.Lock()
	l.reserved--
	st := l.streams[session]
	if st == nil {
		st = &stream{id: session, next: 1}
		l.streams[session] = st
	}
	e.Seq = st.next
	st.next++
	st.entries = append(st.entries, e)
	l.unacked++
	if l.cfg.Dir != "" {
		l.spoolLocked(st, &e)
	}
	l.mu.Unlock()
	l.wake()
}

// spoolLocked appends e to the stream's spool file. A failure is logged:
// the entry stays in memory, and the buffer bound still holds.
func (l *Log) spoolLocked(st *stream, e *proto.AccessEntry) {
	if st.file == nil {
		f, err := os.OpenFile(filepath.Join(l.cfg.Dir, st.id+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			l.log.Error("access log spool", "session", st.id, "err", err)
			return
		}
		st.file = f
	}
	b, _ := json.Marshal(e)
	if _, err := st.file.Write(append(b, '\n')); err != nil {
		l.log.Error("access log spool write", "session", st.id, "err", err)
	}
}

func (l *Log) wake() {
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// Notify receives a value when there may be entries to ship.
func (l *Log) Notify() <-chan struct{} { return l.notify }

// End marks session over: its stream is forgotten once drained.
func (l *Log) End(session string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.streams[session]; st != nil {
		st.ended = true
		l.dropIfDrainedLocked(st)
	}
}

func (l *Log) dropIfDrainedLocked(st *stream) {
	if len(st.entries) > 0 {
		return
	}
	if st.file != nil {
		// Nothing is left to ship: empty the spool so a restart does not
		// ship it again.
		_ = st.file.Truncate(0)
		if st.ended {
			st.file.Close()
			_ = os.Remove(filepath.Join(l.cfg.Dir, st.id+".log"))
			st.file = nil
		}
	}
	if st.ended {
		delete(l.streams, st.id)
	}
}

// Ack records that signaling stored every entry of session up to seq.
func (l *Log) Ack(session string, seq uint64) {
	l.mu.Lock()
	st := l.streams[session]
	if st == nil || seq <= st.acked {
		l.mu.Unlock()
		return
	}
	n := 0
	for n < len(st.entries) && st.entries[n].Seq <= seq {
		n++
	}
	st.entries = append(st.entries[:0:0], st.entries[n:]...)
	l.unacked -= n
	st.acked = seq
	st.sent = max(st.sent, seq)
	f := 0
	for f < len(st.flights) && st.flights[f].last <= seq {
		f++
	}
	st.flights = st.flights[f:]
	l.dropIfDrainedLocked(st)
	l.mu.Unlock()
	l.wake()
}

// Rewind makes every unacknowledged entry due again: after a reconnection,
// or when acknowledgements stopped coming for resend.
func (l *Log) Rewind() {
	l.mu.Lock()
	for _, st := range l.streams {
		st.sent, st.flights = st.acked, nil
	}
	l.mu.Unlock()
	l.wake()
}

// Batch is entries of one session to ship.
type Batch struct {
	Session string
	Log     proto.AccessLog
}

// maxBatchBytes keeps a log.entries message well under the signaling
// message limit.
const maxBatchBytes = proto.MaxSignalMessage / 2

// MaxInFlight is how many batches of one session may await their
// acknowledgement: signaling stores a connection's batches one after the
// other, so the next one waits there, not for the round trip.
const MaxInFlight = 2

// Due hands out the next batch of every session that has entries not yet
// handed out and fewer than MaxInFlight batches in flight, and re-arms
// sessions whose oldest batch got no acknowledgement within resend.
func (l *Log) Due(now time.Time, resend time.Duration) []Batch {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Batch
	for _, st := range l.streams {
		if len(st.flights) > 0 && now.Sub(st.flights[0].at) >= resend {
			st.sent, st.flights = st.acked, nil
		}
		if len(st.flights) >= MaxInFlight {
			continue
		}
		i := 0
		for i < len(st.entries) && st.entries[i].Seq <= st.sent {
			i++
		}
		if i == len(st.entries) {
			continue
		}
		b := Batch{Session: st.id}
		size := 0
		for ; i < len(st.entries) && len(b.Log.Entries) < proto.MaxAccessBatch; i++ {
			n := st.entries[i].SizeHint()
			if size+n > maxBatchBytes && len(b.Log.Entries) > 0 {
				break
			}
			size += n
			b.Log.Entries = append(b.Log.Entries, st.entries[i])
		}
		st.sent = b.Log.Entries[len(b.Log.Entries)-1].Seq
		st.flights = append(st.flights, flight{last: st.sent, at: now})
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Session < out[j].Session })
	return out
}

// Stats says how full the log is.
type Stats struct {
	Unacked, Reserved, Capacity, Sessions int
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Unacked: l.unacked, Reserved: l.reserved, Capacity: l.cfg.Capacity, Sessions: len(l.streams)}
}

// Close closes the spool files; entries not acknowledged stay in them.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, st := range l.streams {
		if st.file != nil {
			errs = append(errs, st.file.Close())
			st.file = nil
		}
	}
	return errors.Join(errs...)
}
