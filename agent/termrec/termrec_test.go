package termrec

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// drain ships and acknowledges everything due, returning the recording.
func drain(t *testing.T, s *Set, session string, clk *fakeClock) string {
	t.Helper()
	var b strings.Builder
	for range 10000 {
		due := s.Due(clk.t, time.Minute)
		if len(due) == 0 {
			return b.String()
		}
		for _, d := range due {
			if err := d.Chunk.Validate(); err != nil {
				t.Fatalf("chunk %d: %v", d.Chunk.Seq, err)
			}
			b.WriteString(d.Chunk.Data)
			s.Ack(d.Session, d.Chunk.Seq)
		}
	}
	t.Fatal("never drained")
	return ""
}

// parse checks an asciicast v2 recording and returns its events.
func parse(t *testing.T, rec string) (map[string]any, [][3]any) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(rec))
	sc.Buffer(nil, 1<<20)
	var head map[string]any
	var events [][3]any
	last := -1.0
	for sc.Scan() {
		if head == nil {
			if err := json.Unmarshal(sc.Bytes(), &head); err != nil || head["version"] != 2.0 {
				t.Fatalf("header %q: %v", sc.Text(), err)
			}
			continue
		}
		var ev []any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || len(ev) != 3 {
			t.Fatalf("event %q: %v", sc.Text(), err)
		}
		tm := ev[0].(float64)
		if tm < last {
			t.Fatalf("time goes back: %v after %v", tm, last)
		}
		last = tm
		events = append(events, [3]any{ev[0], ev[1], ev[2]})
	}
	return head, events
}

// TestRecordsOutputAndResizes: the header has the size and start, output
// events keep their timing (a UTF-8 sequence split across reads stays
// whole), window changes are "r" events, and input is never recorded.
func TestRecordsOutputAndResizes(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)}
	s := New(Config{Now: clk.now})
	term := s.Begin("sess0001abcd", 80, 24)
	term.Output([]byte("login ok\r\n$ "))
	clk.t = clk.t.Add(1500 * time.Millisecond)
	term.Output([]byte("caf\xc3"))
	term.Output([]byte("\xa9\r\n"))
	term.Resize(100, 30)
	term.Close()
	s.End("sess0001abcd")
	head, ev := parse(t, drain(t, s, "sess0001abcd", clk))
	if head["width"] != 80.0 || head["height"] != 24.0 || head["timestamp"] != float64(clk.t.Add(-1500*time.Millisecond).Unix()) {
		t.Fatalf("header %v", head)
	}
	want := [][3]any{{0.0, "o", "login ok\r\n$ "}, {1.5, "o", "caf"}, {1.5, "o", "é\r\n"}, {1.5, "r", "100x30"}}
	if len(ev) != len(want) {
		t.Fatalf("events %v, want %v", ev, want)
	}
	for i := range want {
		if ev[i] != want[i] {
			t.Fatalf("event %d: %v, want %v", i, ev[i], want[i])
		}
	}
	if st := s.Stats(); st.Sessions != 0 {
		t.Fatalf("an ended, shipped recording is kept: %+v", st)
	}
}

// TestBoundTruncates: a recording stops at its bound with the visible
// marker, every chunk fits a signaling message, and nothing past the
// marker is kept.
func TestBoundTruncates(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	const limit = 256 << 10
	s := New(Config{Now: clk.now, Limit: limit})
	term := s.Begin("sess0002abcd", 80, 24)
	flood := []byte(strings.Repeat("\x1b[31mX\"\\", 4000))
	for range 100 {
		term.Output(flood)
		clk.t = clk.t.Add(time.Millisecond)
	}
	term.Resize(10, 10)
	rec := drain(t, s, "sess0002abcd", clk)
	if len(rec) > limit {
		t.Fatalf("recording of %d bytes, limit %d", len(rec), limit)
	}
	_, ev := parse(t, rec)
	lastEv := ev[len(ev)-1]
	if lastEv[1] != "o" || lastEv[2] != TruncatedMarker {
		t.Fatalf("last event %v, want the truncation marker", lastEv)
	}
	if len(rec) < limit-4096 {
		t.Fatalf("truncated at %d bytes, well before the limit %d", len(rec), limit)
	}
	b, err := proto.Encode(proto.TypeRecording, "sess0002abcd", &proto.RecordingChunk{Seq: 2, Data: strings.Repeat(`[0.1,"o","\u001b\"\\"]`+"\n", proto.MaxRecordingChunk/22)})
	if err != nil || len(b) > proto.MaxSignalMessage {
		t.Fatalf("a full chunk of escapes encodes to %d bytes (%v), over the signaling limit", len(b), err)
	}
}

