// Package termrec records the browser terminals of the agent's sessions as
// asciicast v2 (proto/recording.go) and keeps each session's recording,
// cut into numbered chunks, until signaling acknowledges it: a chunk that
// got no acknowledgement (the connection dropped, or none came in time) is
// sent again, and signaling drops the ones it has.
//
// It records the terminal's output and window changes only, never its
// input: what the technician types shows only through the device's echo,
// and a password prompt does not echo. A recording is bounded
// (proto.MaxRecording by default); past the bound it ends with a visible
// marker and a log line, and the terminal goes on unrecorded.
//
// With a spool directory each chunk is also written to disk as it is cut,
// and the file goes once signaling has it all: chunks not acknowledged
// when the agent stops are read back by Open and shipped by the next run
// (signaling skips the ones it has), as the access log does.
package termrec

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/porthole-dev/porthole/agent/spool"
	"github.com/porthole-dev/porthole/proto"
)

// maxEventBytes is the most terminal output one "o" event carries: JSON
// escaping at most sextuples it, so an event line always fits a chunk.
const maxEventBytes = 2 << 10

// TruncatedMarker is the output event that ends a recording cut at its
// bound.
const TruncatedMarker = "\r\n[porthole: the recording stops here: it reached its size limit; the session went on]\r\n"

// MaxInFlight is how many chunks of one session may await their
// acknowledgement.
const MaxInFlight = 2

// Config configures a Set.
type Config struct {
	// Limit bounds the bytes of one session's recording; zero means
	// proto.MaxRecording.
	Limit int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// Dir is the spool directory; empty keeps recordings in memory only.
	Dir string
}

// spoolExt names a session's spool file in Config.Dir.
const spoolExt = ".chunks"

// Set is the recordings of the agent's sessions. It is safe for
// concurrent use.
type Set struct {
	cfg    Config
	log    *slog.Logger
	notify chan struct{}

	mu   sync.Mutex
	recs map[string]*rec
}

// rec is one session's recording.
type rec struct {
	id        string
	start     time.Time
	size      int    // bytes recorded, header included
	truncated bool   // the bound was reached
	terminals int    // opened so far
	pending   []byte // whole lines not yet cut into a chunk
	chunks    []proto.RecordingChunk
	next      uint64 // the sequence number of the next chunk
	acked     uint64
	sent      uint64    // every chunk up to here was handed out
	sentAt    time.Time // when the oldest chunk in flight was handed out
	live      int       // terminals not closed
	ended     bool      // the session is over: forget it once drained
	file      *os.File  // spool, nil without Config.Dir
}

// New returns an empty Set in memory (cfg.Dir is ignored: see Open).
func New(cfg Config) *Set {
	if cfg.Limit <= 0 {
		cfg.Limit = proto.MaxRecording
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Dir = ""
	return &Set{cfg: cfg, log: cfg.Logger, notify: make(chan struct{}, 1), recs: map[string]*rec{}}
}

// Open returns a Set that spools to cfg.Dir (in memory when it is empty),
// holding what an earlier run left there: those sessions are over (the
// process that served them is gone) and their chunks are shipped again.
func Open(cfg Config) (*Set, error) {
	dir := cfg.Dir
	s := New(cfg)
	if dir == "" {
		return s, nil
	}
	s.cfg.Dir = dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("recording spool: %w", err)
	}
	ids, err := spool.Sessions(dir, spoolExt)
	if err != nil {
		return nil, fmt.Errorf("recording spool: %w", err)
	}
	for _, id := range ids {
		name := filepath.Join(dir, id+spoolExt)
		chunks, err := readSpool(name, s.cfg.Limit)
		if err != nil {
			s.log.Warn("recording spool unreadable; shipping what it holds", "file", name, "err", err)
		}
		if len(chunks) == 0 {
			_ = os.Remove(name)
			continue
		}
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("recording spool: %w", err)
		}
		first, last := chunks[0].Seq, chunks[len(chunks)-1].Seq
		r := &rec{id: id, next: last + 1, acked: first - 1, sent: first - 1, chunks: chunks,
			truncated: true, ended: true, file: f} // nothing more is recorded for it
		for _, c := range chunks {
			r.size += len(c.Data)
		}
		s.recs[id] = r
		s.log.Info("terminal recording from an earlier run to ship", "session", id, "chunks", len(chunks))
	}
	return s, nil
}

// readSpool reads a spool file: one JSON chunk per line, in sequence, at
// most limit bytes of recording. A torn last line (a crash mid-write) or
// a chunk out of sequence ends it.
func readSpool(name string, limit int) ([]proto.RecordingChunk, error) {
	size := 0
	return spool.Read(name, 8*proto.MaxRecordingChunk, func(c *proto.RecordingChunk) uint64 { return c.Seq },
		func(c *proto.RecordingChunk) error {
			if c.Seq == 0 {
				return errors.New("chunk without a sequence number")
			}
			if size += len(c.Data); size > limit {
				return errors.New("longer than a recording may be")
			}
			return nil
		})
}

