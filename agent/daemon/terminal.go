package daemon

import (
	"context"
	"path/filepath"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/agent/sshterm"
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
		return t, opened, nil
	}
}
