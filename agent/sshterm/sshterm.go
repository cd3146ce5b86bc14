// Package sshterm is the agent's SSH client for the browser's terminal: it
// logs in to a device's SSH service over a connection the agent's device
// scope dialled, checks the host key against the one pinned at first use,
// and runs a shell on a pty whose bytes the tunnel carries.
//
// The login's password or private key is used for the handshake only: it
// is never logged, never part of an error, and not kept after Open returns.
package sshterm

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/porthole-dev/porthole/proto"
)

// HandshakeTimeout bounds the SSH handshake, the login and the start of the
// shell.
const HandshakeTimeout = 30 * time.Second

// Pins is where host keys pinned at first use are kept: the hex SHA-256 of
// the key's wire form under a key naming the device and port
// (deviceid.PinStore with its own directory satisfies it).
type Pins interface {
	Get(key string) (string, error)
	Set(key, fingerprint string) error
}

// PinKey names the pin of a device's SSH service on port.
func PinKey(device string, port int) string { return device + ":ssh:" + strconv.Itoa(port) }

// HostKeyChanged is a device presenting another host key than the one
// pinned at first use.
type HostKeyChanged struct {
	Device      string
	Port        int
	Pinned, Got string // OpenSSH form, "SHA256:…"
}

func (c *HostKeyChanged) Error() string {
	return fmt.Sprintf("the SSH host key of device %s (port %d) changed: it presented %s, pinned at first use %s"+
		" — another machine may have this address; if the device's key was replaced, run `porthole-agent ssh-host-keys forget %s %d` on the agent",
		c.Device, c.Port, c.Got, c.Pinned, c.Device, c.Port)
}

// Fingerprint is the OpenSSH SHA256 fingerprint of a hex SHA-256.
func Fingerprint(hexSum string) string {
	b, err := hex.DecodeString(hexSum)
	if err != nil {
		return "SHA256:?"
	}
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(b)
}

// Terminal is a shell on a pty of the device. Read gives its output, Write
// its input; CloseWrite closes its stdin; Resize changes the window.
type Terminal struct {
	client *ssh.Client
	sess   *ssh.Session
	stdin  io.WriteCloser
	out    *io.PipeReader

	closeOnce sync.Once
	done      chan struct{}
}

var _ io.ReadWriteCloser = (*Terminal)(nil)

// Open logs in over conn (which it owns from now on, and closes on
// failure) and starts a shell. pins may be nil (nothing pinned: every key
// is accepted, for tests only).
func Open(ctx context.Context, conn net.Conn, device string, pins Pins, o *proto.SSHOpen) (*Terminal, *proto.SSHOpened, error) {
	deadline := time.Now().Add(HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	auth, err := authMethods(o)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	opened := &proto.SSHOpened{}
	var changed *HostKeyChanged
	cfg := &ssh.ClientConfig{
		User: o.User,
		Auth: auth,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			sum := sha256.Sum256(key.Marshal())
			got := hex.EncodeToString(sum[:])
			opened.HostKey = Fingerprint(got)
			if pins == nil {
				return nil
			}
			k := PinKey(device, o.Port)
			pinned, err := pins.Get(k)
			if err != nil {
				return fmt.Errorf("read the host key pin: %w", err)
			}
			switch {
			case pinned == got:
				return nil
			case pinned != "":
				changed = &HostKeyChanged{Device: device, Port: o.Port, Pinned: Fingerprint(pinned), Got: opened.HostKey}
				return changed
			}
			if err := pins.Set(k, got); err != nil {
				return fmt.Errorf("pin the host key: %w", err)
			}
			opened.FirstUse = true
			return nil
		},
		Timeout: HandshakeTimeout,
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, "device:"+strconv.Itoa(o.Port), cfg)
	if err != nil {
		_ = conn.Close()
		return nil, nil, handshakeError(err, changed, o)
	}
	client := ssh.NewClient(c, chans, reqs)
	t, err := startShell(client, o)
	if err != nil {
		_ = client.Close()
		if ctx.Err() != nil {
			return nil, nil, proto.Errorf(proto.CodeCanceled, "ssh: stopped")
		}
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return t, opened, nil
}

func authMethods(o *proto.SSHOpen) ([]ssh.AuthMethod, error) {
	if o.PrivateKey != "" {
		var signer ssh.Signer
		var err error
		if o.Passphrase != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(o.PrivateKey), []byte(o.Passphrase))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(o.PrivateKey))
		}
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing):
			return nil, proto.Errorf(proto.CodeBadRequest, "the private key needs its passphrase")
		case errors.Is(err, x509.IncorrectPasswordError):
			return nil, proto.Errorf(proto.CodeUnauthorized, "wrong passphrase for the private key")
		case err != nil:
			return nil, proto.Errorf(proto.CodeBadRequest, "the private key cannot be read (OpenSSH or PEM form expected)")
		}
		return []ssh.AuthMethod{ssh.PublicKeys(signer)}, nil
	}
	pw := o.Password
	return []ssh.AuthMethod{
		ssh.Password(pw),
		// Servers that ask through keyboard-interactive: answer each
		// prompt that does not echo with the password, once.
		ssh.RetryableAuthMethod(ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
			answers := make([]string, len(questions))
			for i := range questions {
				if !echos[i] {
					answers[i] = pw
				}
			}
			return answers, nil
		}), 1),
	}, nil
}

