//go:build !unix

package relay

import "syscall"

// reusePort is nil without SO_REUSEPORT: UDPListen gets one socket.
var reusePort func(_, _ string, c syscall.RawConn) error
