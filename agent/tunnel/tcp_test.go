package tunnel_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/proto"
)

// echoServer echoes each connection and, after the client half-closed,
// sends "bye" and closes.
func echoServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if _, err := io.Copy(c, c); err != nil {
					return
				}
				_, _ = io.WriteString(c, "bye") // after EOF: the write side still works
			}()
		}
	}()
	_, ps, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(ps)
	return port
}

func TestTCPEchoHalfClose(t *testing.T) {
	port := echoServer(t)
	dev := newDevice(t, http.NotFoundHandler(), deviceOptions{extraPorts: []int{port}})
	ctx := ctxTimeout(t, 60*time.Second)

	for round := range 2 {
		st, err := dev.pair.Client.DialTCP(ctx, port)
		if err != nil {
			t.Fatal(err)
		}
		const size = 8 << 20
		sent := sha256.New()
		werr := make(chan error, 1)
		go func() {
			_, err := io.Copy(st, io.TeeReader(newPattern(size), sent))
			if err == nil {
				err = st.CloseWrite()
			}
			werr <- err
		}()
		got, err := io.ReadAll(st)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if err := <-werr; err != nil {
			t.Fatalf("write: %v", err)
		}
		if len(got) != size+3 || !bytes.HasSuffix(got, []byte("bye")) {
			t.Fatalf("got %d bytes ending %q, want %d + bye", len(got), got[max(0, len(got)-3):], size)
		}
		if sum := sha256.Sum256(got[:size]); !bytes.Equal(sum[:], sent.Sum(nil)) {
			t.Fatal("echoed bytes differ")
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if s := dev.pair.Client.Stats(); s.Opened != 1 || s.Idle != 1 {
			t.Fatalf("round %d: stream's channel not reused: %+v", round, s)
		}
	}
}

func TestTCPStreamCloseAbortsAndReuses(t *testing.T) {
	port := echoServer(t)
	dev := newDevice(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "web")
	}), deviceOptions{extraPorts: []int{port}})
	ctx := ctxTimeout(t, 30*time.Second)
	st, err := dev.pair.Client.DialTCP(ctx, port)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(st, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("%q %v", buf, err)
	}
	// Close with both directions open: abort, drain, reuse.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("x")); err == nil {
		t.Error("write after Close succeeded")
	}
	resp, err := dev.http.Get("http://dev/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(b) != "web" {
		t.Fatalf("after stream close: %q", b)
	}
	if s := dev.pair.Client.Stats(); s.Opened != 1 || s.Dropped != 0 {
		t.Errorf("channel not reused after Close: %+v", s)
	}
}

func TestPipe(t *testing.T) {
	port := echoServer(t)
	dev := newDevice(t, http.NotFoundHandler(), deviceOptions{extraPorts: []int{port}})
	ctx := ctxTimeout(t, 30*time.Second)

	// A local listener whose connections are piped to the device's echo port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pipeErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			pipeErr <- err
			return
		}
		st, err := dev.pair.Client.DialTCP(ctx, port)
		if err != nil {
			_ = c.Close()
			pipeErr <- err
			return
		}
		pipeErr <- tunnel.Pipe(ctx, c, st)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := bytes.Repeat([]byte("hello through the pipe "), 50_000)
	go func() {
		_, _ = c.Write(msg)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(msg, "bye"...)) {
		t.Fatalf("got %d bytes, want %d", len(got), len(msg)+3)
	}
	select {
	case err := <-pipeErr:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Pipe: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Pipe did not return after both directions ended")
	}
}

// A view-only stream reaches the device through the agent's RFB filter: a
// client that ignores view-only (this one sends keys and pointer moves
// among picture requests) gets only the picture requests to the device,
// the handshake with a shared ClientInit, and the stream stopped with
// forbidden at a message the filter cannot follow.
func TestTCPViewOnlyIsEnforcedByTheAgent(t *testing.T) {
	port := echoServer(t)
	dev := newDevice(t, http.NotFoundHandler(), deviceOptions{extraPorts: []int{port}})
	ctx := ctxTimeout(t, 30*time.Second)
	st, err := dev.pair.Client.Dial(ctx, &proto.TCPOpen{Port: port, ViewOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	handshake := append([]byte("RFB 003.008\n\x02"), bytes.Repeat([]byte{0xaa}, 16)...)
	fbUpdate := []byte{3, 1, 0, 0, 0, 0, 4, 0, 3, 0}
	key := []byte{4, 1, 0, 0, 0, 0, 0, 'a'}
	pointer := []byte{5, 1, 0, 10, 0, 20}
	send := bytes.Join([][]byte{handshake, {0}, fbUpdate, key, pointer, fbUpdate, key}, nil)
	if _, err := st.Write(send); err != nil {
		t.Fatal(err)
	}
	want := bytes.Join([][]byte{handshake, {1}, fbUpdate, fbUpdate}, nil)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(st, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the device got\n%v\nwant\n%v", got, want)
	}
	// A message of a type the filter cannot follow stops the stream.
	if _, err := st.Write([]byte{77, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(st)
	if proto.CodeOf(err) != proto.CodeForbidden || !strings.Contains(err.Error(), "message type 77") {
		t.Fatalf("after an unknown message: %v, want forbidden naming it", err)
	}
}
