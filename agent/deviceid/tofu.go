package deviceid

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/porthole-dev/porthole/proto"
)

// PinStore keeps the TLS certificates pinned at first use (TOFU), one
// file per device in Dir: DEVICE.sha256 holding the hex SHA-256 of the DER
// leaf certificate (the same value as a device's tlsCertSha256), written
// atomically with mode 0600. The whole certificate is pinned rather than
// its public key: embedded web servers that regenerate a self-signed
// certificate regenerate the key with it, and the value is the one
// `openssl x509 -fingerprint -sha256` and browsers show.
//
// The files are read at every check, so removing or replacing one (the
// `porthole-agent trust` command) takes effect at the next session without
// restarting the agent. The zero value keeps the pins in memory (tests,
// demo agents without a state directory).
type PinStore struct {
	Dir string

	mu  sync.Mutex
	mem map[string]string
}

// pinSuffix is the extension of a pin file.
const pinSuffix = ".sha256"

func (s *PinStore) path(device string) (string, error) {
	if !proto.ValidID(device) {
		return "", fmt.Errorf("invalid device id %q", device)
	}
	return filepath.Join(s.Dir, device+pinSuffix), nil
}

// Get returns the fingerprint pinned for device, "" if none.
func (s *PinStore) Get(device string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get(device)
}

func (s *PinStore) get(device string) (string, error) {
	if s.Dir == "" {
		return s.mem[device], nil
	}
	p, err := s.path(device)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read TLS pin: %w", err)
	}
	fp, err := parseFingerprint(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("TLS pin %s: %w", p, err)
	}
	return hex.EncodeToString(fp), nil
}

// Set pins fingerprint (hex, colons allowed) for device, replacing any pin.
func (s *PinStore) Set(device, fingerprint string) error {
	fp, err := parseFingerprint(fingerprint)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set(device, hex.EncodeToString(fp))
}

func (s *PinStore) set(device, fp string) error {
	if s.Dir == "" {
		if s.mem == nil {
			s.mem = map[string]string{}
		}
		s.mem[device] = fp
		return nil
	}
	p, err := s.path(device)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("TLS pin directory: %w", err)
	}
	f, err := os.CreateTemp(s.Dir, ".pin-*") // mode 0600
	if err != nil {
		return fmt.Errorf("write TLS pin: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename: nothing to remove
	_, err = f.WriteString(fp + "\n")
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		return fmt.Errorf("write TLS pin: %w", err)
	}
	return nil
}

// Remove forgets device's pin: the next successful identity check pins
// the certificate the device presents then.
func (s *PinStore) Remove(device string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Dir == "" {
		delete(s.mem, device)
		return nil
	}
	p, err := s.path(device)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Apply enforces trust on first use on the result of a successful check of
// an https device without a configured pin. A device with a pin must
// present that certificate again, or Apply returns a *proto.Error of code
// device_failed wrapping a *CertChanged. Without a pin, a certificate
// whose chain does not verify with the CAs (self-signed) is pinned now and
// firstUse is true; one that verifies is left to CA verification. On
// success res.TLSPin is the pin the session's connections must present
// ("" for CA verification).
func (s *PinStore) Apply(device string, res *Result) (firstUse bool, err error) {
	if res.CertSHA256 == "" {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pinned, err := s.get(device)
	if err != nil {
		return false, fail(device, err)
	}
	switch {
	case pinned == res.CertSHA256:
		res.TLSPin = pinned
		return false, nil
	case pinned != "":
		c := &CertChanged{Device: device, Addr: res.Addr, Pinned: pinned, Got: res.CertSHA256}
		return false, &checkError{pe: proto.Errorf(proto.CodeDeviceFailed, "%s", c.Error()), err: c}
	case res.CertVerified:
		return false, nil
	}
	if err := s.set(device, res.CertSHA256); err != nil {
		return false, fail(device, err)
	}
	res.TLSPin = res.CertSHA256
	return true, nil
}

// CertChanged is a device presenting another TLS certificate than the one
// pinned at its first use.
type CertChanged struct {
	Device      string
	Addr        netip.Addr
	Pinned, Got string // hex SHA-256
}

func (c *CertChanged) Error() string {
	return fmt.Sprintf("device %s at %s presented another TLS certificate than the one pinned at first use: SHA-256 %s, pinned %s"+
		" — another machine may have this address; if the device's certificate was replaced, accept the new one on the agent with:"+
		" porthole-agent trust --sha256 %s %s",
		c.Device, c.Addr, c.Got, c.Pinned, c.Got, c.Device)
}