// TestResendsWhatWasNotAcknowledged: chunks handed out on a connection that
// dropped are handed out again after Rewind, and after the resend timeout
// without an acknowledgement; at most MaxInFlight are in flight.
func TestResendsWhatWasNotAcknowledged(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := New(Config{Now: clk.now})
	term := s.Begin("sess0003abcd", 80, 24)
	term.Output([]byte("one\r\n"))
	first := s.Due(clk.t, 10*time.Second)
	if len(first) != 1 || first[0].Chunk.Seq != 1 {
		t.Fatalf("first due %+v", first)
	}
	if again := s.Due(clk.t, 10*time.Second); len(again) != 0 {
		t.Fatalf("handed out twice without a reason: %+v", again)
	}
	s.Rewind() // the connection dropped and came back
	again := s.Due(clk.t, 10*time.Second)
	if len(again) != 1 || again[0].Chunk.Data != first[0].Chunk.Data {
		t.Fatalf("after rewind %+v", again)
	}
	for range 5 {
		term.Output([]byte(strings.Repeat("y", maxEventBytes)))
		s.Due(clk.t, 10*time.Second)
	}
	if more := s.Due(clk.t, 10*time.Second); len(more) != 0 {
		t.Fatalf("%d more handed out while %d are in flight", len(more), MaxInFlight)
	}
	clk.t = clk.t.Add(11 * time.Second)
	late := s.Due(clk.t, 10*time.Second)
	if len(late) == 0 || late[0].Chunk.Seq != 1 {
		t.Fatalf("no resend after the timeout: %+v", late)
	}
	s.Ack("sess0003abcd", late[len(late)-1].Chunk.Seq)
	term.Close()
	s.End("sess0003abcd")
	rest := drain(t, s, "sess0003abcd", clk)
	if !strings.Contains(first[0].Chunk.Data+rest, "one") {
		t.Fatal("lost output")
	}
	if st := s.Stats(); st.Sessions != 0 {
		t.Fatalf("kept after drained: %+v", st)
	}
}

// TestSpoolSurvivesARestart: chunks not acknowledged when the agent stops
// are read back by the next run and shipped; once signaling has them all
// the spool is gone; a torn last line or garbage is not shipped.
func TestSpoolSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s, err := Open(Config{Now: clk.now, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	const id = "sess0004abcd"
	term := s.Begin(id, 80, 24)
	term.Output([]byte("acknowledged\r\n"))
	first := s.Due(clk.t, 10*time.Second)
	if len(first) != 1 {
		t.Fatalf("due %+v", first)
	}
	s.Ack(id, first[0].Chunk.Seq)
	term.Output([]byte("sent, never acknowledged\r\n"))
	if d := s.Due(clk.t, 10*time.Second); len(d) != 1 {
		t.Fatalf("due %+v", d)
	}
	term.Output([]byte("not yet cut into a chunk\r\n"))
	if err := s.Close(); err != nil { // the agent stops
		t.Fatal(err)
	}

	// A second session's spool holds a torn line after one good chunk,
	// and a file of another name is ignored.
	torn := filepath.Join(dir, "sess0005abcd"+spoolExt)
	if err := os.WriteFile(torn, []byte(`{"seq":1,"data":"[0.1,\"o\",\"ok\"]\n"}`+"\n"+`{"seq":2,"da`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "not a session"+spoolExt), []byte(`{"seq":1,"data":"x"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(Config{Now: clk.now, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for range 10 {
		due := s2.Due(clk.t, 10*time.Second)
		if len(due) == 0 {
			break
		}
		for _, d := range due {
			got[d.Session] += d.Chunk.Data
			s2.Ack(d.Session, d.Chunk.Seq)
		}
	}
	for _, want := range []string{"sent, never acknowledged", "not yet cut into a chunk"} {
		if !strings.Contains(got[id], want) {
			t.Errorf("after the restart the recording lacks %q: %q", want, got[id])
		}
	}
	if strings.Contains(got[id], `"o","acknowledged`) {
		t.Errorf("the acknowledged chunk was shipped again")
	}
	if got["sess0005abcd"] != "[0.1,\"o\",\"ok\"]\n" {
		t.Errorf("torn spool: shipped %q", got["sess0005abcd"])
	}
	if _, ok := got["not a session"]; ok {
		t.Errorf("a file not named for a session was shipped")
	}
	if st := s2.Stats(); st.Sessions != 0 {
		t.Errorf("kept after shipping: %+v", st)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "sess*"+spoolExt))
	if len(left) != 0 {
		t.Errorf("spool files left after everything was acknowledged: %v", left)
	}
}
