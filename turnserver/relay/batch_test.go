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

// TestRelayConnReadsEachSender: a relay socket's reads name each
// datagram's own sender when peers alternate, and reuse the address
// handed out while the sender stays the same (no allocation per datagram).
func TestRelayConnReadsEachSender(t *testing.T) {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	rc := &relayConn{PacketConn: pc, udp: pc, srv: &Server{}, done: newReadDone()}
	var peers []net.Conn
	for range 2 {
		c, err := net.Dial("udp4", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		peers = append(peers, c)
	}
	order := []int{0, 0, 1, 0, 1, 1}
	for i, p := range order {
		if _, err := peers[p].Write([]byte(fmt.Sprintf("datagram %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := pc.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1600)
	var prev net.Addr
	for i, p := range order {
		n, addr, err := rc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("ReadFrom %d: %v", i, err)
		}
		if want := fmt.Sprintf("datagram %d", i); string(buf[:n]) != want {
			t.Fatalf("got %q, want %q", buf[:n], want)
		}
		if addr.String() != peers[p].LocalAddr().String() {
			t.Errorf("datagram %d from %v, want %v", i, addr, peers[p].LocalAddr())
		}
		if i > 0 && order[i-1] == p && addr != prev {
			t.Errorf("datagram %d: a new address for the same sender", i)
		}
		prev = addr
	}
	if got := rc.srv.Stats().PacketsFromPeers; got != uint64(len(order)) {
		t.Errorf("PacketsFromPeers = %d, want %d", got, len(order))
	}
	_ = pc.Close()
	if _, _, err := rc.ReadFrom(buf); err == nil {
		t.Fatal("ReadFrom on a closed socket succeeded")
	}
	select {
	case <-rc.done.ch:
	default:
		t.Error("read loop not marked done after the socket failed")
	}
}
