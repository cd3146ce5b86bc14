package accesslog

import (
	"errors"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

func entry(url string) proto.AccessEntry {
	return proto.AccessEntry{Kind: proto.AccessHTTP, Time: time.Now(), Method: "GET", URL: url, Status: 200}
}

func serve(t *testing.T, l *Log, session, url string) {
	t.Helper()
	s, err := l.Begin(session)
	if err != nil {
		t.Fatal(err)
	}
	s.Commit(entry(url))
}

func TestFullBufferRefusesUntilAcknowledged(t *testing.T) {
	l, _ := Open(Config{Capacity: 3})
	serve(t, l, "sessiona1", "/1")
	serve(t, l, "sessiona1", "/2")
	inFlight, err := l.Begin("sessiona1") // an exchange in progress holds its room
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Begin("sessiona1")
	if !errors.Is(err, ErrFull) || proto.CodeOf(err) != proto.CodeAuditBacklog {
		t.Fatalf("full buffer admitted an exchange: %v", err)
	}
	inFlight.Commit(entry("/3"))
	inFlight.Commit(entry("/3 again")) // counted once
	if _, err := l.Begin("sessiona1"); err == nil {
		t.Fatal("admitted with 3 entries unacknowledged")
	}
	b := l.Due(time.Now(), time.Minute)
	if len(b) != 1 || len(b[0].Log.Entries) != 3 || b[0].Log.Entries[2].Seq != 3 || b[0].Log.Entries[2].URL != "/3" {
		t.Fatalf("due %+v", b)
	}
	if err := b[0].Log.Validate(); err != nil {
		t.Fatal(err)
	}
	l.Ack("sessiona1", 2)
	if _, err := l.Begin("sessiona1"); err != nil {
		t.Fatalf("acknowledgement did not make room: %v", err)
	}
}

func TestBatchesInFlightAndResend(t *testing.T) {
	l, _ := Open(Config{})
	now := time.Now()
	serve(t, l, "sessionb1", "/1")
	if b := l.Due(now, time.Minute); len(b) != 1 {
		t.Fatalf("due %d", len(b))
	}
	// Up to MaxInFlight batches await their acknowledgement, no more.
	for i := 2; i <= MaxInFlight; i++ {
		serve(t, l, "sessionb1", "/n")
		if b := l.Due(now, time.Minute); len(b) != 1 || b[0].Log.Entries[0].Seq != uint64(i) {
			t.Fatalf("batch %d while %d in flight: %+v", i, i-1, b)
		}
	}
	serve(t, l, "sessionb1", "/2")
	next := uint64(MaxInFlight + 1)
	if b := l.Due(now, time.Minute); len(b) != 0 {
		t.Fatal("a batch beyond MaxInFlight")
	}
	// An acknowledgement of part of the batches makes room for one more.
	l.Ack("sessionb1", 1)
	b := l.Due(now, time.Minute)
	if len(b) != 1 || b[0].Log.Entries[0].Seq != next {
		t.Fatalf("after ack: %+v", b)
	}
	// No ack: resent from the acknowledged head after the resend time, or
	// at once after Rewind.
	if b := l.Due(now.Add(2*time.Minute), time.Minute); len(b) != 1 || b[0].Log.Entries[0].Seq != 2 || len(b[0].Log.Entries) != int(next-1) {
		t.Fatalf("resend: %+v", b)
	}
	l.Rewind()
	if b := l.Due(now.Add(2*time.Minute), time.Minute); len(b) != 1 || b[0].Log.Entries[0].Seq != 2 {
		t.Fatalf("after rewind: %+v", b)
	}
	l.Ack("sessionb1", next)
	if b := l.Due(now.Add(2*time.Minute), time.Minute); len(b) != 0 {
		t.Fatalf("after the last ack: %+v", b)
	}
	l.End("sessionb1")
	if st := l.Stats(); st.Sessions != 0 || st.Unacked != 0 {
		t.Fatalf("drained and ended session kept: %+v", st)
	}
}

func TestSpoolSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"/1", "/2", "/3", "/4"} {
		serve(t, l, "sessionc1", u)
	}
	l.Ack("sessionc1", 2)
	serve(t, l, "sessiond1", "/x")
	l.Ack("sessiond1", 1)
	l.End("sessiond1")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b := l.Due(time.Now(), time.Minute)
	// Everything not known to be acknowledged is shipped again: at least
	// 3 and 4; signaling drops duplicates.
	if len(b) != 1 || b[0].Session != "sessionc1" {
		t.Fatalf("after restart: %+v", b)
	}
	got := b[0].Log.Entries
	if got[len(got)-1].Seq != 4 || got[len(got)-1].URL != "/4" || got[0].Seq > 3 {
		t.Fatalf("entries %+v", got)
	}
	l.Ack("sessionc1", 4)
	if st := l.Stats(); st.Sessions != 0 {
		t.Fatalf("a drained session of an earlier run is kept: %+v", st)
	}
}
