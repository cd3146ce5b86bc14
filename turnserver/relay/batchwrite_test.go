package relay

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// writerPair is a batchWriter on one loopback socket and the socket it
// writes to.
type writerPair struct {
	w    *batchWriter
	src  net.PacketConn
	dst  *net.UDPConn
	addr net.Addr
}

func newWriterPair(t *testing.T) writerPair {
	t.Helper()
	src, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	dst, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dst.Close() })
	// Room for every datagram of the concurrency test without a reader
	// racing the writers (granted up to net.core.rmem_max, 4 MiB here).
	_ = dst.SetReadBuffer(4 << 20)
	w := newBatchWriter(src, testLogger(t))
	if w == nil {
		t.Fatal("no batch writer for a UDP socket")
	}
	return writerPair{w: w, src: src, dst: dst, addr: dst.LocalAddr()}
}

// recv reads n datagrams from the pair's destination, or fails at the
// deadline.
func (p writerPair) recv(t *testing.T, n int) [][]byte {
	t.Helper()
	out, err := p.read(n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (p writerPair) read(n int) ([][]byte, error) {
	if err := p.dst.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
		return nil, err
	}
	var out [][]byte
	buf := make([]byte, 65536)
	for len(out) < n {
		k, _, err := p.dst.ReadFrom(buf)
		if err != nil {
			return out, fmt.Errorf("after %d of %d datagrams: %w", len(out), n, err)
		}
		out = append(out, append([]byte(nil), buf[:k]...))
	}
	return out, nil
}

// expectNone fails if a datagram arrives within a short window.
func (p writerPair) expectNone(t *testing.T) {
	t.Helper()
	if err := p.dst.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	if n, _, err := p.dst.ReadFrom(buf); err == nil {
		t.Fatalf("unexpected datagram %q", buf[:n])
	}
}

// TestBatchWriterIdleSendsAtOnce: with no send under way a datagram goes
// out within WriteTo, uncopied and unqueued.
func TestBatchWriterIdleSendsAtOnce(t *testing.T) {
	p := newWriterPair(t)
	for i := range 3 {
		msg := []byte(fmt.Sprintf("datagram %d", i))
		if n, err := p.w.WriteTo(msg, p.addr); err != nil || n != len(msg) {
			t.Fatalf("WriteTo = %d, %v", n, err)
		}
		if got := p.recv(t, 1)[0]; !bytes.Equal(got, msg) {
			t.Fatalf("got %q, want %q", got, msg)
		}
	}
	if q, b := p.w.queuedSent.Load(), p.w.batches.Load(); q != 0 || b != 0 {
		t.Errorf("idle writes went through the queue: %d datagrams in %d batches", q, b)
	}
}

// TestBatchWriterQueueIsBounded: behind a send under way, datagrams are
// queued up to writeQueueLen; past it, and for datagrams too large to
// queue, the writer sends its own at once. The queue then goes out in one
// batch, intact although the callers reused their buffers.
func TestBatchWriterQueueIsBounded(t *testing.T) {
	p := newWriterPair(t)
	p.w.mu.Lock()
	p.w.busy = true // as if another writer were in its system call
	p.w.mu.Unlock()

	buf := make([]byte, 32)
	for i := range writeQueueLen {
		msg := fmt.Appendf(buf[:0], "queued %d", i) // one buffer, reused
		if n, err := p.w.WriteTo(msg, p.addr); err != nil || n != len(msg) {
			t.Fatalf("WriteTo = %d, %v", n, err)
		}
	}
	if p.w.n != writeQueueLen {
		t.Fatalf("%d queued, want %d", p.w.n, writeQueueLen)
	}
	p.expectNone(t)

	over := []byte("past the bound")
	if _, err := p.w.WriteTo(over, p.addr); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{'x'}, writeQueueMax+1)
	if _, err := p.w.WriteTo(big, p.addr); err != nil {
		t.Fatal(err)
	}
	got := p.recv(t, 2)
	if !bytes.Equal(got[0], over) || !bytes.Equal(got[1], big) {
		t.Fatalf("direct sends: got %q…, %d bytes", got[0], len(got[1]))
	}
	if p.w.n != writeQueueLen {
		t.Fatalf("queue grew to %d past its bound %d", p.w.n, writeQueueLen)
	}

	p.w.drain(0)
	got = p.recv(t, writeQueueLen)
	for i, g := range got {
		if want := fmt.Sprintf("queued %d", i); string(g) != want {
			t.Fatalf("queued datagram %d: got %q, want %q", i, g, want)
		}
	}
	if p.w.busy || p.w.n != 0 {
		t.Errorf("after drain: busy %v, %d queued", p.w.busy, p.w.n)
	}
	if q, b := p.w.queuedSent.Load(), p.w.batches.Load(); q != writeQueueLen || b != 1 {
		t.Errorf("sent %d queued datagrams in %d batches, want %d in 1", q, b, writeQueueLen)
	}
}

