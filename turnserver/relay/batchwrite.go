package relay

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
)

const (
	// writeQueueLen bounds the datagrams queued for one listener socket
	// while a send is under way; past it a writer sends its own.
	writeQueueLen = 64
	// writeQueueMax is the largest datagram that is queued (pion's
	// ChannelData of a full relayed datagram fits); larger ones are sent
	// by their writer, so queued memory stays under
	// 2 × writeQueueLen × writeQueueMax per socket.
	writeQueueMax = 1600
	// writeRounds bounds how many batches the goroutine that found the
	// socket idle sends for the others before it goes back to its own work
	// (one of pion's allocation read loops).
	writeRounds = 4
)

// batchWriter sends the datagrams pion writes to one UDP listener socket:
// ChannelData and Data indications from every allocation's read loop, and
// STUN responses. A writer that finds the socket idle sends its datagram
// at once and then, with one sendmmsg each, the batches the others queued
// meanwhile; a writer that finds it busy queues a copy and returns.
// Idle, nothing waits and nothing is copied; under load, pion's
// per-allocation goroutines stop paying one system call each.
//
// A queued datagram's send error cannot reach its writer (it has
// returned): it is counted and logged, as pion does with every write
// error. Nothing is buffered past writeQueueLen datagrams.
type batchWriter struct {
	pc     net.PacketConn   // the socket, for single datagrams
	batch  *ipv4.PacketConn // the same socket, for sendmmsg
	log    *slog.Logger
	failed atomic.Uint64 // queued datagrams whose send failed
	logged atomic.Bool   // the first such failure was logged at Warn
	// writes counts WriteTo calls, queuedSent the datagrams sent from
	// the queue and batches the batches they went in: logged at shutdown,
	// to tell how much the batching does.
	writes, queuedSent, batches atomic.Uint64

	mu    sync.Mutex
	busy  bool           // a writer is sending; others queue
	queue []ipv4.Message // len writeQueueLen; the first n are pending
	n     int
	spare []ipv4.Message // the batch being sent, swapped with queue
}

// newBatchWriter returns a batchWriter for pc, or nil if pc is not a UDP
// socket (then write it directly).
func newBatchWriter(pc net.PacketConn, log *slog.Logger) *batchWriter {
	u, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	w := &batchWriter{pc: pc, batch: ipv4.NewPacketConn(u), log: log}
	w.queue, w.spare = newMessages(writeQueueLen), newMessages(writeQueueLen)
	return w
}

func newMessages(n int) []ipv4.Message {
	ms := make([]ipv4.Message, n)
	for i := range ms {
		ms[i].Buffers = [][]byte{nil} // grown on first use, then reused
	}
	return ms
}

// WriteTo sends p to addr, or queues a copy of it behind the send under
// way. It returns len(p) and no error for a queued datagram.
func (w *batchWriter) WriteTo(p []byte, addr net.Addr) (int, error) {
	w.writes.Add(1)
	if len(p) > writeQueueMax {
		return w.pc.WriteTo(p, addr)
	}
	w.mu.Lock()
	if w.busy {
		if w.n == len(w.queue) {
			// Full: this writer pays its own system call, concurrently
			// with the one under way, rather than wait or drop. Its
			// datagram may overtake one of the same flow still queued, a
			// reordering UDP allows and only a full queue causes.
			w.mu.Unlock()
			return w.pc.WriteTo(p, addr)
		}
		m := &w.queue[w.n]
		m.Buffers[0] = append(m.Buffers[0][:0], p...)
		m.Addr = addr
		w.n++
		w.mu.Unlock()
		return len(p), nil
	}
	w.busy = true
	w.mu.Unlock()
	n, err := w.pc.WriteTo(p, addr)
	w.drain(writeRounds)
	return n, err
}

// drain sends what was queued while this writer held the socket, then
// hands the socket back. A writer that is one of pion's allocation loops
// sends at most rounds batches for the others (0: no limit); if more keep
// coming it hands the draining to a goroutine of its own and goes back to
// its allocation. busy stays set until the queue is empty, so one
// goroutine at a time sends and swaps the two arrays.
func (w *batchWriter) drain(rounds int) {
	for round := 1; ; round++ {
		w.mu.Lock()
		if w.n == 0 {
			w.busy = false
			w.mu.Unlock()
			return
		}
		batch := w.queue[:w.n]
		w.queue, w.spare = w.spare, w.queue
		w.n = 0
		w.mu.Unlock()
		w.send(batch)
		if round == rounds {
			go w.drain(0)
			return
		}
	}
}

// send writes batch with as few sendmmsg calls as it takes; a datagram the
// kernel refuses is counted and skipped.
func (w *batchWriter) send(batch []ipv4.Message) {
	w.batches.Add(1)
	for len(batch) > 0 {
		n, err := w.batch.WriteBatch(batch, 0)
		n = max(n, 0)
		w.queuedSent.Add(uint64(n))
		if err != nil && n < len(batch) {
			w.fail(err)
			n++ // the kernel refused batch[n]; go on with the next
		}
		batch = batch[n:]
	}
}

func (w *batchWriter) fail(err error) {
	w.failed.Add(1)
	level := slog.LevelDebug
	if !errors.Is(err, net.ErrClosed) && !w.logged.Swap(true) {
		level = slog.LevelWarn // once per socket; the rest at Debug
	}
	w.log.Log(context.Background(), level, "relay listener: queued datagram not sent", "err", err)
}
