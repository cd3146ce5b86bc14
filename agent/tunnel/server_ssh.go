package tunnel

import (
	"io"
	"log/slog"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// Terminal is a shell on a pty of the device (agent/sshterm.Terminal):
// Read gives its output, Write its input, CloseWrite closes its stdin.
type Terminal interface {
	io.ReadWriteCloser
	CloseWrite() error
	Resize(cols, rows int) error
}

// sshExchange is a TCP exchange whose connection is a terminal: the same
// byte streams and half-close (the client's FrameEnd closes the shell's
// stdin through Terminal.CloseWrite), plus window changes.
type sshExchange struct {
	*tcpExchange
	term Terminal
}

// startSSH logs in (Server.SSH) and answers FrameSSHOpened; from then on
// the exchange moves bytes as a TCP stream does. The login never reaches a
// log line: only the user and port do.
func (ss *Session) startSSH(ch *Channel, log *slog.Logger, payload []byte) agentExchange {
	o, err := proto.DecodeSSHOpen(payload)
	if err != nil {
		return ss.refuse(ch, log, "terminal", err)
	}
	if ss.srv.SSH == nil {
		return ss.refuse(ch, log, "terminal", proto.Errorf(proto.CodePortNotAllowed, "no terminals on this agent"))
	}
	start := time.Now()
	observed, err := ss.observe(Exchange{Kind: proto.AccessTCP, Stream: int(ch.ID()), Port: o.Port, Start: start, Via: proto.ViaWebRTC})
	if err != nil {
		return ss.refuse(ch, log, "terminal", asRefusal(err, proto.CodeInternal))
	}
	out := newOutDir(ss.ctx, ch)
	term, opened, err := ss.srv.SSH(out.ctx, o)
	o.Password, o.PrivateKey, o.Passphrase = "", "", ""
	if err != nil {
		out.stopFn()
		err = asRefusal(err, proto.CodeDeviceFailed)
		if observed != nil {
			observed(ExchangeResult{Duration: time.Since(start), Err: err})
		}
		return ss.refuse(ch, log, "terminal", err)
	}
	x := &tcpExchange{out: out, log: log, conn: term, bufs: ss.bufs, fin: make(chan struct{}), start: start, observed: observed}
	head, err := proto.EncodeHead(opened)
	if err == nil {
		err = out.send(proto.FrameSSHOpened, head)
	}
	if err != nil {
		out.stopFn()
		x.closeOnce.Do(func() { x.record(err) })
		_ = term.Close()
		close(x.fin)
		return &sshExchange{tcpExchange: x, term: term}
	}
	log.Info("tunnel: terminal opened", "port", o.Port, "ssh_user", o.User, "host_key", opened.HostKey, "first_use", opened.FirstUse)
	go x.fromDevice()
	return &sshExchange{tcpExchange: x, term: term}
}

// sshResize applies a window change to a terminal exchange; outside one it
// is a protocol violation, except on a refused one, whose frames are
// drained.
func sshResize(x agentExchange, payload []byte) error {
	switch x := x.(type) {
	case *sshExchange:
		r, err := proto.DecodeSSHResize(payload)
		if err != nil {
			return err
		}
		if err := x.term.Resize(r.Cols, r.Rows); err != nil {
			x.log.Debug("tunnel: terminal resize", "err", err)
		}
		return nil
	case refused:
		return nil
	}
	return proto.Errorf(proto.CodeBadMessage, "ssh-resize frame outside a terminal exchange")
}