// TestBatchWriterSkipsRefusedDatagram: a queued datagram the kernel
// refuses (an IPv6 destination on an IPv4 socket) is counted and skipped;
// those before and after it in the batch are sent.
func TestBatchWriterSkipsRefusedDatagram(t *testing.T) {
	p := newWriterPair(t)
	p.w.mu.Lock()
	p.w.busy = true
	p.w.mu.Unlock()
	bad := &net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 9}
	for _, d := range []struct {
		msg  string
		addr net.Addr
	}{{"first", p.addr}, {"refused", bad}, {"third", p.addr}} {
		if _, err := p.w.WriteTo([]byte(d.msg), d.addr); err != nil {
			t.Fatalf("queueing %s: %v", d.msg, err)
		}
	}
	p.w.drain(0)
	got := p.recv(t, 2)
	if string(got[0]) != "first" || string(got[1]) != "third" {
		t.Fatalf("got %q, %q; want first, third", got[0], got[1])
	}
	if f := p.w.failed.Load(); f != 1 {
		t.Errorf("%d failures counted, want 1", f)
	}
	if p.w.busy {
		t.Error("still busy after drain")
	}
}

// TestBatchWriterClosedSocket: datagrams queued behind a send on a socket
// that closes fail without blocking, and the writer is left idle.
func TestBatchWriterClosedSocket(t *testing.T) {
	p := newWriterPair(t)
	p.w.mu.Lock()
	p.w.busy = true
	p.w.mu.Unlock()
	for i := range 5 {
		if _, err := p.w.WriteTo(fmt.Appendf(nil, "lost %d", i), p.addr); err != nil {
			t.Fatal(err)
		}
	}
	_ = p.src.Close()
	done := make(chan struct{})
	go func() { p.w.drain(writeRounds); close(done) }()
	select {
	case <-done:
	case <-time.After(ioTimeout):
		t.Fatal("drain blocked on a closed socket")
	}
	if f := p.w.failed.Load(); f != 5 {
		t.Errorf("%d failures counted, want 5", f)
	}
	if _, err := p.w.WriteTo([]byte("after close"), p.addr); err == nil {
		t.Error("WriteTo on a closed socket succeeded")
	}
	if p.w.busy {
		t.Error("busy after a failed direct write")
	}
}

// TestBatchWriterConcurrentWriters: many goroutines writing at once (as
// pion's allocation loops do) get every datagram delivered exactly once
// and intact, whether it was sent by its writer or queued (with -race,
// a buffer reused while its batch is in flight would show too), and the
// writer ends idle.
func TestBatchWriterConcurrentWriters(t *testing.T) {
	p := newWriterPair(t)
	const writers, each = 16, 200
	type result struct {
		all [][]byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		// Read while writing: the socket buffer alone may not hold all.
		all, err := p.read(writers * each)
		got <- result{all, err}
	}()
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			buf := make([]byte, 0, 64)
			for j := range each {
				msg := fmt.Appendf(buf[:0], "writer %d datagram %d", i, j)
				if _, err := p.w.WriteTo(msg, p.addr); err != nil {
					t.Errorf("WriteTo: %v", err)
					return
				}
				// The caller's buffer is reused at once, as pion does.
				copy(msg, "XXXXXX")
			}
		})
	}
	wg.Wait()
	res := <-got // read gives up at its deadline
	if res.err != nil {
		t.Fatal(res.err)
	}
	all := res.all
	seen := map[string]bool{}
	for _, g := range all {
		if seen[string(g)] {
			t.Fatalf("datagram %q delivered twice", g)
		}
		seen[string(g)] = true
	}
	for i := range writers {
		for j := range each {
			if m := fmt.Sprintf("writer %d datagram %d", i, j); !seen[m] {
				t.Fatalf("datagram %q missing or corrupted", m)
			}
		}
	}
	if f := p.w.failed.Load(); f != 0 {
		t.Errorf("%d datagrams failed", f)
	}
	t.Logf("%d of %d datagrams queued, sent in %d batches", p.w.queuedSent.Load(), writers*each, p.w.batches.Load())
	waitFor(t, "writer idle", func() bool {
		p.w.mu.Lock()
		defer p.w.mu.Unlock()
		return !p.w.busy && p.w.n == 0
	})
}
