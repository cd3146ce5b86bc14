//go:build unix

package relay

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort is a net.ListenConfig Control that sets SO_REUSEPORT, so that
// several UDP sockets share one address; nil where there is none.
var reusePort = func(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