// Notify receives a value when there may be chunks to ship.
func (s *Set) Notify() <-chan struct{} { return s.notify }

func (s *Set) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Terminal records one terminal of a session.
type Terminal struct {
	s       *Set
	session string
	tail    []byte // an incomplete UTF-8 sequence held for the next output
	once    sync.Once
}

// Begin starts recording a terminal of session cols×rows in size: the
// session's first terminal writes the asciicast header, a later one a
// window change and a line saying a terminal opened.
func (s *Set) Begin(session string, cols, rows int) *Terminal {
	s.mu.Lock()
	r := s.recs[session]
	now := s.cfg.Now()
	if r == nil {
		r = &rec{id: session, start: now, next: 1}
		s.recs[session] = r
		h, _ := json.Marshal(struct {
			Version   int    `json:"version"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
			Timestamp int64  `json:"timestamp"`
			Title     string `json:"title,omitempty"`
		}{2, cols, rows, now.Unix(), "porthole session " + session})
		s.lineLocked(r, append(h, '\n'))
	} else {
		s.eventLocked(r, now, "r", strconv.Itoa(cols)+"x"+strconv.Itoa(rows))
		s.eventLocked(r, now, "o", fmt.Sprintf("\r\n[porthole: terminal %d opened]\r\n", r.terminals+1))
	}
	r.terminals++
	r.live++
	s.mu.Unlock()
	s.wake()
	return &Terminal{s: s, session: session}
}

// Output records p, the terminal's output. Not safe for concurrent use on
// one Terminal (a terminal has one output stream).
func (t *Terminal) Output(p []byte) {
	if len(p) == 0 {
		return
	}
	b := append(t.tail, p...)
	// Hold back an incomplete UTF-8 sequence at the end for the next
	// output; bytes that never form one are recorded as U+FFFD.
	cut := len(b)
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				cut = i
			}
			break
		}
	}
	t.tail = append([]byte(nil), b[cut:]...)
	b = b[:cut]
	s := t.s
	s.mu.Lock()
	r := s.recs[t.session]
	if r != nil {
		now := s.cfg.Now()
		for len(b) > 0 {
			n := min(len(b), maxEventBytes)
			for n < len(b) && n > 0 && !utf8.RuneStart(b[n]) {
				n--
			}
			if n == 0 {
				n = min(len(b), maxEventBytes)
			}
			s.eventLocked(r, now, "o", string(b[:n]))
			b = b[n:]
		}
	}
	s.mu.Unlock()
	s.wake()
}

// Resize records a window change.
func (t *Terminal) Resize(cols, rows int) {
	s := t.s
	s.mu.Lock()
	if r := s.recs[t.session]; r != nil {
		s.eventLocked(r, s.cfg.Now(), "r", strconv.Itoa(cols)+"x"+strconv.Itoa(rows))
	}
	s.mu.Unlock()
	s.wake()
}

// Close ends the terminal's recording (the session's goes on for its
// other terminals). Only the first call counts.
func (t *Terminal) Close() {
	t.once.Do(func() {
		s := t.s
		s.mu.Lock()
		if r := s.recs[t.session]; r != nil {
			r.live--
		}
		s.mu.Unlock()
		s.wake()
	})
}

// eventLocked records one event at now.
func (s *Set) eventLocked(r *rec, now time.Time, code, data string) {
	el := max(now.Sub(r.start), 0).Seconds()
	d, _ := json.Marshal(data)
	line := make([]byte, 0, len(d)+24)
	line = append(line, '[')
	line = strconv.AppendFloat(line, el, 'f', 6, 64)
	line = append(line, `,"`...)
	line = append(line, code...)
	line = append(line, `",`...)
	line = append(line, d...)
	line = append(line, "]\n"...)
	s.lineLocked(r, line)
}

// lineLocked appends one asciicast line within the bound: the line that
// would cross it is replaced by the truncation marker, and nothing follows.
func (s *Set) lineLocked(r *rec, line []byte) {
	if r.truncated {
		return
	}
	marker := 96 + len(TruncatedMarker)
	if r.size+len(line) > s.cfg.Limit-marker {
		r.truncated = true
		el := max(s.cfg.Now().Sub(r.start), 0).Seconds()
		d, _ := json.Marshal(TruncatedMarker)
		line = fmt.Appendf(nil, "[%.6f,\"o\",%s]\n", el, d)
		s.log.Warn("terminal recording truncated at its size limit; the session goes on unrecorded", "session", r.id, "limit_bytes", s.cfg.Limit)
	}
	if len(r.pending)+len(line) > proto.MaxRecordingChunk {
		s.cutLocked(r)
	}
	r.pending = append(r.pending, line...)
	r.size += len(line)
}

// cutLocked makes the pending lines the next chunk.
func (s *Set) cutLocked(r *rec) {
	if len(r.pending) == 0 {
		return
	}
	c := proto.RecordingChunk{Seq: r.next, Data: string(r.pending)}
	r.chunks = append(r.chunks, c)
	r.next++
	r.pending = r.pending[:0]
	if s.cfg.Dir != "" {
		s.spoolLocked(r, c)
	}
}

// spoolLocked appends c to r's spool file. A failure is logged: the chunk
// stays in memory and is shipped as usual.
func (s *Set) spoolLocked(r *rec, c proto.RecordingChunk) {
	if r.file == nil {
		f, err := os.OpenFile(filepath.Join(s.cfg.Dir, r.id+spoolExt), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			s.log.Error("recording spool", "session", r.id, "err", err)
			return
		}
		r.file = f
	}
	b, _ := json.Marshal(c)
	if _, err := r.file.Write(append(b, '\n')); err != nil {
		s.log.Error("recording spool write", "session", r.id, "err", err)
	}
}

// Batch is one chunk of a session's recording to ship.
type Batch struct {
	Session string
	Chunk   proto.RecordingChunk
}

// Due hands out the chunks of every session not yet handed out, keeping at
// most MaxInFlight unacknowledged, and re-arms sessions whose oldest chunk
// in flight got no acknowledgement within resend.
func (s *Set) Due(now time.Time, resend time.Duration) []Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Batch
	for _, r := range s.recs {
		if r.sent > r.acked && now.Sub(r.sentAt) >= resend {
			r.sent = r.acked
		}
		if r.sent-r.acked < MaxInFlight {
			s.cutLocked(r)
		}
		for _, c := range r.chunks {
			if c.Seq <= r.sent {
				continue
			}
			if c.Seq-r.acked > MaxInFlight {
				break
			}
			if r.sent == r.acked {
				r.sentAt = now
			}
			out = append(out, Batch{Session: r.id, Chunk: c})
			r.sent = c.Seq
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Session < out[j].Session })
	return out
}

// Ack records that signaling stored every chunk of session up to seq.
func (s *Set) Ack(session string, seq uint64) {
	s.mu.Lock()
	r := s.recs[session]
	if r == nil || seq <= r.acked {
		s.mu.Unlock()
		return
	}
	n := 0
	for n < len(r.chunks) && r.chunks[n].Seq <= seq {
		n++
	}
	r.chunks = append(r.chunks[:0:0], r.chunks[n:]...)
	r.acked = min(seq, r.next-1)
	r.sent = max(r.sent, r.acked)
	s.dropIfDrainedLocked(r)
	s.mu.Unlock()
	s.wake()
}

// Rewind makes every unacknowledged chunk due again (a new connection).
func (s *Set) Rewind() {
	s.mu.Lock()
	for _, r := range s.recs {
		r.sent = r.acked
	}
	s.mu.Unlock()
	s.wake()
}

// End marks session over: its recording is forgotten once shipped.
func (s *Set) End(session string) {
	s.mu.Lock()
	if r := s.recs[session]; r != nil {
		r.ended = true
		s.dropIfDrainedLocked(r)
	}
	s.mu.Unlock()
	s.wake()
}

func (s *Set) dropIfDrainedLocked(r *rec) {
	if len(r.chunks) > 0 {
		return
	}
	if r.file != nil {
		// Signaling has every chunk cut so far: empty the spool so a
		// restart does not ship them again.
		_ = r.file.Truncate(0)
		if r.ended && len(r.pending) == 0 {
			r.file.Close()
			_ = os.Remove(filepath.Join(s.cfg.Dir, r.id+spoolExt))
			r.file = nil
		}
	}
	if r.ended && len(r.pending) == 0 {
		delete(s.recs, r.id)
	}
}

// Close closes the spool files; chunks not acknowledged stay in them.
// Lines not yet cut into a chunk are cut and spooled first.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, r := range s.recs {
		if s.cfg.Dir != "" {
			s.cutLocked(r)
		}
		if r.file != nil {
			errs = append(errs, r.file.Close())
			r.file = nil
		}
	}
	return errors.Join(errs...)
}

// Stats says what is kept.
type Stats struct {
	Sessions, Chunks int
	Bytes            int // not yet acknowledged
}

// Stats returns the set's counters.
func (s *Set) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Sessions: len(s.recs)}
	for _, r := range s.recs {
		st.Chunks += len(r.chunks)
		st.Bytes += len(r.pending)
		for _, c := range r.chunks {
			st.Bytes += len(c.Data)
		}
	}
	return st
}
