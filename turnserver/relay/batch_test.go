package relay

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestBatchReaderKeepsEachDatagramAndSender: datagrams queued on a socket
// from several senders come out of the batch reader one per ReadFrom, in
// full and each with its own sender, across batch boundaries.
func TestBatchReaderKeepsEachDatagramAndSender(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	b := newBatchReader(pc, batchSize)
	if b == nil {
		t.Fatal("no batch reader for a UDP socket")
	}
	const senders, each = 3, batchSize // 3 batches' worth
	want := map[string]string{}        // payload → sender
	for i := range senders {
		c, err := net.Dial("udp4", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for j := range each {
			msg := fmt.Sprintf("sender %d datagram %d %s", i, j, make([]byte, j*30))
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			want[msg] = c.LocalAddr().String()
		}
	}
	if err := pc.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1600)
	for range senders * each {
		n, addr, err := b.ReadFrom(buf)
		if err != nil {
			t.Fatalf("ReadFrom: %v (%d left)", err, len(want))
		}
		from, ok := want[string(buf[:n])]
		if !ok {
			t.Fatalf("unexpected or repeated datagram of %d bytes from %v", n, addr)
		}
		if from != addr.String() {
			t.Errorf("datagram from %v, want %v", addr, from)
		}
		delete(want, string(buf[:n]))
	}
}
