package daemon

import (
	"context"
	"path/filepath"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/agent/sshterm"
	"github.com/porthole-dev/porthole/agent/termrec"
	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/proto"
)

// sshPinsBeside keeps SSH host key pins in a directory of their own beside
// the TLS pins (a device's TLS pin and its SSH pins never share a file).
func sshPinsBeside(tls *deviceid.PinStore) *deviceid.PinStore {
	if tls.Dir == "" {
		return &deviceid.PinStore{}
	}
	return &deviceid.PinStore{Dir: filepath.Join(tls.Dir, "ssh-host-keys")}
}

// openTerminal is the tunnel's SSH hook for session s: it dials the
// declared SSH port through the session's device scope (the same dial as
// a TCP stream, identity checked) and logs in as the agent. The port must
// be declared (or discovered) as an SSH service.
func (a *Agent) openTerminal(s *session) func(ctx context.Context, o *proto.SSHOpen) (tunnel.Terminal, *proto.SSHOpened, error) {
	return func(ctx context.Context, o *proto.SSHOpen) (tunnel.Terminal, *proto.SSHOpened, error) {
		if serviceOn(s.device.cfg.Services, o.Port) != proto.ServiceSSH {
			return nil, nil, proto.Errorf(proto.CodePortNotAllowed, "port %d of device %s is not declared as an SSH service", o.Port, s.device.cfg.ID)
		}
		conn, err := a.guardDialTCP(s)(ctx, o.Port)
		if err != nil {
			return nil, nil, err
		}
		t, opened, err := sshterm.Open(ctx, conn, s.device.cfg.ID, a.cfg.SSHPins, o)
		if err != nil {
			a.log.Info("terminal refused", "session", s.id, "device", s.device.cfg.ID, "port", o.Port, "ssh_user", o.User, "code", proto.CodeOf(err), "err", err)
			return nil, nil, err
		}
		if opened.FirstUse {
			a.log.Info("SSH host key pinned at first use", "device", s.device.cfg.ID, "port", o.Port, "host_key", opened.HostKey)
		}
		return &recordedTerminal{Terminal: t, rec: a.recs.Begin(s.id, o.Cols, o.Rows)}, opened, nil
	}
}

// recordedTerminal records a terminal's output and window changes in the
// session's recording (agent/termrec); its input is never recorded.
type recordedTerminal struct {
	tunnel.Terminal
	rec *termrec.Terminal
}

func (t *recordedTerminal) Read(p []byte) (int, error) {
	n, err := t.Terminal.Read(p)
	t.rec.Output(p[:n])
	return n, err
}

func (t *recordedTerminal) Resize(cols, rows int) error {
	err := t.Terminal.Resize(cols, rows)
	if err == nil {
		t.rec.Resize(cols, rows)
	}
	return err
}

func (t *recordedTerminal) Close() error {
	t.rec.Close()
	return t.Terminal.Close()
}
