package proto

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// A terminal on the device's SSH service is a fourth kind of exchange on a
// tunnel channel (see the state machine in tunnel.go). The agent is the SSH
// client; the technician's side carries only the login and the terminal's
// bytes:
//
//	client → agent: FrameSSHOpen  (FrameData | FrameSSHResize)*  (FrameEnd | FrameAbort)
//	agent → client: (FrameSSHOpened | FrameAbort)  FrameData*  (FrameEnd | FrameAbort)
//
// FrameSSHOpen names a declared port of the session's device, the login
// (user and a password or a PEM private key) and the terminal's type and
// size. The agent dials the port through the session's device scope,
// checks the host key against the key pinned at first use for that device
// and port (a different key refuses with FrameAbort of code device_failed
// whose message gives both SHA256 fingerprints), logs in, asks for a pty
// and starts a shell. FrameSSHOpened then gives the host key's fingerprint.
// A failed login is a FrameAbort of code unauthorized.
//
// FrameData in the client's direction is the terminal's input (keystrokes),
// in the agent's direction its output (stdout and stderr merged, as a pty
// gives them). FrameSSHResize (JSON SSHResize) is a window change. The
// client's FrameEnd closes the session's stdin; the agent's FrameEnd means
// the remote shell exited.
//
// The login is a secret: the agent never logs, records or echoes
// SSHOpen.Password or SSHOpen.PrivateKey, and no error carries them.

// SSH frame types.
const (
	FrameSSHOpen   FrameType = 0x07 // JSON SSHOpen, opens a terminal exchange
	FrameSSHOpened FrameType = 0x08 // JSON SSHOpened: logged in, the shell runs
	FrameSSHResize FrameType = 0x15 // JSON SSHResize: the terminal's new size
)

// SSH limits.
const (
	MaxSSHUser     = 256
	MaxSSHPassword = 1024
	MaxSSHKey      = 16 << 10 // a PEM private key (RSA 4096 is about 3.3 KiB)
	MaxTermSize    = 1000     // columns or rows
	MaxTermName    = 64
)

// SSHOpen opens a terminal on a declared SSH port of the session's device.
// Exactly one of Password and PrivateKey is set.
type SSHOpen struct {
	Port       int    `json:"port"`
	User       string `json:"user"`
	Password   string `json:"password,omitempty"`
	PrivateKey string `json:"privateKey,omitempty"` // PEM, unencrypted or with Passphrase
	Passphrase string `json:"passphrase,omitempty"`
	Term       string `json:"term,omitempty"` // "" is xterm-256color
	Cols       int    `json:"cols"`
	Rows       int    `json:"rows"`
}

// String never shows the secrets, so a logged or wrapped SSHOpen cannot
// leak them.
func (o *SSHOpen) String() string {
	return "ssh " + o.User + " port " + strconv.Itoa(o.Port)
}

// GoString hides the secrets from %#v too.
func (o *SSHOpen) GoString() string { return o.String() }

// SSHOpened answers an SSHOpen once the shell runs.
type SSHOpened struct {
	// HostKey is the server's host key fingerprint as OpenSSH prints it
	// ("SHA256:" and unpadded base64).
	HostKey string `json:"hostKey"`
	// FirstUse is set when the key was pinned by this session.
	FirstUse bool `json:"firstUse,omitempty"`
}

// SSHResize is a window change.
type SSHResize struct {
	Cols int `json:"cols"`
	Rows int `json:"rows"`
}

// DecodeSSHOpen parses and validates a FrameSSHOpen payload. Its errors
// never quote the payload.
func DecodeSSHOpen(b []byte) (*SSHOpen, error) {
	var o SSHOpen
	if err := decodeStrict(b, &o); err != nil {
		return nil, Errorf(CodeBadMessage, "malformed ssh open")
	}
	if o.Port < 1 || o.Port > 65535 {
		return nil, Errorf(CodeBadRequest, "port %d out of range", o.Port)
	}
	if o.User == "" || len(o.User) > MaxSSHUser || !printable(o.User) {
		return nil, Errorf(CodeBadRequest, "invalid ssh user name")
	}
	switch {
	case o.Password != "" && o.PrivateKey != "":
		return nil, Errorf(CodeBadRequest, "give a password or a private key, not both")
	case o.Password == "" && o.PrivateKey == "":
		return nil, Errorf(CodeBadRequest, "give a password or a private key")
	case len(o.Password) > MaxSSHPassword || len(o.Passphrase) > MaxSSHPassword:
		return nil, Errorf(CodeTooLarge, "password over %d bytes", MaxSSHPassword)
	case len(o.PrivateKey) > MaxSSHKey:
		return nil, Errorf(CodeTooLarge, "private key over %d bytes", MaxSSHKey)
	case o.PrivateKey != "" && !strings.Contains(o.PrivateKey, "PRIVATE KEY-----"):
		return nil, Errorf(CodeBadRequest, "the private key is not in PEM form")
	}
	if len(o.Term) > MaxTermName || !printable(o.Term) || strings.ContainsAny(o.Term, " \t") {
		return nil, Errorf(CodeBadRequest, "invalid terminal type")
	}
	if err := checkTermSize(o.Cols, o.Rows); err != nil {
		return nil, err
	}
	return &o, nil
}

// DecodeSSHOpened parses and validates a FrameSSHOpened payload.
func DecodeSSHOpened(b []byte) (*SSHOpened, error) {
	var o SSHOpened
	if err := decodeStrict(b, &o); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(o.HostKey, "SHA256:") || len(o.HostKey) > 128 || !printable(o.HostKey) {
		return nil, Errorf(CodeBadMessage, "invalid host key fingerprint")
	}
	return &o, nil
}

// DecodeSSHResize parses and validates a FrameSSHResize payload.
func DecodeSSHResize(b []byte) (*SSHResize, error) {
	var r SSHResize
	if err := decodeStrict(b, &r); err != nil {
		return nil, err
	}
	if err := checkTermSize(r.Cols, r.Rows); err != nil {
		return nil, err
	}
	return &r, nil
}

func checkTermSize(cols, rows int) error {
	if cols < 1 || cols > MaxTermSize || rows < 1 || rows > MaxTermSize {
		return Errorf(CodeBadRequest, "terminal size %dx%d out of range 1 to %d", cols, rows, MaxTermSize)
	}
	return nil
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}
