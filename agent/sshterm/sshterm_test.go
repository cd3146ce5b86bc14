package sshterm_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/agent/sshterm"
	"github.com/porthole-dev/porthole/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const password = "correct horse battery staple"

// fakeServer is an in-process SSH server with one host key that accepts
// password for user "tech" and echoes what the shell gets, upper-cased,
// reporting window changes as "WINCH cols rows".
type fakeServer struct {
	cfg *ssh.ServerConfig
	wg  sync.WaitGroup
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PasswordCallback: func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
		if c.User() == "tech" && string(pw) == password {
			return nil, nil
		}
		return nil, errors.New("denied")
	}}
	cfg.AddHostKey(signer)
	s := &fakeServer{cfg: cfg}
	t.Cleanup(s.wg.Wait)
	return s
}

// dial returns the client end of a connection the server serves.
func (s *fakeServer) dial(t *testing.T) net.Conn {
	t.Helper()
	a, b := tcpPair(t)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer b.Close()
		sc, chans, reqs, err := ssh.NewServerConn(b, s.cfg)
		if err != nil {
			return
		}
		defer sc.Close()
		go ssh.DiscardRequests(reqs)
		for nc := range chans {
			ch, creqs, err := nc.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer ch.Close()
				shell := make(chan struct{})
				go func() {
					for r := range creqs {
						switch r.Type {
						case "pty-req", "shell":
							_ = r.Reply(true, nil)
							if r.Type == "shell" {
								close(shell)
							}
						case "window-change":
							var w struct{ Cols, Rows, W, H uint32 }
							_ = ssh.Unmarshal(r.Payload, &w)
							_, _ = io.WriteString(ch, "WINCH "+itoa(w.Cols)+" "+itoa(w.Rows)+"\n")
						default:
							_ = r.Reply(false, nil)
						}
					}
				}()
				<-shell
				buf := make([]byte, 1024)
				for {
					n, err := ch.Read(buf)
					if n > 0 {
						if bytes.Contains(buf[:n], []byte("flood")) {
							// A device that floods: 8 MiB of output
							// in one burst, then a marker.
							chunk := bytes.Repeat([]byte("x"), 32<<10)
							for range floodBytes / len(chunk) {
								if _, err := ch.Write(chunk); err != nil {
									return
								}
							}
							_, _ = io.WriteString(ch, "END-OF-FLOOD\n")
							continue
						}
						if bytes.Contains(buf[:n], []byte("exit")) {
							_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, 0))
							return
						}
						_, _ = ch.Write(bytes.ToUpper(buf[:n]))
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return a
}

// tcpPair returns both ends of a loopback TCP connection: the client's
// (for Open) and the server's.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return client, server
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

const floodBytes = 8 << 20

func readUntil(t *testing.T, r io.Reader, want string) {
	t.Helper()
	var got []byte
	buf := make([]byte, 256)
	for !bytes.Contains(got, []byte(want)) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read %q: %v (got %q)", want, err, got)
		}
	}
}

func open(user, pw string) *proto.SSHOpen {
	return &proto.SSHOpen{Port: 22, User: user, Password: pw, Cols: 80, Rows: 24}
}

func TestTerminalPinsHostKeyAtFirstUseAndRunsAShell(t *testing.T) {
	srv := newFakeServer(t)
	pins := &deviceid.PinStore{}
	term, opened, err := sshterm.Open(context.Background(), srv.dial(t), "dev1", pins, open("tech", password))
	if err != nil {
		t.Fatal(err)
	}
	if !opened.FirstUse || !strings.HasPrefix(opened.HostKey, "SHA256:") {
		t.Fatalf("opened %+v", opened)
	}
	if _, err := term.Write([]byte("uname -a\n")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, term, "UNAME -A")
	if err := term.Resize(132, 50); err != nil {
		t.Fatal(err)
	}
	readUntil(t, term, "WINCH 132 50")
	_, _ = term.Write([]byte("exit\n"))
	if _, err := io.ReadAll(term); err != nil {
		t.Fatal(err)
	}
	_ = term.Close()

	// The second session finds the same key: not first use.
	term, opened2, err := sshterm.Open(context.Background(), srv.dial(t), "dev1", pins, open("tech", password))
	if err != nil {
		t.Fatal(err)
	}
	_ = term.Close()
	if opened2.FirstUse || opened2.HostKey != opened.HostKey {
		t.Fatalf("second open %+v, first %+v", opened2, opened)
	}
}

func TestTerminalRefusesChangedHostKeyShowingBothFingerprints(t *testing.T) {
	first, second := newFakeServer(t), newFakeServer(t)
	pins := &deviceid.PinStore{}
	term, opened, err := sshterm.Open(context.Background(), first.dial(t), "dev1", pins, open("tech", password))
	if err != nil {
		t.Fatal(err)
	}
	_ = term.Close()
	_, _, err = sshterm.Open(context.Background(), second.dial(t), "dev1", pins, open("tech", password))
	var pe *proto.Error
	if !errors.As(err, &pe) || pe.Code != proto.CodeDeviceFailed {
		t.Fatalf("err %v, want device_failed", err)
	}
	if !strings.Contains(err.Error(), opened.HostKey) || strings.Count(err.Error(), "SHA256:") != 2 {
		t.Fatalf("error does not show both fingerprints: %v", err)
	}
	if strings.Contains(err.Error(), password) {
		t.Fatal("error shows the password")
	}
	// Another port of the same device is another service, pinned apart.
	o := open("tech", password)
	o.Port = 2222
	term, _, err = sshterm.Open(context.Background(), second.dial(t), "dev1", pins, o)
	if err != nil {
		t.Fatal(err)
	}
	_ = term.Close()
}