// handshakeError words a failed handshake without anything of the login
// but the user name.
func handshakeError(err error, changed *HostKeyChanged, o *proto.SSHOpen) error {
	var ne net.Error
	switch {
	case changed != nil:
		return proto.Errorf(proto.CodeDeviceFailed, "%s", changed.Error())
	case strings.Contains(err.Error(), "unable to authenticate"):
		return proto.Errorf(proto.CodeUnauthorized, "the device refused the login of user %q", o.User)
	case errors.As(err, &ne) && ne.Timeout():
		return proto.Errorf(proto.CodeDeviceTimeout, "ssh: the device did not finish the handshake in time")
	case errors.Is(err, io.EOF):
		return proto.Errorf(proto.CodeDeviceFailed, "ssh: the device closed the connection during the handshake")
	}
	// x/crypto/ssh's errors name algorithms and protocol states, never the
	// password; keep only the first line to be sure of the size.
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return proto.Errorf(proto.CodeDeviceFailed, "ssh handshake: %s", msg)
}

func startShell(client *ssh.Client, o *proto.SSHOpen) (*Terminal, error) {
	sess, err := client.NewSession()
	if err != nil {
		return nil, proto.Errorf(proto.CodeDeviceFailed, "ssh: open a session: %v", err)
	}
	term := o.Term
	if term == "" {
		term = "xterm-256color"
	}
	modes := ssh.TerminalModes{ssh.ECHO: 1, ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400}
	if err := sess.RequestPty(term, o.Rows, o.Cols, modes); err != nil {
		return nil, proto.Errorf(proto.CodeDeviceFailed, "ssh: the device refused a terminal: %v", err)
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		return nil, proto.Errorf(proto.CodeInternal, "ssh: stdin: %v", err)
	}
	pr, pw := io.Pipe()
	sess.Stdout = pw
	sess.Stderr = pw
	if err := sess.Shell(); err != nil {
		return nil, proto.Errorf(proto.CodeDeviceFailed, "ssh: the device refused a shell: %v", err)
	}
	t := &Terminal{client: client, sess: sess, stdin: stdin, out: pr, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		_ = sess.Wait() // the shell exited or the connection broke
		_ = pw.Close()
	}()
	return t, nil
}

// Read reads the terminal's output; io.EOF once the shell exited.
func (t *Terminal) Read(p []byte) (int, error) { return t.out.Read(p) }

// Write types into the terminal.
func (t *Terminal) Write(p []byte) (int, error) { return t.stdin.Write(p) }

// CloseWrite closes the shell's stdin.
func (t *Terminal) CloseWrite() error { return t.stdin.Close() }

// Resize changes the terminal's window.
func (t *Terminal) Resize(cols, rows int) error { return t.sess.WindowChange(rows, cols) }

// Close ends the session and the connection and waits for the session's
// goroutine.
func (t *Terminal) Close() error {
	t.closeOnce.Do(func() {
		_ = t.sess.Close()
		_ = t.client.Close()
		_ = t.out.Close()
	})
	<-t.done
	return nil
}