func TestTerminalWrongPasswordIsUnauthorizedWithoutThePassword(t *testing.T) {
	srv := newFakeServer(t)
	const wrong = "not-the-password-42"
	_, _, err := sshterm.Open(context.Background(), srv.dial(t), "dev1", &deviceid.PinStore{}, open("tech", wrong))
	var pe *proto.Error
	if !errors.As(err, &pe) || pe.Code != proto.CodeUnauthorized {
		t.Fatalf("err %v, want unauthorized", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("error shows the password: %v", err)
	}
}

func TestTerminalBadPrivateKeyIsRefusedWithoutTheKey(t *testing.T) {
	srv := newFakeServer(t)
	key := "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END OPENSSH PRIVATE KEY-----\n"
	_, _, err := sshterm.Open(context.Background(), srv.dial(t), "dev1", nil, &proto.SSHOpen{Port: 22, User: "tech", PrivateKey: key, Cols: 80, Rows: 24})
	if proto.CodeOf(err) != proto.CodeBadRequest || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Fatalf("err %v", err)
	}
}

// A device whose output floods is carried at the reader's pace: the
// terminal reads all of it, in order, and closes promptly in the middle
// of another flood (goleak checks nothing is left behind).
func TestTerminalFloodIsReadAtTheReadersPaceAndClosesMidFlood(t *testing.T) {
	srv := newFakeServer(t)
	term, _, err := sshterm.Open(context.Background(), srv.dial(t), "dev1", nil, open("tech", password))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(term, "flood\n"); err != nil {
		t.Fatal(err)
	}
	var n int
	var tail []byte
	buf := make([]byte, 64<<10)
	for !bytes.Contains(tail, []byte("END-OF-FLOOD")) {
		k, err := term.Read(buf)
		n += k
		tail = append(tail, buf[:k]...)
		if len(tail) > 64 {
			tail = tail[len(tail)-64:]
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
	}
	// The echo of "flood" comes first, upper-cased, then the flood.
	if n < floodBytes {
		t.Fatalf("read %d bytes, want at least %d", n, floodBytes)
	}
	if _, err := io.WriteString(term, "flood\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(term, buf[:1024]); err != nil {
		t.Fatal(err)
	}
	if err := term.Close(); err != nil {
		t.Fatal(err)
	}
}

// garbageServer accepts one connection and writes what send writes to it
// until the client goes (gone is closed then).
func garbageServer(t *testing.T, send func(w io.Writer, gone <-chan struct{}) error) net.Conn {
	t.Helper()
	a, b := tcpPair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer b.Close()
		gone := make(chan struct{})
		go func() {
			defer close(gone)
			_, _ = io.Copy(io.Discard, b)
		}()
		_ = send(b, gone)
		_ = b.Close()
		<-gone
	}()
	t.Cleanup(func() { <-done })
	return a
}

// A device that answers with garbage — endless pre-banner lines, a banner
// line that never ends, random bytes after a good banner, a packet length
// of 4 GiB — gets a clear device error, within the caller's deadline, with
// nothing of the login in it.
func TestTerminalGarbageServerIsRefusedWithinTheDeadline(t *testing.T) {
	random := make([]byte, 64<<10)
	_, _ = rand.Read(random)
	cases := []struct {
		name string
		send func(w io.Writer, gone <-chan struct{}) error
	}{
		{"endless lines before the banner", func(w io.Writer, _ <-chan struct{}) error {
			for {
				if _, err := io.WriteString(w, "welcome to the device, please wait\r\n"); err != nil {
					return err
				}
			}
		}},
		{"a banner line that never ends", func(w io.Writer, _ <-chan struct{}) error {
			if _, err := io.WriteString(w, "SSH-2.0-"); err != nil {
				return err
			}
			for {
				if _, err := w.Write(bytes.Repeat([]byte("A"), 4096)); err != nil {
					return err
				}
			}
		}},
		{"random bytes after a banner", func(w io.Writer, _ <-chan struct{}) error {
			if _, err := io.WriteString(w, "SSH-2.0-Garbage\r\n"); err != nil {
				return err
			}
			for {
				if _, err := w.Write(random); err != nil {
					return err
				}
			}
		}},
		{"a 4 GiB packet length", func(w io.Writer, gone <-chan struct{}) error {
			_, err := w.Write(append([]byte("SSH-2.0-Huge\r\n"), 0xff, 0xff, 0xff, 0xf0, 4))
			if err != nil {
				return err
			}
			<-gone // and then nothing
			return nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, _, err := sshterm.Open(ctx, garbageServer(t, c.send), "dev1", nil, open("tech", password))
			code := proto.CodeOf(err)
			if code != proto.CodeDeviceFailed && code != proto.CodeDeviceTimeout && code != proto.CodeCanceled {
				t.Fatalf("err %v (code %q), want a device error", err, code)
			}
			if strings.Contains(err.Error(), password) {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}
